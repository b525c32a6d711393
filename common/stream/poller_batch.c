/*
 * The poller's batches: choosing the next batch of a lane (batch size, batching window, payload
 * budget), invoking the function concurrently per lane, reading partial batch responses, retries
 * with back-off, bisecting, maximum record age and the on-failure destination.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "stream/poller_internal.h"
#include "stream/state.h"
#include "util/base64.h"
#include "util/log.h"
#include "util/misc.h"

/* The invoke result is reused across invocations of a lane (the lambda module owns its init/clean-up). */
static void result_reset(struct lmr_invoke_result *res)
{
    struct lmr_buf payload = res->payload;
    lmr_buf_reset(&payload);
    memset(res, 0, sizeof *res);
    res->payload = payload;
}

/* Batches of local sources are lines packed into KPL aggregated records (stream/kpl.h): see STREAMING.md. */
static bool aggregating(const struct poller *p)
{
    return p->o->source->arrival_is_read_time;
}

/* A batch of many lines goes as AGG_PER_EVENT aggregated records (their digests are computed together on both
   sides, 8 at a time: kpl.h), each of at least AGG_LINES_MIN lines. */
#define AGG_PER_EVENT 8
#define AGG_LINES_MIN 512

/* Lines per aggregated record in the lane's window (see lane_win.agg_max; 0 there = the default above). */
static size_t agg_max_for(const struct poller *p, struct lane *l, uint64_t window)
{
    struct lane_win *lw = lmr_poller_lane_win(l, window, false);
    if (lw && lw->agg_max)
        return lw->agg_max;
    size_t per = (lmr_poller_batch_size(p) + AGG_PER_EVENT - 1) / AGG_PER_EVENT;
    return per > AGG_LINES_MIN ? per : AGG_LINES_MIN;
}

struct job_ctx {
    struct poller *p;
    struct lane *lane;
};

static bool invocation_failed(struct lane *l)
{
    return l->inv_r || l->res.function_error[0] || l->res.status_code >= 300;
}

/* Build the event of the lane's prepared batch (l->batch, l->state_in ...) into l->event. */
static enum lmr_result build_event(struct poller *p, struct lane *l)
{
    struct shard *s = l->shard;
    struct lmr_stream_record recs_stack[64];
    struct lmr_stream_record *recs = l->batch_n <= 64 ? recs_stack : malloc(l->batch_n * sizeof *recs);
    lmr_buf_reset(&l->event);
    if (!recs)
        return lmr_fail(&l->inv_err, LMR_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < l->batch_n; i++)
        recs[i] = l->batch[i]->rec;
    struct lmr_stream_event_info info = {
        .shard_id = s->info.id,
        .event_source_arn = p->o->source->arn,
        .region = p->o->region,
        .window_start_ms = l->batch_window,
        .window_end_ms = l->batch_window + p->window_ms,
        .state_json = l->state_in,
        .state_extra = l->by_value    ? NULL
                       : l->want_snap ? "\"byref\":\"snap\""
                                      : "\"byref\":\"1\"",
        .is_final_invoke = l->final,
        .is_terminated_early = l->terminated_early,
        .aggregate = aggregating(p),
        .agg_records_max = agg_max_for(p, l, l->batch_window),
    };
    enum lmr_result r = lmr_stream_event_build(&l->event, &info, recs, l->batch_n, &l->inv_err);
    if (recs != recs_stack)
        free(recs);
    return r;
}

/* Hand one finished invocation to on_invocation (the stream report). */
static void report_invocation(struct poller *p, struct lane *l)
{
    char why[320];
    const char *error = NULL;
    if (l->inv_r) {
        error = l->inv_err.msg[0] ? l->inv_err.msg : lmr_result_str(l->inv_r);
    } else if (l->res.function_error[0]) {
        snprintf(why, sizeof why, "%s: %.*s", l->res.function_error,
                 (int)(l->res.payload.len > 256 ? 256 : l->res.payload.len),
                 l->res.payload.data ? l->res.payload.data : "");
        error = why;
    } else if (l->res.status_code >= 300) {
        snprintf(why, sizeof why, "HTTP status %d", l->res.status_code);
        error = why;
    }
    struct lmr_stream_invocation inv = {.shard_id = l->shard->info.id,
                                        .lane = l->idx,
                                        .window_start_ms = l->batch_window,
                                        .final = l->final,
                                        .terminated_early = l->terminated_early,
                                        .records = l->batch_n,
                                        .start_ms = l->inv_start_ms,
                                        .end_ms = l->inv_end_ms,
                                        .res = &l->res,
                                        .error = error};
    p->o->on_invocation(p->o->user, &inv);
}

static bool take_plain(struct poller *p, struct lane *l, struct lmr_stream_response *resp);

/*
 * After each invocation of a lane (lmr_invoke_chain's next; for the embedded service it runs on
 * the environment's Runtime API thread, with the main loop waiting): its figures and report, then,
 * when the lane may go on (l->chain) and the answer took the whole batch with nothing special
 * (no failed record, no full or lost state), the result is taken here and the lane's next batch
 * is invoked at once if it is a full one. Anything else (a partial batch, failures, an early end
 * of the window, reading more records, closing windows) goes back to the main loop, so the chain
 * is exactly the rounds the main loop would run without reading. @return true to invoke *payload.
 */
static bool lane_next(void *user, enum lmr_result r, struct lmr_invoke_result *res, struct lmr_err *err,
                      const void **payload, size_t *len)
{
    (void)res;
    (void)err; /* they are l->res and l->inv_err */
    struct job_ctx *c = user;
    struct poller *p = c->p;
    struct lane *l = c->lane;
    l->inv_r = r;
    l->inv_end_ms = lmr_wall_ms();
    l->processed = false;
    struct lmr_stream_response resp;
    struct lmr_err perr;
    bool parsed =
        l->chain && !(p->o->stop && *p->o->stop) && !invocation_failed(l) &&
        !lmr_stream_response_parse(l->res.payload.data ? l->res.payload.data : "", l->res.payload.len, &resp, &perr);
    pthread_mutex_lock(&p->mu);
    p->stats.invocations++;
    lmr_billing_add(&p->stats.billing, l->res.duration_ms, l->res.init_duration_ms, l->res.billed_duration_ms,
                    l->res.memory_size_mb, 512);
    if (p->o->on_invocation)
        report_invocation(p, l);
    if (parsed)
        l->processed = take_plain(p, l, &resp);
    pthread_mutex_unlock(&p->mu);
    if (parsed)
        lmr_stream_response_clean_up(&resp);
    /* Records given up on for their age are written to the store by the main loop. */
    if (!l->processed || p->o->max_record_age_ms > 0)
        return false;
    if (!lmr_poller_prepare_batch(p, l, lmr_wall_ms(), lmr_poller_mono_ms()) || l->batch_n < lmr_poller_batch_size(p))
        return false;
    if (build_event(p, l)) {
        lmr_err_clear(&l->inv_err); /* the main loop builds it again and reports what fails */
        return false;
    }
    l->processed = false;
    l->inv_start_ms = lmr_wall_ms();
    *payload = l->event.data;
    *len = l->event.len;
    return true;
}

static void *run_one(void *arg)
{
    struct job_ctx *c = arg;
    struct poller *p = c->p;
    struct lane *l = c->lane;
    result_reset(&l->res);
    lmr_err_clear(&l->inv_err);
    l->processed = false;
    l->inv_r = build_event(p, l);
    l->inv_start_ms = lmr_wall_ms();
    if (l->inv_r) {
        l->chain = false;
        lane_next(c, l->inv_r, &l->res, &l->inv_err, NULL, NULL);
        return NULL;
    }
    /* The lane is the client: the embedded service gives it the warm environment that holds its state. */
    lmr_invoke_chain(p->o->invoker, (uint64_t)(uintptr_t)l, p->o->function_name, l->event.data, l->event.len, 0,
                     &l->res, lane_next, c, &l->inv_err);
    return NULL;
}

/* --- lane workers ------------------------------------------------------------------------------- */

struct lane_worker {
    pthread_t th;
    pthread_cond_t go;
    struct job_ctx *job; /* the lane to run, NULL = idle */
    bool quit;
    struct lane_workers *ws;
};

static void *worker_main(void *arg)
{
    struct lane_worker *w = arg;
    struct lane_workers *ws = w->ws;
    for (;;) {
        pthread_mutex_lock(&ws->mu);
        while (!w->job && !w->quit)
            pthread_cond_wait(&w->go, &ws->mu);
        struct job_ctx *job = w->job;
        pthread_mutex_unlock(&ws->mu);
        if (!job)
            break;
        run_one(job);
        pthread_mutex_lock(&ws->mu);
        w->job = NULL;
        bool last = --ws->busy == 0;
        pthread_mutex_unlock(&ws->mu);
        /* Signalled after the unlock, so that the woken main loop does not block on the mutex at once. */
        if (last)
            pthread_cond_signal(&ws->done);
    }
    return NULL;
}

void lmr_poller_workers_init(struct lane_workers *ws)
{
    memset(ws, 0, sizeof *ws);
    pthread_mutex_init(&ws->mu, NULL);
    pthread_cond_init(&ws->done, NULL);
}

void lmr_poller_workers_stop(struct lane_workers *ws)
{
    pthread_mutex_lock(&ws->mu);
    for (size_t i = 0; i < ws->n; i++) {
        ws->w[i]->quit = true;
        pthread_cond_signal(&ws->w[i]->go);
    }
    pthread_mutex_unlock(&ws->mu);
    for (size_t i = 0; i < ws->n; i++) {
        pthread_join(ws->w[i]->th, NULL);
        pthread_cond_destroy(&ws->w[i]->go);
        free(ws->w[i]);
    }
    ws->n = 0;
    pthread_cond_destroy(&ws->done);
    pthread_mutex_destroy(&ws->mu);
}

/* Start workers until there are want (the main loop is the only caller: no lock needed for n). @return how many
   there are (fewer when a thread cannot be started: the caller runs the rest of the lanes itself). */
static size_t workers_ensure(struct lane_workers *ws, size_t want)
{
    if (want > LANE_WORKERS_MAX)
        want = LANE_WORKERS_MAX;
    while (ws->n < want) {
        struct lane_worker *w = calloc(1, sizeof *w);
        if (!w)
            break;
        w->ws = ws;
        pthread_cond_init(&w->go, NULL);
        if (pthread_create(&w->th, NULL, worker_main, w)) {
            pthread_cond_destroy(&w->go);
            free(w);
            break;
        }
        ws->w[ws->n++] = w;
    }
    return ws->n < want ? ws->n : want;
}

/* Hand jobs[0..n) to workers 0..n) (all idle: rounds do not overlap). */
static void workers_start(struct lane_workers *ws, struct job_ctx *jobs, size_t n)
{
    pthread_mutex_lock(&ws->mu);
    for (size_t i = 0; i < n; i++) {
        ws->w[i]->job = &jobs[i];
        ws->busy++;
    }
    pthread_mutex_unlock(&ws->mu);
    for (size_t i = 0; i < n; i++)
        pthread_cond_signal(&ws->w[i]->go);
}

static void workers_wait(struct lane_workers *ws)
{
    pthread_mutex_lock(&ws->mu);
    while (ws->busy)
        pthread_cond_wait(&ws->done, &ws->mu);
    pthread_mutex_unlock(&ws->mu);
}

/*
 * Run the prepared invocations of lanes[0..n) concurrently (on the poller's lane workers; one lane
 * runs on the caller's thread). With chain, each lane goes on with its next full batches
 * (lane_next) until one needs the main loop.
 */
void lmr_poller_run_invocations(struct poller *p, struct lane **lanes, size_t n, bool chain)
{
    struct job_ctx ctx[LANE_WORKERS_MAX];
    if (n > LANE_WORKERS_MAX)
        n = LANE_WORKERS_MAX; /* the main loop invokes in groups of at most this many */
    for (size_t i = 0; i < n; i++) {
        lanes[i]->chain = chain;
        ctx[i] = (struct job_ctx){p, lanes[i]};
    }
    /* The caller runs the last lane (and any no worker could take). */
    size_t on_workers = n > 1 ? workers_ensure(&p->workers, n - 1) : 0;
    workers_start(&p->workers, ctx, on_workers);
    for (size_t i = on_workers; i < n; i++)
        run_one(&ctx[i]);
    if (on_workers)
        workers_wait(&p->workers);
}

enum lmr_result lmr_poller_run_and_read(struct poller *p, struct lane **lanes, size_t n, struct lmr_err *err)
{
    struct job_ctx ctx[LANE_WORKERS_MAX];
    if (n > LANE_WORKERS_MAX)
        n = LANE_WORKERS_MAX;
    lmr_poller_plan_reads(p, true); /* reads the lanes' queues: before they run */
    for (size_t i = 0; i < n; i++) {
        lanes[i]->chain = true;
        ctx[i] = (struct job_ctx){p, lanes[i]};
    }
    size_t n_started = workers_ensure(&p->workers, n);
    workers_start(&p->workers, ctx, n_started);
    /* The lanes only take records from their queues' heads; the reader fills the shards' staged records. */
    enum lmr_result r = n_started ? lmr_poller_read_raw(p, 0, err) : LMR_OK;
    for (size_t i = n_started; i < n; i++)
        run_one(&ctx[i]);
    workers_wait(&p->workers);
    if (!n_started) { /* no thread to run them on: read after them */
        lmr_poller_plan_reads(p, false);
        r = lmr_poller_read_raw(p, 0, err);
    }
    return r;
}

/* Describe a failed batch in the on-failure destination (AWS's shape for Kinesis sources). */
static void write_failure(struct poller *p, struct lane *l, struct lmr_stream_item *const *items, size_t n,
                          const char *condition)
{
    p->stats.records_failed += n;
    LMR_WARN("stream: giving up on %zu record(s) of %s (%s), sequence numbers %s to %s", n, l->shard->info.id,
             condition, items[0]->rec.sequence_number, items[n - 1]->rec.sequence_number);
    if (!p->o->on_failure_destination)
        return;
    char first[40], last[40], now[40];
    json_t *d = json_pack(
        "{s:{s:s,s:s,s:s,s:i},s:{s:i,s:s,s:s},s:s,s:s,s:{s:s,s:s,s:s,s:s,s:s,s:i,s:s}}", "requestContext", "requestId",
        l->res.request_id, "functionArn", p->o->function_name, "condition", condition, "approximateInvokeCount",
        (json_int_t)l->retries + 1, "responseContext", "statusCode", (json_int_t)l->res.status_code, "executedVersion",
        "$LATEST", "functionError", l->res.function_error, "version", "1.0", "timestamp",
        lmr_stream_iso8601(lmr_wall_ms(), now, sizeof now), "KinesisBatchInfo", "shardId", l->shard->info.id,
        "startSequenceNumber", items[0]->rec.sequence_number, "endSequenceNumber", items[n - 1]->rec.sequence_number,
        "approximateArrivalOfFirstRecord", lmr_stream_iso8601(items[0]->rec.arrival_ms, first, sizeof first),
        "approximateArrivalOfLastRecord", lmr_stream_iso8601(items[n - 1]->rec.arrival_ms, last, sizeof last),
        "batchSize", (json_int_t)n, "streamArn", p->o->source->arn);
    char *text = d ? json_dumps(d, JSON_INDENT(1)) : NULL;
    json_decref(d);
    char rest[400];
    snprintf(rest, sizeof rest, "failures/%s/%s-%s.json", l->shard->info.id, items[0]->rec.sequence_number,
             items[n - 1]->rec.sequence_number);
    char *key = lmr_poller_join_key(p->ckpt_prefix, rest);
    struct lmr_err err;
    if (text && key && lmr_store_put(p->ckpt_store, key, text, strlen(text), 0, &err))
        LMR_WARN("stream: cannot write the failed batch descriptor %s: %s", key, err.msg);
    free(key);
    free(text);
}

/* Remove the first n records of the lane queue (they are in l->batch[0..n)); keep (lw non-NULL)
   moves them to the window's kept records instead of freeing them. */
static void lane_pop_keep(struct lane *l, size_t n, struct lane_win *keep)
{
    struct lmr_stream_item_releaser rel = {0};
    for (size_t i = 0; i < n; i++) {
        struct lmr_stream_item *it = l->head;
        l->head = it->next;
        if (!l->head)
            l->tail = NULL;
        l->count--;
        if (!keep) {
            lmr_stream_item_release(&rel, it);
            continue;
        }
        it->next = NULL;
        if (keep->kept_tail)
            keep->kept_tail->next = it;
        else
            keep->kept_head = it;
        keep->kept_tail = it;
        keep->kept_n++;
        keep->kept_bytes += sizeof *it + it->rec.len + 64;
    }
    lmr_stream_item_releaser_flush(&rel);
}

static void lane_pop(struct lane *l, size_t n)
{
    lane_pop_keep(l, n, NULL);
}

/* The batch size: --batch-size, else Lambda's default for Kinesis, or a large one for local sources. */
static size_t batch_limit(const struct poller *p)
{
    return lmr_poller_batch_size(p);
}

/* Bytes of the 6 MB payload left for records once the state and the rest of the event are in. */
static size_t payload_budget(const struct poller *p, const struct lane *l, const char *state)
{
    size_t fixed = EVENT_ENVELOPE_BYTES + strlen(state) + 2 * strlen(p->o->source->arn) + strlen(l->shard->info.id);
    return fixed < LMR_STREAM_SYNC_PAYLOAD_MAX_BYTES ? LMR_STREAM_SYNC_PAYLOAD_MAX_BYTES - fixed : 0;
}

/*
 * Put the records from it on into l->batch while they fit: at most limit, all of window w, the
 * event within budget bytes (as Lambda's mapping cuts a batch to the 6 MB payload). Records of an
 * aggregating lane are sized where the event builder will place them. *bytes gets the total.
 */
static size_t fill_batch(const struct poller *p, struct lane *l, struct lmr_stream_item *it, size_t limit,
                         size_t budget, uint64_t w, size_t *bytes_out)
{
    struct lmr_stream_event_info info = {
        .shard_id = l->shard->info.id, .event_source_arn = p->o->source->arn, .region = p->o->region};
    size_t overhead = lmr_stream_event_record_overhead(&info), n = 0, bytes = 0, agg_max = agg_max_for(p, l, w);
    bool agg = aggregating(p);
    struct lmr_stream_agg_cursor c = {0};
    for (; it && n < limit && it->window_start_ms == w; it = it->next) {
        size_t rb;
        if (!agg) {
            if (!it->event_bytes) /* a lane's events all have the same shard, ARN and region */
                it->event_bytes = (uint32_t)lmr_stream_event_record_bytes_after(overhead, &it->rec);
            rb = it->event_bytes;
        } else {
            enum lmr_stream_agg_place place = lmr_stream_agg_place(&c, agg_max, &it->rec);
            if (place != LMR_STREAM_AGG_JOIN)
                rb = lmr_stream_event_agg_bytes(overhead, place, &it->rec);
            else if (it->event_bytes) /* what the record costs inside an aggregated record */
                rb = it->event_bytes;
            else
                rb = it->event_bytes = (uint32_t)lmr_stream_event_agg_bytes(overhead, place, &it->rec);
        }
        if (n && bytes + rb > budget)
            break;
        bytes += rb;
        l->batch[n++] = it;
    }
    *bytes_out = bytes;
    return n;
}

/* User records in the first aggregated record of the lane's batch. */
static size_t first_agg_records(const struct poller *p, struct lane *l)
{
    struct lmr_stream_agg_cursor c = {0};
    size_t agg_max = agg_max_for(p, l, l->batch_window), n = 0;
    for (size_t i = 0; i < l->batch_n; i++) {
        enum lmr_stream_agg_place place = lmr_stream_agg_place(&c, agg_max, &l->batch[i]->rec);
        if (i && place != LMR_STREAM_AGG_JOIN)
            break;
        if (place == LMR_STREAM_AGG_ALONE)
            return 1;
        n++;
    }
    return n;
}

static void log_failure(struct lane *l)
{
    if (l->inv_r)
        LMR_WARN("stream: invoking for %s failed: %s", l->shard->info.id, l->inv_err.msg);
    else if (l->res.function_error[0])
        LMR_WARN("stream: the function failed on a batch of %s (%s): %.*s", l->shard->info.id, l->res.function_error,
                 (int)(l->res.payload.len > 400 ? 400 : l->res.payload.len),
                 l->res.payload.data ? l->res.payload.data : "");
}

/* Take a response's state into lw: a full copy replaces the kept records, a reference keeps them. */
static void take_state(struct lane_win *lw, char *state, bool has_kv)
{
    if (has_kv) {
        lmr_poller_lane_win_forget(lw);
        free(lw->state);
    } else if (lw->state_has_kv) {
        free(lw->snap);
        lw->snap = lw->state; /* the last full copy */
    } else {
        free(lw->state);
    }
    lw->state = state;
    lw->state_has_kv = has_kv;
}

/*
 * The environment that held lw's state by reference does not hold it any more (it was replaced,
 * or another environment took the invocation): rebuild the state in an environment from the last
 * full copy and the records taken since, with the same batches a first pass would send. The
 * records are already counted; only invocations are added. A lane that loses its state twice in a
 * row goes on with whole states (by value), as before references existed (environments that take
 * its invocations in turn would otherwise rebuild it every time).
 */
static enum lmr_result restore_state(struct poller *p, struct lane *l, struct lane_win *lw, struct lmr_err *err)
{
    if (++l->n_lost >= 2)
        l->by_value = true;
    LMR_INFO("stream: the environment holding the state of %s lane %u is gone; rebuilding it from %zu record(s)%s",
             l->shard->info.id, l->idx, lw->kept_n, l->by_value ? " (states travel whole from now on)" : "");
    for (unsigned attempt = 0;; attempt++) {
        char *cur = NULL;
        bool cur_kv = lw->snap != NULL, ok = true;
        struct lmr_stream_item *it = lw->kept_head;
        while (ok && it) {
            const char *in = cur ? cur : lw->snap ? lw->snap : l->seed;
            size_t bytes,
                n = fill_batch(p, l, it, batch_limit(p), payload_budget(p, l, in), it->window_start_ms, &bytes);
            for (size_t i = 0; i < n; i++)
                it = it->next;
            l->batch_n = n;
            l->batch_window = lw->window;
            l->final = l->terminated_early = l->want_snap = false;
            l->state_in = in;
            lmr_poller_run_invocations(p, &l, 1, false);
            struct lmr_stream_response resp;
            if (invocation_failed(l) || lmr_stream_response_parse(l->res.payload.data ? l->res.payload.data : "",
                                                                  l->res.payload.len, &resp, &l->inv_err)) {
                log_failure(l);
                ok = false;
                break;
            }
            if (resp.state_lost || resp.n_failed) {
                ok = false; /* another environment took a batch in between, or a record failed now: again */
                if (resp.state_lost && ++l->n_lost >= 2)
                    l->by_value = true;
            } else {
                free(cur);
                cur = resp.state_json;
                resp.state_json = NULL;
                cur_kv = resp.state_has_kv;
            }
            lmr_stream_response_clean_up(&resp);
        }
        if (ok) {
            if (cur) {
                take_state(lw, cur, cur_kv);
            } else { /* nothing kept: the full copy (or the seed) is the state */
                free(lw->state);
                lw->state = lw->snap;
                lw->state_has_kv = lw->snap != NULL;
                lw->snap = NULL;
            }
            return LMR_OK;
        }
        free(cur);
        p->stats.invoke_failures++;
        if (p->o->stop && *p->o->stop)
            return lmr_fail(err, LMR_ERR_CANCELLED, "stopped while rebuilding the state of %s", l->shard->info.id);
        lmr_sleep_ms(lmr_backoff_ms(attempt, 20, 2000));
    }
}

/* Make the final invoke for a lane's window state (also used for an early termination). */
enum lmr_result lmr_poller_final_invokes(struct poller *p, struct lane **lanes, const char *const *states, size_t n,
                                         uint64_t window, bool terminated_early, struct lmr_err *err)
{
    struct lane *todo[FINALS_AT_ONCE];
    const char *todo_state[FINALS_AT_ONCE];
    for (size_t off = 0; off < n; off += FINALS_AT_ONCE) {
        size_t m = n - off < FINALS_AT_ONCE ? n - off : FINALS_AT_ONCE;
        memcpy(todo, lanes + off, m * sizeof *todo);
        memcpy(todo_state, states + off, m * sizeof *todo_state);
        for (unsigned attempt = 0; m; attempt++) {
            for (size_t i = 0; i < m; i++) {
                struct lane *l = todo[i];
                l->batch_n = 0;
                l->batch_window = window;
                l->final = true;
                l->terminated_early = terminated_early;
                l->state_in = todo_state[i] ? todo_state[i] : l->seed;
            }
            /* Every lane's final invoke at once: each writes its part of the window (stream_function.c). */
            lmr_poller_run_invocations(p, todo, m, false);
            size_t left = 0, failed = 0;
            for (size_t i = 0; i < m; i++) {
                struct lane *l = todo[i];
                struct lmr_stream_response resp;
                if (!invocation_failed(l) && !lmr_stream_response_parse(l->res.payload.data ? l->res.payload.data : "",
                                                                        l->res.payload.len, &resp, &l->inv_err)) {
                    bool lost = resp.state_lost;
                    lmr_stream_response_clean_up(&resp);
                    struct lane_win *lw = lost ? lmr_poller_lane_win(l, window, false) : NULL;
                    if (!lost)
                        continue;
                    if (lw && todo_state[i] == lw->state) {
                        /* Rebuild the state the final invoke names, then make it again. */
                        enum lmr_result rr = restore_state(p, l, lw, err);
                        if (rr)
                            return rr;
                        todo_state[i] = lw->state;
                        todo[left] = l;
                        todo_state[left++] = todo_state[i];
                        continue;
                    }
                }
                /* As on AWS, processing of the shard waits until its final invoke succeeds. */
                p->stats.invoke_failures++;
                log_failure(l);
                failed++;
                todo_state[left] = todo_state[i];
                todo[left++] = l;
            }
            m = left;
            if (!m)
                break;
            if (p->o->stop && *p->o->stop)
                return lmr_fail(err, LMR_ERR_CANCELLED, "stopped while retrying the final invoke of %s",
                                todo[0]->shard->info.id);
            if (failed) /* a rebuilt state is invoked again at once */
                lmr_sleep_ms(lmr_backoff_ms(attempt, 100, 5000));
        }
    }
    return LMR_OK;
}

enum lmr_result lmr_poller_final_invoke(struct poller *p, struct lane *l, uint64_t window, const char *state,
                                        bool terminated_early, struct lmr_err *err)
{
    return lmr_poller_final_invokes(p, &l, &state, 1, window, terminated_early, err);
}

/* Choose the next batch of a lane. @return true if it should be invoked now. */
bool lmr_poller_prepare_batch(struct poller *p, struct lane *l, uint64_t now_wall, uint64_t now_mono)
{
    if (!l->head || now_mono < l->retry_at_mono_ms)
        return false;
    /* Records older than --max-record-age are given up on. */
    if (p->o->max_record_age_ms > 0) {
        size_t n = 0;
        for (struct lmr_stream_item *it = l->head; it && n < LMR_STREAM_BATCH_SIZE_MAX; it = it->next) {
            if (now_wall < it->rec.arrival_ms || now_wall - it->rec.arrival_ms <= (uint64_t)p->o->max_record_age_ms)
                break;
            l->batch[n++] = it;
        }
        if (n) {
            write_failure(p, l, l->batch, n, "RecordAgeExceeded");
            lane_pop(l, n);
            l->retries = 0;
            l->bisect_limit = 0;
            if (!l->head)
                return false;
        }
    }
    size_t limit = batch_limit(p);
    if (l->bisect_limit && l->bisect_limit < limit)
        limit = l->bisect_limit;
    uint64_t w = l->head->window_start_ms;
    struct lane_win *lw = lmr_poller_lane_win(l, w, false);
    l->state_in = lw && lw->state ? lw->state : l->seed;
    l->want_snap = lw && !lw->state_has_kv && (lw->kept_n >= p->kept_records_max || lw->kept_bytes >= KEPT_BYTES_MAX);
    /* As Lambda's event source mapping does, cut the batch so that the whole event (records, the
       state it carries and the rest) fits the 6 MB synchronous payload. */
    size_t budget = payload_budget(p, l, l->state_in), bytes;
    size_t n = fill_batch(p, l, l->head, limit, budget, w, &bytes);
    l->batch_n = n;
    l->batch_window = w;
    l->final = false;
    l->terminated_early = false;
    /* Full batch, batching window passed, a retry, or nothing more can join this batch. */
    if (n == limit || bytes + 4096 > budget || l->retries || l->bisect_limit)
        return true;
    if (n < l->count && l->batch[n - 1]->next && l->batch[n - 1]->next->window_start_ms != w)
        return true;
    if (lmr_poller_has_item_beyond(l, w) || lmr_poller_shard_done_with(p, l->shard, w, now_wall))
        return true;
    uint64_t age = now_wall > l->head->rec.arrival_ms ? now_wall - l->head->rec.arrival_ms : 0;
    return age >= p->o->batch_window_ms;
}

/* Record a failure of the lane's batch from index k on; schedules the retry or gives up. */
static void batch_failed(struct poller *p, struct lane *l, size_t k)
{
    p->stats.invoke_failures++;
    size_t remaining = l->batch_n - k;
    if (p->o->bisect_on_error && remaining > 1) {
        l->bisect_limit = (remaining + 1) / 2;
    } else {
        l->retries++;
        if (p->o->max_retries >= 0 && l->retries > (uint64_t)p->o->max_retries) {
            write_failure(p, l, l->batch + k, remaining, "RetryAttemptsExhausted");
            lane_pop(l, remaining);
            l->retries = 0;
            l->bisect_limit = 0;
            return;
        }
    }
    l->retry_at_mono_ms = lmr_poller_mono_ms() + lmr_backoff_ms(l->retries, 20, 2000);
}

/*
 * The common answer: the whole batch is in the returned state, no record failed, the state is
 * neither full nor lost. Take it (lmr_poller_process_result does the rest). @return false if the
 * answer is another one (nothing changed).
 */
static bool take_plain(struct poller *p, struct lane *l, struct lmr_stream_response *resp)
{
    if (resp->n_failed || resp->state_full || resp->state_lost)
        return false;
    struct lane_win *lw = lmr_poller_lane_win(l, l->batch_window, true);
    if (!lw)
        return false;
    take_state(lw, resp->state_json, resp->state_has_kv);
    resp->state_json = NULL;
    lw->records += l->batch_n;
    p->stats.records_processed += l->batch_n;
    lane_pop_keep(l, l->batch_n, lw->state_has_kv ? NULL : lw);
    l->retries = 0;
    l->bisect_limit = 0;
    l->n_lost = 0;
    return true;
}

enum lmr_result lmr_poller_process_result(struct poller *p, struct lane *l, struct lmr_err *err)
{
    struct lmr_stream_response resp;
    if (invocation_failed(l) || lmr_stream_response_parse(l->res.payload.data ? l->res.payload.data : "",
                                                          l->res.payload.len, &resp, &l->inv_err)) {
        if (!invocation_failed(l))
            LMR_WARN("stream: %s", l->inv_err.msg);
        log_failure(l);
        batch_failed(p, l, 0);
        return LMR_OK;
    }
    if (take_plain(p, l, &resp)) {
        lmr_stream_response_clean_up(&resp);
        return LMR_OK;
    }
    /* The lowest failed record: everything before it is in the returned state. */
    size_t k = l->batch_n;
    for (size_t f = 0; f < resp.n_failed; f++) {
        size_t i = 0;
        while (i < l->batch_n && strcmp(l->batch[i]->rec.sequence_number, resp.failed_ids[f]))
            i++;
        if (i == l->batch_n) {
            k = 0; /* an identifier not in the batch fails the whole batch, as on AWS */
            LMR_WARN("stream: itemIdentifier '%s' is not in the batch: retrying the whole batch", resp.failed_ids[f]);
            break;
        }
        if (i < k)
            k = i;
    }
    if (resp.state_full && !k && l->state_in == l->seed && aggregating(p)) {
        /* The first aggregated record alone overflows a fresh state (many keys in many lines): pack
           fewer lines per aggregated record in this window and send the batch again at once. The
           function fails an aggregated record of one line instead, so this ends. */
        size_t first = first_agg_records(p, l);
        struct lane_win *lw = first > 1 ? lmr_poller_lane_win(l, l->batch_window, true) : NULL;
        if (lw) {
            lw->agg_max = (first + 1) / 2;
            l->retry_at_mono_ms = 0;
            LMR_INFO("stream: %zu lines of %s lane %u overflow a fresh window state; aggregating %zu at most", first,
                     l->shard->info.id, l->idx, lw->agg_max);
            lmr_stream_response_clean_up(&resp);
            return LMR_OK;
        }
    }
    if (resp.state_lost) {
        /* The environment did not hold the state this batch named: rebuild it, then send the batch again. */
        struct lane_win *lw = lmr_poller_lane_win(l, l->batch_window, false);
        lmr_stream_response_clean_up(&resp);
        if (!lw || !lw->state || lw->state_has_kv) {
            LMR_WARN("stream: the function answered 'lost' for a state of %s it was sent whole; retrying",
                     l->shard->info.id);
            batch_failed(p, l, 0);
            return LMR_OK;
        }
        return restore_state(p, l, lw, err);
    }
    {
        /* The returned state holds exactly the records before k. */
        struct lane_win *lw = lmr_poller_lane_win(l, l->batch_window, true);
        if (!lw) {
            lmr_stream_response_clean_up(&resp);
            return lmr_fail(err, LMR_ERR_NOMEM, "out of memory");
        }
        take_state(lw, resp.state_json, resp.state_has_kv);
        resp.state_json = NULL;
        lw->records += k;
        p->stats.records_processed += k;
        lane_pop_keep(l, k, lw->state_has_kv ? NULL : lw);
        if (resp.state_full) {
            /* The state reached its limit: this part of the window ends early (the function writes it as
               a part of its own) and the lane goes on in the same window with a fresh state. */
            enum lmr_result r = lmr_poller_final_invoke(p, l, lw->window, lw->state, true, err);
            lw = lmr_poller_lane_win(l, l->batch_window, false);
            lmr_stream_response_clean_up(&resp);
            if (r)
                return r;
            free(lw->state);
            lw->state = NULL;
            lw->state_has_kv = false;
            lmr_poller_lane_win_forget(lw); /* the part is written: the next state starts from the seed */
            lw->parts_ended_early++;
            p->stats.windows_terminated_early++;
            LMR_INFO("stream: a window of %s lane %u ended early (the state reached its limit); the lane goes on "
                     "in the same window with a fresh state",
                     l->shard->info.id, l->idx);
            return LMR_OK;
        }
    }
    if (k < l->batch_n) {
        /* batch[k] failed: retry from it. Shift the batch view so that batch_failed sees the failed part at index 0. */
        size_t remaining = l->batch_n - k;
        memmove(l->batch, l->batch + k, remaining * sizeof *l->batch);
        l->batch_n = remaining;
        batch_failed(p, l, 0);
    } else {
        /* The failing part passed: back to full batches. */
        l->retries = 0;
        l->bisect_limit = 0;
    }
    l->n_lost = 0;
    lmr_stream_response_clean_up(&resp);
    return LMR_OK;
}
