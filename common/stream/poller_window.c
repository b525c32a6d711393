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
#include "stream/window_output.h"
#include "util/base64.h"
#include "util/log.h"
#include "util/misc.h"

char *lmr_poller_window_key(struct poller *p, uint64_t window)
{
    return lmr_stream_window_output_key(p->out_prefix, window);
}

/* Is shard s part of window w (must its lanes make a final invoke)? */
static bool shard_in_window(struct poller *p, struct shard *s, uint64_t w)
{
    for (uint32_t li = 0; li < s->n_lanes; li++)
        if (lmr_poller_lane_win(&s->lanes[li], w, false))
            return true;
    /* A started shard that is still going (or still has windows to commit) is in every window, as the
       function's ListShards sees it: its lanes write empty parts. */
    return s->started && !lmr_poller_shard_finished(s);
}

static enum lmr_result close_window(struct poller *p, uint64_t w, struct lmr_err *err)
{
    uint64_t records = 0;
    bool any_state = false;
    for (size_t i = 0; i < p->n_shards; i++)
        for (uint32_t li = 0; li < p->shards[i].n_lanes; li++) {
            struct lane_win *lw = lmr_poller_lane_win(&p->shards[i].lanes[li], w, false);
            if (lw) {
                any_state = true;
                records += lw->records;
            }
        }
    char *key = lmr_poller_window_key(p, w);
    if (!key)
        return lmr_fail(err, LMR_ERR_NOMEM, "out of memory");
    bool already = false;
    enum lmr_result r = LMR_OK;
    if (any_state) {
        uint64_t size;
        already = lmr_store_head(p->o->output, key, &size, NULL) == LMR_OK;
        /* pending.json first: a restart that finds this window's output adopts these positions. */
        r = lmr_poller_write_positions(p, "pending.json", w, err);
        /* The final invoke of every lane of every shard in the window: each writes its part, and the
           one that completes the window merges the parts into the output (stream/stream_function.c). */
        size_t n_lanes = 0;
        for (size_t i = 0; i < p->n_shards; i++)
            n_lanes += p->shards[i].n_lanes;
        struct lane **lanes = calloc(n_lanes ? n_lanes : 1, sizeof *lanes);
        const char **states = calloc(n_lanes ? n_lanes : 1, sizeof *states);
        size_t n = 0;
        if (!r && (!lanes || !states))
            r = lmr_fail(err, LMR_ERR_NOMEM, "out of memory closing window %s", key);
        for (size_t i = 0; i < p->n_shards && !r && !already; i++) {
            struct shard *s = &p->shards[i];
            if (!shard_in_window(p, s, w))
                continue;
            for (uint32_t li = 0; li < s->n_lanes; li++) {
                struct lane_win *lw = lmr_poller_lane_win(&s->lanes[li], w, false);
                states[n] = lw ? lw->state : NULL;
                lanes[n++] = &s->lanes[li];
            }
        }
        if (!r && n)
            r = lmr_poller_final_invokes(p, lanes, states, n, w, false, err);
        free(lanes);
        free(states);
        if (!r && !already && lmr_store_head(p->o->output, key, &size, NULL) != LMR_OK) {
            /* The function could not see the window complete (a shard the listing names that this poller
               has not started, such as a child after a reshard): every lane here has written its part, so
               the poller merges them, through the same create-only merge. */
            struct lmr_stream_merge_result mr;
            r = lmr_stream_window_merge(p->o->output, p->out_prefix, w, p->run, p->o->job, p->o->job_state, &mr, err);
            if (!r && mr.already)
                already = true;
            else if (!r && !mr.no_parts)
                p->stats.windows_merged_by_poller++;
        }
        if (already)
            LMR_WARN("stream: window %s was already committed; leaving it as it is", key);
    }
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
