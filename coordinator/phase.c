#include "phase.h"

#include <math.h>
#include <pthread.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "speculation.h"
#include "util/fault.h"
#include "util/log.h"
#include "util/misc.h"

#define RESPONSE_MAX_BYTES (6u << 20)
/* While a backup may become due, an idle slot looks for stragglers this often. */
#define SPECULATION_POLL_MS 50

enum slot_state { SLOT_IDLE, SLOT_INVOKING, SLOT_FINISHING, SLOT_DISCARDING, SLOT_GONE };
enum split_state { SPLIT_NONE = 0, SPLIT_ASKED, SPLIT_OVER };

/* One concurrency slot: its thread and the attempt it runs. */
struct slot {
    struct phase_run *pr;
    uint32_t index; /* the timeline's row */
    pthread_t thread;
    bool started;
    enum slot_state state;
    size_t task;
    uint32_t attempt;
    bool backup;       /* this attempt is a speculative backup */
    bool live;         /* its task was not committed by another attempt (yet) */
    bool won;          /* not live, but its commit is the task's (it returned after another attempt) */
    double start_ms;   /* wall clock, for the report */
    double start_mono; /* monotonic, for the straggler rule */
};

/* The phase's state, on the heap: threads of attempts still in flight when the phase ends keep it. */
struct phase_run {
    const struct lmr_coordinator_options *opts;
    const struct lmr_phase *phase;
    struct lmr_speculation spec; /* enabled = false without opts->speculation */
    pthread_mutex_t lock;
    pthread_cond_t changed; /* a task ended: the queue may have grown, or the phase may be over */
    size_t *queue;          /* task ids waiting to be invoked */
    size_t qhead, qtail, qcap;
    uint32_t *attempts;
    bool *done;
    uint8_t *running_of;  /* attempts of each task in flight */
    bool *backup_started; /* a backup of the task was started (one per task) */
    size_t ntasks;        /* tasks so far: the phase's plus the tails added (rebalancing) */
    size_t max_tasks;     /* room in the per-task arrays */
    uint8_t *split;       /* per task: SPLIT_NONE, SPLIT_ASKED (request written), SPLIT_OVER */
    bool *split_polling;  /* an idle slot is polling the task's decision now */
    double *split_polled; /* monotonic ms of the last poll */
    size_t split_requests;
    uint32_t split_calls; /* split hooks running now (the phase is not over while one may add a tail) */
    double *finished_ms;  /* durations of the committing attempts, for the median */
    size_t nfinished;
    double median_ms; /* of finished_ms, recomputed when nfinished changes */
    size_t median_n;
    size_t ndone, running, live;
    uint32_t memory_mb; /* the functions' memory as the last answer reported it (for unfinished attempts) */
    bool failed;
    bool over;          /* the phase returned: threads still in flight touch nothing but this struct */
    struct lmr_err err; /* the first fatal error */
    struct lmr_phase_result *res;
    struct slot *slots;
    uint32_t nslots;
};

static void report_progress(struct phase_run *pr)
{
    if (!pr->opts->progress)
        return;
    struct lmr_progress p = {.phase = pr->phase->name,
                             .done = (uint32_t)pr->ndone,
                             .total = (uint32_t)pr->ntasks,
                             .running = (uint32_t)pr->running,
                             .failed_attempts = pr->res->failed_attempts,
                             .invocations = pr->res->invocations};
    pr->opts->progress(pr->opts->progress_user_data, &p);
}

/* One invocation as the report keeps it: when and where it ran (wall clock, concurrency slot), the
 * REPORT figures, and the task's own store figures when it answered. */
static json_t *invocation_json(const struct lmr_phase *ph, size_t task, uint32_t attempt, uint32_t slot,
                               double start_ms, double end_ms, const struct lmr_invoke_result *ir,
                               const json_t *payload, const char *error, bool backup, bool superseded)
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
    if (o)
        json_object_set_new(o, "backup", json_boolean(backup));
    if (o && superseded) /* another attempt committed the task first */
        json_object_set_new(o, "superseded", json_true());
    if (o && task >= (ph->planned_tasks ? ph->planned_tasks : ph->ntasks)) /* a tail task (rebalancing) */
        json_object_set_new(o, "tail", json_true());
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
        size_t done = pr->ndone, total = pr->ntasks;
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

/* ---- speculation ------------------------------------------------------------------------------------------ */

/* A straggler to back up now, or NULL. Called with the lock held and the queue empty. */
static struct slot *find_straggler(struct phase_run *pr)
{
    if (!pr->spec.enabled || pr->nfinished == 0 || pr->failed)
        return NULL;
    if (pr->median_n != pr->nfinished) {
        double *copy = malloc(pr->nfinished * sizeof *copy);
        if (!copy)
            return NULL;
        memcpy(copy, pr->finished_ms, pr->nfinished * sizeof *copy);
        pr->median_ms = lmr_speculation_median_ms(copy, pr->nfinished);
        pr->median_n = pr->nfinished;
        free(copy);
    }
    double now = lmr_mono_ms();
    struct slot *best = NULL;
    for (uint32_t k = 0; k < pr->nslots; k++) {
        struct slot *s = &pr->slots[k];
        if (s->state != SLOT_INVOKING || !s->live || pr->done[s->task] || pr->backup_started[s->task] ||
            pr->running_of[s->task] != 1 || pr->split[s->task] == SPLIT_ASKED)
            continue; /* (a task asked to split is not backed up until it decided: two attempts could cut it apart) */
        if (!lmr_speculation_due_median(&pr->spec, pr->median_ms, pr->ndone, pr->ntasks, now - s->start_mono))
            continue;
        if (!best || s->start_mono < best->start_mono)
            best = s;
    }
    return best;
}

/* May a backup become due later (so an idle slot should look again)? */
static bool speculation_possible(const struct phase_run *pr)
{
    return pr->spec.enabled && pr->ndone > 0 && pr->ndone < pr->ntasks && pr->live > 0;
}

/* ---- rebalancing ------------------------------------------------------------------------------------------- */

static bool rebalancing(const struct phase_run *pr)
{
    return pr->phase->split_request && pr->phase->split_poll && pr->max_tasks > pr->phase->ntasks;
}

/* Add tail task t (from the caller's hooks) and queue it. Called with the lock held. */
static void add_tail(struct phase_run *pr, size_t t)
{
    if (t >= pr->max_tasks) {
        if (!pr->failed)
            lmr_fail(&pr->err, LMR_ERR_INTERNAL, "%s phase: tail task %zu is past the room for %zu tasks",
                     pr->phase->name, t, pr->max_tasks);
        pr->failed = true;
        return;
    }
    while (json_array_size(pr->res->responses) <= t)
        json_array_append_new(pr->res->responses, json_null());
    pr->ntasks++;
    pr->res->splits++;
    pr->split[t] = SPLIT_NONE;
    pr->queue[pr->qtail++ % pr->qcap] = t;
    LMR_INFO("%s phase: tail task %zu queued", pr->phase->name, t);
}

/* A request whose decision is due to be looked at, or SIZE_MAX. Called with the lock held. */
/* (Requests are only made of running tasks: the slots are searched, not every task.) */
static size_t split_to_poll(struct phase_run *pr, double now)
{
    for (uint32_t k = 0; k < pr->nslots; k++) {
        size_t i = pr->slots[k].task;
        if (pr->slots[k].state == SLOT_INVOKING && pr->split[i] == SPLIT_ASKED && !pr->split_polling[i] &&
            !pr->done[i] && now - pr->split_polled[i] >= (pr->phase->split_poll_ms ? pr->phase->split_poll_ms : 5))
            return i;
    }
    return SIZE_MAX;
}

/* Requests of running tasks still undecided. */
static uint32_t splits_asked(const struct phase_run *pr)
{
    uint32_t n = 0;
    for (uint32_t k = 0; k < pr->nslots; k++) {
        size_t i = pr->slots[k].task;
        n += pr->slots[k].state == SLOT_INVOKING && pr->split[i] == SPLIT_ASKED && !pr->done[i];
    }
    return n;
}

/* A running task to ask for a split: one attempt in flight, not backed up, not asked before; the one running
 * longest. Only while requests outstanding are fewer than idle slots, and room is left. Lock held. */
static size_t split_candidate(struct phase_run *pr)
{
    if (pr->split_requests >= pr->max_tasks - pr->phase->ntasks || pr->failed)
        return SIZE_MAX;
    uint32_t idle = 0, asked = splits_asked(pr);
    for (uint32_t k = 0; k < pr->nslots; k++)
        idle += pr->slots[k].state == SLOT_IDLE;
    if (asked >= idle)
        return SIZE_MAX;
    struct slot *best = NULL;
    for (uint32_t k = 0; k < pr->nslots; k++) {
        struct slot *s = &pr->slots[k];
        if (s->state != SLOT_INVOKING || !s->live || pr->done[s->task] || pr->backup_started[s->task] ||
            pr->running_of[s->task] != 1 || pr->split[s->task] != SPLIT_NONE)
            continue;
        if (!best || s->start_mono < best->start_mono)
            best = s;
    }
    return best ? best->task : SIZE_MAX;
}

/*
 * One step of rebalancing for an idle slot (lock held; released around the hooks): poll a
 * request's decision, or ask a running task to split. @return true when it did something (the
 * caller looks at the queue again), false when there is nothing to do now.
 */
static bool rebalance_step(struct phase_run *pr)
{
    const struct lmr_phase *ph = pr->phase;
    size_t i = split_to_poll(pr, lmr_mono_ms());
    if (i != SIZE_MAX) {
        pr->split_polling[i] = true;
        pr->split_calls++;
        pthread_mutex_unlock(&pr->lock);
        size_t tail = SIZE_MAX;
        int st = ph->split_poll(ph->user_data, i, &tail);
        pthread_mutex_lock(&pr->lock);
        pr->split_calls--;
        pr->split_polling[i] = false;
        pr->split_polled[i] = lmr_mono_ms();
        if (st == LMR_PHASE_SPLIT_TAIL && tail != SIZE_MAX)
            add_tail(pr, tail);
        if (st != LMR_PHASE_SPLIT_PENDING)
            pr->split[i] = SPLIT_OVER;
        return true;
    }
    i = split_candidate(pr);
    if (i == SIZE_MAX)
        return false;
    pr->split[i] = SPLIT_ASKED;
    pr->split_polled[i] = lmr_mono_ms();
    pr->split_calls++;
    pthread_mutex_unlock(&pr->lock);
    struct lmr_err e = {0};
    enum lmr_result r = ph->split_request(ph->user_data, i, &e);
    pthread_mutex_lock(&pr->lock);
    pr->split_calls--;
    if (r == LMR_ERR_INVALID) { /* the caller says the task is too small to split: not asked */
        pr->split[i] = SPLIT_OVER;
    } else if (r) {
        LMR_WARN("%s phase: could not ask task %zu to split: %s", ph->name, i, e.msg);
        pr->split[i] = SPLIT_OVER;
    } else {
        pr->split_requests++;
        pr->res->split_requests++;
        LMR_INFO("%s phase: a slot is idle and nothing is queued: asked task %zu to split", ph->name, i);
    }
    return true;
}

static void wait_changed(struct phase_run *pr, uint64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t ns = (uint64_t)ts.tv_nsec + ms * 1000000ull;
    ts.tv_sec += (time_t)(ns / 1000000000ull);
    ts.tv_nsec = (long)(ns % 1000000000ull);
    pthread_cond_timedwait(&pr->changed, &pr->lock, &ts);
}

/* ---- the slots --------------------------------------------------------------------------------------------- */

/* Did the winning attempt say it committed? A response without the field counts as the winner. */
static bool says_committed(const json_t *payload)
{
    json_t *c = json_object_get(payload, "committed");
    return !c || json_is_true(c);
}

/* Task i became committed: record the winner; the other attempts in flight are superseded. */
static void task_committed(struct phase_run *pr, struct slot *self, const json_t *payload, double duration_ms)
{
    size_t i = self->task;
    pr->done[i] = true;
    pr->ndone++;
    struct slot *winner = self;
    for (uint32_t k = 0; k < pr->nslots; k++) {
        struct slot *o = &pr->slots[k];
        if (o == self || o->task != i || !o->live || (o->state != SLOT_INVOKING && o->state != SLOT_FINISHING))
            continue;
        o->live = false;
        pr->live--;
        if (!says_committed(payload)) { /* this attempt returned first but lost the commit to o */
            winner = o;
            o->won = true;
            duration_ms = lmr_mono_ms() - o->start_mono;
        }
    }
    if (winner->backup)
        pr->res->backups_won++;
    pr->finished_ms[pr->nfinished++] = duration_ms;
}

static void *worker(void *arg)
{
    struct slot *me = arg;
    struct phase_run *pr = me->pr;
    const struct lmr_phase *ph = pr->phase;
    for (;;) {
        pthread_mutex_lock(&pr->lock);
        me->state = SLOT_IDLE;
        struct slot *straggler = NULL;
        for (;;) {
            if (pr->opts->stop && atomic_load(pr->opts->stop) && !pr->failed) {
                lmr_fail(&pr->err, LMR_ERR_CANCELLED,
                         "the %s phase was stopped (the job was cancelled or lost its lease)", ph->name);
                pr->failed = true;
            }
            if (pr->failed || (pr->ndone == pr->ntasks && pr->qhead == pr->qtail))
                break;
            if (pr->qhead != pr->qtail || (straggler = find_straggler(pr)))
                break;
            if (pr->running == 0)
                break;
            /* Nothing queued: rebalancing may split a running task for this slot. */
            if (rebalancing(pr) && rebalance_step(pr))
                continue;
            /* Nothing queued, but a running task may still fail and come back, or become a straggler. */
            if (rebalancing(pr) && splits_asked(pr))
                wait_changed(pr, ph->split_poll_ms ? ph->split_poll_ms : 5);
            else if (speculation_possible(pr))
                wait_changed(pr, SPECULATION_POLL_MS);
            else
                pthread_cond_wait(&pr->changed, &pr->lock);
        }
        if (!straggler && (pr->failed || pr->qhead == pr->qtail)) {
            me->state = SLOT_GONE;
            pthread_cond_broadcast(&pr->changed);
            pthread_mutex_unlock(&pr->lock);
            return NULL;
        }
        size_t i;
        if (straggler) {
            i = straggler->task;
            pr->backup_started[i] = true;
            pr->res->backups++;
            LMR_INFO("%s task %zu attempt %u has run %.0f ms (median of %zu finished tasks: %.0f ms): starting a "
                     "backup attempt",
                     ph->name, i, straggler->attempt, lmr_mono_ms() - straggler->start_mono, pr->nfinished,
                     pr->median_ms);
        } else {
            i = pr->queue[pr->qhead++ % pr->qcap];
        }
        uint32_t attempt = ++pr->attempts[i];
        me->state = SLOT_INVOKING;
        me->task = i;
        me->attempt = attempt;
        me->backup = straggler != NULL;
        me->live = true;
        me->won = false;
        me->start_ms = (double)lmr_wall_ms();
        me->start_mono = lmr_mono_ms();
        pr->running++;
        pr->running_of[i]++;
        pr->live++;
        pr->res->attempts++;
        report_progress(pr);
        if (rebalancing(pr)) /* idle slots may ask this task to split */
            pthread_cond_broadcast(&pr->changed);
        pthread_mutex_unlock(&pr->lock);

        double start_ms = me->start_ms;
        char *event = ph->build_event(ph->user_data, i, attempt);
        struct lmr_invoke_result ir;
        lmr_invoke_result_init(&ir, RESPONSE_MAX_BYTES);
        struct lmr_err ierr = {0};
        enum lmr_result r = event ? lmr_invoke(pr->opts->invoker, ph->function, event, strlen(event), LMR_INVOKE_SYNC,
                                               LMR_INVOKE_LOG_TAIL, &ir, &ierr)
                                  : lmr_fail(&ierr, LMR_ERR_NOMEM, "out of memory building the event");
        free(event);
        double end_ms = (double)lmr_wall_ms(), duration_ms = lmr_mono_ms() - me->start_mono;

        pthread_mutex_lock(&pr->lock);
        if (pr->over) { /* the phase ended without this superseded attempt: touch nothing but pr */
            me->state = SLOT_GONE;
            pthread_cond_broadcast(&pr->changed);
            pthread_mutex_unlock(&pr->lock);
            lmr_invoke_result_clean_up(&ir);
            return NULL;
        }
        me->state = SLOT_FINISHING;
        bool superseded = !me->live && !me->won, checked = me->live;
        pthread_mutex_unlock(&pr->lock);

        char why[LMR_ERR_MSG_BYTES + 512] = "";
        json_t *payload = NULL;
        if (r) {
            snprintf(why, sizeof why, "%s", ierr.msg[0] ? ierr.msg : lmr_result_str(r));
            if (checked) /* (a superseded attempt may outlive the caller's options: no hint) */
                add_hint(why, sizeof why, NULL, r, &ir, pr);
        } else if (ir.function_error[0]) {
            json_t *ej = json_loadb(ir.payload.data ? ir.payload.data : "", ir.payload.len, 0, NULL);
            const char *type = lmr_json_str(ej, "errorType", ir.function_error);
            snprintf(why, sizeof why, "%s: %s", type,
                     lmr_json_str(ej, "errorMessage", ir.payload.data ? ir.payload.data : ""));
            if (checked)
                add_hint(why, sizeof why, type, r, &ir, pr);
            json_decref(ej);
        } else {
            payload = json_loadb(ir.payload.data ? ir.payload.data : "", ir.payload.len, 0, NULL);
        }
        /* A superseded attempt's task is committed already: its own outcome does not matter. */
        bool ok = !checked || committed(pr, i);
        if (ok && !superseded && !why[0] && !payload)
            snprintf(why, sizeof why, "the response was not JSON");
        /* Rebalancing: the commit record says where the task's input ended; its tail must exist. */
        size_t tail = SIZE_MAX;
        struct lmr_err terr = {0};
        enum lmr_result tr = LMR_OK;
        if (ok && checked && ph->split_committed)
            tr = ph->split_committed(ph->user_data, i, payload, &tail, &terr);

        pthread_mutex_lock(&pr->lock);
        if (pr->over) { /* the phase ended meanwhile (this attempt was superseded): touch nothing but pr */
            me->state = SLOT_GONE;
            pthread_cond_broadcast(&pr->changed);
            pthread_mutex_unlock(&pr->lock);
            json_decref(payload);
            lmr_invoke_result_clean_up(&ir);
            return NULL;
        }
        superseded = !me->live && !me->won; /* another attempt may have committed meanwhile */
        pr->running--;
        pr->running_of[i]--;
        if (ir.memory_size_mb)
            pr->memory_mb = ir.memory_size_mb;
        if (me->live)
            pr->live--;
        json_array_append_new(pr->res->invocations,
                              invocation_json(ph, i, attempt, me->index, start_ms, end_ms, &ir, payload,
                                              why[0] ? why : NULL, me->backup, superseded));
        bool discard = superseded;
        if (ok && superseded) {
            LMR_INFO("%s task %zu attempt %u ended after another attempt had committed the task", ph->name, i, attempt);
        } else if (ok) {
            if (tail != SIZE_MAX)
                add_tail(pr, tail);
            if (tr && !pr->failed) {
                pr->err = terr;
                pr->failed = true;
            }
            pr->split[i] = SPLIT_OVER;
            if (!pr->done[i])
                task_committed(pr, me, payload, duration_ms);
            discard = !says_committed(payload);
            /* The committing attempt's response counts (its figures); otherwise the first one. */
            if (payload && (says_committed(payload) || json_is_null(json_array_get(pr->res->responses, i))))
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
            if (pr->running_of[i] > 0 && !permanent) {
                /* the task's other attempt (original or backup) is still running: it is the retry */
            } else if (attempt >= pr->opts->max_attempts || permanent) {
                if (!pr->failed)
                    lmr_fail(&pr->err, r ? r : LMR_ERR_FUNCTION,
                             "%s task %zu failed after %u attempt%s; last error: %s", ph->name, i, attempt,
                             attempt == 1 ? "" : "s", why[0] ? why : "the task returned without committing its output");
                pr->failed = true;
            } else {
                pr->queue[pr->qtail++ % pr->qcap] = i;
            }
        }
        me->state = discard && ph->discard ? SLOT_DISCARDING : SLOT_IDLE;
        report_progress(pr);
        pthread_cond_broadcast(&pr->changed);
        pthread_mutex_unlock(&pr->lock);
        json_decref(payload);
        lmr_invoke_result_clean_up(&ir);
        if (discard && ph->discard)
            ph->discard(ph->user_data, i); /* the phase waits for this (the caller's store is in use) */
        if (!ok && !pr->failed)            /* back off a little before the retry another worker will pick up */
            lmr_sleep_ms(lmr_backoff_ms(attempt, 50, 2000));
    }
}

/* Is the phase over? Every task committed (or a failure) and no attempt in flight that matters. */
static bool settled(const struct phase_run *pr)
{
    if (pr->split_calls > 0)
        return false;
    if (pr->failed ? pr->running > 0 : pr->ndone < pr->ntasks || pr->qhead != pr->qtail || pr->live > 0)
        return false;
    for (uint32_t k = 0; k < pr->nslots; k++) {
        enum slot_state st = pr->slots[k].state;
        if (pr->slots[k].started && st != SLOT_GONE && st != SLOT_INVOKING && !(st == SLOT_FINISHING))
            return false; /* idle ones are on their way out; a discard uses the caller's store */
    }
    return true;
}

static void phase_run_free(struct phase_run *pr)
{
    if (!pr)
        return;
    pthread_mutex_destroy(&pr->lock);
    pthread_cond_destroy(&pr->changed);
    free(pr->queue);
    free(pr->attempts);
    free(pr->done);
    free(pr->running_of);
    free(pr->backup_started);
    free(pr->split);
    free(pr->split_polling);
    free(pr->split_polled);
    free(pr->finished_ms);
    free(pr->slots);
    free(pr);
}

/* The report's entry for an attempt still in flight when the phase ended: its time so far. */
static json_t *lingering_json(const struct phase_run *pr, const struct slot *s, double end_ms)
{
    double so_far = end_ms - s->start_ms;
    struct lmr_invoke_result ir = {
        .duration_ms = so_far, .billed_duration_ms = ceil(so_far), .memory_size_mb = pr->memory_mb};
    json_t *o = invocation_json(pr->phase, s->task, s->attempt, s->index, s->start_ms, end_ms, &ir, NULL, NULL,
                                s->backup, !s->won);
    if (o)
        json_object_set_new(o, "unfinished", json_true());
    return o;
}

enum lmr_result lmr_phase_run(const struct lmr_coordinator_options *opts, const struct lmr_phase *phase,
                              struct lmr_phase_result *res, struct lmr_err *err)
{
    double t0 = lmr_mono_ms();
    memset(res, 0, sizeof *res);
    res->start_ms = (double)lmr_wall_ms();
    res->responses = json_array();
    res->invocations = json_array();
    struct phase_run *pr = calloc(1, sizeof *pr);
    size_t n = phase->ntasks, max = phase->max_tasks > n ? phase->max_tasks : n;
    uint32_t nthreads = opts->concurrency ? opts->concurrency : 8;
    if (pr) {
        *pr = (struct phase_run){.opts = opts, .phase = phase, .res = res, .ntasks = n, .max_tasks = max};
        if (opts->speculation)
            pr->spec = *opts->speculation;
        pr->qcap = max + 1;
        pr->queue = calloc(pr->qcap, sizeof *pr->queue);
        pr->attempts = calloc(max + 1, sizeof *pr->attempts);
        pr->done = calloc(max + 1, sizeof *pr->done);
        pr->running_of = calloc(max + 1, sizeof *pr->running_of);
        pr->backup_started = calloc(max + 1, sizeof *pr->backup_started);
        pr->split = calloc(max + 1, sizeof *pr->split);
        pr->split_polling = calloc(max + 1, sizeof *pr->split_polling);
        pr->split_polled = calloc(max + 1, sizeof *pr->split_polled);
        pr->finished_ms = calloc(max + 1, sizeof *pr->finished_ms);
        pr->slots = calloc(nthreads, sizeof *pr->slots);
        pthread_mutex_init(&pr->lock, NULL);
        pthread_cond_init(&pr->changed, NULL);
    }
    if (!pr || !pr->queue || !pr->attempts || !pr->done || !pr->running_of || !pr->backup_started || !pr->split ||
        !pr->split_polling || !pr->split_polled || !pr->finished_ms || !pr->slots || !res->responses ||
        !res->invocations) {
        phase_run_free(pr);
        return lmr_fail(err, LMR_ERR_NOMEM, "out of memory starting the %s phase (%zu tasks)", phase->name, n);
    }
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(res->responses, json_null());
        if (phase->check_committed_first && committed(pr, i)) {
            pr->done[i] = true;
            pr->ndone++;
            res->reused++;
            continue;
        }
        pr->queue[pr->qtail++] = i;
    }
    /* (Rebalancing adds no slots: the planner chose how many tasks run at once; a slot that ends its task
     * takes a tail.) */
    if (nthreads > pr->qtail)
        nthreads = (uint32_t)pr->qtail;
    pthread_mutex_lock(&pr->lock); /* the workers wait until every slot is set up */
    pr->nslots = nthreads;
    uint32_t created = 0;
    for (uint32_t t = 0; t < nthreads; t++) {
        struct slot *s = &pr->slots[t];
        *s = (struct slot){.pr = pr, .index = t, .state = SLOT_IDLE, .started = true};
        if (created == t && !pthread_create(&s->thread, NULL, worker, s))
            created++;
        else
            *s = (struct slot){.pr = pr, .index = t, .state = SLOT_GONE};
    }
    pthread_mutex_unlock(&pr->lock);
    if (created == 0 && pr->qtail > 0) {
        pr->slots[0] = (struct slot){.pr = pr, .index = 0, .state = SLOT_IDLE};
        worker(&pr->slots[0]); /* no threads: run inline */
    }
    /* Wait until every task is committed (or the phase failed); superseded attempts may still run. */
    pthread_mutex_lock(&pr->lock);
    while (!settled(pr))
        pthread_cond_wait(&pr->changed, &pr->lock);
    pr->over = true;
    res->wall_ms = lmr_mono_ms() - t0;
    res->end_ms = (double)lmr_wall_ms();
    size_t still = 0;
    for (uint32_t k = 0; k < pr->nslots; k++)
        if (pr->slots[k].started && pr->slots[k].state != SLOT_GONE)
            still++;
    res->lingering_tasks = still ? calloc(still, sizeof *res->lingering_tasks) : NULL;
    for (uint32_t k = 0; k < pr->nslots; k++) {
        struct slot *s = &pr->slots[k];
        if (!s->started || s->state == SLOT_GONE)
            continue;
        if (res->lingering_tasks)
            res->lingering_tasks[res->nlingering++] = s->task;
        json_array_append_new(res->invocations, lingering_json(pr, s, res->end_ms));
        LMR_INFO("%s task %zu attempt %u is still running after the task was committed by another attempt; its "
                 "data is removed when it returns",
                 phase->name, s->task, s->attempt);
    }
    pthread_mutex_unlock(&pr->lock);
    enum lmr_result r = LMR_OK;
    if (pr->failed) {
        r = pr->err.code ? pr->err.code : LMR_ERR_FUNCTION;
        if (err)
            *err = pr->err;
    } else if (pr->ndone != pr->ntasks) {
        r = lmr_fail(err, LMR_ERR_INTERNAL, "%s phase ended with %zu of %zu tasks committed", phase->name, pr->ndone,
                     pr->ntasks);
    }
    res->ntasks = pr->ntasks;
    res->lingering = pr;
    if (!still)
        lmr_phase_wait_lingering(res, 0); /* joins the threads, frees pr */
    return r;
}

size_t lmr_phase_wait_lingering(struct lmr_phase_result *res, uint64_t until_ms)
{
    struct phase_run *pr = res->lingering;
    if (!pr)
        return 0;
    pthread_mutex_lock(&pr->lock);
    size_t still;
    for (;;) {
        still = 0;
        for (uint32_t k = 0; k < pr->nslots; k++)
            if (pr->slots[k].started && pr->slots[k].state != SLOT_GONE)
                still++;
        uint64_t now = lmr_wall_ms();
        if (!still || (until_ms && now >= until_ms))
            break;
        if (until_ms)
            wait_changed(pr, until_ms - now < 1000 ? until_ms - now : 1000);
        else
            pthread_cond_wait(&pr->changed, &pr->lock);
    }
    pthread_mutex_unlock(&pr->lock);
    res->lingering = NULL;
    if (still) { /* leave pr to the threads still in flight */
        for (uint32_t k = 0; k < pr->nslots; k++)
            if (pr->slots[k].started)
                pthread_detach(pr->slots[k].thread);
        return still;
    }
    for (uint32_t k = 0; k < pr->nslots; k++)
        if (pr->slots[k].started)
            pthread_join(pr->slots[k].thread, NULL);
    phase_run_free(pr);
    return 0;
}

void lmr_phase_result_clean_up(struct lmr_phase_result *res)
{
    lmr_phase_wait_lingering(res, 0);
    json_decref(res->responses);
    json_decref(res->invocations);
    res->responses = res->invocations = NULL;
    free(res->lingering_tasks);
    res->lingering_tasks = NULL;
    res->nlingering = 0;
}
