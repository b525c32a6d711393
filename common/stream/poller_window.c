/*
 * Closing a window: once every shard is done with it, the final invoke per lane, the window
 * commit, and the checkpoints advanced past it.
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

char *lmr_poller_window_key(struct poller *p, uint64_t window)
{
    char iso[40], rest[80];
    snprintf(rest, sizeof rest, "window=%s/part-00000", lmr_stream_iso8601(window, iso, sizeof iso));
    return lmr_poller_join_key(p->out_prefix, rest);
}

static enum lmr_result close_window(struct poller *p, uint64_t w, struct lmr_err *err)
{
    uint64_t records = 0;
    bool any_state = false;
    struct lmr_stream_state *st = lmr_stream_state_new(p->o->job->value_size);
    if (!st)
        return lmr_fail(err, LMR_ERR_NOMEM, "out of memory");
    enum lmr_result r = LMR_OK;
    /* Final invoke per lane holding state for w, then merge everything. */
    for (size_t i = 0; i < p->n_shards && !r; i++) {
        struct shard *s = &p->shards[i];
        for (uint32_t li = 0; li < s->n_lanes && !r; li++) {
            struct lane *l = &s->lanes[li];
            struct lane_win *lw = lmr_poller_lane_win(l, w, false);
            if (!lw)
                continue;
            any_state = true;
            records += lw->records;
            if (lw->state || !lw->n_partials) {
                char *final_state = NULL;
                r = lmr_poller_final_invoke(p, l, w, lw->state, false, &final_state, err);
                lw = lmr_poller_lane_win(l, w, false);
                if (!r)
                    r = lmr_stream_state_merge_text(st, p->o->job, p->o->job_state, final_state, NULL, err);
                free(final_state);
            }
            for (size_t k = 0; k < lw->n_partials && !r; k++)
                r = lmr_stream_state_merge_text(st, p->o->job, p->o->job_state, lw->partials[k], NULL, err);
        }
    }
    char *key = lmr_poller_window_key(p, w);
    bool already = false;
    if (!r && any_state) {
        struct lmr_buf lines;
        lmr_buf_init(&lines, OUTPUT_MAX_BYTES);
        r = lmr_stream_state_reduce_lines(st, p->o->job, p->o->job_state, &lines, err);
        if (!r)
            r = lmr_poller_write_positions(p, "pending.json", w, err);
        if (!r) {
            r = lmr_store_put(p->o->output, key, lines.data ? lines.data : "", lines.len, LMR_PUT_CREATE_ONLY, err);
            if (r == LMR_ERR_EXISTS) {
                /* Committed by an earlier run: never write a window twice. */
                lmr_err_clear(err);
                r = LMR_OK;
                already = true;
                LMR_WARN("stream: window %s was already committed; leaving it as it is", key);
            } else if (r) {
                lmr_err_prefix(err, "committing window output %s: ", key);
            }
        }
        lmr_buf_clean_up(&lines);
    }
    lmr_stream_state_destroy(st);
    if (r) {
        free(key);
        return r;
    }
    /* Advance the checkpoints past w, only now that its output is committed. */
    for (size_t i = 0; i < p->n_shards; i++) {
        struct shard *s = &p->shards[i];
        size_t keep = 0;
        for (size_t m = 0; m < s->n_marks; m++) {
            if (s->marks[m].window <= w)
                snprintf(s->ckpt_seq, sizeof s->ckpt_seq, "%s", s->marks[m].seq);
            else
                s->marks[keep++] = s->marks[m];
        }
        s->n_marks = keep;
        for (uint32_t li = 0; li < s->n_lanes; li++)
            lmr_poller_lane_drop_win(&s->lanes[li], w);
        if (s->started && s->ended && lmr_poller_shard_finished(s))
            s->ckpt_ended = true;
    }
    r = lmr_poller_write_positions(p, "checkpoint.json", w, err);
    if (r) {
        free(key);
        return r;
    }
    p->min_window = w + p->window_ms;
    p->have_min_window = true;
    if (any_state) {
        if (already)
            p->stats.windows_already_committed++;
        else
            p->stats.windows_committed++;
        p->stats.last_window_start_ms = w;
        uint64_t now = lmr_wall_ms(), end = w + p->window_ms;
        p->stats.last_commit_delay_ms = now > end ? now - end : 0;
        if (p->o->on_window)
            p->o->on_window(p->o->user, w, records, already, key);
    }
    free(key);
    return LMR_OK;
}

/* Close the oldest window if every shard is done with it. @return true if one was closed. */
enum lmr_result lmr_poller_maybe_close_window(struct poller *p, bool *closed, struct lmr_err *err)
{
    *closed = false;
    bool any;
    uint64_t w = lmr_poller_oldest_window(p, &any);
    if (!any)
        return LMR_OK;
    uint64_t now = lmr_wall_ms();
    for (size_t i = 0; i < p->n_shards; i++) {
        struct shard *s = &p->shards[i];
        if (!lmr_poller_shard_done_with(p, s, w, now))
            return LMR_OK;
        for (uint32_t l = 0; l < s->n_lanes; l++)
            if (s->lanes[l].head && s->lanes[l].head->window_start_ms <= w)
                return LMR_OK;
    }
    *closed = true;
    return close_window(p, w, err);
}
