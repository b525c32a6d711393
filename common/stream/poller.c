/* The poller: options, the main loop (read, batch, invoke, close windows), figures. */
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

void lmr_stream_stats_clean_up(struct lmr_stream_stats *s)
{
    if (s) {
        free(s->shards);
        s->shards = NULL;
        s->n_shards = 0;
    }
}

enum lmr_result lmr_stream_poller_check(const struct lmr_stream_poller_options *o, struct lmr_err *err)
{
    if (!o->source || !o->invoker || !o->function_name || !o->job || !o->output)
        return lmr_fail(err, LMR_ERR_INVALID,
                        "the stream poller needs a source, an invoker, a function, a job and "
                        "an output store");
    if (o->window_ms < 1000 || o->window_ms > LMR_STREAM_WINDOW_MAX_S * 1000ull)
        return lmr_fail(err, LMR_ERR_INVALID, "--window must be from 1 to %d seconds (TumblingWindowInSeconds)",
                        LMR_STREAM_WINDOW_MAX_S);
    if (o->batch_size > LMR_STREAM_BATCH_SIZE_MAX)
        return lmr_fail(err, LMR_ERR_INVALID, "--batch-size must be from 1 to %d", LMR_STREAM_BATCH_SIZE_MAX);
    if (o->batch_window_ms > LMR_STREAM_BATCH_WINDOW_MAX_S * 1000ull)
        return lmr_fail(err, LMR_ERR_INVALID, "--batch-window must be from 0 to %d seconds",
                        LMR_STREAM_BATCH_WINDOW_MAX_S);
    if (o->parallelization > LMR_STREAM_PARALLELIZATION_MAX)
        return lmr_fail(err, LMR_ERR_INVALID, "--parallelization must be from 1 to %d", LMR_STREAM_PARALLELIZATION_MAX);
    if (o->max_retries < -1 || o->max_retries > LMR_STREAM_MAX_RETRIES_MAX)
        return lmr_fail(err, LMR_ERR_INVALID, "--max-retries must be -1 (no limit) or from 0 to %d",
                        LMR_STREAM_MAX_RETRIES_MAX);
    if (o->max_record_age_ms != -1 && (o->max_record_age_ms < LMR_STREAM_MAX_RECORD_AGE_MIN_S * 1000ll ||
                                       o->max_record_age_ms > LMR_STREAM_MAX_RECORD_AGE_MAX_S * 1000ll))
        return lmr_fail(err, LMR_ERR_INVALID, "--max-record-age must be -1 (no limit) or from %d to %d seconds",
                        LMR_STREAM_MAX_RECORD_AGE_MIN_S, LMR_STREAM_MAX_RECORD_AGE_MAX_S);
    return LMR_OK;
}

char *lmr_poller_join_key(const char *prefix, const char *rest)
{
    char *k;
    if (asprintf(&k, "%s%s%s", prefix, *prefix ? "/" : "", rest) < 0)
        return NULL;
    return k;
}

static void fill_stats(struct poller *p)
{
    p->stats.elapsed_s = (double)(lmr_poller_mono_ms() - p->start_mono_ms) / 1000.0;
    struct lmr_stream_shard_stats *ss = realloc(p->stats.shards, (p->n_shards ? p->n_shards : 1) * sizeof *ss);
    if (!ss)
        return;
    p->stats.shards = ss;
    p->stats.n_shards = p->n_shards;
    for (size_t i = 0; i < p->n_shards; i++) {
        snprintf(ss[i].id, sizeof ss[i].id, "%s", p->shards[i].info.id);
        ss[i].records = p->shards[i].records;
        ss[i].millis_behind = p->shards[i].millis_behind;
        ss[i].ended = p->shards[i].ended || p->shards[i].ckpt_ended;
    }
}

static bool all_drained(struct poller *p)
{
    for (size_t i = 0; i < p->n_shards; i++)
        if (!lmr_poller_shard_finished(&p->shards[i]))
            return false;
    bool any;
    lmr_poller_oldest_window(p, &any);
    return !any;
}

enum lmr_result lmr_stream_poll(const struct lmr_stream_poller_options *o, struct lmr_stream_stats *stats,
                                struct lmr_err *err)
{
    enum lmr_result r = lmr_stream_poller_check(o, err);
    if (r)
        return r;
    struct poller p = {.o = o, .window_ms = o->window_ms, .kept_records_max = KEPT_RECORDS_MAX};
    pthread_mutex_init(&p.mu, NULL);
    lmr_poller_workers_init(&p.workers);
    /* Test hook: snapshots of states held by reference after this many records (tests/unit/test_stream_poller.c). */
    const char *km = getenv("LMR_STREAM_KEPT_RECORDS_MAX");
    uint64_t kmv;
    if (km && *km && !lmr_parse_u64(km, 1, KEPT_RECORDS_MAX, &kmv))
        p.kept_records_max = (size_t)kmv;
    p.start_mono_ms = lmr_poller_mono_ms();
    p.out_prefix = strdup(o->output_prefix ? o->output_prefix : "");
    p.ckpt_store = o->checkpoint ? o->checkpoint : o->output;
    p.ckpt_prefix =
        o->checkpoint_prefix ? strdup(o->checkpoint_prefix) : lmr_poller_join_key(p.out_prefix, "_checkpoint");
    if (!p.out_prefix || !p.ckpt_prefix) {
        r = lmr_fail(err, LMR_ERR_NOMEM, "out of memory");
        goto done;
    }
    /* Records whose window is the time they are read (standard input, a followed file) land in other
       windows when read again: this run's window parts get names of their own (window_output.h). */
    if (!o->source->replayable || o->source->arrival_is_read_time)
        lmr_random_hex(p.run, 8);
    if ((r = lmr_poller_load_checkpoint(&p, err)) || (r = lmr_poller_list_shards(&p, err)))
        goto done;
    if (!o->source->replayable && p.saved_positions && json_object_size(p.saved_positions))
        LMR_WARN("stream: %s cannot be read again: records after the checkpoint that an earlier run had read are "
                 "not in this run",
                 o->source->name);
    uint64_t relist = o->relist_interval_ms ? o->relist_interval_ms : 10000;
    uint64_t progress_every = o->progress_interval_ms ? o->progress_interval_ms : 1000;
    uint64_t last_progress = lmr_poller_mono_ms();
    struct lane **ready = NULL;
    size_t ready_cap = 0;
    while (!(o->stop && *o->stop)) {
        if (lmr_poller_mono_ms() - p.last_list_mono_ms >= relist && (r = lmr_poller_list_shards(&p, err)))
            break;
        if ((r = lmr_poller_start_shards(&p, err)))
            break;
        /* Which lanes can invoke now? */
        size_t total_lanes = 0;
        for (size_t i = 0; i < p.n_shards; i++)
            total_lanes += p.shards[i].n_lanes;
        if (total_lanes > ready_cap) {
            struct lane **nr = realloc(ready, total_lanes * sizeof *nr);
            if (!nr) {
                r = lmr_fail(err, LMR_ERR_NOMEM, "out of memory");
                break;
            }
            ready = nr;
            ready_cap = total_lanes;
        }
        size_t got;
        size_t n_ready = 0;
        uint64_t now_wall = lmr_wall_ms(), now_mono = lmr_poller_mono_ms();
        for (size_t i = 0; i < p.n_shards; i++)
            for (uint32_t l = 0; l < p.shards[i].n_lanes; l++)
                if (lmr_poller_prepare_batch(&p, &p.shards[i].lanes[l], now_wall, now_mono))
                    ready[n_ready++] = &p.shards[i].lanes[l];
        if (!n_ready && (r = lmr_poller_read_shards(&p, 20, &got, err)))
            break;
        if (n_ready) {
            /* Invoke in groups that fit the thread table; the shards are read while the first group runs. */
            got = 0;
            for (size_t off = 0; off < n_ready; off += LANE_WORKERS_MAX) {
                size_t n = n_ready - off < LANE_WORKERS_MAX ? n_ready - off : LANE_WORKERS_MAX;
                enum lmr_result rr = off ? (lmr_poller_run_invocations(&p, ready + off, n, true), LMR_OK)
                                         : lmr_poller_run_and_read(&p, ready + off, n, err);
                if (rr && !r)
                    r = rr;
            }
            enum lmr_result d = lmr_poller_distribute(&p, &got, err);
            if (r || (r = d))
                break;
            for (size_t i = 0; i < n_ready && !r; i++)
                if (!ready[i]->processed)
                    r = lmr_poller_process_result(&p, ready[i], err);
            if (r)
                break;
        }
        bool closed = true;
        while (closed && !r && !(o->stop && *o->stop))
            r = lmr_poller_maybe_close_window(&p, &closed, err);
        if (r)
            break;
        if (o->on_progress && lmr_poller_mono_ms() - last_progress >= progress_every) {
            last_progress = lmr_poller_mono_ms();
            fill_stats(&p);
            o->on_progress(o->user, &p.stats);
        }
        if (o->exit_when_drained && all_drained(&p))
            break;
        if (!n_ready && !got) {
            /* Nothing to do: a lane waiting for its retry time or the batching window. */
            lmr_sleep_ms(2);
        }
    }
    free(ready);
done:
    lmr_poller_workers_stop(&p.workers);
    fill_stats(&p);
    for (size_t i = 0; i < p.n_shards; i++) {
        struct shard *s = &p.shards[i];
        if (s->reader)
            o->source->vtable->close_shard(s->reader);
        lmr_stream_item_free(s->staged.head);
        for (uint32_t l = 0; l < s->n_lanes; l++) {
            lmr_stream_item_free(s->lanes[l].head);
            lmr_poller_lane_free_wins(&s->lanes[l]);
            lmr_buf_clean_up(&s->lanes[l].event);
            lmr_buf_clean_up(&s->lanes[l].res.payload);
        }
        free(s->marks);
    }
    free(p.shards);
    free(p.out_prefix);
    free(p.ckpt_prefix);
    json_decref(p.saved_positions);
    pthread_mutex_destroy(&p.mu);
    if (stats)
        *stats = p.stats;
    else
        lmr_stream_stats_clean_up(&p.stats);
    return r;
}
