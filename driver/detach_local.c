/* run --detach on the embedded default: the job's functions in this user's background serve (detach_local.h). */
#include "detach_local.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <zip.h>

#include "aws/config.h"
#include "aws/lambda_api.h"
#include "lambda/aws_invoker.h"
#include "lambda/limits.h"
#include "lambda/roles.h"
#include "report/cost.h"
#include "util/misc.h"

#define ZIP_MAX_BYTES LMR_LAMBDA_ZIP_DIRECT_MAX_BYTES
#define MAX_ENTRIES 1024
#define LOCK_WAIT_MS 60000u
/* No IAM here: any role ARN will do, as the service does not check that the role exists. */
#define LOCAL_ROLE_ARN "arn:aws:iam::000000000000:role/lambdamr-local"

struct entry {
    char name[512]; /* inside the zip */
    char source[PATH_MAX];
    bool exec;
};

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct entry *)a)->name, ((const struct entry *)b)->name);
}

/* The regular files of root/sub (one level: plugins/ or files/), as zip entries sub/NAME. */
static enum lmr_result list_sub(const char *root, const char *sub, struct entry *v, size_t *n, struct lmr_err *err)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/%s", root, sub);
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? LMR_OK : lmr_fail(err, LMR_ERR_IO, "cannot read %s: %s", dir, strerror(errno));
    enum lmr_result r = LMR_OK;
    for (struct dirent *de; !r && (de = readdir(d));) {
        if (de->d_name[0] == '.')
            continue;
        struct entry *e = &v[*n];
        struct stat st;
        snprintf(e->source, sizeof e->source, "%s/%s", dir, de->d_name);
        if (stat(e->source, &st) || !S_ISREG(st.st_mode))
            continue;
        if (*n + 1 >= MAX_ENTRIES)
            r = lmr_fail(err, LMR_ERR_TOO_LARGE, "more than %d files to ship with the job", MAX_ENTRIES - 1);
        snprintf(e->name, sizeof e->name, "%s/%s", sub, de->d_name);
        e->exec = st.st_mode & 0111;
        (*n)++;
    }
    closedir(d);
    return r;
}

/* The zip: `bootstrap` (sh: exec the function binary) and the task root's plugins/ and files/, deterministic. */
static enum lmr_result build_zip(const struct lmr_detach_local_options *o, char **zip, size_t *zip_len,
                                 struct lmr_err *err)
{
    struct entry *v = calloc(MAX_ENTRIES, sizeof *v);
    size_t n = 0;
    if (!v)
        return lmr_fail(err, LMR_ERR_NOMEM, "out of memory packing the job's functions");
    enum lmr_result r = LMR_OK;
    if (o->task_root && !(r = list_sub(o->task_root, "plugins", v, &n, err)))
        r = list_sub(o->task_root, "files", v, &n, err);
    qsort(v, n, sizeof *v, by_name);
    /* The entry point: the binary by its absolute path, quoted for sh. */
    char script[PATH_MAX * 4 + 64], *p = script;
    p += sprintf(p, "#!/bin/sh\nexec '");
    for (const char *s = o->bootstrap; *s; s++)
        p += *s == '\'' ? sprintf(p, "'\\''") : sprintf(p, "%c", *s);
    sprintf(p, "' \"$@\"\n");
    const char *tmpdir = getenv("TMPDIR");
    char dir[PATH_MAX], path[PATH_MAX + 16];
    snprintf(dir, sizeof dir, "%s/lambdamr-detach-XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");
    bool made = !r && mkdtemp(dir);
    if (!r && !made)
        r = lmr_fail(err, LMR_ERR_IO, "cannot make a temporary folder in %s: %s", tmpdir ? tmpdir : "/tmp",
                     strerror(errno));
    snprintf(path, sizeof path, "%s/code.zip", dir);
    int zerr = 0;
    zip_t *za = r ? NULL : zip_open(path, ZIP_CREATE | ZIP_TRUNCATE, &zerr);
    if (!r && !za)
        r = lmr_fail(err, LMR_ERR_IO, "cannot write %s (libzip error %d)", path, zerr);
    for (size_t i = 0; !r && i <= n; i++) {
        const char *name = i == 0 ? "bootstrap" : v[i - 1].name;
        zip_source_t *src =
            i == 0 ? zip_source_buffer(za, script, strlen(script), 0) : zip_source_file(za, v[i - 1].source, 0, -1);
        zip_int64_t idx = src ? zip_file_add(za, name, src, ZIP_FL_ENC_UTF_8) : -1;
        uint32_t mode = i == 0 || v[i - 1].exec ? 0755 : 0644;
        if (idx < 0 || zip_set_file_compression(za, (zip_uint64_t)idx, ZIP_CM_DEFLATE, 6) ||
            zip_file_set_dostime(za, (zip_uint64_t)idx, 0, 0x21, 0) ||
            zip_file_set_external_attributes(za, (zip_uint64_t)idx, 0, ZIP_OPSYS_UNIX,
                                             (zip_uint32_t)(S_IFREG | mode) << 16)) {
            if (idx < 0 && src)
                zip_source_free(src);
            r = lmr_fail(err, LMR_ERR_IO, "cannot add %s to the functions' zip: %s", name, zip_strerror(za));
        }
    }
    if (za && !r && zip_close(za)) {
        r = lmr_fail(err, LMR_ERR_IO, "cannot write the functions' zip %s: %s", path, zip_strerror(za));
        zip_discard(za);
    } else if (za && r) {
        zip_discard(za);
    }
    if (!r && (r = lmr_read_file(path, ZIP_MAX_BYTES, zip, zip_len, err)))
        lmr_err_prefix(err, "the job's functions (their zip must be under 50 MB)");
    if (made)
        lmr_remove_tree(dir, NULL);
    free(v);
    return r;
}

/* The functions' variables: this driver's LMR_* and AWS_ENDPOINT_URL*, and the serve as Lambda's endpoint. */
static json_t *function_env(uint16_t port)
{
    extern char **environ;
    json_t *vars = json_object();
    for (char **e = environ; vars && e && *e; e++) {
        const char *eq = strchr(*e, '=');
        if (!eq || (strncmp(*e, "LMR_", 4) && strncmp(*e, "AWS_ENDPOINT_URL", 16)))
            continue;
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)(eq - *e) < 255 ? (int)(eq - *e) : 255, *e);
        if (strcmp(name, "LMR_BOOTSTRAP"))
            json_object_set_new(vars, name, json_string(eq + 1));
    }
    char endpoint[64];
    snprintf(endpoint, sizeof endpoint, "http://127.0.0.1:%u", (unsigned)port);
    if (vars)
        json_object_set_new(vars, "AWS_ENDPOINT_URL_LAMBDA", json_string(endpoint));
    return vars;
}

/* lambdamr-HASH: a digest of the zip and the settings, so equal settings share functions. */
static void function_prefix(const char *zip, size_t zip_len, const struct lmr_detach_local_options *o,
                            const json_t *env, char *out, size_t cap)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char settings[128];
    char *vars = json_dumps(env, JSON_COMPACT | JSON_SORT_KEYS);
    snprintf(settings, sizeof settings, "memory=%u timeout=%u concurrency=%u", o->memory_mb, o->timeout_s,
             o->concurrency);
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    memset(md, 0, sizeof md);
    if (c && EVP_DigestInit_ex(c, EVP_sha256(), NULL) && EVP_DigestUpdate(c, zip, zip_len) &&
        EVP_DigestUpdate(c, settings, strlen(settings)) && (!vars || EVP_DigestUpdate(c, vars, strlen(vars))))
        EVP_DigestFinal_ex(c, md, &mdlen);
    EVP_MD_CTX_free(c);
    free(vars);
    char hex[13];
    for (int i = 0; i < 6; i++)
        sprintf(hex + 2 * i, "%02x", md[i]);
    snprintf(out, cap, "lambdamr-%s", hex);
}

/* One of the job's functions: created unless it exists, then waited for until Active. */
static enum lmr_result ensure_function(struct lmr_aws_client *c, const char *prefix, const char *role,
                                       uint32_t memory_mb, uint32_t timeout_s, uint32_t concurrency, json_t *env,
                                       const char *zip, size_t zip_len, struct lmr_err *err)
{
    char name[128], description[128];
    snprintf(name, sizeof name, "%s-%s", prefix, role);
    snprintf(description, sizeof description, "lambdamr run --detach: the %s of the embedded default", role);
    struct lmr_lambda_function_config cfg = {0};
    bool created = false;
    enum lmr_result r = lmr_lambda_get_function_configuration(c, name, &cfg, err);
    if (r == LMR_ERR_NOT_FOUND) {
        lmr_err_clear(err);
        struct lmr_lambda_function_spec spec = {.name = name,
                                                .runtime = LMR_LAMBDA_RUNTIME_PROVIDED_AL2023,
                                                .handler = role,
                                                .role_arn = LOCAL_ROLE_ARN,
                                                .memory_mb = memory_mb,
                                                .timeout_s = timeout_s,
                                                .architecture = lmr_build_architecture(),
                                                .description = description,
                                                .environment = env};
        r = lmr_lambda_create_function(c, &spec, zip, zip_len, 0, &cfg, err);
        created = !r;
        if (r == LMR_ERR_EXISTS) /* another driver made it meanwhile */
            lmr_err_clear(err), r = LMR_OK;
    }
    if (!r)
        r = lmr_lambda_wait_settled(c, name, 30000, &cfg, err);
    if (!r && created && concurrency)
        r = lmr_lambda_put_function_concurrency(c, name, concurrency, err);
    lmr_lambda_function_config_clean_up(&cfg);
    return r ? lmr_err_prefix(err, "the function %s in the background lambdamr serve", name) : LMR_OK;
}

/* A job on S3 needs the serve to have this environment's AWS credentials and region. */
static enum lmr_result check_serve_env(const struct lmr_background_state *st, bool uses_s3, struct lmr_err *err)
{
    char aws_env[17];
    lmr_background_aws_env_digest(aws_env);
    if (!uses_s3 || !strcmp(aws_env, st->aws_env))
        return LMR_OK;
    return lmr_fail(err, LMR_ERR_INVALID,
                    "the background lambdamr serve (pid %d) has other AWS credentials or another region than this "
                    "command (its functions get those of the driver that started it), and this job reads or writes "
                    "S3; stop it with 'lambdamr serve --stop' and run the command again",
                    st->pid);
}

enum lmr_result lmr_detach_local_check(const char *dir, bool uses_s3, struct lmr_err *err)
{
    struct lmr_background_state st;
    enum lmr_result r = lmr_background_find(dir, &st, err);
    if (r == LMR_ERR_NOT_FOUND) /* none runs: the one this job starts gets its environment */
        return LMR_OK;
    return r ? r : check_serve_env(&st, uses_s3, err);
}

enum lmr_result lmr_detach_local_prepare(const struct lmr_detach_local_options *o, struct lmr_detach_local *d,
                                         struct lmr_invoker **inv, struct lmr_err *err)
{
    memset(d, 0, sizeof *d);
    d->lock_fd = -1;
    *inv = NULL;
    char self[PATH_MAX];
    ssize_t sn = readlink("/proc/self/exe", self, sizeof self - 1);
    if (sn <= 0)
        return lmr_fail(err, LMR_ERR_IO, "cannot find the lambdamr executable (/proc/self/exe): %s", strerror(errno));
    self[sn] = '\0';
    char *bootstrap = lmr_abspath(o->bootstrap); /* the zip's entry point runs in the task root */
    if (!bootstrap)
        return lmr_fail(err, LMR_ERR_NOMEM, "out of memory");
    struct lmr_detach_local_options opts = *o;
    opts.bootstrap = bootstrap;
    o = &opts;
    enum lmr_result r = lmr_background_dir(d->dir, sizeof d->dir, err);
    if (!r && (d->lock_fd = lmr_background_lock(d->dir, LOCK_WAIT_MS, err)) < 0)
        r = err ? err->code : LMR_ERR_IO;
    if (r) {
        free(bootstrap);
        return r;
    }
    char *zip = NULL;
    size_t zip_len = 0;
    json_t *env = NULL;
    struct lmr_aws_client *c = NULL;
    if ((r = lmr_background_ensure(d->dir, self, &d->serve, err)) || (r = build_zip(o, &zip, &zip_len, err)))
        goto out;
    if ((r = check_serve_env(&d->serve, o->uses_s3, err)))
        goto out;
    if (!(env = function_env(d->serve.port))) {
        r = lmr_fail(err, LMR_ERR_NOMEM, "out of memory");
        goto out;
    }
    function_prefix(zip, zip_len, o, env, d->prefix, sizeof d->prefix);
    /* The serve's APIs: its endpoint; credentials to sign with when none are set (it does not check them). */
    struct lmr_aws_config cfg;
    if ((r = lmr_aws_config_load(&cfg, err)))
        goto out;
    snprintf(cfg.endpoint[LMR_AWS_LAMBDA], sizeof cfg.endpoint[LMR_AWS_LAMBDA], "http://127.0.0.1:%u",
             (unsigned)d->serve.port);
    if (!cfg.have_credentials) {
        snprintf(cfg.creds.access_key_id, sizeof cfg.creds.access_key_id, "lambdamr-local");
        snprintf(cfg.creds.secret_access_key, sizeof cfg.creds.secret_access_key, "lambdamr-local");
        cfg.have_credentials = true;
    }
    struct lmr_aws_client_options co = {.config = &cfg};
    if ((r = lmr_aws_client_new(&co, &c, err)))
        goto out;
    static const char *const roles[] = {LMR_ROLE_MAPPER, LMR_ROLE_REDUCER, LMR_ROLE_COORDINATOR};
    for (int i = 0; !r && i < 3; i++) {
        bool coord = i == 2;
        r = ensure_function(c, d->prefix, roles[i], o->memory_mb, coord ? LMR_COORDINATOR_TIMEOUT_S : o->timeout_s,
                            coord ? 2 : o->concurrency, env, zip, zip_len, err);
    }
    struct lmr_aws_invoker_options io = {.config = &cfg};
    if (!r)
        r = lmr_aws_invoker_new(&io, inv, err);
out:
    lmr_aws_client_destroy(c);
    json_decref(env);
    free(zip);
    free(bootstrap);
    if (r)
        lmr_detach_local_release(d);
    return r;
}

void lmr_detach_local_release(struct lmr_detach_local *d)
{
    lmr_background_unlock(d->lock_fd);
    d->lock_fd = -1;
}
