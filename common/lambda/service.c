/*
 * The embedded Lambda service, core: functions, invocation dispatch (warm environment, cold
 * start, 429, Event queue with retries), the END/REPORT lines, and the monitor thread that
 * enforces timeouts and memory sizes. Environments and their Runtime API live in
 * service_env.c, the Invoke API over HTTP in service_http.c.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lambda/service_control.h"
#include "lambda/service_internal.h"
#include "util/log.h"
#include "util/misc.h"

extern char **environ;

#define INIT_LIMIT_MS 10000.0 /* Lambda's init phase limit */
#define MONITOR_TICK_MS 5

double lmr_svc_now_ms(void)
{
    return lmr_mono_ms();
}

void lmr_svc_outcome_init(struct lmr_svc_outcome *o)
{
    memset(o, 0, sizeof *o);
    lmr_buf_init(&o->payload, LMR_LAMBDA_SYNC_PAYLOAD_MAX_BYTES + 1024);
}

void lmr_svc_outcome_clean_up(struct lmr_svc_outcome *o)
{
    lmr_buf_clean_up(&o->payload);
}

static void set_error(struct lmr_svc_outcome *o, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void set_error(struct lmr_svc_outcome *o, int status, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    o->status = status;
    o->error_code = code;
    vsnprintf(o->message, sizeof o->message, fmt, ap);
    va_end(ap);
}

/* ---- functions ---------------------------------------------------------------------------- */

bool lmr_svc_valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return false;
    }
    return true;
}

static bool env_has(char **list, size_t n, const char *entry)
{
    size_t klen = strcspn(entry, "=");
    for (size_t i = 0; i < n; i++)
        if (!strncmp(list[i], entry, klen) && list[i][klen] == '=')
            return true;
    return false;
}

static void env_add(struct lmr_svc_fn *fn, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void env_add(struct lmr_svc_fn *fn, size_t cap, const char *fmt, ...)
{
    char *s = NULL;
    va_list ap;
    va_start(ap, fmt);
    int rc = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (rc < 0 || !s)
        return;
    if (!strchr(s, '=') || fn->envp_len + 1 >= cap || env_has(fn->envp, fn->envp_len, s)) {
        free(s);
        return;
    }
    fn->envp[fn->envp_len++] = s;
    fn->envp[fn->envp_len] = NULL;
}

static bool passes_through(const char *e)
{
    static const char *const exact[] = {"PATH=",         "HOME=", "TMPDIR=", "ASAN_OPTIONS=",   "UBSAN_OPTIONS=",
                                        "LSAN_OPTIONS=", "TZ=",   "LANG=",   "LD_LIBRARY_PATH="};
    if (!strncmp(e, "AWS_LAMBDA_", 11) || !strncmp(e, "AWS_EXECUTION_ENV=", 18))
        return false;
    if (!strncmp(e, "AWS_", 4) || !strncmp(e, "LMR_", 4))
        return true;
    for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++)
        if (!strncmp(e, exact[i], strlen(exact[i])))
            return true;
    return false;
}

void lmr_svc_fn_free(struct lmr_svc_fn *fn)
{
    if (!fn)
        return;
    lmr_svc_fn_ctl_free(fn->ctl);
    for (size_t i = 0; i < fn->envp_len; i++)
        free(fn->envp[i]);
    free(fn->envp);
    if (fn->log_fd >= 0)
        close(fn->log_fd);
    while (fn->q_head) {
        struct lmr_svc_inv *inv = fn->q_head;
        fn->q_head = inv->next;
        lmr_buf_clean_up(&inv->response);
        free(inv->payload);
        free(inv);
    }
    free(fn->name);
    free(fn->path);
    free(fn->handler);
    free(fn->task_root);
    free(fn);
}

enum lmr_result lmr_lambda_service_new(const struct lmr_lambda_service_options *opts, struct lmr_lambda_service **out,
                                       struct lmr_err *err)
{
    struct lmr_lambda_service *svc = calloc(1, sizeof *svc);
    if (!svc)
        return lmr_fail(err, LMR_ERR_NOMEM, "out of memory creating the Lambda service");
    /* Adaptive: the lock is held for microseconds at a time, by the invoking threads, the Runtime API
       threads and the monitor; spinning briefly beats sleeping and a 20-40 µs wakeup on a VM. */
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ADAPTIVE_NP);
    pthread_mutex_init(&svc->mu, &ma);
    pthread_mutexattr_destroy(&ma);
    pthread_cond_init(&svc->envs_cond, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&svc->monitor_cond, &ca);
    pthread_cond_init(&svc->idle_cond, &ca);
    pthread_condattr_destroy(&ca);
    svc->port_wanted = opts ? opts->port : 0;
    enum lmr_result cr = lmr_svc_control_new(svc, opts, err);
    if (cr != LMR_OK) {
        lmr_lambda_service_destroy(svc);
        return cr;
    }
    svc->event_retry_delay_ms = opts && opts->event_retry_delay_ms ? opts->event_retry_delay_ms : 200;
    svc->request_timeout_ms =
        opts && opts->request_timeout_ms ? opts->request_timeout_ms : LMR_LAMBDA_REQUEST_TIMEOUT_DEFAULT_MS;
    const char *region = getenv("AWS_REGION");
    if (!region || !*region)
        region = getenv("AWS_DEFAULT_REGION");
    snprintf(svc->region, sizeof svc->region, "%s", region && *region ? region : "us-east-1");
    if (opts && opts->log_dir) {
        enum lmr_result r = lmr_mkdirs(opts->log_dir, err);
        if (r != LMR_OK) {
            lmr_lambda_service_destroy(svc);
            return r;
        }
        svc->log_dir = lmr_abspath(opts->log_dir);
    } else {
        const char *tmp = getenv("TMPDIR");
        char tmpl[4096];
        snprintf(tmpl, sizeof tmpl, "%s/lambdamr-logs-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(tmpl)) {
            int e = errno;
            lmr_lambda_service_destroy(svc);
            return lmr_fail(err, LMR_ERR_IO, "cannot create a log directory %s: %s; set TMPDIR or pass a log directory",
                            tmpl, strerror(e));
        }
        svc->log_dir = strdup(tmpl);
    }
    if (!svc->log_dir) {
        lmr_lambda_service_destroy(svc);
        return lmr_fail(err, LMR_ERR_NOMEM, "out of memory creating the Lambda service");
    }
    *out = svc;
    return LMR_OK;
}

enum lmr_result lmr_svc_fn_build(struct lmr_lambda_service *svc, const struct lmr_function_config *cfg,
                                 struct lmr_svc_fn **out, struct lmr_err *err)
{
    if (!cfg || !cfg->name || !lmr_svc_valid_name(cfg->name))
        return lmr_fail(err, LMR_ERR_INVALID,
                        "function name '%s' is not valid: use 1 to 64 letters, digits, '-' or '_'",
                        cfg && cfg->name ? cfg->name : "");
    if (!cfg->path || !*cfg->path)
        return lmr_fail(err, LMR_ERR_INVALID, "function %s has no executable path", cfg->name);
    uint32_t memory_mb = cfg->memory_mb ? cfg->memory_mb : LMR_MEMORY_DEFAULT_MB;
    char what[96];
    snprintf(what, sizeof what, "function %s", cfg->name);
    enum lmr_result mr = lmr_memory_check_mb(memory_mb, what, err);
    if (mr)
        return mr;
    double timeout_s = cfg->timeout_s > 0 ? cfg->timeout_s : 3.0;
    if (timeout_s > 900)
        return lmr_fail(err, LMR_ERR_INVALID, "function %s: timeout %.2f s is too long; use at most 900 seconds",
                        cfg->name, timeout_s);
    uint32_t concurrency = cfg->concurrency ? cfg->concurrency : 10;
    if (concurrency > 1000)
        return lmr_fail(err, LMR_ERR_INVALID, "function %s: concurrency %u is too high; use at most 1000", cfg->name,
                        concurrency);

    struct lmr_svc_fn *fn = calloc(1, sizeof *fn);
    if (!fn)
        return lmr_fail(err, LMR_ERR_NOMEM, "out of memory adding function %s", cfg->name);
    fn->svc = svc;
    fn->log_fd = -1;
    fn->name = strdup(cfg->name);
    fn->path = lmr_abspath(cfg->path);
    fn->handler = cfg->handler ? strdup(cfg->handler) : NULL;
    fn->memory_mb = memory_mb;
    fn->timeout_s = timeout_s;
    fn->concurrency = concurrency;
    if (cfg->task_root) {
        fn->task_root = lmr_abspath(cfg->task_root);
    } else if (fn->path) {
        fn->task_root = strdup(fn->path);
        char *slash = fn->task_root ? strrchr(fn->task_root, '/') : NULL;
        if (slash)
            *(slash == fn->task_root ? slash + 1 : slash) = '\0';
    }
    size_t n_environ = 0, n_extra = 0;
    while (environ && environ[n_environ])
        n_environ++;
    while (cfg->env && cfg->env[n_extra])
        n_extra++;
    size_t cap = n_environ + n_extra + 32;
    fn->envp = calloc(cap, sizeof *fn->envp);
    if (!fn->name || !fn->path || !fn->task_root || !fn->envp) {
        lmr_svc_fn_free(fn);
        return lmr_fail(err, LMR_ERR_NOMEM, "out of memory adding function %s", cfg->name);
    }
    /* Variables Lambda reserves come first (and win); then the caller's extras, then pass-through. */
    if (fn->handler)
        env_add(fn, cap, "_HANDLER=%s", fn->handler);
    env_add(fn, cap, "AWS_LAMBDA_FUNCTION_NAME=%s", fn->name);
    env_add(fn, cap, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE=%u", fn->memory_mb);
    env_add(fn, cap, "AWS_LAMBDA_FUNCTION_VERSION=$LATEST");
    env_add(fn, cap, "AWS_LAMBDA_LOG_GROUP_NAME=/aws/lambda/%s", fn->name);
    env_add(fn, cap, "AWS_REGION=%s", svc->region);
    env_add(fn, cap, "AWS_DEFAULT_REGION=%s", svc->region);
    env_add(fn, cap, "LAMBDA_TASK_ROOT=%s", fn->task_root);
    env_add(fn, cap, "LAMBDA_RUNTIME_DIR=%s", fn->task_root);
    env_add(fn, cap, "AWS_EXECUTION_ENV=AWS_Lambda_provided");
    for (size_t i = 0; i < n_extra; i++)
        env_add(fn, cap, "%s", cfg->env[i]);
    for (size_t i = 0; i < n_environ; i++)
        if (passes_through(environ[i]))
            env_add(fn, cap, "%s", environ[i]);
    /* lambdamr's runtime client may pipeline GET /next behind its POST here (runtime.c); unless told otherwise. */
    env_add(fn, cap, "LMR_RUNTIME_API_PIPELINING=1");
    *out = fn;
    return LMR_OK;
}

enum lmr_result lmr_svc_fn_insert(struct lmr_lambda_service *svc, struct lmr_svc_fn *fn, struct lmr_err *err)
{
    char log_path[4096];
    snprintf(log_path, sizeof log_path, "%s/%s.log", svc->log_dir, fn->name);
    fn->log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fn->log_fd < 0) {
        int e = errno;
        lmr_svc_fn_free(fn);
        return lmr_fail(err, LMR_ERR_IO, "cannot open the log %s of function %s: %s", log_path, fn->name, strerror(e));
    }
    pthread_mutex_lock(&svc->mu);
    for (struct lmr_svc_fn *f = svc->fns; f; f = f->next) {
        if (!strcmp(f->name, fn->name)) {
            pthread_mutex_unlock(&svc->mu);
            enum lmr_result r =
                lmr_fail(err, LMR_ERR_EXISTS, "function %s is already registered; use another name", fn->name);
            lmr_svc_fn_free(fn);
            return r;
        }
    }
    fn->next = svc->fns;
    svc->fns = fn;
    pthread_mutex_unlock(&svc->mu);
    return LMR_OK;
}

enum lmr_result lmr_lambda_service_add_function(struct lmr_lambda_service *svc, const struct lmr_function_config *cfg,
                                                struct lmr_err *err)
{
    struct lmr_svc_fn *fn = NULL;
    enum lmr_result r = lmr_svc_fn_build(svc, cfg, &fn, err);
    return r ? r : lmr_svc_fn_insert(svc, fn, err);
}

uint16_t lmr_lambda_service_port(const struct lmr_lambda_service *svc)
{
    return svc ? svc->port : 0;
}

void lmr_lambda_service_get_stats(struct lmr_lambda_service *svc, struct lmr_lambda_service_stats *out)
{
    pthread_mutex_lock(&svc->mu);
    *out = svc->stats;
    out->events_queued = 0;
    out->invocations_running = 0;
    for (struct lmr_svc_fn *fn = svc->fns; fn; fn = fn->next) {
        out->events_queued += fn->q_len;
        for (struct lmr_svc_env *env = fn->envs; env; env = env->next)
            out->invocations_running += env->inv != NULL;
    }
    pthread_mutex_unlock(&svc->mu);
}

bool lmr_lambda_service_wait_idle(struct lmr_lambda_service *svc, uint32_t timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t ns = (uint64_t)ts.tv_nsec + (uint64_t)timeout_ms * 1000000u;
    ts.tv_sec += (time_t)(ns / 1000000000u);
    ts.tv_nsec = (long)(ns % 1000000000u);
    pthread_mutex_lock(&svc->mu);
    for (;;) {
        bool running = false;
        for (struct lmr_svc_fn *fn = svc->fns; fn && !running; fn = fn->next)
            for (struct lmr_svc_env *env = fn->envs; env && !running; env = env->next)
                running = env->inv != NULL;
        if (!running || pthread_cond_timedwait(&svc->idle_cond, &svc->mu, &ts) == ETIMEDOUT) {
            pthread_mutex_unlock(&svc->mu);
            return !running;
        }
    }
}

const char *lmr_lambda_service_log_dir(const struct lmr_lambda_service *svc)
{
    return svc ? svc->log_dir : NULL;
}

/* ---- monitor ------------------------------------------------------------------------------ */

/*
 * The monitor enforces timeouts, the Init limit and the memory size. Deadlines are exact: it
 * sleeps until the nearest one (never longer than MONITOR_MAX_WAIT_MS, which also bounds how late
 * it drains output, retires environments and starts queued retries). Resident memory costs /proc
 * reads, so each running environment is sampled by how close it is to its memory size: every
 * MONITOR_TICK_MS from half of it up, every 2 ticks from a quarter, else every SAMPLE_MAX_MS (a
 * process that grows from nothing is caught within SAMPLE_MAX_MS + a tick or two; a child it forks,
 * within LMR_SVC_CHILDREN_EVERY_MS + SAMPLE_MAX_MS).
 */
#define MONITOR_MAX_WAIT_MS 25.0
#define SAMPLE_MAX_MS 25.0

/* One running environment the monitor samples (monitor-private; the probe's fd stays open). */
struct rss_watch {
    struct lmr_svc_fn *fn;
    struct lmr_svc_env *env;
    double spawn_ms; /* with env and the probe's pid: the same environment, not a new one at that address */
    struct lmr_svc_rss_probe probe;
    double next_ms; /* next sample due */
    uint32_t rss_mb;
    bool seen;    /* the environment is still there at this tick */
    bool running; /* ... and running (busy or in its Init), not idle */
    bool sample;  /* running and due at this tick */
};

#define MAX_SAMPLES 1024
#define IDLE_PROBES_OPEN 64 /* with more environments watched, an idle one's /proc files are closed */

static double sample_interval_ms(uint32_t rss_mb, uint32_t memory_mb)
{
    if ((uint64_t)rss_mb * 2 >= memory_mb)
        return MONITOR_TICK_MS;
    if ((uint64_t)rss_mb * 4 >= memory_mb)
        return 2 * MONITOR_TICK_MS;
    return SAMPLE_MAX_MS;
}

/* env's watch, searched from *hint on (the environments come in the same order every tick). */
static struct rss_watch *find_watch(struct rss_watch *w, size_t n, size_t *hint, const struct lmr_svc_env *env)
{
    for (size_t k = 0; k < n; k++) {
        size_t i = (*hint + k) % n;
        if (w[i].env == env && w[i].probe.pid == env->pid && w[i].spawn_ms == env->spawn_ms) {
            *hint = i + 1;
            return &w[i];
        }
    }
    return NULL;
}

static void *monitor_main(void *arg)
{
    struct lmr_lambda_service *svc = arg;
    struct rss_watch *watches = calloc(MAX_SAMPLES, sizeof *watches);
    size_t n_watches = 0;
    if (!watches)
        return NULL;
    pthread_mutex_lock(&svc->mu);
    while (!svc->stopping) {
        double now = lmr_svc_now_ms();
        double wake = now + MONITOR_MAX_WAIT_MS;
        size_t hint = 0;
        for (struct lmr_svc_fn *fn = svc->fns; fn; fn = fn->next) {
            lmr_svc_control_tick_locked(fn);
            for (struct lmr_svc_env *env = fn->envs; env; env = env->next) {
                if (env->state == ENV_DEAD)
                    continue;
                if (env->state == ENV_IDLE && env->ready) {
                    /* Not running; its output is read later. Its watch keeps its schedule: one that runs
                     * short invocations back to back is sampled when seen running after its interval. */
                    struct rss_watch *w = find_watch(watches, n_watches, &hint, env);
                    if (w) {
                        w->seen = true;
                        if (n_watches > IDLE_PROBES_OPEN)
                            lmr_svc_rss_probe_close(&w->probe);
                    }
                    continue;
                }
                lmr_svc_env_drain_locked(env);
                struct lmr_svc_inv *inv = env->inv;
                if (inv && inv->delivered && now > inv->deadline_ms) {
                    lmr_svc_env_kill_locked(env, "Sandbox.Timedout", "Task timed out after %.2f seconds",
                                            fn->timeout_s);
                    continue;
                }
                if (!env->ready && now - env->spawn_ms > INIT_LIMIT_MS) {
                    lmr_svc_env_kill_locked(env, "Runtime.InitTimeout",
                                            "Init phase timed out after %.2f seconds (no GET /next)",
                                            INIT_LIMIT_MS / 1000);
                    continue;
                }
                if (inv && inv->delivered && inv->deadline_ms < wake)
                    wake = inv->deadline_ms;
                if (!env->ready && env->spawn_ms + INIT_LIMIT_MS < wake)
                    wake = env->spawn_ms + INIT_LIMIT_MS;
                if (env->state != ENV_BUSY && env->ready)
                    continue;
                struct rss_watch *w = find_watch(watches, n_watches, &hint, env);
                if (!w && n_watches < MAX_SAMPLES) {
                    w = &watches[n_watches++];
                    /* First sample: by the peak it reached before (a warm environment keeps its memory). */
                    *w = (struct rss_watch){.fn = fn,
                                            .env = env,
                                            .spawn_ms = env->spawn_ms,
                                            .next_ms = now + sample_interval_ms(env->peak_rss_mb, fn->memory_mb)};
                    lmr_svc_rss_probe_init(&w->probe, env->pid);
                }
                if (w)
                    w->seen = w->running = true;
            }
            lmr_svc_fn_pump_locked(fn);
            if (fn->q_head && fn->q_head->not_before_ms > now && fn->q_head->not_before_ms < wake)
                wake = fn->q_head->not_before_ms; /* a queued retry's time */
        }
        /* Forget environments that stopped running (their statm fd closes), pick the ones due. */
        size_t n_due = 0;
        for (size_t i = 0; i < n_watches;) {
            struct rss_watch *w = &watches[i];
            if (!w->seen) {
                lmr_svc_rss_probe_close(&w->probe);
                *w = watches[--n_watches];
                continue;
            }
            w->seen = false;
            w->sample = w->running && w->next_ms <= now + 0.5; /* half a millisecond early, not a tick late */
            n_due += w->sample;
            i++;
        }
        /* Read /proc without the lock (the probes are the monitor's own), then apply. */
        if (n_due) {
            pthread_mutex_unlock(&svc->mu);
            double t = lmr_svc_now_ms();
            for (size_t i = 0; i < n_watches; i++)
                if (watches[i].sample)
                    watches[i].rss_mb = lmr_svc_rss_probe_read_mb(&watches[i].probe, t);
            pthread_mutex_lock(&svc->mu);
        }
        for (size_t i = 0; i < n_watches; i++) {
            struct rss_watch *sm = &watches[i];
            bool running = sm->running;
            sm->running = false;
            if (!sm->sample) {
                if (running && sm->next_ms < wake)
                    wake = sm->next_ms;
                continue;
            }
            sm->sample = false;
            struct lmr_svc_fn *f = svc->fns;
            while (f && f != sm->fn) /* DeleteFunction may have taken it out (and freed it) meanwhile */
                f = f->next;
            struct lmr_svc_env *env = f ? f->envs : NULL;
            while (env && env != sm->env)
                env = env->next;
            if (!env || env->pid != sm->probe.pid || env->spawn_ms != sm->spawn_ms || env->state == ENV_DEAD) {
                sm->next_ms = now + SAMPLE_MAX_MS; /* reaped or killed meanwhile: forgotten next tick */
                continue;
            }
            if (sm->rss_mb > env->peak_rss_mb)
                env->peak_rss_mb = sm->rss_mb;
            if (sm->rss_mb > f->memory_mb) {
                lmr_svc_env_kill_locked(env, "Runtime.OutOfMemory",
                                        "Runtime ran out of memory: resident memory reached %u MB, over the "
                                        "function's memory size of %u MB",
                                        sm->rss_mb, f->memory_mb);
                lmr_svc_fn_pump_locked(f);
                continue;
            }
            sm->next_ms = now + sample_interval_ms(sm->rss_mb, f->memory_mb);
            if (sm->next_ms < wake)
                wake = sm->next_ms;
        }
        if (svc->stopping)
            break;
        /* Sleep until the nearest deadline or sample (CLOCK_MONOTONIC, as lmr_svc_now_ms). */
        double left_ms = wake - lmr_svc_now_ms();
        if (left_ms < 0.2)
            left_ms = 0.2;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t ns = (uint64_t)ts.tv_nsec + (uint64_t)(left_ms * 1e6);
        ts.tv_sec += (time_t)(ns / 1000000000u);
        ts.tv_nsec = (long)(ns % 1000000000u);
        pthread_cond_timedwait(&svc->monitor_cond, &svc->mu, &ts);
    }
    pthread_mutex_unlock(&svc->mu);
    for (size_t i = 0; i < n_watches; i++)
        lmr_svc_rss_probe_close(&watches[i].probe);
    free(watches);
    return NULL;
}

static enum lmr_result ensure_monitor_locked(struct lmr_lambda_service *svc)
{
    if (svc->monitor_running)
        return LMR_OK;
    if (pthread_create(&svc->monitor, NULL, monitor_main, svc) != 0)
        return LMR_ERR_NOMEM;
    svc->monitor_running = true;
    return LMR_OK;
}

enum lmr_result lmr_lambda_service_start(struct lmr_lambda_service *svc, struct lmr_err *err)
{
    return lmr_svc_http_start(svc, err);
}

enum lmr_result lmr_lambda_service_prestart(struct lmr_lambda_service *svc, const char *name, uint32_t count,
                                            struct lmr_err *err)
{
    enum lmr_result r = LMR_OK;
    pthread_mutex_lock(&svc->mu);
    struct lmr_svc_fn *fn = svc->fns;
    while (fn && strcmp(fn->name, name))
        fn = fn->next;
    if (!fn || fn->deleted)
        r = lmr_fail(err, LMR_ERR_NOT_FOUND, "cannot start environments of function %s: no such function", name);
    else if (ensure_monitor_locked(svc) != LMR_OK)
        r = lmr_fail(err, LMR_ERR_NOMEM, "cannot start environments of function %s: no thread for the monitor", name);
    /* Each starts without the lock held (other invocations go on meanwhile); it counts against the
     * concurrency from its reservation, so the loop's test stays exact. */
    while (!r && !svc->stopping && !fn->deleted && fn->n_alive < count && fn->n_alive < fn->concurrency) {
        char why[512];
        if (lmr_svc_env_spawn_unlocked(fn, why, sizeof why) != LMR_OK)
            r = lmr_fail(err, LMR_ERR_IO, "cannot start an environment of function %s (%s): %s", name, fn->path, why);
    }
    pthread_mutex_unlock(&svc->mu);
    return r;
}

void lmr_lambda_service_destroy(struct lmr_lambda_service *svc)
{
    if (!svc)
        return;
    pthread_mutex_lock(&svc->mu);
    svc->stopping = true;
    for (struct lmr_svc_fn *fn = svc->fns; fn; fn = fn->next) {
        for (struct lmr_svc_env *env = fn->envs; env; env = env->next)
            if (env->state != ENV_DEAD)
                lmr_svc_env_kill_locked(env, "Runtime.ExitError", "the Lambda service is shutting down");
        /* Queued Event invocations are dropped. */
    }
    while (svc->n_envs > 0)
        pthread_cond_wait(&svc->envs_cond, &svc->mu);
    pthread_cond_broadcast(&svc->monitor_cond);
    bool monitor = svc->monitor_running;
    pthread_mutex_unlock(&svc->mu);
    if (monitor)
        pthread_join(svc->monitor, NULL);
    if (svc->http)
        MHD_stop_daemon(svc->http);
    lmr_svc_guard_destroy(svc->guard);
    while (svc->fns) {
        struct lmr_svc_fn *fn = svc->fns;
        svc->fns = fn->next;
        lmr_svc_fn_free(fn);
    }
    lmr_svc_control_destroy(svc);
    free(svc->log_dir);
    pthread_cond_destroy(&svc->envs_cond);
    pthread_cond_destroy(&svc->monitor_cond);
    pthread_cond_destroy(&svc->idle_cond);
    pthread_mutex_destroy(&svc->mu);
    free(svc);
}

/* ---- invocations -------------------------------------------------------------------------- */

static void log_start_locked(struct lmr_svc_fn *fn, struct lmr_svc_inv *inv)
{
    char line[128];
    inv->start_logged = true;
    int n = snprintf(line, sizeof line, "START RequestId: %s Version: $LATEST\n", inv->request_id);
    lmr_svc_log_write_locked(fn, inv, line, (size_t)n);
}

void lmr_svc_log_write_locked(struct lmr_svc_fn *fn, struct lmr_svc_inv *inv, const char *data, size_t len)
{
    if (inv && !inv->start_logged)
        log_start_locked(fn, inv);
    if (fn->log_fd >= 0) {
        size_t off = 0;
        while (off < len) {
            ssize_t n = write(fn->log_fd, data + off, len - off);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            off += (size_t)n;
        }
    }
    if (!inv)
        return;
    const size_t cap = sizeof inv->tail;
    if (len >= cap) {
        memcpy(inv->tail, data + len - cap, cap);
        inv->tail_len = cap;
        return;
    }
    if (inv->tail_len + len > cap) {
        size_t drop = inv->tail_len + len - cap;
        memmove(inv->tail, inv->tail + drop, inv->tail_len - drop);
        inv->tail_len -= drop;
    }
    memcpy(inv->tail + inv->tail_len, data, len);
    inv->tail_len += len;
}

static void log_printf_locked(struct lmr_svc_fn *fn, struct lmr_svc_inv *inv, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void log_printf_locked(struct lmr_svc_fn *fn, struct lmr_svc_inv *inv, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof line)
        n = sizeof line - 1;
    lmr_svc_log_write_locked(fn, inv, line, (size_t)n);
}

void lmr_svc_inv_fail(struct lmr_svc_inv *inv, const char *error_type, const char *message)
{
    inv->function_error = true;
    snprintf(inv->error_type, sizeof inv->error_type, "%s", error_type);
    lmr_buf_reset(&inv->response);
    json_t *j = json_pack("{s:s, s:s}", "errorType", error_type, "errorMessage", message);
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    if (s)
        lmr_buf_append_str(&inv->response, s);
    free(s);
    json_decref(j);
}

/*
 * An idle environment for an invocation of `client`: the one this client used last if it is
 * idle, else the one idle the longest (so that another client's warm environment is taken last).
 */
static struct lmr_svc_env *find_idle_locked(struct lmr_svc_fn *fn, uint64_t client)
{
    struct lmr_svc_env *best = NULL;
    for (struct lmr_svc_env *env = fn->envs; env; env = env->next) {
        if (env->state != ENV_IDLE || env->inv)
            continue;
        if (lmr_svc_control_env_stale_locked(fn, env)) { /* older code or over the concurrency: retire it */
            lmr_svc_env_kill_locked(env, "Runtime.ExitError", "the environment was retired");
            continue;
        }
        if (client && env->last_client == client)
            return env;
        if (!best || env->last_used_ms < best->last_used_ms)
            best = env;
    }
    return best;
}

static void assign_locked(struct lmr_svc_env *env, struct lmr_svc_inv *inv)
{
    env->inv = inv;
    env->last_client = inv->client;
    env->last_used_ms = lmr_svc_now_ms();
    env->state = ENV_BUSY;
    inv->env = env;
    inv->state = INV_RUNNING;
    inv->delivered = false;
    pthread_cond_signal(&env->cond);
}

/* Find or start an environment for inv. @return false when the concurrency is exhausted. */
static bool place_locked(struct lmr_svc_fn *fn, struct lmr_svc_inv *inv)
{
    struct lmr_svc_env *env = find_idle_locked(fn, inv->client);
    if (env) {
        assign_locked(env, inv);
        return true;
    }
    if (fn->n_alive >= fn->concurrency)
        return false;
    char why[512];
    if (ensure_monitor_locked(fn->svc) != LMR_OK || lmr_svc_env_spawn_locked(fn, &env, why, sizeof why) != LMR_OK) {
        char msg[768];
        snprintf(msg, sizeof msg, "RequestId: %s Error: cannot start the execution environment %s: %s", inv->request_id,
                 fn->path, why);
        log_printf_locked(fn, inv, "%s\n", msg);
        inv->env = NULL;
        lmr_svc_inv_fail(inv, "Runtime.InvalidEntrypoint", msg);
        lmr_svc_inv_finish_locked(fn->svc, inv);
        return true;
    }
    env->code_gen = fn->code_gen;
    assign_locked(env, inv);
    return true;
}

static void enqueue_locked(struct lmr_svc_fn *fn, struct lmr_svc_inv *inv)
{
    inv->state = INV_QUEUED;
    inv->next = NULL;
    if (fn->q_tail)
        fn->q_tail->next = inv;
    else
        fn->q_head = inv;
    fn->q_tail = inv;
    fn->q_len++;
}

void lmr_svc_fn_pump_locked(struct lmr_svc_fn *fn)
{
    double now = -1;
    while (fn->q_head && !fn->svc->stopping && !fn->deleted) {
        struct lmr_svc_inv *inv = fn->q_head;
        if (inv->not_before_ms > 0) {
            if (now < 0)
                now = lmr_svc_now_ms();
            if (inv->not_before_ms > now)
                break;
        }
        /* An environment still starting (lmr_svc_env_spawn_unlocked) takes it when it is published. */
        if (!find_idle_locked(fn, inv->client) && (fn->n_alive >= fn->concurrency || fn->n_starting))
            break;
        fn->q_head = inv->next;
        if (!fn->q_head)
            fn->q_tail = NULL;
        fn->q_len--;
        inv->next = NULL;
        place_locked(fn, inv);
    }
}

void lmr_svc_inv_finish_locked(struct lmr_lambda_service *svc, struct lmr_svc_inv *inv)
{
    struct lmr_svc_fn *fn = inv->fn;
    struct lmr_svc_env *env = inv->env;
    double now = lmr_svc_now_ms();
    if (env)
        lmr_svc_env_drain_locked(env); /* output written before the answer belongs to this invocation */
    inv->duration_ms = inv->delivered ? now - inv->start_ms : 0;
    inv->init_ms = 0;
    inv->max_memory_mb = 0;
    if (env) {
        if (env->ready && !env->init_reported) {
            inv->init_ms = env->init_ms;
            env->init_reported = true;
        } else if (!env->ready) {
            inv->init_ms = now - env->spawn_ms;
        }
        /* VmHWM costs a /proc read: skip it for back-to-back short invocations (the monitor samples
         * VmRSS of running environments every 5-25 ms, more often the nearer they are to their
         * memory size). */
        if (env->state != ENV_DEAD && (inv->duration_ms >= 5 || now - env->hwm_read_ms >= 50)) {
            env->hwm_read_ms = now;
            uint32_t hwm = lmr_svc_read_rss_mb(env->pid, true);
            if (hwm > env->peak_rss_mb)
                env->peak_rss_mb = hwm;
        }
        inv->max_memory_mb = env->peak_rss_mb;
        if (env->inv == inv)
            env->inv = NULL;
    }
    /* Billed as AWS bills ZIP-packaged functions since 2025-08-01 (and custom runtimes always):
     * Init + Duration, rounded up to the millisecond. */
    inv->billed_ms = ceil(inv->duration_ms + inv->init_ms);
    /* START (unless output already brought it), END and REPORT in one write. */
    char init[64] = "", status[192] = "", start[128] = "", lines[1024];
    if (!inv->start_logged)
        snprintf(start, sizeof start, "START RequestId: %s Version: $LATEST\n", inv->request_id);
    inv->start_logged = true;
    if (inv->init_ms > 0)
        snprintf(init, sizeof init, "\tInit Duration: %.2f ms", inv->init_ms);
    if (inv->function_error)
        snprintf(status, sizeof status, "\tStatus: %s\tError Type: %s",
                 strcmp(inv->error_type, "Sandbox.Timedout") ? "error" : "timeout", inv->error_type);
    int n = snprintf(lines, sizeof lines,
                     "%sEND RequestId: %s\nREPORT RequestId: %s\tDuration: %.2f ms\tBilled Duration: %.0f ms\tMemory "
                     "Size: %u MB\tMax Memory Used: %u MB%s%s\t\n",
                     start, inv->request_id, inv->request_id, inv->duration_ms, inv->billed_ms, fn->memory_mb,
                     inv->max_memory_mb, init, status);
    if (n > 0)
        lmr_svc_log_write_locked(fn, inv, lines, (size_t)n < sizeof lines ? (size_t)n : sizeof lines - 1);
    inv->env = NULL;
    pthread_cond_broadcast(&svc->idle_cond);
    bool final = inv->type == LMR_INVOKE_SYNC || !inv->function_error || inv->attempt >= 2 || svc->stopping;
    if (final) {
        svc->stats.invocations_completed++;
        svc->stats.function_errors += inv->function_error;
    }
    if (inv->type == LMR_INVOKE_SYNC) {
        inv->state = INV_DONE;
        if (inv->chain_in_env) /* rt_result runs next() (lmr_svc_chain_step_locked), then wakes the caller or not */
            return;
        inv->done = true;
        pthread_cond_signal(&inv->done_cond);
        return;
    }
    if (inv->function_error && inv->attempt < 2 && !svc->stopping && !fn->deleted) {
        /* Lambda retries a failed asynchronous invocation twice. */
        inv->attempt++;
        inv->function_error = false;
        inv->error_type[0] = '\0';
        inv->tail_len = 0;
        inv->start_logged = false;
        lmr_buf_reset(&inv->response);
        inv->not_before_ms = now + svc->event_retry_delay_ms;
        enqueue_locked(fn, inv);
        return;
    }
    lmr_buf_clean_up(&inv->response);
    free(inv->payload);
    free(inv);
}

/* Split "name", "name:qualifier", "arn:aws:lambda:region:acct:function:name[:qualifier]" or
 * "acct:function:name[:qualifier]" into name and qualifier (both point into buf). */
bool lmr_svc_split_function(char *buf, const char **name, const char **qualifier)
{
    char *parts[8];
    int n = 0;
    char *save = NULL;
    if (strstr(buf, "::"))
        return false;
    for (char *p = strtok_r(buf, ":", &save); p && n < 8; p = strtok_r(NULL, ":", &save))
        parts[n++] = p;
    if (strtok_r(NULL, ":", &save))
        return false;
    *qualifier = NULL;
    if (n == 1 || n == 2) {
        *name = parts[0];
        *qualifier = n == 2 ? parts[1] : NULL;
        return true;
    }
    if ((n == 3 || n == 4) && !strcmp(parts[1], "function")) {
        *name = parts[2];
        *qualifier = n == 4 ? parts[3] : NULL;
        return true;
    }
    if ((n == 7 || n == 8) && !strcmp(parts[0], "arn") && !strcmp(parts[2], "lambda") &&
        !strcmp(parts[5], "function")) {
        *name = parts[6];
        *qualifier = n == 8 ? parts[7] : NULL;
        return true;
    }
    return false;
}

/* A request id as Lambda's: random (a system call: drawn without the lock). */
static void new_request_id(char request_id[40])
{
    char id[33];
    lmr_random_hex(id, 16);
    snprintf(request_id, 40, "%.8s-%.4s-%.4s-%.4s-%.12s", id, id + 8, id + 12, id + 16, id + 20);
}

/* A finished sync invocation's outcome into o; o->payload takes (borrow: shares) inv->response. */
static void fill_outcome(struct lmr_svc_outcome *o, const struct lmr_svc_inv *inv)
{
    o->status = 200;
    memcpy(o->request_id, inv->request_id, sizeof o->request_id);
    o->function_error = inv->function_error;
    memcpy(o->error_type, inv->error_type, sizeof o->error_type);
    o->payload = inv->response;
    memcpy(o->tail, inv->tail, inv->tail_len);
    o->tail_len = inv->tail_len;
    o->duration_ms = inv->duration_ms;
    o->billed_ms = inv->billed_ms;
    o->init_ms = inv->init_ms;
    o->max_memory_mb = inv->max_memory_mb; /* memory_mb: the caller's, read under the lock */
    o->chain_seen = inv->chain_seen;
    o->resume_payload = inv->resume_payload;
    o->resume_len = inv->resume_len;
}

bool lmr_svc_chain_step_locked(struct lmr_svc_env *env, struct lmr_svc_inv *inv)
{
    struct lmr_lambda_service *svc = env->svc;
    struct lmr_svc_fn *fn = inv->fn;
    inv->chain_in_env = false;
    struct lmr_svc_outcome *o = malloc(sizeof *o); /* ~5 KB: not on an MHD thread's stack */
    const void *next_payload = NULL;
    size_t next_len = 0;
    bool more = false;
    char request_id[40];
    if (o) {
        o->error_code = NULL; /* fill_outcome sets the rest (the log tail only up to tail_len) */
        o->message[0] = '\0';
        o->memory_mb = fn->memory_mb;
        fill_outcome(o, inv);
        /* The environment stays busy with no invocation: nobody else is given it meanwhile. */
        pthread_mutex_unlock(&svc->mu);
        more = inv->chain->next(inv->chain->user, o, &next_payload, &next_len);
        free(o);
        if (more)
            new_request_id(request_id);
        pthread_mutex_lock(&svc->mu);
        inv->chain_seen = true; /* with o NULL (no memory) the caller gets the outcome unseen */
    }
    /* env->state first: an environment that died meanwhile may have left fn's list, and a deleted fn be freed. */
    if (more && env->state != ENV_DEAD && !svc->stopping && !fn->deleted &&
        !lmr_svc_control_env_stale_locked(fn, env) && next_len <= LMR_LAMBDA_SYNC_PAYLOAD_MAX_BYTES) {
        memcpy(inv->request_id, request_id, sizeof inv->request_id);
        inv->payload = (char *)next_payload;
        inv->payload_len = next_len;
        inv->start_logged = false;
        lmr_buf_reset(&inv->response);
        inv->function_error = false;
        inv->error_type[0] = '\0';
        inv->tail_len = 0;
        inv->duration_ms = inv->billed_ms = inv->init_ms = 0;
        inv->max_memory_mb = 0;
        inv->chain_seen = false;
        assign_locked(env, inv); /* its GET /next (pipelined) is answered at once */
        return true;
    }
    if (more) { /* the caller invokes it (a new environment, or the error that says why not) */
        inv->resume_payload = next_payload;
        inv->resume_len = next_len;
    }
    inv->done = true;
    pthread_cond_signal(&inv->done_cond);
    return false;
}

static void invoke_impl(struct lmr_lambda_service *svc, const char *function, const char *qualifier,
                        const void *payload, size_t len, enum lmr_invoke_type type, unsigned flags, uint64_t client,
                        const struct lmr_svc_chain *chain, struct lmr_svc_outcome *o)
{
    char buf[256];
    const char *name = NULL, *qual = NULL;
    if (!function || strlen(function) >= sizeof buf) {
        set_error(o, 400, "InvalidParameterValueException",
                  "The function name is missing or too long (at most 140 "
                  "characters for an ARN, 64 for a name).");
        return;
    }
    snprintf(buf, sizeof buf, "%s", function);
    if (!lmr_svc_split_function(buf, &name, &qual) || !lmr_svc_valid_name(name)) {
        set_error(o, 400, "InvalidParameterValueException",
                  "1 validation error detected: Value '%s' at 'functionName' failed to satisfy constraint: Member "
                  "must be a function name (letters, digits, '-', '_'), an ARN or a partial ARN.",
                  function);
        return;
    }
    if (qualifier && *qualifier) {
        if (qual && strcmp(qual, qualifier)) {
            set_error(o, 400, "InvalidParameterValueException",
                      "The derived qualifier from the function name does not match the specified qualifier.");
            return;
        }
        qual = qualifier;
    }
    if (qual && strcmp(qual, "$LATEST")) {
        set_error(o, 404, "ResourceNotFoundException",
                  "Function not found: arn:aws:lambda:%s:000000000000:function:%s:%s", svc->region, name, qual);
        return;
    }
    size_t limit = type == LMR_INVOKE_EVENT ? LMR_LAMBDA_EVENT_PAYLOAD_MAX_BYTES : LMR_LAMBDA_SYNC_PAYLOAD_MAX_BYTES;
    if (len > limit) {
        set_error(o, 413, "RequestTooLargeException",
                  "Request must be smaller than %zu bytes for the InvokeFunction "
                  "operation",
                  limit);
        return;
    }
    /* The request id's random bytes (a system call) are drawn before taking the lock. */
    char request_id[40];
    new_request_id(request_id);
    pthread_mutex_lock(&svc->mu);
    struct lmr_svc_fn *fn = svc->fns;
    while (fn && strcmp(fn->name, name))
        fn = fn->next;
    /* An environment still starting without the lock (a prestart) is this invocation's, as it would
     * have been had the start held the lock: wait for it rather than start another or throttle. */
    while (fn && type == LMR_INVOKE_SYNC && fn->n_starting && !svc->stopping && !fn->deleted &&
           !find_idle_locked(fn, client))
        pthread_cond_wait(&svc->envs_cond, &svc->mu);
    if (!fn || fn->deleted) {
        pthread_mutex_unlock(&svc->mu);
        set_error(o, 404, "ResourceNotFoundException", "Function not found: arn:aws:lambda:%s:000000000000:function:%s",
                  svc->region, name);
        return;
    }
    lmr_svc_control_tick_locked(fn);
    const char *state = lmr_svc_control_not_invocable_locked(fn);
    if (state) {
        pthread_mutex_unlock(&svc->mu);
        set_error(o, 409, "ResourceConflictException",
                  "The operation cannot be performed at this time. The function is currently in the following state: "
                  "%s",
                  state);
        return;
    }
    o->memory_mb = fn->memory_mb;
    if (svc->stopping) {
        pthread_mutex_unlock(&svc->mu);
        set_error(o, 500, "ServiceException", "The Lambda service is shutting down; invoke %s again later.", name);
        return;
    }
    snprintf(o->request_id, sizeof o->request_id, "%s", request_id);
    if (type == LMR_INVOKE_DRY_RUN) {
        pthread_mutex_unlock(&svc->mu);
        o->status = 204;
        return;
    }
    if (type == LMR_INVOKE_EVENT && fn->q_len >= LMR_LAMBDA_EVENT_QUEUE_MAX) {
        svc->stats.throttles++;
        pthread_mutex_unlock(&svc->mu);
        set_error(o, 429, "TooManyRequestsException",
                  "Rate Exceeded. Function %s already has %u queued asynchronous invocations.", name,
                  LMR_LAMBDA_EVENT_QUEUE_MAX);
        return;
    }
    if (type == LMR_INVOKE_EVENT) {
        struct lmr_svc_inv *inv = calloc(1, sizeof *inv);
        char *copy = malloc(len + 1);
        if (!inv || !copy) {
            pthread_mutex_unlock(&svc->mu);
            free(inv);
            free(copy);
            set_error(o, 500, "ServiceException", "The Lambda service ran out of memory queueing an event for %s.",
                      name);
            return;
        }
        if (len)
            memcpy(copy, payload, len);
        copy[len] = '\0';
        memcpy(inv->request_id, o->request_id, sizeof inv->request_id);
        inv->fn = fn;
        inv->type = type;
        inv->client = client;
        inv->payload = copy;
        inv->payload_len = len;
        lmr_buf_init(&inv->response, LMR_LAMBDA_SYNC_PAYLOAD_MAX_BYTES + 1024);
        enqueue_locked(fn, inv);
        lmr_svc_fn_pump_locked(fn);
        if (fn->q_head)
            ensure_monitor_locked(svc); /* picks the queue up when environments free up */
        pthread_mutex_unlock(&svc->mu);
        o->status = 202;
        return;
    }
    struct lmr_svc_inv inv;
    memset(&inv, 0, sizeof inv);
    memcpy(inv.request_id, o->request_id, sizeof inv.request_id);
    inv.fn = fn;
    inv.type = LMR_INVOKE_SYNC;
    inv.flags = flags;
    inv.client = client;
    inv.payload = (char *)payload;
    inv.payload_len = len;
    inv.chain = chain;
    lmr_buf_init(&inv.response, LMR_LAMBDA_SYNC_PAYLOAD_MAX_BYTES + 1024);
    pthread_cond_init(&inv.done_cond, NULL);
    if (!place_locked(fn, &inv)) {
        unsigned n = fn->n_alive;
        svc->stats.throttles++;
        pthread_mutex_unlock(&svc->mu);
        pthread_cond_destroy(&inv.done_cond);
        set_error(o, 429, "TooManyRequestsException",
                  "Rate Exceeded. Function %s already runs %u concurrent invocations, its concurrency limit.", name, n);
        return;
    }
    while (!inv.done)
        pthread_cond_wait(&inv.done_cond, &svc->mu);
    pthread_mutex_unlock(&svc->mu);
    pthread_cond_destroy(&inv.done_cond);
    lmr_buf_clean_up(&o->payload);
    fill_outcome(o, &inv); /* o owns the response now */
}

void lmr_svc_invoke(struct lmr_lambda_service *svc, const char *function, const char *qualifier, const void *payload,
                    size_t len, enum lmr_invoke_type type, unsigned flags, uint64_t client, struct lmr_svc_outcome *o)
{
    invoke_impl(svc, function, qualifier, payload, len, type, flags, client, NULL, o);
}

void lmr_svc_invoke_chain(struct lmr_lambda_service *svc, const char *function, const void *payload, size_t len,
                          unsigned flags, uint64_t client, const struct lmr_svc_chain *chain, struct lmr_svc_outcome *o)
{
    invoke_impl(svc, function, NULL, payload, len, LMR_INVOKE_SYNC, flags, client, chain, o);
}
