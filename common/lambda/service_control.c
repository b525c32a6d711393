/*
 * Lambda's function control plane in the embedded service (see service_control.h for the
 * operations, states and layout on disk): its state, the operations and the routing. Request
 * checks are in service_control_request.c, fetching and unpacking code in service_control_code.c. Requests are checked
 * the way Lambda checks them: constraint violations of the API model (lengths, patterns, ranges, enums) are
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
#include "lambda/service_control_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lambda/zip_unpack.h"
#include "util/log.h"
#include "util/misc.h"

#if defined(__aarch64__)
#define HOST_ARCH "arm64"
#else
#define HOST_ARCH "x86_64"
#endif

#define GC_DIRS_MAX 64

bool lmr_svc_cp_fail(struct lmr_svc_api_err *e, unsigned status, const char *type, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    e->status = status;
    e->type = type;
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return false;
}

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

static void function_arn(const struct lmr_lambda_service *svc, const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "arn:aws:lambda:%s:%s:function:%s", svc->region, LMR_LAMBDA_ACCOUNT_ID, name);
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
    if (!lmr_svc_cp_hash_file(fn->path, ctl->code_sha256, &ctl->code_size))
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

static enum MHD_Result reply_err(struct MHD_Connection *c, const struct lmr_svc_api_err *e)
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
                                        struct lmr_svc_api_err *e)
{
    char name[65], qbuf[160];
    const char *qual = NULL;
    if (!lmr_svc_cp_parse_name(raw, false, name, &qual, qbuf, sizeof qbuf, e))
        return NULL;
    const char *q2 = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "Qualifier");
    if (q2 && *q2)
        qual = q2;
    char arn[256];
    function_arn(svc, name, arn, sizeof arn);
    struct lmr_svc_fn *fn = find_locked(svc, name);
    if (!fn || (qual && strcmp(qual, "$LATEST"))) {
        lmr_svc_cp_fail(e, 404, "ResourceNotFoundException", "Function not found: %s%s%s", arn, qual ? ":" : "",
                        qual ? qual : "");
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
                                   struct lmr_svc_api_err *e)
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
        return lmr_svc_cp_fail(
            e, 412, "PreconditionFailedException",
            "The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias "
            "API to retrieve the latest Revision Id");
    return true;
}

static bool op_create(struct lmr_lambda_service *svc, const struct lmr_svc_control_request *req, json_t **resp,
                      struct lmr_svc_api_err *e)
{
    struct lmr_svc_control *cp = svc->control;
    json_t *body = lmr_svc_cp_parse_body(req, e);
    if (!body)
        return false;
    const char *raw_name = NULL;
    char name[65];
    struct conf_patch p;
    struct code_src src;
    const char *arch = NULL;
    bool ok = lmr_svc_cp_get_string(body, "FunctionName", "functionName", 140, &raw_name, e);
    json_t *code = json_object_get(body, "Code");
    json_t *tags = json_object_get(body, "Tags");
    if (ok && !raw_name)
        ok = VALIDATION(e, "1 validation error detected: Value null at 'functionName' failed to satisfy constraint: "
                           "Member must not be null");
    ok = ok && lmr_svc_cp_parse_name(raw_name, true, name, NULL, NULL, 0, e) &&
         lmr_svc_cp_parse_conf(cp, body, &p, e) && lmr_svc_cp_parse_architectures(body, &arch, e);
    if (ok && !p.role)
        ok = VALIDATION(e, "1 validation error detected: Value null at 'role' failed to satisfy constraint: Member "
                           "must not be null");
    if (ok && (!code || !json_is_object(code)))
        ok = VALIDATION(e, "1 validation error detected: Value null at 'code' failed to satisfy constraint: Member "
                           "must not be null");
    if (ok && (!p.runtime || !p.handler))
        ok = INVALID_PARAM(e, "Runtime and Handler are mandatory parameters for functions created with deployment "
                              "packages.");
    ok = ok && lmr_svc_cp_check_tags(tags, e);
    ok = ok && lmr_svc_cp_parse_code(cp, code, &src, e);
    if (ok) {
        pthread_mutex_lock(&svc->mu);
        size_t n_fns = 0;
        uint64_t storage = code_storage_locked(svc, &n_fns);
        if (find_locked(svc, name))
            ok = CONFLICT(e, "Function already exist: %s", name);
        else if (n_fns >= LMR_LAMBDA_FUNCTIONS_MAX || storage >= LMR_LAMBDA_CODE_STORAGE_MAX_BYTES)
            ok = lmr_svc_cp_fail(
                e, 400, "CodeStorageExceededException",
                "Code storage limit exceeded: lambdamr serve holds %zu functions and %llu bytes of code (at "
                "most %d functions, %llu bytes); delete functions first",
                n_fns, (unsigned long long)storage, LMR_LAMBDA_FUNCTIONS_MAX, LMR_LAMBDA_CODE_STORAGE_MAX_BYTES);
        pthread_mutex_unlock(&svc->mu);
    }
    struct code_out co = {0};
    ok = ok && lmr_svc_cp_fetch_code(svc, name, &src, &co, e);
    struct lmr_svc_fn_ctl *ctl = ok ? calloc(1, sizeof *ctl) : NULL;
    if (ok && !ctl)
        ok = SERVICE_ERROR(e, "out of memory creating function %s", name);
    struct lmr_svc_fn *fn = NULL;
    if (ok) {
        snprintf(ctl->runtime, sizeof ctl->runtime, "%s", p.runtime);
        ctl->role = strdup(p.role);
        ctl->handler = strdup(p.handler);
        ctl->description = strdup(p.description ? p.description : "");
        ctl->memory_mb = p.has_memory ? (uint32_t)p.memory : LMR_LAMBDA_API_DEFAULT_MEMORY_MB;
        ctl->timeout_s = p.has_timeout ? (uint32_t)p.timeout : LMR_LAMBDA_API_DEFAULT_TIMEOUT_S;
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
                   struct lmr_svc_api_err *e)
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

static bool op_list(struct lmr_lambda_service *svc, struct MHD_Connection *c, json_t **resp, struct lmr_svc_api_err *e)
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
                      struct lmr_svc_api_err *e)
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
                           struct lmr_svc_api_err *e)
{
    json_t *body = lmr_svc_cp_parse_body(req, e);
    if (!body)
        return false;
    struct code_src src;
    const char *arch = NULL, *revision = NULL;
    json_t *dry = json_object_get(body, "DryRun");
    bool ok = lmr_svc_cp_parse_code(svc->control, body, &src, e) && lmr_svc_cp_parse_architectures(body, &arch, e) &&
              lmr_svc_cp_get_string(body, "RevisionId", "revisionId", 128, &revision, e);
    if (ok && dry && !json_is_boolean(dry))
        ok = lmr_svc_cp_bad_type(e, "DryRun", "a boolean");
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
    bool fetched = ok && lmr_svc_cp_fetch_code(svc, name, &src, &co, e);
    if (ok) {
        pthread_mutex_lock(&svc->mu);
        struct lmr_svc_fn *now = find_locked(svc, name);
        if (now != fn || !now->ctl->claimed) { /* deleted (and maybe re-created) meanwhile */
            char arn[256];
            function_arn(svc, name, arn, sizeof arn);
            ok = fetched ? lmr_svc_cp_fail(e, 404, "ResourceNotFoundException", "Function not found: %s", arn) : false;
        } else {
            struct lmr_svc_fn_ctl *ctl = fn->ctl;
            ctl->claimed = false;
            ok = fetched;
            size_t n_fns;
            uint64_t storage = code_storage_locked(svc, &n_fns) - ctl->code_size + co.zip_bytes;
            if (ok && storage > LMR_LAMBDA_CODE_STORAGE_MAX_BYTES)
                ok = lmr_svc_cp_fail(
                    e, 400, "CodeStorageExceededException",
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
                             const struct lmr_svc_control_request *req, json_t **resp, struct lmr_svc_api_err *e)
{
    json_t *body = lmr_svc_cp_parse_body(req, e);
    if (!body)
        return false;
    struct conf_patch p;
    const char *revision = NULL;
    bool ok = lmr_svc_cp_parse_conf(svc->control, body, &p, e) &&
              lmr_svc_cp_get_string(body, "RevisionId", "revisionId", 128, &revision, e);
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
                           const struct lmr_svc_control_request *req, json_t **resp, struct lmr_svc_api_err *e)
{
    json_int_t n = 0;
    bool present = false;
    if (op == CONC_PUT) {
        json_t *body = lmr_svc_cp_parse_body(req, e);
        if (!body)
            return false;
        bool ok = lmr_svc_cp_get_int(body, "ReservedConcurrentExecutions", "reservedConcurrentExecutions", 0,
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
    struct lmr_svc_api_err e = {0};
    pthread_mutex_lock(&svc->mu);
    struct lmr_svc_fn *fn = lookup_locked(svc, raw, c, &e);
    int fd = -1;
    if (fn) {
        const char *dir = fn->ctl->staged_code_dir ? fn->ctl->staged_code_dir : fn->ctl->code_dir;
        char path[4200];
        snprintf(path, sizeof path, "%s/code.zip", dir ? dir : "");
        if (!dir || (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
            lmr_svc_cp_fail(&e, 404, "ResourceNotFoundException",
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
    struct lmr_svc_api_err e = {0};
    json_t *resp = NULL;
    struct dir_list gc = {.n = 0};
    bool ok = false;
    if (op == OP_BAD_METHOD) {
        lmr_svc_cp_fail(&e, 405, "UnknownOperationException", "Unknown operation: %s is not served for %s", req->method,
                        req->url);
    } else if (req->refused) {
        lmr_svc_cp_fail(&e, 429, "TooManyRequestsException",
                        "Rate exceeded: too many code uploads at once (at most %llu bytes in flight); retry %s",
                        LMR_LAMBDA_UPLOADS_MAX_BYTES, op_name(op));
    } else if (req->too_big) {
        size_t cap = lmr_svc_control_body_cap(req->method, req->url);
        lmr_svc_cp_fail(&e, 413, "RequestEntityTooLargeException",
                        "Request must be smaller than %zu bytes for the %s operation",
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
