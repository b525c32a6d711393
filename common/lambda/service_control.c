/*
 * Lambda's function control plane in the embedded service (see service_control.h for the
 * operations, states and layout on disk). Requests are checked the way Lambda checks them:
 * constraint violations of the API model (lengths, patterns, ranges, enums) are
 * ValidationException with Lambda's "1 validation error detected: ..." sentences, semantic
 * problems (reserved variables, a zip that cannot be unpacked, unsupported features) are
 * InvalidParameterValueException, a name that exists or an update in progress is
 * ResourceConflictException.
 *
 * Locking: svc->mu guards every function and its control record, as in the rest of the service.
 * Slow work (reading code from S3, writing and unpacking a zip, removing old task roots) runs
 * without it; an update marks the function `claimed` meanwhile so that a second update is refused.
 */
#define _GNU_SOURCE
#include "lambda/service_control.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <openssl/evp.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lambda/zip_unpack.h"
#include "store/store.h"
#include "util/base64.h"
#include "util/log.h"
#include "util/misc.h"

#if defined(__aarch64__)
#define HOST_ARCH "arm64"
#else
#define HOST_ARCH "x86_64"
#endif

#define RETIRED_MAX 16
#define GC_DIRS_MAX 64
#define S3_CHUNK_BYTES (1u << 20)

/* ---- state ---------------------------------------------------------------------------------- */

/* The configuration a function reports, plus its code directories and a staged update. */
struct lmr_svc_fn_ctl {
    char runtime[32];
    char *role;
    char *handler; /* NULL: none */
    char *description;
    uint32_t memory_mb;
    uint32_t timeout_s;
    json_t *variables; /* Environment.Variables (owned object) or NULL */
    char architecture[8];
    char code_sha256[48];
    uint64_t code_size;
    char last_modified[40];
    char revision_id[40];
    json_t *tags;                 /* owned object or NULL */
    int reserved;                 /* ReservedConcurrentExecutions, -1 = none */
    uint32_t default_concurrency; /* fn->concurrency without a reservation */
    double busy_until_ms;         /* end of the Pending / InProgress window; 0 = none */
    bool creating;                /* the window is the creation (State Pending) */
    bool claimed;                 /* an update is fetching and unpacking its code */
    bool from_cli;                /* registered with --function: its code is an executable, not a zip */
    char *code_dir;               /* STATE/functions/NAME-ID of the running code (owned), NULL for --function */
    char *staged_code_dir;        /* the code of an update in its window */
    struct lmr_svc_fn *staged;    /* an update's running fields (path, handler, memory, ...), swapped in */
    struct {
        char *dir;
        unsigned gen; /* environments with code_gen <= gen still use it */
    } retired[RETIRED_MAX];
    size_t n_retired;
};

struct lmr_svc_control {
    char *state_dir;        /* NULL until the first CreateFunction */
    char *state_dir_wanted; /* from the options, or NULL for a temp dir */
    bool state_dir_temp;
    uint32_t update_delay_ms;
    pthread_mutex_t upload_mu;
    size_t upload_bytes;          /* reserved by code uploads in flight */
    struct lmr_svc_fn *graveyard; /* deleted functions whose environments are not all reaped */
    regex_t role_re, handler_re, env_re, bucket_re;
    bool regex_ready;
};

/* An answer other than success. */
struct api_err {
    unsigned status;
    const char *type;
    char msg[1024];
};

static bool fail(struct api_err *e, unsigned status, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static bool fail(struct api_err *e, unsigned status, const char *type, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    e->status = status;
    e->type = type;
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return false;
}

#define VALIDATION(e, ...) fail(e, 400, "ValidationException", __VA_ARGS__)
#define INVALID_PARAM(e, ...) fail(e, 400, "InvalidParameterValueException", __VA_ARGS__)
#define CONFLICT(e, ...) fail(e, 409, "ResourceConflictException", __VA_ARGS__)
#define SERVICE_ERROR(e, ...) fail(e, 500, "ServiceException", __VA_ARGS__)

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

enum lmr_result lmr_svc_control_new(struct lmr_lambda_service *svc, const struct lmr_lambda_service_options *opts,
                                    struct lmr_err *err)
{
    struct lmr_svc_control *ctl = calloc(1, sizeof *ctl);
    if (!ctl)
        return lmr_fail(err, LMR_ERR_NOMEM, "out of memory creating the Lambda control plane");
    pthread_mutex_init(&ctl->upload_mu, NULL);
    ctl->update_delay_ms = opts && opts->update_delay_ms ? opts->update_delay_ms : LMR_LAMBDA_UPDATE_DELAY_DEFAULT_MS;
    if (opts && opts->state_dir && !(ctl->state_dir_wanted = strdup(opts->state_dir))) {
        free(ctl);
        return lmr_fail(err, LMR_ERR_NOMEM, "out of memory creating the Lambda control plane");
    }
    /* The model's patterns in POSIX ERE (\d is [0-9]), anchored: AWS matches whole values. */
    int rc = regcomp(&ctl->role_re, "^arn:(aws[a-zA-Z-]*)?:iam::[0-9]{12}:role/?[a-zA-Z_0-9+=,.@/_-]+$",
                     REG_EXTENDED | REG_NOSUB);
    rc |= regcomp(&ctl->handler_re, "^[^[:space:]]+$", REG_EXTENDED | REG_NOSUB);
    rc |= regcomp(&ctl->env_re, "^[a-zA-Z][a-zA-Z0-9_]+$", REG_EXTENDED | REG_NOSUB);
    rc |= regcomp(&ctl->bucket_re, "^[0-9A-Za-z.\\_-]*[0-9A-Za-z\\_-]$", REG_EXTENDED | REG_NOSUB);
    if (rc) {
        free(ctl->state_dir_wanted);
        free(ctl);
        return lmr_fail(err, LMR_ERR_INTERNAL, "cannot compile the Lambda control plane's patterns");
    }
    ctl->regex_ready = true;
    svc->control = ctl;
    return LMR_OK;
}

void lmr_svc_fn_ctl_free(struct lmr_svc_fn_ctl *ctl)
{
    if (!ctl)
        return;
    free(ctl->role);
    free(ctl->handler);
    free(ctl->description);
    json_decref(ctl->variables);
    json_decref(ctl->tags);
    free(ctl->code_dir);
    free(ctl->staged_code_dir);
    lmr_svc_fn_free(ctl->staged);
    for (size_t i = 0; i < ctl->n_retired; i++)
        free(ctl->retired[i].dir);
    free(ctl);
}

void lmr_svc_control_destroy(struct lmr_lambda_service *svc)
{
    struct lmr_svc_control *ctl = svc ? svc->control : NULL;
    if (!ctl)
        return;
    while (ctl->graveyard) {
        struct lmr_svc_fn *fn = ctl->graveyard;
        ctl->graveyard = fn->next;
        lmr_svc_fn_free(fn);
    }
    if (ctl->state_dir && ctl->state_dir_temp)
        lmr_remove_tree(ctl->state_dir, NULL);
    if (ctl->regex_ready) {
        regfree(&ctl->role_re);
        regfree(&ctl->handler_re);
        regfree(&ctl->env_re);
        regfree(&ctl->bucket_re);
    }
    pthread_mutex_destroy(&ctl->upload_mu);
    free(ctl->state_dir);
    free(ctl->state_dir_wanted);
    free(ctl);
    svc->control = NULL;
}

/* ---- small helpers ---------------------------------------------------------------------------- */

static void new_uuid(char out[40])
{
    char h[33];
    lmr_random_hex(h, 16);
    snprintf(out, 40, "%.8s-%.4s-%.4s-%.4s-%.12s", h, h + 8, h + 12, h + 16, h + 20);
}

/* Lambda's timestamp format: 2026-12-01T10:12:43.117+0000. */
static void now_timestamp(char out[40])
{
    uint64_t ms = lmr_wall_ms();
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    char base[32];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, 40, "%s.%03u+0000", base, (unsigned)(ms % 1000));
}

static void sha256_b64(const unsigned char digest[32], char out[48])
{
    EVP_EncodeBlock((unsigned char *)out, digest, 32);
}

static void function_arn(const struct lmr_lambda_service *svc, const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "arn:aws:lambda:%s:%s:function:%s", svc->region, LMR_LAMBDA_ACCOUNT_ID, name);
}

static bool regex_ok(const regex_t *re, const char *s)
{
    return regexec(re, s, 0, NULL, 0) == 0;
}

static struct lmr_svc_fn *find_locked(struct lmr_lambda_service *svc, const char *name)
{
    struct lmr_svc_fn *fn = svc->fns;
    while (fn && strcmp(fn->name, name))
        fn = fn->next;
    return fn;
}

static bool busy_locked(const struct lmr_svc_fn_ctl *ctl)
{
    return ctl->busy_until_ms > 0 && lmr_svc_now_ms() < ctl->busy_until_ms;
}

/* SHA-256 (base64) and size of a file. */
static bool hash_file(const char *path, char sha[48], uint64_t *size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    char *buf = malloc(S3_CHUNK_BYTES);
    bool ok = md && buf && EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    uint64_t total = 0;
    while (ok) {
        ssize_t n = read(fd, buf, S3_CHUNK_BYTES);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            ok = n == 0;
            break;
        }
        total += (uint64_t)n;
        ok = EVP_DigestUpdate(md, buf, (size_t)n);
    }
    unsigned char digest[32];
    unsigned dlen = 0;
    if (ok)
        ok = EVP_DigestFinal_ex(md, digest, &dlen) && dlen == 32;
    if (ok) {
        sha256_b64(digest, sha);
        *size = total;
    }
    EVP_MD_CTX_free(md);
    free(buf);
    close(fd);
    return ok;
}

/* The control record of a --function function, made on first use (hashes its executable). */
static struct lmr_svc_fn_ctl *ensure_ctl_locked(struct lmr_svc_fn *fn)
{
    if (fn->ctl)
        return fn->ctl;
    struct lmr_svc_fn_ctl *ctl = calloc(1, sizeof *ctl);
    if (!ctl)
        return NULL;
    snprintf(ctl->runtime, sizeof ctl->runtime, "provided.al2023");
    ctl->role = strdup("arn:aws:iam::" LMR_LAMBDA_ACCOUNT_ID ":role/lambdamr-serve");
    ctl->handler = fn->handler ? strdup(fn->handler) : NULL;
    ctl->description = strdup("");
    ctl->memory_mb = fn->memory_mb;
    ctl->timeout_s = (uint32_t)ceil(fn->timeout_s);
    snprintf(ctl->architecture, sizeof ctl->architecture, "%s", HOST_ARCH);
    if (!hash_file(fn->path, ctl->code_sha256, &ctl->code_size))
        ctl->code_sha256[0] = '\0';
    now_timestamp(ctl->last_modified);
    new_uuid(ctl->revision_id);
    ctl->reserved = -1;
    ctl->default_concurrency = fn->concurrency;
    ctl->from_cli = true;
    if (!ctl->role || !ctl->description || (fn->handler && !ctl->handler)) {
        lmr_svc_fn_ctl_free(ctl);
        return NULL;
    }
    fn->ctl = ctl;
    return ctl;
}

/* ---- garbage: retired task roots, deleted functions -------------------------------------------- */

struct dir_list {
    char *dirs[GC_DIRS_MAX];
    size_t n;
};

static void dir_list_add(struct dir_list *l, char *dir)
{
    if (!dir)
        return;
    if (l->n < GC_DIRS_MAX) {
        l->dirs[l->n++] = dir;
    } else { /* the list is full: remove this one at once (rare: a delete with many retired roots) */
        lmr_remove_tree(dir, NULL);
        free(dir);
    }
}

/* Remove (outside the lock) and free every directory of l. */
static void dir_list_remove(struct dir_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        lmr_remove_tree(l->dirs[i], NULL);
        free(l->dirs[i]);
    }
    l->n = 0;
}

static bool gen_in_use_locked(const struct lmr_svc_fn *fn, unsigned gen)
{
    for (const struct lmr_svc_env *env = fn->envs; env; env = env->next)
        if (env->state != ENV_DEAD && env->code_gen <= gen)
            return true;
    return false;
}

/* Hand over retired task roots no environment runs in any more, and free deleted functions whose
 * environments are all reaped. */
static void collect_garbage_locked(struct lmr_lambda_service *svc, struct dir_list *out)
{
    for (struct lmr_svc_fn *fn = svc->fns; fn; fn = fn->next) {
        struct lmr_svc_fn_ctl *ctl = fn->ctl;
        if (!ctl)
            continue;
        size_t keep = 0;
        for (size_t i = 0; i < ctl->n_retired; i++) {
            if (gen_in_use_locked(fn, ctl->retired[i].gen))
                ctl->retired[keep++] = ctl->retired[i];
            else
                dir_list_add(out, ctl->retired[i].dir);
        }
        ctl->n_retired = keep;
    }
    for (struct lmr_svc_fn **pp = &svc->control->graveyard; *pp;) {
        struct lmr_svc_fn *fn = *pp;
        if (fn->envs) {
            pp = &fn->next;
            continue;
        }
        *pp = fn->next;
        lmr_svc_fn_free(fn);
    }
}

static void retire_dir_locked(struct lmr_svc_fn_ctl *ctl, char *dir, unsigned gen)
{
    if (!dir)
        return;
    if (ctl->n_retired == RETIRED_MAX) { /* 16 updates while an environment of the oldest code still runs */
        lmr_remove_tree(ctl->retired[0].dir, NULL);
        free(ctl->retired[0].dir);
        memmove(ctl->retired, ctl->retired + 1, (RETIRED_MAX - 1) * sizeof ctl->retired[0]);
        ctl->n_retired--;
    }
    ctl->retired[ctl->n_retired].dir = dir;
    ctl->retired[ctl->n_retired].gen = gen;
    ctl->n_retired++;
}

/* ---- hooks of the core ---------------------------------------------------------------------- */

bool lmr_svc_control_env_stale_locked(struct lmr_svc_fn *fn, struct lmr_svc_env *env)
{
    return env->code_gen != fn->code_gen || fn->n_alive > fn->concurrency;
}

#define SWAP(a, b)                                                                                                     \
    do {                                                                                                               \
        __typeof__(a) swap_tmp_ = (a);                                                                                 \
        (a) = (b);                                                                                                     \
        (b) = swap_tmp_;                                                                                               \
    } while (0)

void lmr_svc_control_tick_locked(struct lmr_svc_fn *fn)
{
    struct lmr_svc_fn_ctl *ctl = fn->ctl;
    if (!ctl)
        return;
    if (ctl->busy_until_ms > 0 && lmr_svc_now_ms() >= ctl->busy_until_ms) {
        ctl->busy_until_ms = 0;
        ctl->creating = false;
        struct lmr_svc_fn *s = ctl->staged;
        if (s) { /* the update takes effect */
            SWAP(fn->path, s->path);
            SWAP(fn->handler, s->handler);
            SWAP(fn->task_root, s->task_root);
            SWAP(fn->envp, s->envp);
            SWAP(fn->envp_len, s->envp_len);
            fn->memory_mb = s->memory_mb;
            fn->timeout_s = s->timeout_s;
            ctl->staged = NULL;
            lmr_svc_fn_free(s);
            if (ctl->staged_code_dir) {
                retire_dir_locked(ctl, ctl->code_dir, fn->code_gen);
                ctl->code_dir = ctl->staged_code_dir;
                ctl->staged_code_dir = NULL;
            }
            fn->code_gen++;
        }
    }
    for (struct lmr_svc_env *env = fn->envs; env; env = env->next)
        if (env->state == ENV_IDLE && !env->inv && lmr_svc_control_env_stale_locked(fn, env))
            lmr_svc_env_kill_locked(env, "Runtime.ExitError", "the environment was retired");
}

const char *lmr_svc_control_not_invocable_locked(struct lmr_svc_fn *fn)
{
    return fn->ctl && fn->ctl->creating && busy_locked(fn->ctl) ? "Pending" : NULL;
}

/* ---- uploads ---------------------------------------------------------------------------------- */

size_t lmr_svc_control_body_cap(const char *method, const char *url)
{
    static const char fns[] = "/2015-03-31/functions";
    size_t n = strlen(fns), len = strlen(url);
    if (strncmp(url, fns, n))
        return 0;
    if (!strcmp(method, "POST") && (len == n || (len == n + 1 && url[n] == '/')))
        return LMR_LAMBDA_CODE_REQUEST_MAX_BYTES; /* CreateFunction */
    if (!strcmp(method, "PUT") && len > n + 5 && !strcmp(url + len - 5, "/code"))
        return LMR_LAMBDA_CODE_REQUEST_MAX_BYTES; /* UpdateFunctionCode */
    return 0;
}

bool lmr_svc_control_reserve(struct lmr_lambda_service *svc, size_t bytes)
{
    struct lmr_svc_control *ctl = svc->control;
    pthread_mutex_lock(&ctl->upload_mu);
    bool ok = ctl->upload_bytes + bytes <= LMR_LAMBDA_UPLOADS_MAX_BYTES;
    if (ok)
        ctl->upload_bytes += bytes;
    pthread_mutex_unlock(&ctl->upload_mu);
    return ok;
}

void lmr_svc_control_release(struct lmr_lambda_service *svc, size_t bytes)
{
    if (!bytes || !svc || !svc->control)
        return;
    pthread_mutex_lock(&svc->control->upload_mu);
    svc->control->upload_bytes -= bytes;
    pthread_mutex_unlock(&svc->control->upload_mu);
}

/* ---- replies ---------------------------------------------------------------------------------- */

static enum MHD_Result reply_json(struct MHD_Connection *c, unsigned status, json_t *j)
{
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    const char *body = s ? s : (status == 204 ? "" : "{}");
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    free(s);
    if (!r)
        return MHD_NO;
    char rid[40];
    new_uuid(rid);
    if (status != 204)
        MHD_add_response_header(r, "Content-Type", "application/json");
    MHD_add_response_header(r, "x-amzn-RequestId", rid);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result reply_err(struct MHD_Connection *c, const struct api_err *e)
{
    char rid[40];
    new_uuid(rid);
    return lmr_svc_http_reply_error(c, e->status, e->type, e->msg, rid);
}

/* The FunctionConfiguration shape. `full` adds the state fields that ListFunctions leaves out. */
static json_t *config_json_locked(struct lmr_lambda_service *svc, struct lmr_svc_fn *fn, bool full)
{
    struct lmr_svc_fn_ctl *ctl = fn->ctl;
    char arn[256];
    function_arn(svc, fn->name, arn, sizeof arn);
    json_t *j = json_object();
    json_object_set_new(j, "FunctionName", json_string(fn->name));
    json_object_set_new(j, "FunctionArn", json_string(arn));
    json_object_set_new(j, "Runtime", json_string(ctl->runtime));
    json_object_set_new(j, "Role", json_string(ctl->role));
    if (ctl->handler)
        json_object_set_new(j, "Handler", json_string(ctl->handler));
    json_object_set_new(j, "CodeSize", json_integer((json_int_t)ctl->code_size));
    json_object_set_new(j, "Description", json_string(ctl->description));
    json_object_set_new(j, "Timeout", json_integer(ctl->timeout_s));
    json_object_set_new(j, "MemorySize", json_integer(ctl->memory_mb));
    json_object_set_new(j, "LastModified", json_string(ctl->last_modified));
    json_object_set_new(j, "CodeSha256", json_string(ctl->code_sha256));
    json_object_set_new(j, "Version", json_string("$LATEST"));
    if (ctl->variables)
        json_object_set_new(j, "Environment", json_pack("{s:O}", "Variables", ctl->variables));
    json_object_set_new(j, "TracingConfig", json_pack("{s:s}", "Mode", "PassThrough"));
    json_object_set_new(j, "RevisionId", json_string(ctl->revision_id));
    json_object_set_new(j, "PackageType", json_string("Zip"));
    json_object_set_new(j, "Architectures", json_pack("[s]", ctl->architecture));
    json_object_set_new(j, "EphemeralStorage", json_pack("{s:i}", "Size", 512));
    json_object_set_new(j, "SnapStart", json_pack("{s:s, s:s}", "ApplyOn", "None", "OptimizationStatus", "Off"));
    char group[128];
    snprintf(group, sizeof group, "/aws/lambda/%s", fn->name);
    json_object_set_new(j, "LoggingConfig", json_pack("{s:s, s:s}", "LogFormat", "Text", "LogGroup", group));
    if (full) {
        bool busy = busy_locked(ctl);
        json_object_set_new(j, "State", json_string(busy && ctl->creating ? "Pending" : "Active"));
        if (busy && ctl->creating) {
            json_object_set_new(j, "StateReason", json_string("The function is being created."));
            json_object_set_new(j, "StateReasonCode", json_string("Creating"));
        }
        json_object_set_new(j, "LastUpdateStatus", json_string(busy ? "InProgress" : "Successful"));
        if (busy) {
            json_object_set_new(
                j, "LastUpdateStatusReason",
                json_string(ctl->creating ? "The function is being created." : "The function is being updated."));
            json_object_set_new(j, "LastUpdateStatusReasonCode", json_string("Creating"));
        }
    }
    return j;
}

/* ---- request members -------------------------------------------------------------------------- */

static bool bad_type(struct api_err *e, const char *member, const char *type)
{
    return fail(e, 400, "InvalidRequestContentException",
                "Could not parse request body into json: the member %s must be %s", member, type);
}

/* A string member (absent or null: *out = NULL). `name` is the model's lowerCamel name for messages. */
static bool get_string(json_t *o, const char *key, const char *name, size_t max, const char **out, struct api_err *e)
{
    json_t *v = json_object_get(o, key);
    *out = NULL;
    if (!v || json_is_null(v))
        return true;
    if (!json_is_string(v))
        return bad_type(e, key, "a string");
    if (json_string_length(v) > max)
        return VALIDATION(e,
                          "1 validation error detected: Value '%.200s' at '%s' failed to satisfy constraint: Member "
                          "must have length less than or equal to %zu",
                          json_string_value(v), name, max);
    *out = json_string_value(v);
    return true;
}

static bool get_int(json_t *o, const char *key, const char *name, json_int_t min, json_int_t max, bool *present,
                    json_int_t *out, struct api_err *e)
{
    json_t *v = json_object_get(o, key);
    *present = v && !json_is_null(v);
    if (!*present)
        return true;
    if (!json_is_integer(v))
        return bad_type(e, key, "an integer");
    *out = json_integer_value(v);
    if (*out < min)
        return VALIDATION(e,
                          "1 validation error detected: Value '%lld' at '%s' failed to satisfy constraint: Member "
                          "must have value greater than or equal to %lld",
                          (long long)*out, name, (long long)min);
    if (*out > max) {
        if (!strcmp(key, "MemorySize"))
            return VALIDATION(e, "'MemorySize' value failed to satisfy constraint: Member must have value less than "
                                 "or equal to 10240");
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
static bool parse_name(const char *raw, bool create, char name[65], const char **qualifier_out, char *qual_buf,
                       size_t qual_cap, struct api_err *e)
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

/* The configuration members of CreateFunction and UpdateFunctionConfiguration. */
struct conf_patch {
    const char *runtime, *role, *handler, *description;
    bool has_memory, has_timeout, has_env;
    json_int_t memory, timeout;
    json_t *variables; /* borrowed from the request; NULL with has_env = remove all */
};

static bool check_variables(struct lmr_svc_control *cp, json_t *vars, struct api_err *e)
{
    const char *key;
    json_t *val;
    char reserved[512] = "";
    json_object_foreach(vars, key, val)
    {
        if (!json_is_string(val))
            return bad_type(e, "Environment.Variables", "a map of strings");
        if (!regex_ok(&cp->env_re, key))
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

static bool parse_conf(struct lmr_svc_control *cp, json_t *body, struct conf_patch *p, struct api_err *e)
{
    memset(p, 0, sizeof *p);
    const char *pkg = NULL;
    if (!get_string(body, "Runtime", "runtime", 64, &p->runtime, e) ||
        !get_string(body, "Role", "role", 2048, &p->role, e) ||
        !get_string(body, "Handler", "handler", 128, &p->handler, e) ||
        !get_string(body, "Description", "description", 256, &p->description, e) ||
        !get_string(body, "PackageType", "packageType", 64, &pkg, e) ||
        !get_int(body, "MemorySize", "memorySize", 128, 10240, &p->has_memory, &p->memory, e) ||
        !get_int(body, "Timeout", "timeout", 1, 900, &p->has_timeout, &p->timeout, e))
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
    if (p->role && !regex_ok(&cp->role_re, p->role))
        return VALIDATION(e,
                          "1 validation error detected: Value '%.200s' at 'role' failed to satisfy constraint: "
                          "Member must satisfy regular expression pattern: %s",
                          p->role, ROLE_PATTERN);
    if (p->handler && !regex_ok(&cp->handler_re, p->handler))
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
            return bad_type(e, "Environment", "an object");
        p->has_env = true;
        json_t *vars = json_object_get(env, "Variables");
        if (vars && !json_is_null(vars)) {
            if (!json_is_object(vars))
                return bad_type(e, "Environment.Variables", "a map of strings");
            if (!check_variables(cp, vars, e))
                return false;
            p->variables = json_object_size(vars) ? vars : NULL;
        }
    }
    return true;
}

/* Tags: at most 50, keys of 1-128 and values of at most 256 characters (Lambda's tag limits). */
static bool check_tags(json_t *tags, struct api_err *e)
{
    if (!tags || json_is_null(tags))
        return true;
    if (!json_is_object(tags))
        return bad_type(e, "Tags", "a map of strings");
    if (json_object_size(tags) > 50)
        return INVALID_PARAM(e, "The request has %zu tags; a function can have at most 50", json_object_size(tags));
    const char *k;
    json_t *v;
    json_object_foreach(tags, k, v)
    {
        if (!json_is_string(v))
            return bad_type(e, "Tags", "a map of strings");
        if (!*k || strlen(k) > 128 || json_string_length(v) > 256)
            return INVALID_PARAM(e, "Tag '%.40s' is not valid: keys have 1 to 128 characters, values at most 256", k);
    }
    return true;
}

static bool parse_architectures(json_t *body, const char **arch, struct api_err *e)
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

/* Where code comes from: ZipFile (base64) or S3Bucket/S3Key. */
struct code_src {
    const char *zip_b64;
    size_t zip_b64_len;
    const char *bucket, *key;
};

static bool parse_code(struct lmr_svc_control *cp, json_t *code, struct code_src *src, struct api_err *e)
{
    memset(src, 0, sizeof *src);
    const char *version = NULL, *image = NULL;
    json_t *zip = json_object_get(code, "ZipFile");
    if (zip && !json_is_null(zip)) {
        if (!json_is_string(zip))
            return bad_type(e, "ZipFile", "a base64 string");
        src->zip_b64 = json_string_value(zip);
        src->zip_b64_len = json_string_length(zip);
    }
    if (!get_string(code, "S3Bucket", "s3Bucket", 63, &src->bucket, e) ||
        !get_string(code, "S3Key", "s3Key", 1024, &src->key, e) ||
        !get_string(code, "S3ObjectVersion", "s3ObjectVersion", 1024, &version, e) ||
        !get_string(code, "ImageUri", "imageUri", 4096, &image, e))
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
    if (src->bucket && (strlen(src->bucket) < 3 || !regex_ok(&cp->bucket_re, src->bucket)))
        return VALIDATION(e,
                          "1 validation error detected: Value '%.63s' at 'code.s3Bucket' failed to satisfy "
                          "constraint: Member must satisfy regular expression pattern: [0-9A-Za-z\\.\\-_]*(?<!\\.)",
                          src->bucket);
    return true;
}

/* ---- code: fetch, keep, unpack ---------------------------------------------------------------- */

static bool ensure_state_dir_locked(struct lmr_svc_control *cp, struct api_err *e)
{
    if (cp->state_dir)
        return true;
    char path[4096];
    struct lmr_err err = {0};
    if (cp->state_dir_wanted) {
        snprintf(path, sizeof path, "%s/functions", cp->state_dir_wanted);
        if (lmr_mkdirs(path, &err) != LMR_OK)
            return SERVICE_ERROR(e, "cannot create the state directory of lambdamr serve: %s", err.msg);
        cp->state_dir = lmr_abspath(cp->state_dir_wanted);
    } else {
        const char *tmp = getenv("TMPDIR");
        snprintf(path, sizeof path, "%s/lambdamr-state-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(path))
            return SERVICE_ERROR(e, "cannot create a state directory %s: %s; set TMPDIR or --state-dir", path,
                                 strerror(errno));
        cp->state_dir = strdup(path);
        cp->state_dir_temp = true;
        snprintf(path + strlen(path), sizeof path - strlen(path), "/functions");
        if (mkdir(path, 0755) != 0)
            return SERVICE_ERROR(e, "cannot create %s: %s", path, strerror(errno));
    }
    return cp->state_dir ? true : SERVICE_ERROR(e, "out of memory creating the state directory");
}

/* A code upload after fetch_code: its directory (code.zip, task/), digest and sizes. */
struct code_out {
    char *dir;
    char sha256[48];
    uint64_t zip_bytes;
    struct lmr_zip_summary sum;
};

static bool write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

static bool zip_from_request(const struct code_src *src, const char *zip_path, struct code_out *out, struct api_err *e)
{
    size_t cap = src->zip_b64_len / 4 * 3 + 3;
    uint8_t *zip = malloc(cap);
    if (!zip)
        return SERVICE_ERROR(e, "out of memory decoding the ZipFile");
    size_t len = 0;
    if (lmr_base64_decode(src->zip_b64, src->zip_b64_len, zip, &len) != LMR_OK || len == 0) {
        free(zip);
        return INVALID_PARAM(e, "Could not unzip uploaded file. Please check your file, then try to upload again. "
                                "(Code.ZipFile is not valid base64 or is empty.)");
    }
    unsigned char digest[32];
    unsigned dlen = 0;
    EVP_Digest(zip, len, digest, &dlen, EVP_sha256(), NULL);
    sha256_b64(digest, out->sha256);
    out->zip_bytes = len;
    int fd = open(zip_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    bool ok = fd >= 0 && write_all(fd, zip, len);
    if (fd >= 0 && close(fd) != 0)
        ok = false;
    free(zip);
    return ok ? true : SERVICE_ERROR(e, "cannot write %s: %s", zip_path, strerror(errno));
}

static bool zip_from_s3(const struct code_src *src, const char *zip_path, struct code_out *out, struct api_err *e)
{
    char uri[1200];
    snprintf(uri, sizeof uri, "s3://%s/%s", src->bucket, src->key);
    struct lmr_store *st = NULL;
    char *key = NULL;
    struct lmr_err err = {0};
    struct lmr_store_reader *rd = NULL;
    uint64_t size = 0;
    enum lmr_result r = lmr_store_open(uri, &st, &key, &err);
    if (!r)
        r = lmr_store_head(st, key, &size, &err);
    if (r) {
        lmr_store_destroy(st);
        free(key);
        if (r == LMR_ERR_NOT_FOUND)
            return INVALID_PARAM(e,
                                 "Error occurred while GetObject. S3 Error Code: NoSuchKey. S3 Error Message: The "
                                 "specified key does not exist. (%s: %s)",
                                 uri, err.msg);
        return INVALID_PARAM(e, "Error occurred while GetObject of %s: %s", uri, err.msg);
    }
    if (size > LMR_ZIP_UNZIPPED_MAX_BYTES) {
        lmr_store_destroy(st);
        free(key);
        return INVALID_PARAM(e, "Unzipped size must be smaller than %llu bytes (%s is %llu bytes zipped)",
                             LMR_ZIP_UNZIPPED_MAX_BYTES, uri, (unsigned long long)size);
    }
    int fd = open(zip_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    char *chunk = malloc(S3_CHUNK_BYTES);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    bool ok = fd >= 0 && chunk && md && EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    uint64_t total = 0;
    if (ok)
        r = lmr_store_open_read(st, key, 0, LMR_STORE_TO_END, &rd, &err);
    while (ok && !r) {
        size_t got = 0;
        r = lmr_store_read(rd, chunk, S3_CHUNK_BYTES, &got, &err);
        if (r || !got)
            break;
        total += got;
        if (total > LMR_ZIP_UNZIPPED_MAX_BYTES) {
            r = LMR_ERR_TOO_LARGE;
            break;
        }
        ok = EVP_DigestUpdate(md, chunk, got) && write_all(fd, chunk, got);
    }
    lmr_store_close_read(rd);
    unsigned char digest[32];
    unsigned dlen = 0;
    if (ok && !r)
        ok = EVP_DigestFinal_ex(md, digest, &dlen) && dlen == 32;
    if (fd >= 0 && close(fd) != 0)
        ok = false;
    EVP_MD_CTX_free(md);
    free(chunk);
    lmr_store_destroy(st);
    free(key);
    if (r == LMR_ERR_TOO_LARGE)
        return INVALID_PARAM(e, "Unzipped size must be smaller than %llu bytes (%s grew while it was read)",
                             LMR_ZIP_UNZIPPED_MAX_BYTES, uri);
    if (r)
        return INVALID_PARAM(e, "Error occurred while GetObject of %s: %s", uri, err.msg);
    if (!ok)
        return SERVICE_ERROR(e, "cannot copy %s to %s: %s", uri, zip_path, strerror(errno));
    sha256_b64(digest, out->sha256);
    out->zip_bytes = total;
    return true;
}

/* Fetch the code of src into a new directory below the state dir and unpack it there. */
static bool fetch_code(struct lmr_lambda_service *svc, const char *name, const struct code_src *src,
                       struct code_out *out, struct api_err *e)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&svc->mu);
    bool ok = ensure_state_dir_locked(svc->control, e);
    char dir[4096];
    if (ok) {
        char hex[17];
        lmr_random_hex(hex, 8);
        snprintf(dir, sizeof dir, "%s/functions/%s-%s", svc->control->state_dir, name, hex);
    }
    pthread_mutex_unlock(&svc->mu);
    if (!ok)
        return false;
    if (mkdir(dir, 0755) != 0)
        return SERVICE_ERROR(e, "cannot create %s: %s", dir, strerror(errno));
    char zip_path[4200], task[4200];
    snprintf(zip_path, sizeof zip_path, "%s/code.zip", dir);
    snprintf(task, sizeof task, "%s/task", dir);
    ok = src->zip_b64 ? zip_from_request(src, zip_path, out, e) : zip_from_s3(src, zip_path, out, e);
    struct lmr_err err = {0};
    enum lmr_result r = ok ? lmr_zip_unpack_file(zip_path, task, NULL, &out->sum, &err) : LMR_OK;
    if (ok && r) {
        if (r == LMR_ERR_TOO_LARGE && strstr(err.msg, "entries"))
            ok = INVALID_PARAM(e, "Could not unzip uploaded file: %s", err.msg);
        else if (r == LMR_ERR_TOO_LARGE)
            ok = INVALID_PARAM(e, "Unzipped size must be smaller than %llu bytes", LMR_ZIP_UNZIPPED_MAX_BYTES);
        else if (r == LMR_ERR_INVALID)
            ok = INVALID_PARAM(e,
                               "Could not unzip uploaded file: %s. Every entry must stay inside the task root; "
                               "rebuild the zip from inside the package directory",
                               err.msg);
        else if (r == LMR_ERR_FORMAT)
            ok = INVALID_PARAM(
                e, "Could not unzip uploaded file. Please check your file, then try to upload again. (%s)", err.msg);
        else
            ok = SERVICE_ERROR(e, "cannot unpack the code of %s: %s", name, err.msg);
    }
    if (!ok) {
        lmr_remove_tree(dir, NULL);
        return false;
    }
    out->dir = strdup(dir);
    if (!out->dir) {
        lmr_remove_tree(dir, NULL);
        return SERVICE_ERROR(e, "out of memory");
    }
    return true;
}

/* Sum of the code sizes of every function (staged uploads included). */
static uint64_t code_storage_locked(struct lmr_lambda_service *svc, size_t *n_functions)
{
    uint64_t total = 0;
    size_t n = 0;
    for (struct lmr_svc_fn *fn = svc->fns; fn; fn = fn->next, n++)
        if (fn->ctl && !fn->ctl->from_cli)
            total += fn->ctl->code_size;
    *n_functions = n;
    return total;
}

/* The running fields (path, handler, memory, timeout, environment) a configuration gives. */
static enum lmr_result build_running(struct lmr_lambda_service *svc, const char *name, const char *path,
                                     const struct lmr_svc_fn_ctl *ctl, struct lmr_svc_fn **out, struct lmr_err *err)
{
    size_t n = ctl->variables ? json_object_size(ctl->variables) : 0;
    char **env = calloc(n + 1, sizeof *env);
    if (!env)
        return lmr_fail(err, LMR_ERR_NOMEM, "out of memory configuring function %s", name);
    size_t i = 0;
    const char *k;
    json_t *v;
    enum lmr_result r = LMR_OK;
    if (ctl->variables)
        json_object_foreach(ctl->variables, k, v)
        {
            if (asprintf(&env[i], "%s=%s", k, json_string_value(v)) < 0) {
                env[i] = NULL;
                r = lmr_fail(err, LMR_ERR_NOMEM, "out of memory configuring function %s", name);
                break;
            }
            i++;
        }
    struct lmr_function_config cfg = {
        .name = name,
        .path = path,
        .handler = ctl->handler,
        .memory_mb = ctl->memory_mb,
        .timeout_s = ctl->timeout_s,
        .env = (const char *const *)env,
    };
    if (!r)
        r = lmr_svc_fn_build(svc, &cfg, out, err);
    for (size_t j = 0; j < i; j++)
        free(env[j]);
    free(env);
    return r;
}

/* ---- operations ---------------------------------------------------------------------------- */

/* Look up a function named in a path, with the control record. */
static struct lmr_svc_fn *lookup_locked(struct lmr_lambda_service *svc, const char *raw, struct MHD_Connection *c,
                                        struct api_err *e)
{
    char name[65], qbuf[160];
    const char *qual = NULL;
    if (!parse_name(raw, false, name, &qual, qbuf, sizeof qbuf, e))
        return NULL;
    const char *q2 = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "Qualifier");
    if (q2 && *q2)
        qual = q2;
    char arn[256];
    function_arn(svc, name, arn, sizeof arn);
    struct lmr_svc_fn *fn = find_locked(svc, name);
    if (!fn || (qual && strcmp(qual, "$LATEST"))) {
        fail(e, 404, "ResourceNotFoundException", "Function not found: %s%s%s", arn, qual ? ":" : "", qual ? qual : "");
        return NULL;
    }
    lmr_svc_control_tick_locked(fn);
    if (!ensure_ctl_locked(fn)) {
        SERVICE_ERROR(e, "out of memory describing function %s", name);
        return NULL;
    }
    return fn;
}

static bool check_updatable_locked(struct lmr_lambda_service *svc, struct lmr_svc_fn *fn, const char *revision,
                                   struct api_err *e)
{
    struct lmr_svc_fn_ctl *ctl = fn->ctl;
    char arn[256];
    function_arn(svc, fn->name, arn, sizeof arn);
    if (busy_locked(ctl) && ctl->creating)
        return CONFLICT(e, "The operation cannot be performed at this time. The function is currently in the "
                           "following state: Pending");
    if (busy_locked(ctl) || ctl->claimed)
        return CONFLICT(e, "The operation cannot be performed at this time. An update is in progress for resource: %s",
                        arn);
    if (revision && strcmp(revision, ctl->revision_id))
        return fail(e, 412, "PreconditionFailedException",
                    "The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias "
                    "API to retrieve the latest Revision Id");
    return true;
}

static json_t *parse_body(const struct lmr_svc_control_request *req, struct api_err *e)
{
    json_error_t jerr;
    json_t *j = req->body->len ? json_loadb(req->body->data, req->body->len, 0, &jerr) : NULL;
    if (!j || !json_is_object(j)) {
        json_decref(j);
        fail(e, 400, "InvalidRequestContentException", "Could not parse request body into json: %s",
             req->body->len ? jerr.text : "the body is empty");
        return NULL;
    }
    return j;
}

static bool op_create(struct lmr_lambda_service *svc, const struct lmr_svc_control_request *req, json_t **resp,
                      struct api_err *e)
{
    struct lmr_svc_control *cp = svc->control;
    json_t *body = parse_body(req, e);
    if (!body)
        return false;
    const char *raw_name = NULL;
    char name[65];
    struct conf_patch p;
    struct code_src src;
    const char *arch = NULL;
    bool ok = get_string(body, "FunctionName", "functionName", 140, &raw_name, e);
    json_t *code = json_object_get(body, "Code");
    json_t *tags = json_object_get(body, "Tags");
    if (ok && !raw_name)
        ok = VALIDATION(e, "1 validation error detected: Value null at 'functionName' failed to satisfy constraint: "
                           "Member must not be null");
    ok = ok && parse_name(raw_name, true, name, NULL, NULL, 0, e) && parse_conf(cp, body, &p, e) &&
         parse_architectures(body, &arch, e);
    if (ok && !p.role)
        ok = VALIDATION(e, "1 validation error detected: Value null at 'role' failed to satisfy constraint: Member "
                           "must not be null");
    if (ok && (!code || !json_is_object(code)))
        ok = VALIDATION(e, "1 validation error detected: Value null at 'code' failed to satisfy constraint: Member "
                           "must not be null");
    if (ok && (!p.runtime || !p.handler))
        ok = INVALID_PARAM(e, "Runtime and Handler are mandatory parameters for functions created with deployment "
                              "packages.");
    ok = ok && check_tags(tags, e);
    ok = ok && parse_code(cp, code, &src, e);
    if (ok) {
        pthread_mutex_lock(&svc->mu);
        size_t n_fns = 0;
        uint64_t storage = code_storage_locked(svc, &n_fns);
        if (find_locked(svc, name))
            ok = CONFLICT(e, "Function already exist: %s", name);
        else if (n_fns >= LMR_LAMBDA_FUNCTIONS_MAX || storage >= LMR_LAMBDA_CODE_STORAGE_MAX_BYTES)
            ok = fail(e, 400, "CodeStorageExceededException",
                      "Code storage limit exceeded: lambdamr serve holds %zu functions and %llu bytes of code (at "
                      "most %d functions, %llu bytes); delete functions first",
                      n_fns, (unsigned long long)storage, LMR_LAMBDA_FUNCTIONS_MAX, LMR_LAMBDA_CODE_STORAGE_MAX_BYTES);
        pthread_mutex_unlock(&svc->mu);
    }
    struct code_out co = {0};
    ok = ok && fetch_code(svc, name, &src, &co, e);
    struct lmr_svc_fn_ctl *ctl = ok ? calloc(1, sizeof *ctl) : NULL;
    if (ok && !ctl)
        ok = SERVICE_ERROR(e, "out of memory creating function %s", name);
    struct lmr_svc_fn *fn = NULL;
    if (ok) {
        snprintf(ctl->runtime, sizeof ctl->runtime, "%s", p.runtime);
        ctl->role = strdup(p.role);
        ctl->handler = strdup(p.handler);
        ctl->description = strdup(p.description ? p.description : "");
        ctl->memory_mb = p.has_memory ? (uint32_t)p.memory : 128;
        ctl->timeout_s = p.has_timeout ? (uint32_t)p.timeout : 3;
        ctl->variables = p.variables ? json_deep_copy(p.variables) : NULL;
        ctl->tags = tags && json_is_object(tags) ? json_deep_copy(tags) : NULL;
        snprintf(ctl->architecture, sizeof ctl->architecture, "%s", arch ? arch : "x86_64"); /* AWS's default */
        memcpy(ctl->code_sha256, co.sha256, sizeof ctl->code_sha256);
        ctl->code_size = co.zip_bytes;
        now_timestamp(ctl->last_modified);
        new_uuid(ctl->revision_id);
        ctl->reserved = -1;
        ctl->creating = true;
        ctl->busy_until_ms = lmr_svc_now_ms() + cp->update_delay_ms;
        ctl->code_dir = co.dir;
        co.dir = NULL;
        if (!ctl->role || !ctl->handler || !ctl->description || (p.variables && !ctl->variables))
            ok = SERVICE_ERROR(e, "out of memory creating function %s", name);
    }
    char path[4300];
    struct lmr_err err = {0};
    if (ok) {
        snprintf(path, sizeof path, "%s/task/bootstrap", ctl->code_dir);
        if (build_running(svc, name, path, ctl, &fn, &err) != LMR_OK)
            ok = SERVICE_ERROR(e, "cannot set up function %s: %s", name, err.msg);
    }
    char *dir_copy = ok ? strdup(ctl->code_dir) : NULL;
    if (ok) {
        fn->ctl = ctl;
        ctl->default_concurrency = fn->concurrency;
        ctl = NULL;
        *resp = config_json_locked(svc, fn, true); /* fn is not visible yet: no lock needed */
        enum lmr_result r = lmr_svc_fn_insert(svc, fn, &err);
        if (r) {
            json_decref(*resp);
            *resp = NULL;
            ok = r == LMR_ERR_EXISTS ? CONFLICT(e, "Function already exist: %s", name)
                                     : SERVICE_ERROR(e, "cannot register function %s: %s", name, err.msg);
            if (dir_copy)
                lmr_remove_tree(dir_copy, NULL);
        }
    } else if (ctl) {
        if (ctl->code_dir)
            lmr_remove_tree(ctl->code_dir, NULL);
        lmr_svc_fn_ctl_free(ctl);
    }
    if (co.dir) {
        lmr_remove_tree(co.dir, NULL);
        free(co.dir);
    }
    if (ok)
        LMR_INFO("lambda service: created function %s (%llu bytes zipped, %llu unzipped in %llu files%s)", name,
                 (unsigned long long)co.zip_bytes, (unsigned long long)co.sum.unzipped_bytes,
                 (unsigned long long)co.sum.files, co.sum.has_bootstrap ? "" : ", no bootstrap");
    free(dir_copy);
    json_decref(body);
    return ok;
}

static bool op_get(struct lmr_lambda_service *svc, struct MHD_Connection *c, const char *raw, bool whole, json_t **resp,
                   struct api_err *e)
{
    pthread_mutex_lock(&svc->mu);
    struct lmr_svc_fn *fn = lookup_locked(svc, raw, c, e);
    if (fn) {
        json_t *cfg = config_json_locked(svc, fn, true);
        if (whole) {
            struct lmr_svc_fn_ctl *ctl = fn->ctl;
            json_t *code = json_pack("{s:s}", "RepositoryType", "S3");
            if (ctl->code_dir) {
                char loc[512];
                snprintf(loc, sizeof loc, "http://127.0.0.1:%u/lambdamr/code/%s", svc->port, fn->name);
                json_object_set_new(code, "Location", json_string(loc));
            }
            *resp = json_pack("{s:o, s:o}", "Configuration", cfg, "Code", code);
            if (ctl->tags)
                json_object_set_new(*resp, "Tags", json_deep_copy(ctl->tags));
            if (ctl->reserved >= 0)
                json_object_set_new(*resp, "Concurrency",
                                    json_pack("{s:i}", "ReservedConcurrentExecutions", ctl->reserved));
        } else {
            *resp = cfg;
        }
    }
    pthread_mutex_unlock(&svc->mu);
    return fn != NULL;
}

static int by_name(const void *a, const void *b)
{
    return strcmp((*(struct lmr_svc_fn *const *)a)->name, (*(struct lmr_svc_fn *const *)b)->name);
}

static bool op_list(struct lmr_lambda_service *svc, struct MHD_Connection *c, json_t **resp, struct api_err *e)
{
    const char *marker = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "Marker");
    const char *max_s = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "MaxItems");
    uint64_t max_items = LMR_LAMBDA_LIST_DEFAULT_ITEMS;
    if (max_s && lmr_parse_u64(max_s, 1, 10000, &max_items) != LMR_OK)
        return VALIDATION(e,
                          "1 validation error detected: Value '%.32s' at 'maxItems' failed to satisfy constraint: "
                          "Member must have value between 1 and 10000",
                          max_s);
    if (marker && (!*marker || strlen(marker) > 64 || !lmr_svc_valid_name(marker)))
        return INVALID_PARAM(e, "The marker '%.80s' is not valid: pass the NextMarker of the previous page", marker);
    pthread_mutex_lock(&svc->mu);
    size_t n = 0;
    for (struct lmr_svc_fn *fn = svc->fns; fn; fn = fn->next)
        n++;
    struct lmr_svc_fn **all = calloc(n ? n : 1, sizeof *all);
    bool ok = all != NULL;
    size_t k = 0;
    for (struct lmr_svc_fn *fn = svc->fns; ok && fn; fn = fn->next) {
        lmr_svc_control_tick_locked(fn);
        if (ensure_ctl_locked(fn))
            all[k++] = fn;
    }
    if (ok) {
        qsort(all, k, sizeof *all, by_name);
        size_t i = 0;
        while (marker && i < k && strcmp(all[i]->name, marker) < 0)
            i++;
        json_t *list = json_array();
        for (size_t taken = 0; i < k && taken < max_items; i++, taken++)
            json_array_append_new(list, config_json_locked(svc, all[i], false));
        *resp = json_pack("{s:o}", "Functions", list);
        if (i < k) /* the marker is the name the next page starts with */
            json_object_set_new(*resp, "NextMarker", json_string(all[i]->name));
    }
    pthread_mutex_unlock(&svc->mu);
    free(all);
    return ok ? true : SERVICE_ERROR(e, "out of memory listing functions");
}

static bool op_delete(struct lmr_lambda_service *svc, struct MHD_Connection *c, const char *raw, struct dir_list *gc,
                      struct api_err *e)
{
    pthread_mutex_lock(&svc->mu);
    struct lmr_svc_fn *fn = lookup_locked(svc, raw, c, e);
    if (fn) {
        for (struct lmr_svc_fn **pp = &svc->fns; *pp; pp = &(*pp)->next) {
            if (*pp == fn) {
                *pp = fn->next;
                break;
            }
        }
        fn->deleted = true;
        for (struct lmr_svc_env *env = fn->envs; env; env = env->next)
            if (env->state != ENV_DEAD)
                lmr_svc_env_kill_locked(env, "Runtime.ExitError", "the function was deleted");
        struct lmr_svc_fn_ctl *ctl = fn->ctl;
        dir_list_add(gc, ctl->code_dir);
        dir_list_add(gc, ctl->staged_code_dir);
        for (size_t i = 0; i < ctl->n_retired; i++)
            dir_list_add(gc, ctl->retired[i].dir);
        ctl->code_dir = ctl->staged_code_dir = NULL;
        ctl->n_retired = 0;
        fn->next = svc->control->graveyard;
        svc->control->graveyard = fn;
        LMR_INFO("lambda service: deleted function %s", fn->name);
    }
    pthread_mutex_unlock(&svc->mu);
    return fn != NULL;
}

static bool op_update_code(struct lmr_lambda_service *svc, struct MHD_Connection *c, const char *raw,
                           const struct lmr_svc_control_request *req, json_t **resp, struct dir_list *gc,
                           struct api_err *e)
{
    json_t *body = parse_body(req, e);
    if (!body)
        return false;
    struct code_src src;
    const char *arch = NULL, *revision = NULL;
    json_t *dry = json_object_get(body, "DryRun");
    bool ok = parse_code(svc->control, body, &src, e) && parse_architectures(body, &arch, e) &&
              get_string(body, "RevisionId", "revisionId", 128, &revision, e);
    if (ok && dry && !json_is_boolean(dry))
        ok = bad_type(e, "DryRun", "a boolean");
    char name[65] = "";
    struct lmr_svc_fn *fn = NULL;
    if (ok) {
        pthread_mutex_lock(&svc->mu);
        fn = lookup_locked(svc, raw, c, e);
        ok = fn && check_updatable_locked(svc, fn, revision, e);
        if (ok && json_is_true(dry)) {
            *resp = config_json_locked(svc, fn, true);
            pthread_mutex_unlock(&svc->mu);
            json_decref(body);
            return true;
        }
        if (ok) {
            fn->ctl->claimed = true;
            snprintf(name, sizeof name, "%s", fn->name);
        }
        pthread_mutex_unlock(&svc->mu);
    }
    struct code_out co = {0};
    bool fetched = ok && fetch_code(svc, name, &src, &co, e);
    if (ok) {
        pthread_mutex_lock(&svc->mu);
        struct lmr_svc_fn *now = find_locked(svc, name);
        if (now != fn || !now->ctl->claimed) { /* deleted (and maybe re-created) meanwhile */
            char arn[256];
            function_arn(svc, name, arn, sizeof arn);
            ok = fetched ? fail(e, 404, "ResourceNotFoundException", "Function not found: %s", arn) : false;
        } else {
            struct lmr_svc_fn_ctl *ctl = fn->ctl;
            ctl->claimed = false;
            ok = fetched;
            size_t n_fns;
            uint64_t storage = code_storage_locked(svc, &n_fns) - ctl->code_size + co.zip_bytes;
            if (ok && storage > LMR_LAMBDA_CODE_STORAGE_MAX_BYTES)
                ok = fail(e, 400, "CodeStorageExceededException",
                          "Code storage limit exceeded: the functions of lambdamr serve would hold %llu bytes of "
                          "code (at most %llu); delete functions first",
                          (unsigned long long)storage, LMR_LAMBDA_CODE_STORAGE_MAX_BYTES);
            char path[4300];
            struct lmr_svc_fn *staged = NULL;
            struct lmr_err err = {0};
            if (ok) {
                snprintf(path, sizeof path, "%s/task/bootstrap", co.dir);
                if (build_running(svc, fn->name, path, ctl, &staged, &err) != LMR_OK)
                    ok = SERVICE_ERROR(e, "cannot set up the new code of %s: %s", fn->name, err.msg);
            }
            if (ok) {
                ctl->staged = staged;
                ctl->staged_code_dir = co.dir;
                co.dir = NULL;
                memcpy(ctl->code_sha256, co.sha256, sizeof ctl->code_sha256);
                ctl->code_size = co.zip_bytes;
                if (arch)
                    snprintf(ctl->architecture, sizeof ctl->architecture, "%s", arch);
                ctl->from_cli = false;
                now_timestamp(ctl->last_modified);
                new_uuid(ctl->revision_id);
                ctl->creating = false;
                ctl->busy_until_ms = lmr_svc_now_ms() + svc->control->update_delay_ms;
                *resp = config_json_locked(svc, fn, true);
                LMR_INFO("lambda service: new code for %s (%llu bytes zipped), in effect in %u ms", fn->name,
                         (unsigned long long)co.zip_bytes, svc->control->update_delay_ms);
            }
        }
        pthread_mutex_unlock(&svc->mu);
    }
    dir_list_add(gc, co.dir); /* a fetched upload that did not become the function's code */
    json_decref(body);
    return ok;
}

/* Replace *dst by a copy of src (NULL keeps *dst). @return false when out of memory. */
static bool replace_str(char **dst, const char *src)
{
    if (!src)
        return true;
    char *copy = strdup(src);
    if (!copy)
        return false;
    free(*dst);
    *dst = copy;
    return true;
}

static bool op_update_config(struct lmr_lambda_service *svc, struct MHD_Connection *c, const char *raw,
                             const struct lmr_svc_control_request *req, json_t **resp, struct api_err *e)
{
    json_t *body = parse_body(req, e);
    if (!body)
        return false;
    struct conf_patch p;
    const char *revision = NULL;
    bool ok = parse_conf(svc->control, body, &p, e) && get_string(body, "RevisionId", "revisionId", 128, &revision, e);
    if (ok) {
        pthread_mutex_lock(&svc->mu);
        struct lmr_svc_fn *fn = lookup_locked(svc, raw, c, e);
        ok = fn && check_updatable_locked(svc, fn, revision, e);
        if (ok) {
            struct lmr_svc_fn_ctl *ctl = fn->ctl;
            /* The running fields of the new configuration first: nothing changes if they fail. */
            struct lmr_svc_fn_ctl view = *ctl;
            if (p.handler)
                view.handler = (char *)p.handler;
            if (p.has_memory)
                view.memory_mb = (uint32_t)p.memory;
            if (p.has_timeout)
                view.timeout_s = (uint32_t)p.timeout;
            if (p.has_env)
                view.variables = p.variables;
            struct lmr_svc_fn *staged = NULL;
            struct lmr_err err = {0};
            json_t *vars = p.has_env && p.variables ? json_deep_copy(p.variables) : NULL;
            if (build_running(svc, fn->name, fn->path, &view, &staged, &err) != LMR_OK ||
                (p.has_env && p.variables && !vars) || !replace_str(&ctl->handler, p.handler) ||
                !replace_str(&ctl->role, p.role) || !replace_str(&ctl->description, p.description)) {
                lmr_svc_fn_free(staged);
                json_decref(vars);
                ok = SERVICE_ERROR(e, "cannot update the configuration of %s: %s", fn->name,
                                   *err.msg ? err.msg : "out of memory");
            } else {
                if (p.runtime)
                    snprintf(ctl->runtime, sizeof ctl->runtime, "%s", p.runtime);
                ctl->memory_mb = view.memory_mb;
                ctl->timeout_s = view.timeout_s;
                if (p.has_env) {
                    json_decref(ctl->variables);
                    ctl->variables = vars;
                }
                ctl->staged = staged;
                now_timestamp(ctl->last_modified);
                new_uuid(ctl->revision_id);
                ctl->creating = false;
                ctl->busy_until_ms = lmr_svc_now_ms() + svc->control->update_delay_ms;
                *resp = config_json_locked(svc, fn, true);
            }
        }
        pthread_mutex_unlock(&svc->mu);
    }
    json_decref(body);
    return ok;
}

enum conc_op { CONC_PUT, CONC_GET, CONC_DELETE };

static bool op_concurrency(struct lmr_lambda_service *svc, struct MHD_Connection *c, const char *raw, enum conc_op op,
                           const struct lmr_svc_control_request *req, json_t **resp, struct api_err *e)
{
    json_int_t n = 0;
    bool present = false;
    if (op == CONC_PUT) {
        json_t *body = parse_body(req, e);
        if (!body)
            return false;
        bool ok = get_int(body, "ReservedConcurrentExecutions", "reservedConcurrentExecutions", 0,
                          LMR_LAMBDA_ACCOUNT_CONCURRENCY, &present, &n, e);
        json_decref(body);
        if (!ok)
            return false;
        if (!present)
            return VALIDATION(e, "1 validation error detected: Value null at 'reservedConcurrentExecutions' failed "
                                 "to satisfy constraint: Member must not be null");
    }
    pthread_mutex_lock(&svc->mu);
    struct lmr_svc_fn *fn = lookup_locked(svc, raw, c, e);
    bool ok = fn != NULL;
    if (ok && op == CONC_PUT) {
        json_int_t others = 0;
        for (struct lmr_svc_fn *f = svc->fns; f; f = f->next)
            if (f != fn && f->ctl && f->ctl->reserved > 0)
                others += f->ctl->reserved;
        if (others + n > LMR_LAMBDA_ACCOUNT_CONCURRENCY - LMR_LAMBDA_UNRESERVED_MIN) {
            ok = INVALID_PARAM(e, "Specified ReservedConcurrentExecutions for function decreases account's "
                                  "UnreservedConcurrentExecution below its minimum value of [100].");
        } else {
            fn->ctl->reserved = (int)n;
            fn->concurrency = (uint32_t)n;
            lmr_svc_control_tick_locked(fn); /* retires idle environments over the new limit */
            *resp = json_pack("{s:I}", "ReservedConcurrentExecutions", n);
        }
    } else if (ok && op == CONC_DELETE) {
        fn->ctl->reserved = -1;
        fn->concurrency = fn->ctl->default_concurrency;
        lmr_svc_fn_pump_locked(fn);
    } else if (ok) {
        *resp = fn->ctl->reserved >= 0 ? json_pack("{s:i}", "ReservedConcurrentExecutions", fn->ctl->reserved)
                                       : json_object();
    }
    pthread_mutex_unlock(&svc->mu);
    return ok;
}

/* GET /lambdamr/code/NAME: the zip of the function's newest code (GetFunction's Code.Location). */
static enum MHD_Result op_download(struct lmr_lambda_service *svc, struct MHD_Connection *c, const char *raw)
{
    struct api_err e = {0};
    pthread_mutex_lock(&svc->mu);
    struct lmr_svc_fn *fn = lookup_locked(svc, raw, c, &e);
    int fd = -1;
    if (fn) {
        const char *dir = fn->ctl->staged_code_dir ? fn->ctl->staged_code_dir : fn->ctl->code_dir;
        char path[4200];
        snprintf(path, sizeof path, "%s/code.zip", dir ? dir : "");
        if (!dir || (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
            fail(&e, 404, "ResourceNotFoundException",
                 "Function %s has no zip: it runs an executable given with "
                 "--function",
                 fn->name);
    }
    pthread_mutex_unlock(&svc->mu);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        if (fd >= 0)
            close(fd);
        return reply_err(c, &e);
    }
    struct MHD_Response *r = MHD_create_response_from_fd((uint64_t)st.st_size, fd);
    if (!r) {
        close(fd);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "application/zip");
    enum MHD_Result ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return ret;
}

/* ---- routing ---------------------------------------------------------------------------------- */

enum op {
    OP_NONE,
    OP_CREATE,
    OP_LIST,
    OP_GET,
    OP_DELETE,
    OP_GET_CONFIG,
    OP_UPDATE_CONFIG,
    OP_UPDATE_CODE,
    OP_PUT_CONC,
    OP_GET_CONC,
    OP_DELETE_CONC,
    OP_DOWNLOAD,
    OP_BAD_METHOD
};

static const char *op_name(enum op op)
{
    static const char *const names[] = {"",
                                        "CreateFunction",
                                        "ListFunctions",
                                        "GetFunction",
                                        "DeleteFunction",
                                        "GetFunctionConfiguration",
                                        "UpdateFunctionConfiguration",
                                        "UpdateFunctionCode",
                                        "PutFunctionConcurrency",
                                        "GetFunctionConcurrency",
                                        "DeleteFunctionConcurrency",
                                        "GetCode",
                                        ""};
    return names[op];
}

/* Which operation method+url is; *seg gets the {FunctionName} segment. */
static enum op route_of(const char *method, const char *url, char *seg, size_t cap)
{
    static const struct {
        const char *prefix;
        const char *suffix;
        const char *method;
        enum op op;
    } routes[] = {
        {"/2015-03-31/functions/", "", "GET", OP_GET},
        {"/2015-03-31/functions/", "", "DELETE", OP_DELETE},
        {"/2015-03-31/functions/", "/configuration", "GET", OP_GET_CONFIG},
        {"/2015-03-31/functions/", "/configuration", "PUT", OP_UPDATE_CONFIG},
        {"/2015-03-31/functions/", "/code", "PUT", OP_UPDATE_CODE},
        {"/2017-10-31/functions/", "/concurrency", "PUT", OP_PUT_CONC},
        {"/2017-10-31/functions/", "/concurrency", "DELETE", OP_DELETE_CONC},
        {"/2019-09-30/functions/", "/concurrency", "GET", OP_GET_CONC},
        {"/lambdamr/code/", "", "GET", OP_DOWNLOAD},
    };
    if (!strcmp(url, "/2015-03-31/functions") || !strcmp(url, "/2015-03-31/functions/")) {
        if (!strcmp(method, "POST"))
            return OP_CREATE;
        return !strcmp(method, "GET") ? OP_LIST : OP_BAD_METHOD;
    }
    bool path_known = false;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        size_t pl = strlen(routes[i].prefix);
        if (strncmp(url, routes[i].prefix, pl))
            continue;
        const char *name = url + pl, *slash = strchr(name, '/');
        const char *tail = slash ? slash : name + strlen(name);
        if (tail == name || strcmp(tail, routes[i].suffix))
            continue;
        path_known = true;
        if (strcmp(method, routes[i].method))
            continue;
        snprintf(seg, cap, "%.*s", (int)(tail - name), name);
        return routes[i].op;
    }
    return path_known ? OP_BAD_METHOD : OP_NONE;
}

bool lmr_svc_control_route(struct lmr_lambda_service *svc, struct MHD_Connection *c,
                           const struct lmr_svc_control_request *req, enum MHD_Result *ret)
{
    char seg[300];
    enum op op = route_of(req->method, req->url, seg, sizeof seg);
    if (op == OP_NONE)
        return false;
    struct api_err e = {0};
    json_t *resp = NULL;
    struct dir_list gc = {.n = 0};
    bool ok = false;
    if (op == OP_BAD_METHOD) {
        fail(&e, 405, "UnknownOperationException", "Unknown operation: %s is not served for %s", req->method, req->url);
    } else if (req->refused) {
        fail(&e, 429, "TooManyRequestsException",
             "Rate exceeded: too many code uploads at once (at most %llu bytes in flight); retry %s",
             LMR_LAMBDA_UPLOADS_MAX_BYTES, op_name(op));
    } else if (req->too_big) {
        size_t cap = lmr_svc_control_body_cap(req->method, req->url);
        fail(&e, 413, "RequestEntityTooLargeException", "Request must be smaller than %zu bytes for the %s operation",
             (cap ? cap : LMR_LAMBDA_SYNC_PAYLOAD_MAX_BYTES) + 1, op_name(op));
    } else if (strlen(seg) > 256) {
        VALIDATION(&e, "1 validation error detected: Value at 'functionName' failed to satisfy constraint: Member "
                       "must have length less than or equal to 256");
    } else if (op == OP_DOWNLOAD) {
        *ret = op_download(svc, c, seg);
        return true;
    } else {
        switch (op) {
        case OP_CREATE:
            ok = op_create(svc, req, &resp, &e);
            break;
        case OP_LIST:
            ok = op_list(svc, c, &resp, &e);
            break;
        case OP_GET:
        case OP_GET_CONFIG:
            ok = op_get(svc, c, seg, op == OP_GET, &resp, &e);
            break;
        case OP_DELETE:
            ok = op_delete(svc, c, seg, &gc, &e);
            break;
        case OP_UPDATE_CODE:
            ok = op_update_code(svc, c, seg, req, &resp, &gc, &e);
            break;
        case OP_UPDATE_CONFIG:
            ok = op_update_config(svc, c, seg, req, &resp, &e);
            break;
        case OP_PUT_CONC:
        case OP_GET_CONC:
        case OP_DELETE_CONC:
            ok = op_concurrency(svc, c, seg,
                                op == OP_PUT_CONC   ? CONC_PUT
                                : op == OP_GET_CONC ? CONC_GET
                                                    : CONC_DELETE,
                                req, &resp, &e);
            break;
        default:
            break;
        }
    }
    pthread_mutex_lock(&svc->mu);
    collect_garbage_locked(svc, &gc);
    pthread_mutex_unlock(&svc->mu);
    dir_list_remove(&gc);
    if (!ok) {
        json_decref(resp);
        if (!e.type)
            SERVICE_ERROR(&e, "%s failed", op_name(op));
        *ret = reply_err(c, &e);
        return true;
    }
    unsigned status = op == OP_CREATE ? 201 : (op == OP_DELETE || op == OP_DELETE_CONC) ? 204 : 200;
    *ret = reply_json(c, status, status == 204 ? (json_decref(resp), NULL) : resp);
    return true;
}
