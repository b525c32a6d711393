/* Credential, region and endpoint resolution (see config.h for the order). */
#include "aws/config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/misc.h"

#define AWS_SHARED_FILE_MAX_BYTES (4u << 20)

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

const char *lmr_aws_service_name(enum lmr_aws_service svc)
{
    switch (svc) {
    case LMR_AWS_S3:
        return "s3";
    case LMR_AWS_LAMBDA:
        return "lambda";
    case LMR_AWS_KINESIS:
        return "kinesis";
    case LMR_AWS_IAM:
        return "iam";
    case LMR_AWS_LOGS:
        return "logs";
    case LMR_AWS_CLOUDFORMATION:
        return "cloudformation";
    default:
        return "unknown";
    }
}

const char *lmr_aws_service_title(enum lmr_aws_service svc)
{
    static const char *const titles[LMR_AWS_SERVICE_COUNT] = {"S3",  "Lambda",          "Kinesis",
                                                              "IAM", "CloudWatch Logs", "CloudFormation"};
    return (unsigned)svc < LMR_AWS_SERVICE_COUNT ? titles[svc] : "AWS";
}

const char *lmr_aws_service_endpoint_var(enum lmr_aws_service svc)
{
    static const char *const vars[LMR_AWS_SERVICE_COUNT] = {
        "AWS_ENDPOINT_URL_S3",  "AWS_ENDPOINT_URL_LAMBDA", "AWS_ENDPOINT_URL_KINESIS",
        "AWS_ENDPOINT_URL_IAM", "AWS_ENDPOINT_URL_LOGS",   "AWS_ENDPOINT_URL_CLOUDFORMATION"};
    return (unsigned)svc < LMR_AWS_SERVICE_COUNT ? vars[svc] : "AWS_ENDPOINT_URL";
}

const char *lmr_aws_signing_region(const struct lmr_aws_config *cfg, enum lmr_aws_service svc)
{
    return svc == LMR_AWS_IAM ? "us-east-1" : cfg->region; /* IAM is global, signed for us-east-1 */
}

static void copy(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

static void path_of(const char *env_name, const char *home_rel, char *out, size_t cap)
{
    const char *p = env(env_name);
    if (p) {
        if (p[0] == '~' && p[1] == '/' && env("HOME"))
            snprintf(out, cap, "%s%s", env("HOME"), p + 1);
        else
            copy(out, cap, p);
        return;
    }
    const char *home = env("HOME");
    snprintf(out, cap, "%s/%s", home ? home : "", home_rel);
}

/* Values of one profile found in a file. */
struct profile_values {
    bool found;
    char access_key_id[sizeof((struct lmr_aws_credentials *)0)->access_key_id];
    char secret_access_key[sizeof((struct lmr_aws_credentials *)0)->secret_access_key];
    char session_token[sizeof((struct lmr_aws_credentials *)0)->session_token];
    char region[64];
};

/*
 * Read section `profile` of an INI file. In the config file the section is "[profile NAME]"
 * (or "[default]"); in the credentials file it is "[NAME]". Indented lines are sub-settings
 * of the key above them (e.g. "s3 =\n  addressing_style = path") and are skipped.
 */
static enum lmr_result read_profile(const char *path, const char *profile, bool config_file, struct profile_values *pv,
                                    struct lmr_err *err)
{
    char *data = NULL;
    size_t len = 0;
    memset(pv, 0, sizeof *pv);
    FILE *probe = fopen(path, "r");
    if (!probe)
        return LMR_OK; /* a missing file is normal */
    fclose(probe);
    enum lmr_result r = lmr_read_file(path, AWS_SHARED_FILE_MAX_BYTES, &data, &len, err);
    if (r)
        return r;
    bool in_section = false;
    char *save = NULL;
    for (char *line = strtok_r(data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        bool indented = line[0] == ' ' || line[0] == '\t';
        char *t = trim(line);
        if (!*t || *t == '#' || *t == ';')
            continue;
        if (*t == '[') {
            char *close = strchr(t, ']');
            if (!close)
                continue;
            *close = '\0';
            char *name = trim(t + 1);
            if (config_file && strcmp(name, "default")) {
                if (strncmp(name, "profile", 7) || !isspace((unsigned char)name[7]))
                    name = NULL;
                else
                    name = trim(name + 8);
            }
            in_section = name && !strcmp(name, profile);
            pv->found |= in_section;
            continue;
        }
        if (!in_section || indented)
            continue;
        char *eq = strchr(t, '=');
        if (!eq)
            continue;
        *eq = '\0';
        char *key = trim(t), *value = trim(eq + 1);
        for (char *c = key; *c; c++)
            *c = (char)tolower((unsigned char)*c);
        if (!strcmp(key, "aws_access_key_id"))
            copy(pv->access_key_id, sizeof pv->access_key_id, value);
        else if (!strcmp(key, "aws_secret_access_key"))
            copy(pv->secret_access_key, sizeof pv->secret_access_key, value);
        else if (!strcmp(key, "aws_session_token"))
            copy(pv->session_token, sizeof pv->session_token, value);
        else if (!strcmp(key, "region"))
            copy(pv->region, sizeof pv->region, value);
    }
    free(data);
    return LMR_OK;
}

void lmr_aws_config_describe_search(const struct lmr_aws_config *cfg, char *out, size_t cap)
{
    char cpath[512], fpath[512];
    path_of("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials", cpath, sizeof cpath);
    path_of("AWS_CONFIG_FILE", ".aws/config", fpath, sizeof fpath);
    snprintf(out, cap, "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or profile '%s' in %s or %s", cfg->profile, cpath,
             fpath);
}

enum lmr_result lmr_aws_config_load(struct lmr_aws_config *cfg, struct lmr_err *err)
{
    memset(cfg, 0, sizeof *cfg);
    const char *explicit_profile = env("AWS_PROFILE");
    copy(cfg->profile, sizeof cfg->profile, explicit_profile ? explicit_profile : "default");

    char cpath[512], fpath[512];
    path_of("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials", cpath, sizeof cpath);
    path_of("AWS_CONFIG_FILE", ".aws/config", fpath, sizeof fpath);
    struct profile_values cv, fv;
    enum lmr_result r = read_profile(cpath, cfg->profile, false, &cv, err);
    if (!r)
        r = read_profile(fpath, cfg->profile, true, &fv, err);
    if (r)
        return r;

    const char *akid = env("AWS_ACCESS_KEY_ID"), *secret = env("AWS_SECRET_ACCESS_KEY");
    if (akid || secret) {
        if (!akid || !secret)
            return lmr_fail(err, LMR_ERR_AUTH,
                            "AWS credentials in the environment are incomplete: %s is set but %s is not; set both "
                            "(or neither, to use a profile)",
                            akid ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY",
                            akid ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID");
        copy(cfg->creds.access_key_id, sizeof cfg->creds.access_key_id, akid);
        copy(cfg->creds.secret_access_key, sizeof cfg->creds.secret_access_key, secret);
        copy(cfg->creds.session_token, sizeof cfg->creds.session_token, env("AWS_SESSION_TOKEN"));
        copy(cfg->creds_source, sizeof cfg->creds_source, "the environment (AWS_ACCESS_KEY_ID)");
        cfg->have_credentials = true;
    } else {
        const struct profile_values *src = NULL;
        const char *src_path = NULL;
        if (cv.found && *cv.access_key_id) {
            src = &cv;
            src_path = cpath;
        } else if (fv.found && *fv.access_key_id) {
            src = &fv;
            src_path = fpath;
        }
        if (explicit_profile && !cv.found && !fv.found)
            return lmr_fail(err, LMR_ERR_AUTH,
                            "AWS profile '%s' (from AWS_PROFILE) is in neither %s nor %s; check the name or run "
                            "'aws configure --profile %s'",
                            cfg->profile, cpath, fpath, cfg->profile);
        if (src) {
            if (!*src->secret_access_key)
                return lmr_fail(err, LMR_ERR_AUTH,
                                "AWS profile '%s' in %s has aws_access_key_id but no aws_secret_access_key; add it",
                                cfg->profile, src_path);
            copy(cfg->creds.access_key_id, sizeof cfg->creds.access_key_id, src->access_key_id);
            copy(cfg->creds.secret_access_key, sizeof cfg->creds.secret_access_key, src->secret_access_key);
            copy(cfg->creds.session_token, sizeof cfg->creds.session_token, src->session_token);
            snprintf(cfg->creds_source, sizeof cfg->creds_source, "profile '%s' in %s", cfg->profile, src_path);
            cfg->have_credentials = true;
        }
    }

    const char *region = env("AWS_REGION");
    if (!region)
        region = env("AWS_DEFAULT_REGION");
    if (!region && *fv.region)
        region = fv.region;
    if (!region && *cv.region)
        region = cv.region;
    copy(cfg->region, sizeof cfg->region, region ? region : "us-east-1");

    const char *global = env("AWS_ENDPOINT_URL");
    for (int s = 0; s < LMR_AWS_SERVICE_COUNT; s++) {
        const char *e = env(lmr_aws_service_endpoint_var(s));
        copy(cfg->endpoint[s], sizeof cfg->endpoint[s], e ? e : global);
        size_t n = strlen(cfg->endpoint[s]);
        while (n && cfg->endpoint[s][n - 1] == '/')
            cfg->endpoint[s][--n] = '\0';
        if (n && !strstr(cfg->endpoint[s], "://"))
            return lmr_fail(err, LMR_ERR_INVALID,
                            "endpoint '%s' (from %s) is not a URL; use http://HOST:PORT or https://HOST",
                            cfg->endpoint[s], e ? lmr_aws_service_endpoint_var(s) : "AWS_ENDPOINT_URL");
    }
    return LMR_OK;
}

void lmr_aws_config_endpoint(const struct lmr_aws_config *cfg, enum lmr_aws_service svc, char *out, size_t cap,
                             bool *custom)
{
    bool c = cfg->endpoint[svc][0] != '\0';
    if (c)
        copy(out, cap, cfg->endpoint[svc]);
    else if (svc == LMR_AWS_IAM)
        copy(out, cap, "https://iam.amazonaws.com");
    else
        snprintf(out, cap, "https://%s.%s.amazonaws.com", lmr_aws_service_name(svc), cfg->region);
    if (custom)
        *custom = c;
}
