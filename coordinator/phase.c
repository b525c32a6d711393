#include "phase.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/fault.h"
#include "util/log.h"
#include "util/misc.h"

#define RESPONSE_MAX_BYTES (6u << 20)

struct phase_run {
    const struct lmr_coordinator_options *opts;
    const struct lmr_phase *phase;
    pthread_mutex_t lock;
    pthread_cond_t changed; /* a task ended: the queue may have grown, or the phase may be over */
    size_t *queue;          /* task ids waiting to be invoked */
    size_t qhead, qtail, qcap;
    uint32_t *attempts;
    bool *done;
    size_t ndone, running;
    bool failed;
    struct lmr_err err; /* the first fatal error */
    struct lmr_phase_result *res;
};

static void report_progress(struct phase_run *pr)
{
    if (!pr->opts->progress)
        return;
    struct lmr_progress p = {.phase = pr->phase->name,
                             .done = (uint32_t)pr->ndone,
                             .total = (uint32_t)pr->phase->ntasks,
                             .running = (uint32_t)pr->running,
                             .failed_attempts = pr->res->failed_attempts};
    pr->opts->progress(pr->opts->progress_user_data, &p);
}

/* One invocation as the report keeps it: when and where it ran (wall clock, concurrency slot), the
 * REPORT figures, and the task's own store figures when it answered. */
static json_t *invocation_json(const struct lmr_phase *ph, size_t task, uint32_t attempt, uint32_t slot,
                               double start_ms, double end_ms, const struct lmr_invoke_result *ir,
                               const json_t *payload, const char *error)
{
    json_t *o =
        json_pack("{s:s, s:I, s:I, s:I, s:f, s:f, s:s, s:f, s:f, s:f, s:b, s:I, s:I, s:I}", "phase", ph->name, "task",
                  (json_int_t)task, "attempt", (json_int_t)attempt, "slot", (json_int_t)slot, "start_ms", start_ms,
                  "end_ms", end_ms, "request_id", ir->request_id, "duration_ms", ir->duration_ms, "billed_duration_ms",
                  ir->billed_duration_ms, "init_duration_ms", ir->init_duration_ms, "cold", ir->init_duration_ms > 0,
                  "memory_size_mb", (json_int_t)ir->memory_size_mb, "max_memory_used_mb",
                  (json_int_t)ir->max_memory_used_mb, "throttle_retries", (json_int_t)ir->throttle_retries);
    json_t *store = json_object_get(payload, "store");
    if (o && store)
        json_object_set(o, "store", store);
    if (o && error)
        json_object_set_new(o, "error", json_string(error));
    return o;
}

/* What to do about a failed attempt, appended to its error: the flag to change and to what. */
static void add_hint(char *why, size_t cap, const char *error_type, enum lmr_result r,
                     const struct lmr_invoke_result *ir, struct phase_run *pr)
{
    const struct lmr_coordinator_options *opts = pr->opts;
    size_t n = strlen(why);
    if (n >= cap)
        return;
    if (error_type && !strcmp(error_type, "Runtime.OutOfMemory")) {
        uint32_t mb = ir->memory_size_mb ? ir->memory_size_mb : 0, next = mb ? mb * 2 : 2048;
        if (next > 10240)
            next = 10240;
        if (mb >= 10240)
            snprintf(why + n, cap - n,
                     " (the function used all of its %u MB, Lambda's maximum: give the job more "
                     "tasks with a smaller --split-size or more --reducers)",
                     mb);
        else
            snprintf(why + n, cap - n, " (the function ran out of its %u MB: raise --memory, e.g. --memory %u)", mb,
                     next);
    } else if (error_type && !strcmp(error_type, "Sandbox.Timedout")) {
        pthread_mutex_lock(&pr->lock);
        size_t done = pr->ndone, total = pr->phase->ntasks;
        pthread_mutex_unlock(&pr->lock);
        snprintf(why + n, cap - n,
                 " (%zu of %zu %s tasks had finished; raise --timeout, at most 900 seconds, or give each task less "
                 "input with a smaller --split-size or more --reducers)",
                 done, total, pr->phase->name);
    } else if (r == LMR_ERR_THROTTLED) {
        /* How to get more concurrency: fewer at once from this job, the function's reserved concurrency,
           or the account's quota ("Concurrent executions", quota code L-B99A9384). */
        snprintf(why + n, cap - n,
                 " (Lambda throttled %s: lower --concurrency (now %u); raise or remove its reserved concurrency: aws "
                 "lambda put-function-concurrency / delete-function-concurrency --function-name %s; or ask for a "
                 "higher 'Concurrent executions' quota: aws service-quotas request-service-quota-increase "
                 "--service-code lambda --quota-code L-B99A9384 --desired-value N)",
                 pr->phase->function, opts->concurrency, pr->phase->function);
    }
}

/* Does task i's commit record exist? */
static bool committed(struct phase_run *pr, size_t i)
{
    char *key = pr->phase->commit_key(pr->phase->user_data, i);
    if (!key)
        return false;
    uint64_t size;
    bool ok = lmr_store_head(pr->opts->work_store, key, &size, NULL) == LMR_OK;
    free(key);
    return ok;
}

struct worker_arg {
    struct phase_run *pr;
    uint32_t slot; /* this worker's concurrency slot: the timeline's row */
};

static void *worker(void *arg)
{
    struct phase_run *pr = ((struct worker_arg *)arg)->pr;
    uint32_t slot = ((struct worker_arg *)arg)->slot;
    const struct lmr_phase *ph = pr->phase;
    for (;;) {
        pthread_mutex_lock(&pr->lock);
        if (pr->opts->stop && atomic_load(pr->opts->stop) && !pr->failed) {
            lmr_fail(&pr->err, LMR_ERR_CANCELLED, "the %s phase was stopped (the job was cancelled or lost its lease)",
                     ph->name);
            pr->failed = true;
        }
        /* Wait while nothing is queued but a running task may still fail and come back. */
        while (!pr->failed && pr->qhead == pr->qtail && pr->running > 0)
            pthread_cond_wait(&pr->changed, &pr->lock);
        if (pr->failed || pr->qhead == pr->qtail) {
            pthread_cond_broadcast(&pr->changed);
            pthread_mutex_unlock(&pr->lock);
            return NULL;
        }
        size_t i = pr->queue[pr->qhead++ % pr->qcap];
        uint32_t attempt = ++pr->attempts[i];
        pr->running++;
        pr->res->attempts++;
        report_progress(pr);
        pthread_mutex_unlock(&pr->lock);

        double start_ms = (double)lmr_wall_ms();
        char *event = ph->build_event(ph->user_data, i, attempt);
        struct lmr_invoke_result ir;
        lmr_invoke_result_init(&ir, RESPONSE_MAX_BYTES);
        struct lmr_err ierr = {0};
        enum lmr_result r = event ? lmr_invoke(pr->opts->invoker, ph->function, event, strlen(event), LMR_INVOKE_SYNC,
                                               LMR_INVOKE_LOG_TAIL, &ir, &ierr)
                                  : lmr_fail(&ierr, LMR_ERR_NOMEM, "out of memory building the event");
        free(event);
        double end_ms = (double)lmr_wall_ms();
        char why[LMR_ERR_MSG_BYTES + 512] = "";
        json_t *payload = NULL;
        if (r) {
            snprintf(why, sizeof why, "%s", ierr.msg[0] ? ierr.msg : lmr_result_str(r));
            add_hint(why, sizeof why, NULL, r, &ir, pr);
        } else if (ir.function_error[0]) {
            json_t *ej = json_loadb(ir.payload.data ? ir.payload.data : "", ir.payload.len, 0, NULL);
            const char *type = lmr_json_str(ej, "errorType", ir.function_error);
            snprintf(why, sizeof why, "%s: %s", type,
                     lmr_json_str(ej, "errorMessage", ir.payload.data ? ir.payload.data : ""));
            add_hint(why, sizeof why, type, r, &ir, pr);
            json_decref(ej);
        } else {
            payload = json_loadb(ir.payload.data ? ir.payload.data : "", ir.payload.len, 0, NULL);
        }
        bool ok = committed(pr, i);
        if (ok && !why[0] && !payload)
            snprintf(why, sizeof why, "the response was not JSON");

        pthread_mutex_lock(&pr->lock);
        pr->running--;
        json_array_append_new(pr->res->invocations, invocation_json(ph, i, attempt, slot, start_ms, end_ms, &ir,
                                                                    payload, why[0] ? why : NULL));
        if (ok) {
            if (!pr->done[i]) {
                pr->done[i] = true;
                pr->ndone++;
            }
            if (payload && json_is_null(json_array_get(pr->res->responses, i)))
                json_array_set(pr->res->responses, i, payload);
            /* Tests: deliver this task once more, as Lambda's at-least-once delivery may. */
            char point[32];
            snprintf(point, sizeof point, "%s-duplicate", ph->name);
            if (lmr_fault(point, (unsigned)i, attempt))
                pr->queue[pr->qtail++ % pr->qcap] = i;
        } else {
            pr->res->failed_attempts++;
            LMR_INFO("%s task %zu attempt %u did not commit: %s", ph->name, i, attempt, why);
            /* Errors of the request itself (no such function, access denied) do not heal on retry. */
            bool permanent = r == LMR_ERR_NOT_FOUND || r == LMR_ERR_AUTH || r == LMR_ERR_INVALID;
            if (attempt >= pr->opts->max_attempts || permanent) {
                if (!pr->failed)
                    lmr_fail(&pr->err, r ? r : LMR_ERR_FUNCTION,
                             "%s task %zu failed after %u attempt%s; last error: %s", ph->name, i, attempt,
                             attempt == 1 ? "" : "s", why[0] ? why : "the task returned without committing its output");
                pr->failed = true;
            } else {
                pr->queue[pr->qtail++ % pr->qcap] = i;
            }
        }
        report_progress(pr);
        pthread_cond_broadcast(&pr->changed);
        pthread_mutex_unlock(&pr->lock);
        json_decref(payload);
        lmr_invoke_result_clean_up(&ir);
        if (!ok && !pr->failed) /* back off a little before the retry another worker will pick up */
            lmr_sleep_ms(lmr_backoff_ms(attempt, 50, 2000));
    }
}

enum lmr_result lmr_phase_run(const struct lmr_coordinator_options *opts, const struct lmr_phase *phase,
                              struct lmr_phase_result *res, struct lmr_err *err)
{
    double t0 = lmr_mono_ms();
    memset(res, 0, sizeof *res);
    res->start_ms = (double)lmr_wall_ms();
    res->responses = json_array();
    res->invocations = json_array();
    struct phase_run pr = {.opts = opts, .phase = phase, .res = res};
    size_t n = phase->ntasks;
    pr.qcap = n + 1;
    pr.queue = calloc(pr.qcap, sizeof *pr.queue);
    pr.attempts = calloc(n + 1, sizeof *pr.attempts);
    pr.done = calloc(n + 1, sizeof *pr.done);
    if (!pr.queue || !pr.attempts || !pr.done || !res->responses || !res->invocations) {
        free(pr.queue);
        free(pr.attempts);
        free(pr.done);
        return LMR_ERR_NOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(res->responses, json_null());
        if (phase->check_committed_first && committed(&pr, i)) {
            pr.done[i] = true;
            pr.ndone++;
            res->reused++;
            continue;
        }
        pr.queue[pr.qtail++] = i;
    }
    pthread_mutex_init(&pr.lock, NULL);
    pthread_cond_init(&pr.changed, NULL);
    uint32_t nthreads = opts->concurrency ? opts->concurrency : 8;
    if (nthreads > pr.qtail)
        nthreads = (uint32_t)pr.qtail;
    pthread_t *threads = calloc(nthreads ? nthreads : 1, sizeof *threads);
    struct worker_arg *args = calloc(nthreads ? nthreads : 1, sizeof *args);
    uint32_t started = 0;
    for (; threads && args && started < nthreads; started++) {
        args[started] = (struct worker_arg){.pr = &pr, .slot = started};
        if (pthread_create(&threads[started], NULL, worker, &args[started]))
            break;
    }
    if (started == 0 && pr.qtail > 0) {
        struct worker_arg inline_arg = {.pr = &pr, .slot = 0};
        worker(&inline_arg); /* no threads: run inline */
    }
    for (uint32_t t = 0; t < started; t++)
        pthread_join(threads[t], NULL);
    free(threads);
    free(args);
    pthread_mutex_destroy(&pr.lock);
    pthread_cond_destroy(&pr.changed);
    enum lmr_result r = LMR_OK;
    if (pr.failed) {
        r = pr.err.code ? pr.err.code : LMR_ERR_FUNCTION;
        if (err)
            *err = pr.err;
    } else if (pr.ndone != n) {
        r = lmr_fail(err, LMR_ERR_INTERNAL, "%s phase ended with %zu of %zu tasks committed", phase->name, pr.ndone, n);
    }
    free(pr.queue);
    free(pr.attempts);
    free(pr.done);
    res->wall_ms = lmr_mono_ms() - t0;
    res->end_ms = (double)lmr_wall_ms();
    return r;
}

void lmr_phase_result_clean_up(struct lmr_phase_result *res)
{
    json_decref(res->responses);
    json_decref(res->invocations);
    res->responses = res->invocations = NULL;
}
