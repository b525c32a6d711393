/*
 * The poller's shards: listing them, starting a child only when its parents are finished (so every
 * key keeps its order across a reshard), lanes and their per-window states, and reading records
 * into lanes with their window assigned.
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

static struct shard *find_shard(struct poller *p, const char *id)
{
    for (size_t i = 0; i < p->n_shards; i++)
        if (!strcmp(p->shards[i].info.id, id))
            return &p->shards[i];
    return NULL;
}

void lmr_poller_lane_win_forget(struct lane_win *lw)
{
    free(lw->snap);
    lw->snap = NULL;
    lmr_stream_item_free(lw->kept_head);
    lw->kept_head = lw->kept_tail = NULL;
    lw->kept_n = lw->kept_bytes = 0;
}

void lmr_poller_lane_free_wins(struct lane *l)
{
    for (size_t i = 0; i < l->n_wins; i++) {
        free(l->wins[i].state);
        lmr_poller_lane_win_forget(&l->wins[i]);
    }
    free(l->wins);
    l->wins = NULL;
    l->n_wins = 0;
}

struct lane_win *lmr_poller_lane_win(struct lane *l, uint64_t window, bool create)
{
    for (size_t i = 0; i < l->n_wins; i++)
        if (l->wins[i].window == window)
            return &l->wins[i];
    if (!create)
        return NULL;
    struct lane_win *w = realloc(l->wins, (l->n_wins + 1) * sizeof *w);
    if (!w)
        return NULL;
    l->wins = w;
    w = &l->wins[l->n_wins++];
    memset(w, 0, sizeof *w);
    w->window = window;
    return w;
}

void lmr_poller_lane_drop_win(struct lane *l, uint64_t window)
{
    for (size_t i = 0; i < l->n_wins; i++) {
        if (l->wins[i].window != window)
            continue;
        free(l->wins[i].state);
        lmr_poller_lane_win_forget(&l->wins[i]);
        l->wins[i] = l->wins[--l->n_wins];
        return;
    }
}

static enum lmr_result add_shard(struct poller *p, const struct lmr_stream_shard_info *info)
{
    struct shard *s = realloc(p->shards, (p->n_shards + 1) * sizeof *s);
    if (!s)
        return LMR_ERR_NOMEM;
    p->shards = s;
    s = &p->shards[p->n_shards++];
    memset(s, 0, sizeof *s);
    s->info = *info;
    s->n_lanes = p->o->parallelization ? p->o->parallelization : 1;
    for (uint32_t i = 0; i < s->n_lanes; i++) {
        s->lanes[i].idx = i;
        /* A fresh state names its lane and run, so that its final part has a name of its own. */
        int n = 0;
        n += snprintf(s->lanes[i].seed, sizeof s->lanes[i].seed, "{\"lmr\":\"1\"");
        if (s->n_lanes > 1)
            n += snprintf(s->lanes[i].seed + n, sizeof s->lanes[i].seed - (size_t)n,
                          ",\"lane\":\"%u\",\"lanes\":\"%u\"", i, s->n_lanes);
        if (p->run[0])
            n += snprintf(s->lanes[i].seed + n, sizeof s->lanes[i].seed - (size_t)n, ",\"run\":\"%s\"", p->run);
        snprintf(s->lanes[i].seed + n, sizeof s->lanes[i].seed - (size_t)n, "}");
        lmr_buf_init(&s->lanes[i].event, LMR_STREAM_SYNC_PAYLOAD_MAX_BYTES);
        lmr_buf_init(&s->lanes[i].res.payload, LMR_STREAM_SYNC_PAYLOAD_MAX_BYTES);
    }
    json_t *saved = json_object_get(p->saved_positions, info->id);
    if (saved) {
        const char *seq = json_string_value(json_object_get(saved, "sequenceNumber"));
        snprintf(s->ckpt_seq, sizeof s->ckpt_seq, "%s", seq ? seq : "");
        /* New standard input is new data: a shard that cannot be read again is never finished. */
        s->ckpt_ended = p->o->source->replayable && json_is_true(json_object_get(saved, "ended"));
    }
    /* Lane back-pointers are fixed up after every realloc. */
    for (size_t i = 0; i < p->n_shards; i++)
        for (uint32_t l = 0; l < p->shards[i].n_lanes; l++)
            p->shards[i].lanes[l].shard = &p->shards[i];
    return LMR_OK;
}

enum lmr_result lmr_poller_list_shards(struct poller *p, struct lmr_err *err)
{
    struct lmr_stream_shard_info *infos = NULL;
    size_t n = 0;
    enum lmr_result r = p->o->source->vtable->list_shards(p->o->source, &infos, &n, err);
    for (size_t i = 0; i < n && !r; i++)
        if (!find_shard(p, infos[i].id))
            r = add_shard(p, &infos[i]);
    free(infos);
    p->last_list_mono_ms = lmr_poller_mono_ms();
    return r;
}

static bool lane_idle(const struct lane *l)
{
    return !l->count && !l->n_wins;
}

/* Has this shard delivered and processed everything it ever will? */
bool lmr_poller_shard_finished(const struct shard *s)
{
    if (s->ckpt_ended)
        return true;
    if (!s->started || !s->ended || s->n_marks)
        return false;
    for (uint32_t i = 0; i < s->n_lanes; i++)
        if (!lane_idle(&s->lanes[i]))
            return false;
    return true;
}

static bool parent_done(struct poller *p, const char *parent_id)
{
    if (!*parent_id)
        return true;
    struct shard *parent = find_shard(p, parent_id);
    return !parent || lmr_poller_shard_finished(parent); /* a parent past retention is gone: nothing to wait for */
}

enum lmr_result lmr_poller_start_shards(struct poller *p, struct lmr_err *err)
{
    for (size_t i = 0; i < p->n_shards; i++) {
        struct shard *s = &p->shards[i];
        if (s->started || s->ckpt_ended)
            continue;
        /* Parents first, so that every key keeps its order across a reshard. */
        if (!parent_done(p, s->info.parent_id) || !parent_done(p, s->info.adjacent_parent_id))
            continue;
        struct lmr_stream_position pos = p->o->starting_position;
        if (*s->ckpt_seq) {
            pos.type = LMR_STREAM_AFTER_SEQUENCE_NUMBER;
            snprintf(pos.sequence_number, sizeof pos.sequence_number, "%s", s->ckpt_seq);
        } else if (*s->info.parent_id) {
            pos.type = LMR_STREAM_TRIM_HORIZON; /* a child continues where its parents ended */
        }
        enum lmr_result r = p->o->source->vtable->open_shard(p->o->source, s->info.id, &pos, &s->reader, err);
        if (r)
            return lmr_err_prefix(err, "opening %s of %s: ", s->info.id, p->o->source->name);
        s->started = true;
        LMR_INFO("stream: reading %s from %s%s%s", s->info.id, lmr_stream_position_type_name(pos.type),
                 *s->ckpt_seq ? " " : "", s->ckpt_seq);
    }
    return LMR_OK;
}

uint64_t lmr_poller_oldest_window(struct poller *p, bool *any)
{
    uint64_t w = UINT64_MAX;
    for (size_t i = 0; i < p->n_shards; i++) {
        struct shard *s = &p->shards[i];
        for (size_t m = 0; m < s->n_marks; m++)
            if (s->marks[m].window < w)
                w = s->marks[m].window;
        for (uint32_t l = 0; l < s->n_lanes; l++) {
            struct lane *ln = &s->lanes[l];
            if (ln->head && ln->head->window_start_ms < w)
                w = ln->head->window_start_ms;
            for (size_t k = 0; k < ln->n_wins; k++)
                if (ln->wins[k].window < w)
                    w = ln->wins[k].window;
        }
    }
    *any = w != UINT64_MAX;
    return w;
}

static enum lmr_result set_mark(struct shard *s, uint64_t window, const char *seq)
{
    if (s->n_marks && s->marks[s->n_marks - 1].window == window) {
        size_t n = strlen(seq);
        if (n >= SEQ_BYTES)
            n = SEQ_BYTES - 1;
        memcpy(s->marks[s->n_marks - 1].seq, seq, n);
        s->marks[s->n_marks - 1].seq[n] = '\0';
        return LMR_OK;
    }
    struct mark *m = realloc(s->marks, (s->n_marks + 1) * sizeof *m);
    if (!m)
        return LMR_ERR_NOMEM;
    s->marks = m;
    s->marks[s->n_marks].window = window;
    snprintf(s->marks[s->n_marks].seq, SEQ_BYTES, "%s", seq);
    s->n_marks++;
    return LMR_OK;
}

static size_t shard_buffered(const struct shard *s)
{
    size_t n = 0;
    for (uint32_t i = 0; i < s->n_lanes; i++)
        n += s->lanes[i].count;
    return n;
}

void lmr_poller_plan_reads(struct poller *p, bool ahead)
{
    bool any;
    uint64_t oldest = lmr_poller_oldest_window(p, &any);
    size_t batch = lmr_poller_batch_size(p);
    for (size_t i = 0; i < p->n_shards; i++) {
        struct shard *s = &p->shards[i];
        s->read_room = 0;
        if (!s->started || s->ended || s->staged_valid)
            continue;
        size_t cap = 4 * batch * s->n_lanes;
        if (cap < 4096)
            cap = 4096;
        /* A local source is one shard: 4,096 lines per lane, so that each lane's chain of invocations
           (poller_batch.c) is long enough to pay for the round that starts it. */
        if (p->o->source->arrival_is_read_time && cap < 4096 * s->n_lanes)
            cap = 4096 * s->n_lanes;
        if (ahead)
            cap *= 2;
        size_t buffered = shard_buffered(s);
        /* Read ahead at most one window past the oldest open one: memory stays bounded. */
        if (buffered < cap && !(any && s->last_window > oldest + p->window_ms))
            s->read_room = cap - buffered;
    }
}

enum lmr_result lmr_poller_read_raw(struct poller *p, uint64_t wait_ms, struct lmr_err *err)
{
    for (size_t i = 0; i < p->n_shards; i++) {
        struct shard *s = &p->shards[i];
        if (!s->read_room)
            continue;
        memset(&s->staged, 0, sizeof s->staged);
        enum lmr_result r = p->o->source->vtable->read(s->reader, s->read_room, wait_ms, &s->staged, err);
        s->read_room = 0;
        if (r) {
            lmr_stream_item_free(s->staged.head);
            memset(&s->staged, 0, sizeof s->staged);
            return lmr_err_prefix(err, "reading %s of %s: ", s->info.id, p->o->source->name);
        }
        s->staged_valid = true;
        wait_ms = 0; /* wait on the first shard only */
    }
    return LMR_OK;
}

/* Give the staged records to their lanes, windows assigned (the main loop, lanes idle). @return records. */
enum lmr_result lmr_poller_distribute(struct poller *p, size_t *got, struct lmr_err *err)
{
    *got = 0;
    for (size_t i = 0; i < p->n_shards; i++) {
        struct shard *s = &p->shards[i];
        if (!s->staged_valid)
            continue;
        struct lmr_stream_read_result res = s->staged;
        memset(&s->staged, 0, sizeof s->staged);
        s->staged_valid = false;
        s->caught_up = res.caught_up;
        s->millis_behind = res.millis_behind;
        for (struct lmr_stream_item *it = res.head, *next; it; it = next) {
            next = it->next;
            it->next = NULL;
            uint64_t w = lmr_stream_window_start(it->rec.arrival_ms, p->window_ms);
            /* Late records join the oldest window still open: windows never go backwards. */
            if (w < s->last_window)
                w = s->last_window;
            if (p->have_min_window && w < p->min_window)
                w = p->min_window;
            it->window_start_ms = w;
            s->last_window = w;
            struct lane *l =
                &s->lanes[s->n_lanes > 1
                              ? XXH3_64bits(it->rec.partition_key, strlen(it->rec.partition_key)) % s->n_lanes
                              : 0];
            it->lane = l->idx;
            if (l->tail)
                l->tail->next = it;
            else
                l->head = it;
            l->tail = it;
            l->count++;
            if (set_mark(s, w, it->rec.sequence_number)) {
                lmr_stream_item_free(next);
                return lmr_fail(err, LMR_ERR_NOMEM, "out of memory");
            }
            s->records++;
            p->stats.records_read++;
            (*got)++;
        }
        if (res.shard_ended) {
            s->ended = true;
            LMR_INFO("stream: %s has ended", s->info.id);
        }
    }
    return LMR_OK;
}

/* Read from every started shard that has room; @return records read. */
enum lmr_result lmr_poller_read_shards(struct poller *p, uint64_t wait_ms, size_t *got, struct lmr_err *err)
{
    lmr_poller_plan_reads(p, false);
    enum lmr_result r = lmr_poller_read_raw(p, wait_ms, err);
    enum lmr_result d = lmr_poller_distribute(p, got, err);
    return r ? r : d;
}

bool lmr_poller_has_item_beyond(const struct lane *l, uint64_t window)
{
    return l->tail && l->tail->window_start_ms > window;
}

/* Is the shard done delivering records of window w? */
bool lmr_poller_shard_done_with(struct poller *p, const struct shard *s, uint64_t w, uint64_t now_ms)
{
    if (!s->started || s->ended || s->ckpt_ended)
        return true;
    if (s->last_window > w)
        return true;
    return s->caught_up && now_ms >= w + p->window_ms + p->o->close_grace_ms;
}
