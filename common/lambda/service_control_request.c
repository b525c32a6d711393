/*
 * The control plane's request checks (see service_control.h): members of the JSON bodies with the
 * constraints of Lambda's API model. Constraint violations (length, pattern, range, enum) are
 * ValidationException with Lambda's "1 validation error detected" sentences; semantic problems
 * are InvalidParameterValueException.
 */
#define _GNU_SOURCE
#include <jansson.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lambda/memory.h"
#include "lambda/service_control_internal.h"

static const char *const ROLE_PATTERN = "arn:(aws[a-zA-Z-]*)?:iam::\\d{12}:role/?[a-zA-Z_0-9+=,.@\\-_/]+";
static const char *const NAME_PATTERN =
    "(arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\\d{1}:)?(\\d{12}:)?(function:)?([a-zA-"
    "Z0-9-_]+)(:(\\$LATEST|[a-zA-Z0-9-_]+))?";

/* Every Runtime value of the API model, and the custom runtimes this service can run. */
static const char *const RUNTIMES[] = {
    "nodejs",     "nodejs4.3",       "nodejs6.10",    "nodejs8.10",    "nodejs10.x",    "nodejs12.x",    "nodejs14.x",
    "nodejs16.x", "java8",           "java8.al2",     "java11",        "python2.7",     "python3.6",     "python3.7",
    "python3.8",  "python3.9",       "dotnetcore1.0", "dotnetcore2.0", "dotnetcore2.1", "dotnetcore3.1", "dotnet6",
    "dotnet8",    "nodejs4.3-edge",  "go1.x",         "ruby2.5",       "ruby2.7",       "provided",      "provided.al2",
    "nodejs18.x", "python3.10",      "java17",        "ruby3.2",       "ruby3.3",       "ruby3.4",       "python3.11",
    "nodejs20.x", "provided.al2023", "python3.12",    "java21",        "python3.13",    "nodejs22.x",    "nodejs24.x",
    "python3.14", "java25",          "dotnet10",      "ruby4.0"};
#define N_RUNTIMES (sizeof RUNTIMES / sizeof RUNTIMES[0])

/* Variables Lambda sets itself and refuses in Environment.Variables. */
static const char *const RESERVED_VARS[] = {"_HANDLER",
                                            "_X_AMZN_TRACE_ID",
                                            "AWS_DEFAULT_REGION",
                                            "AWS_REGION",
                                            "AWS_EXECUTION_ENV",
                                            "AWS_LAMBDA_FUNCTION_NAME",
                                            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                                            "AWS_LAMBDA_FUNCTION_VERSION",
                                            "AWS_LAMBDA_INITIALIZATION_TYPE",
                                            "AWS_LAMBDA_LOG_GROUP_NAME",
                                            "AWS_LAMBDA_LOG_STREAM_NAME",
                                            "AWS_ACCESS_KEY",
                                            "AWS_ACCESS_KEY_ID",
                                            "AWS_SECRET_ACCESS_KEY",
                                            "AWS_SESSION_TOKEN",
                                            "AWS_LAMBDA_RUNTIME_API",
                                            "LAMBDA_TASK_ROOT",
                                            "LAMBDA_RUNTIME_DIR"};

/* ---- request members -------------------------------------------------------------------------- */

bool lmr_svc_cp_bad_type(struct lmr_svc_api_err *e, const char *member, const char *type)
{
    return lmr_svc_cp_fail(e, 400, "InvalidRequestContentException",
                           "Could not parse request body into json: the member %s must be %s", member, type);
}

/* A string member (absent or null: *out = NULL). `name` is the model's lowerCamel name for messages. */
bool lmr_svc_cp_get_string(json_t *o, const char *key, const char *name, size_t max, const char **out,
                           struct lmr_svc_api_err *e)
{
    json_t *v = json_object_get(o, key);
    *out = NULL;
    if (!v || json_is_null(v))
        return true;
    if (!json_is_string(v))
        return lmr_svc_cp_bad_type(e, key, "a string");
    if (json_string_length(v) > max)
        return VALIDATION(e,
                          "1 validation error detected: Value '%.200s' at '%s' failed to satisfy constraint: Member "
                          "must have length less than or equal to %zu",
                          json_string_value(v), name, max);
    *out = json_string_value(v);
    return true;
}

bool lmr_svc_cp_get_int(json_t *o, const char *key, const char *name, json_int_t min, json_int_t max, bool *present,
                        json_int_t *out, struct lmr_svc_api_err *e)
{
    json_t *v = json_object_get(o, key);
    *present = v && !json_is_null(v);
    if (!*present)
        return true;
    if (!json_is_integer(v))
        return lmr_svc_cp_bad_type(e, key, "an integer");
    *out = json_integer_value(v);
    if (*out < min)
        return VALIDATION(e,
                          "1 validation error detected: Value '%lld' at '%s' failed to satisfy constraint: Member "
                          "must have value greater than or equal to %lld",
                          (long long)*out, name, (long long)min);
    if (*out > max) {
        if (!strcmp(key, "MemorySize"))
            return VALIDATION(e,
                              "'MemorySize' value failed to satisfy constraint: Member must have value less than or "
                              "equal to %lld",
                              (long long)max);
        return VALIDATION(e,
                          "1 validation error detected: Value '%lld' at '%s' failed to satisfy constraint: Member "
                          "must have value less than or equal to %lld",
                          (long long)*out, name, (long long)max);
    }
    return true;
}

/*
 * FunctionName from a path or a request: a name, an ARN or a partial ARN, with Lambda's pattern;
 * `create` also applies CreateFunction's 64-character limit on the name itself.
 */
bool lmr_svc_cp_parse_name(const char *raw, bool create, char name[65], const char **qualifier_out, char *qual_buf,
                           size_t qual_cap, struct lmr_svc_api_err *e)
{
    size_t len = strlen(raw);
    if (len == 0 || len > 140)
        return VALIDATION(e,
                          "1 validation error detected: Value '%.200s' at 'functionName' failed to satisfy "
                          "constraint: Member must have length %s",
                          raw, len ? "less than or equal to 140" : "greater than or equal to 1");
    char buf[160];
    snprintf(buf, sizeof buf, "%s", raw);
    const char *n = NULL, *q = NULL;
    bool ok = lmr_svc_split_function(buf, &n, &q);
    size_t nlen = ok ? strlen(n) : 0;
    for (size_t i = 0; ok && i < nlen; i++) {
        char ch = n[i];
        ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_';
    }
    if (!ok || !nlen)
        return VALIDATION(e,
                          "1 validation error detected: Value '%.200s' at 'functionName' failed to satisfy "
                          "constraint: Member must satisfy regular expression pattern: %s",
                          raw, NAME_PATTERN);
    if (nlen > 64) {
        if (create)
            return VALIDATION(e,
                              "1 validation error detected: Value '%.200s' at 'functionName' failed to satisfy "
                              "constraint: Member must have length less than or equal to 64",
                              raw);
        nlen = 64; /* no such function; the lookup will say so */
    }
    memcpy(name, n, nlen);
    name[nlen] = '\0';
    if (qualifier_out) {
        *qualifier_out = NULL;
        if (q) {
            snprintf(qual_buf, qual_cap, "%s", q);
            *qualifier_out = qual_buf;
        }
    }
    return true;
}

static bool check_variables(struct lmr_svc_control *cp, json_t *vars, struct lmr_svc_api_err *e)
{
    const char *key;
    json_t *val;
    char reserved[512] = "";
    json_object_foreach(vars, key, val)
    {
        if (!json_is_string(val))
            return lmr_svc_cp_bad_type(e, "Environment.Variables", "a map of strings");
        if (!lmr_svc_cp_regex_ok(&cp->env_re, key))
            return VALIDATION(e,
                              "1 validation error detected: Value at 'environment.variables' failed to satisfy "
                              "constraint: Map keys must satisfy constraint: [Member must satisfy regular expression "
                              "pattern: [a-zA-Z]([a-zA-Z0-9_])+] (key '%.100s')",
                              key);
        for (size_t i = 0; i < sizeof RESERVED_VARS / sizeof RESERVED_VARS[0]; i++)
            if (!strcmp(key, RESERVED_VARS[i]) && strlen(reserved) + strlen(key) + 3 < sizeof reserved)
                snprintf(reserved + strlen(reserved), sizeof reserved - strlen(reserved), "%s%s", *reserved ? ", " : "",
                         key);
    }
    if (*reserved)
        return INVALID_PARAM(e,
                             "Lambda was unable to configure your environment variables because the environment "
                             "variables you have provided contains reserved keys that are currently not supported "
                             "for modification. Reserved keys used in this request: %s",
                             reserved);
    char *s = json_dumps(vars, JSON_COMPACT);
    size_t n = s ? strlen(s) : 0;
    free(s);
    if (n > LMR_LAMBDA_ENV_VARS_MAX_BYTES)
        return INVALID_PARAM(e,
                             "Lambda was unable to configure your environment variables because the environment "
                             "variables you have provided exceeded the 4KB limit (%zu bytes as JSON)",
                             n);
    return true;
}

bool lmr_svc_cp_parse_conf(struct lmr_svc_control *cp, json_t *body, struct conf_patch *p, struct lmr_svc_api_err *e)
{
    memset(p, 0, sizeof *p);
    const char *pkg = NULL;
    if (!lmr_svc_cp_get_string(body, "Runtime", "runtime", 64, &p->runtime, e) ||
        !lmr_svc_cp_get_string(body, "Role", "role", 2048, &p->role, e) ||
        !lmr_svc_cp_get_string(body, "Handler", "handler", 128, &p->handler, e) ||
        !lmr_svc_cp_get_string(body, "Description", "description", 256, &p->description, e) ||
        !lmr_svc_cp_get_string(body, "PackageType", "packageType", 64, &pkg, e) ||
        !lmr_svc_cp_get_int(body, "MemorySize", "memorySize", LMR_MEMORY_MIN_MB, LMR_MEMORY_MAX_MB, &p->has_memory,
                            &p->memory, e) ||
        !lmr_svc_cp_get_int(body, "Timeout", "timeout", 1, 900, &p->has_timeout, &p->timeout, e))
        return false;
    if (p->runtime) {
        size_t i = 0;
        while (i < N_RUNTIMES && strcmp(RUNTIMES[i], p->runtime))
            i++;
        if (i == N_RUNTIMES) {
            char all[1024] = "";
            for (i = 0; i < N_RUNTIMES; i++)
                snprintf(all + strlen(all), sizeof all - strlen(all), "%s%s", i ? ", " : "", RUNTIMES[i]);
            return VALIDATION(e,
                              "1 validation error detected: Value '%.64s' at 'runtime' failed to satisfy constraint: "
                              "Member must satisfy enum value set: [%s] or be a valid ARN",
                              p->runtime, all);
        }
        if (strcmp(p->runtime, "provided.al2023") && strcmp(p->runtime, "provided.al2"))
            return INVALID_PARAM(e,
                                 "The runtime %s is not available in lambdamr serve, which runs custom runtimes only: "
                                 "use provided.al2023 (or provided.al2) with an executable 'bootstrap' in the zip",
                                 p->runtime);
    }
    if (p->role && !lmr_svc_cp_regex_ok(&cp->role_re, p->role))
        return VALIDATION(e,
                          "1 validation error detected: Value '%.200s' at 'role' failed to satisfy constraint: "
                          "Member must satisfy regular expression pattern: %s",
                          p->role, ROLE_PATTERN);
    if (p->handler && !lmr_svc_cp_regex_ok(&cp->handler_re, p->handler))
        return VALIDATION(e,
                          "1 validation error detected: Value '%.128s' at 'handler' failed to satisfy constraint: "
                          "Member must satisfy regular expression pattern: [^\\s]+",
                          p->handler);
    if (pkg && strcmp(pkg, "Zip")) {
        if (strcmp(pkg, "Image"))
            return VALIDATION(e,
                              "1 validation error detected: Value '%.64s' at 'packageType' failed to satisfy "
                              "constraint: Member must satisfy enum value set: [Image, Zip]",
                              pkg);
        return INVALID_PARAM(e, "lambdamr serve runs Zip packages only; container images (PackageType Image) are "
                                "not supported here");
    }
    json_t *env = json_object_get(body, "Environment");
    if (env && !json_is_null(env)) {
        if (!json_is_object(env))
            return lmr_svc_cp_bad_type(e, "Environment", "an object");
        p->has_env = true;
        json_t *vars = json_object_get(env, "Variables");
        if (vars && !json_is_null(vars)) {
            if (!json_is_object(vars))
                return lmr_svc_cp_bad_type(e, "Environment.Variables", "a map of strings");
            if (!check_variables(cp, vars, e))
                return false;
            p->variables = json_object_size(vars) ? vars : NULL;
        }
    }
    return true;
}

/* Tags: at most 50, keys of 1-128 and values of at most 256 characters (Lambda's tag limits). */
bool lmr_svc_cp_check_tags(json_t *tags, struct lmr_svc_api_err *e)
{
    if (!tags || json_is_null(tags))
        return true;
    if (!json_is_object(tags))
        return lmr_svc_cp_bad_type(e, "Tags", "a map of strings");
    if (json_object_size(tags) > 50)
        return INVALID_PARAM(e, "The request has %zu tags; a function can have at most 50", json_object_size(tags));
    const char *k;
    json_t *v;
    json_object_foreach(tags, k, v)
    {
        if (!json_is_string(v))
            return lmr_svc_cp_bad_type(e, "Tags", "a map of strings");
        if (!*k || strlen(k) > 128 || json_string_length(v) > 256)
            return INVALID_PARAM(e, "Tag '%.40s' is not valid: keys have 1 to 128 characters, values at most 256", k);
    }
    return true;
}

bool lmr_svc_cp_parse_architectures(json_t *body, const char **arch, struct lmr_svc_api_err *e)
{
    json_t *a = json_object_get(body, "Architectures");
    *arch = NULL;
    if (!a || json_is_null(a))
        return true;
    if (!json_is_array(a) || json_array_size(a) != 1 || !json_is_string(json_array_get(a, 0)))
        return VALIDATION(e, "1 validation error detected: Value at 'architectures' failed to satisfy constraint: "
                             "Member must have length less than or equal to 1 and greater than or equal to 1");
    const char *v = json_string_value(json_array_get(a, 0));
    if (strcmp(v, "x86_64") && strcmp(v, "arm64"))
        return VALIDATION(e,
                          "1 validation error detected: Value '[%.32s]' at 'architectures' failed to satisfy "
                          "constraint: Member must satisfy constraint: [Member must satisfy enum value set: "
                          "[x86_64, arm64]]",
                          v);
    *arch = v;
    return true;
}

bool lmr_svc_cp_parse_code(struct lmr_svc_control *cp, json_t *code, struct code_src *src, struct lmr_svc_api_err *e)
{
    memset(src, 0, sizeof *src);
    const char *version = NULL, *image = NULL;
    json_t *zip = json_object_get(code, "ZipFile");
    if (zip && !json_is_null(zip)) {
        if (!json_is_string(zip))
            return lmr_svc_cp_bad_type(e, "ZipFile", "a base64 string");
        src->zip_b64 = json_string_value(zip);
        src->zip_b64_len = json_string_length(zip);
    }
    if (!lmr_svc_cp_get_string(code, "S3Bucket", "s3Bucket", 63, &src->bucket, e) ||
        !lmr_svc_cp_get_string(code, "S3Key", "s3Key", 1024, &src->key, e) ||
        !lmr_svc_cp_get_string(code, "S3ObjectVersion", "s3ObjectVersion", 1024, &version, e) ||
        !lmr_svc_cp_get_string(code, "ImageUri", "imageUri", 4096, &image, e))
        return false;
    if (image)
        return INVALID_PARAM(e, "lambdamr serve runs Zip packages only; ImageUri is not supported here");
    if (version)
        return INVALID_PARAM(e, "S3ObjectVersion is not supported by lambdamr serve; give S3Bucket and S3Key of the "
                                "current object version");
    if (src->zip_b64 && (src->bucket || src->key))
        return INVALID_PARAM(e, "Please do not provide other FunctionCode parameters when providing a ZipFile.");
    if (!src->zip_b64 && !src->bucket && !src->key)
        return INVALID_PARAM(e, "Please provide a source for function code: Code.ZipFile, or Code.S3Bucket and "
                                "Code.S3Key.");
    if (!src->zip_b64 && (!src->bucket || !src->key))
        return INVALID_PARAM(e, "Code.%s is missing: give both S3Bucket and S3Key", src->bucket ? "S3Key" : "S3Bucket");
    if (src->bucket && (strlen(src->bucket) < 3 || !lmr_svc_cp_regex_ok(&cp->bucket_re, src->bucket)))
        return VALIDATION(e,
                          "1 validation error detected: Value '%.63s' at 'code.s3Bucket' failed to satisfy "
                          "constraint: Member must satisfy regular expression pattern: [0-9A-Za-z\\.\\-_]*(?<!\\.)",
                          src->bucket);
    return true;
}

json_t *lmr_svc_cp_parse_body(const struct lmr_svc_control_request *req, struct lmr_svc_api_err *e)
{
    json_error_t jerr;
    json_t *j = req->body->len ? json_loadb(req->body->data, req->body->len, 0, &jerr) : NULL;
    if (!j || !json_is_object(j)) {
        json_decref(j);
        lmr_svc_cp_fail(e, 400, "InvalidRequestContentException", "Could not parse request body into json: %s",
                        req->body->len ? jerr.text : "the body is empty");
        return NULL;
    }
    return j;
}
