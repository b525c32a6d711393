#define _GNU_SOURCE
#include "stream/poller.h"

#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "stream/state.h"
#include "util/base64.h"
#include "util/log.h"
#include "util/misc.h"

#define SEQ_BYTES (LMR_STREAM_SEQ_MAX + 1)
#define EVENT_BUDGET_BYTES (5u * 1024u * 1024u) /* records part of one event, under the 6 MB sync limit */
#define CHECKPOINT_MAX_BYTES (16u * 1024u * 1024u)
#define OUTPUT_MAX_BYTES ((size_t)1 << 32)

/* A lane's state for one window. */
struct lane_win {
    uint64_t window;
    char *state;     /* JSON text of the state object, NULL = empty */
    char **partials; /* final states of early-terminated parts of this window */
    size_t n_partials;
    uint64_t records;
};

struct shard;

struct lane {
    struct shard *shard;
    uint32_t idx;
    struct lmr_stream_item *head, *tail; /* records not yet processed, in order */
    size_t count;
    struct lane_win *wins;
    size_t n_wins;
    /* Retries of the record at the head. */
    uint32_t retries;
    size_t bisect_limit; /* 0 = none, else the next batch takes at most this many */
    uint64_t retry_at_mono_ms;
    /* The invocation in flight (filled by the main thread, run by a worker). */
    struct lmr_stream_item *batch[LMR_STREAM_BATCH_SIZE_MAX];
    size_t batch_n;
    uint64_t batch_window;
    bool final, terminated_early;
    const char *state_in;
    struct lmr_buf event;
    struct lmr_invoke_result res;
    enum lmr_result inv_r;
    struct lmr_err inv_err;
};

struct mark {
    uint64_t window;
    char seq[SEQ_BYTES]; /* last record of this shard in this window */
};

struct shard {
    struct lmr_stream_shard_info info;
    struct lmr_stream_shard_reader *reader;
    bool started, ended;
    bool ckpt_ended;          /* the checkpoint says this shard is finished */
    char ckpt_seq[SEQ_BYTES]; /* committed position ("" = none) */
    struct mark *marks;
    size_t n_marks;
    uint64_t last_window;
    bool caught_up;
    uint64_t millis_behind;
    uint64_t records;
    struct lane lanes[LMR_STREAM_PARALLELIZATION_MAX];
    uint32_t n_lanes;
};

struct poller {
    const struct lmr_stream_poller_options *o;
    struct shard *shards;
    size_t n_shards;
    uint64_t window_ms;
    uint64_t min_window; /* no record goes to a window before this (the last committed window + 1) */
    bool have_min_window;
    char *ckpt_prefix;
    char *out_prefix;
    struct lmr_store *ckpt_store;
    struct lmr_stream_stats stats;
    uint64_t start_mono_ms;
    uint64_t last_list_mono_ms;
    json_t *saved_positions; /* checkpointed positions by shard id, applied when shards are added */
};

static uint64_t mono_ms(void)
{
    return lmr_mono_ns() / 1000000;
}

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

static char *join_key(const char *prefix, const char *rest)
{
    char *k;
    if (asprintf(&k, "%s%s%s", prefix, *prefix ? "/" : "", rest) < 0)
        return NULL;
    return k;
}

/* --- Checkpoints ----------------------------------------------------------------------------- */

/* Read a checkpoint object: {"window_start_ms": W, "shards": {id: {"sequenceNumber": s, "ended": b}}}. */
static enum lmr_result load_json(struct poller *p, const char *name, json_t **out, struct lmr_err *err)
{
    *out = NULL;
    char *key = join_key(p->ckpt_prefix, name);
    struct lmr_buf b;
    lmr_buf_init(&b, CHECKPOINT_MAX_BYTES);
    enum lmr_result r = lmr_store_get(p->ckpt_store, key, 0, LMR_STORE_TO_END, &b, err);
    if (r == LMR_ERR_NOT_FOUND) {
        lmr_err_clear(err);
        r = LMR_OK;
    } else if (!r) {
        json_error_t jerr;
        *out = json_loadb(b.data ? b.data : "", b.len, 0, &jerr);
        if (!*out || !json_is_object(json_object_get(*out, "shards")))
            r = lmr_fail(err, LMR_ERR_FORMAT, "checkpoint %s/%s is corrupt (%s); remove it to start over",
                         p->ckpt_store->root_uri, key, *out ? "no shards" : jerr.text);
    }
    lmr_buf_clean_up(&b);
    free(key);
    return r;
}

static char *window_key(struct poller *p, uint64_t window)
{
    char iso[40], rest[80];
    snprintf(rest, sizeof rest, "window=%s/part-00000", lmr_stream_iso8601(window, iso, sizeof iso));
    return join_key(p->out_prefix, rest);
}

static struct shard *find_shard(struct poller *p, const char *id)
{
    for (size_t i = 0; i < p->n_shards; i++)
        if (!strcmp(p->shards[i].info.id, id))
            return &p->shards[i];
    return NULL;
}

static enum lmr_result load_checkpoint(struct poller *p, struct lmr_err *err)
{
    json_t *ckpt, *pending;
    enum lmr_result r = load_json(p, "checkpoint.json", &ckpt, err);
    if (r)
        return r;
    if ((r = load_json(p, "pending.json", &pending, err))) {
        json_decref(ckpt);
        return r;
    }
    json_t *use = ckpt;
    if (pending) {
        uint64_t pw = (uint64_t)json_integer_value(json_object_get(pending, "window_start_ms"));
        uint64_t cw = ckpt ? (uint64_t)json_integer_value(json_object_get(ckpt, "window_start_ms")) : 0;
        if (!ckpt || pw > cw) {
            char *key = window_key(p, pw);
            uint64_t size;
            enum lmr_result hr = lmr_store_head(p->o->output, key, &size, NULL);
            free(key);
            if (hr == LMR_OK) {
                LMR_INFO("stream: adopting the checkpoint of window %" PRIu64 " (committed by an earlier run)", pw);
                use = pending;
            }
        }
    }
    if (use) {
        json_t *w = json_object_get(use, "window_start_ms");
        json_t *wms = json_object_get(use, "window_ms");
        if (json_is_integer(wms) && (uint64_t)json_integer_value(wms) != p->window_ms)
            LMR_WARN("stream: the checkpoint was written with --window %" PRIu64 " ms, now %" PRIu64 " ms",
                     (uint64_t)json_integer_value(wms), p->window_ms);
        if (json_is_integer(w)) {
            p->min_window = (uint64_t)json_integer_value(w) + p->window_ms;
            p->have_min_window = true;
        }
        p->saved_positions = json_incref(json_object_get(use, "shards"));
    }
    json_decref(ckpt);
    json_decref(pending);
    return LMR_OK;
}

static enum lmr_result write_positions(struct poller *p, const char *name, uint64_t window, struct lmr_err *err)
{
    json_t *root = json_object(), *shards = json_object();
    json_object_set_new(root, "version", json_integer(1));
    json_object_set_new(root, "window_start_ms", json_integer((json_int_t)window));
    json_object_set_new(root, "window_ms", json_integer((json_int_t)p->window_ms));
    char iso[40];
    json_object_set_new(root, "window_start", json_string(lmr_stream_iso8601(window, iso, sizeof iso)));
    for (size_t i = 0; i < p->n_shards; i++) {
        struct shard *s = &p->shards[i];
        const char *seq = s->ckpt_seq;
        for (size_t m = 0; m < s->n_marks; m++)
            if (s->marks[m].window <= window)
                seq = s->marks[m].seq;
        if (!*seq && !s->ckpt_ended)
            continue;
        json_t *e = json_object();
        json_object_set_new(e, "sequenceNumber", json_string(seq));
        json_object_set_new(e, "ended", json_boolean(s->ckpt_ended));
        json_object_set_new(shards, s->info.id, e);
    }
    json_object_set_new(root, "shards", shards);
    char *text = json_dumps(root, JSON_INDENT(1));
    json_decref(root);
    if (!text)
        return lmr_fail(err, LMR_ERR_NOMEM, "out of memory writing the checkpoint");
    char *key = join_key(p->ckpt_prefix, name);
    enum lmr_result r = lmr_store_put(p->ckpt_store, key, text, strlen(text), 0, err);
    if (r)
        lmr_err_prefix(err, "writing checkpoint %s: ", key);
    free(key);
    free(text);
    return r;
}

/* --- Shards and lanes ------------------------------------------------------------------------ */

static void lane_free_wins(struct lane *l)
{
    for (size_t i = 0; i < l->n_wins; i++) {
        free(l->wins[i].state);
        for (size_t j = 0; j < l->wins[i].n_partials; j++)
            free(l->wins[i].partials[j]);
        free(l->wins[i].partials);
    }
    free(l->wins);
    l->wins = NULL;
    l->n_wins = 0;
}

static struct lane_win *lane_win(struct lane *l, uint64_t window, bool create)
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

static void lane_drop_win(struct lane *l, uint64_t window)
{
    for (size_t i = 0; i < l->n_wins; i++) {
        if (l->wins[i].window != window)
            continue;
        free(l->wins[i].state);
        for (size_t j = 0; j < l->wins[i].n_partials; j++)
            free(l->wins[i].partials[j]);
        free(l->wins[i].partials);
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
        lmr_buf_init(&s->lanes[i].event, LMR_STREAM_SYNC_PAYLOAD_MAX_BYTES);
        lmr_buf_init(&s->lanes[i].res.payload, LMR_STREAM_SYNC_PAYLOAD_MAX_BYTES);
    }
    json_t *saved = json_object_get(p->saved_positions, info->id);
    if (saved) {
        const char *seq = json_string_value(json_object_get(saved, "sequenceNumber"));
        snprintf(s->ckpt_seq, sizeof s->ckpt_seq, "%s", seq ? seq : "");
        s->ckpt_ended = json_is_true(json_object_get(saved, "ended"));
    }
    /* Lane back-pointers are fixed up after every realloc. */
    for (size_t i = 0; i < p->n_shards; i++)
        for (uint32_t l = 0; l < p->shards[i].n_lanes; l++)
            p->shards[i].lanes[l].shard = &p->shards[i];
    return LMR_OK;
}

static enum lmr_result list_shards(struct poller *p, struct lmr_err *err)
{
    struct lmr_stream_shard_info *infos = NULL;
    size_t n = 0;
    enum lmr_result r = p->o->source->vtable->list_shards(p->o->source, &infos, &n, err);
    for (size_t i = 0; i < n && !r; i++)
        if (!find_shard(p, infos[i].id))
            r = add_shard(p, &infos[i]);
    free(infos);
    p->last_list_mono_ms = mono_ms();
    return r;
}

static bool lane_idle(const struct lane *l)
{
    return !l->count && !l->n_wins;
}

/* Has this shard delivered and processed everything it ever will? */
static bool shard_finished(const struct shard *s)
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
    return !parent || shard_finished(parent); /* a parent past retention is gone: nothing to wait for */
}

static enum lmr_result start_shards(struct poller *p, struct lmr_err *err)
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

static uint64_t oldest_window(struct poller *p, bool *any)
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

/* Read from every started shard that has room; @return records read. */
static enum lmr_result read_shards(struct poller *p, uint64_t wait_ms, size_t *got, struct lmr_err *err)
{
    *got = 0;
    bool any;
    uint64_t oldest = oldest_window(p, &any);
    size_t batch = p->o->batch_size ? p->o->batch_size : 100;
    for (size_t i = 0; i < p->n_shards; i++) {
        struct shard *s = &p->shards[i];
        if (!s->started || s->ended)
            continue;
        size_t cap = 4 * batch * s->n_lanes;
        if (cap < 4096)
            cap = 4096;
        if (shard_buffered(s) >= cap)
            continue;
        /* Read ahead at most one window past the oldest open one: memory stays bounded. */
        if (any && s->last_window > oldest + p->window_ms)
            continue;
        struct lmr_stream_read_result res = {0};
        enum lmr_result r = p->o->source->vtable->read(s->reader, cap - shard_buffered(s), wait_ms, &res, err);
        if (r) {
            lmr_stream_item_free(res.head);
            return lmr_err_prefix(err, "reading %s of %s: ", s->info.id, p->o->source->name);
        }
        wait_ms = 0; /* wait on the first shard only */
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

/* --- Invocations ----------------------------------------------------------------------------- */

/* The invoke result is reused across invocations of a lane (the lambda module owns its init/clean-up). */
static void result_reset(struct lmr_invoke_result *res)
{
    struct lmr_buf payload = res->payload;
    lmr_buf_reset(&payload);
    memset(res, 0, sizeof *res);
    res->payload = payload;
}

struct job_ctx {
    struct poller *p;
    struct lane *lane;
};

static void *run_one(void *arg)
{
    struct job_ctx *c = arg;
    struct poller *p = c->p;
    struct lane *l = c->lane;
    struct shard *s = l->shard;
    struct lmr_stream_record recs_stack[64];
    struct lmr_stream_record *recs = l->batch_n <= 64 ? recs_stack : malloc(l->batch_n * sizeof *recs);
    lmr_buf_reset(&l->event);
    result_reset(&l->res);
    lmr_err_clear(&l->inv_err);
    if (!recs) {
        l->inv_r = lmr_fail(&l->inv_err, LMR_ERR_NOMEM, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < l->batch_n; i++)
        recs[i] = l->batch[i]->rec;
    struct lmr_stream_event_info info = {
        .shard_id = s->info.id,
        .event_source_arn = p->o->source->arn,
        .region = p->o->region,
        .window_start_ms = l->batch_window,
        .window_end_ms = l->batch_window + p->window_ms,
        .state_json = l->state_in,
        .is_final_invoke = l->final,
        .is_terminated_early = l->terminated_early,
    };
    l->inv_r = lmr_stream_event_build(&l->event, &info, recs, l->batch_n, &l->inv_err);
    if (recs != recs_stack)
        free(recs);
    if (!l->inv_r)
        l->inv_r = lmr_invoke(p->o->invoker, p->o->function_name, l->event.data, l->event.len, LMR_INVOKE_SYNC, 0,
                              &l->res, &l->inv_err);
    return NULL;
}

/* Run the prepared invocations of lanes[0..n) concurrently. */
static void run_invocations(struct poller *p, struct lane **lanes, size_t n)
{
    struct job_ctx ctx[LMR_STREAM_PARALLELIZATION_MAX * 64];
    pthread_t th[LMR_STREAM_PARALLELIZATION_MAX * 64];
    bool started[LMR_STREAM_PARALLELIZATION_MAX * 64];
    for (size_t i = 0; i < n; i++) {
        ctx[i] = (struct job_ctx){p, lanes[i]};
        started[i] = n > 1 && !pthread_create(&th[i], NULL, run_one, &ctx[i]);
        if (!started[i])
            run_one(&ctx[i]);
    }
    for (size_t i = 0; i < n; i++)
        if (started[i])
            pthread_join(th[i], NULL);
    p->stats.invocations += n;
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
    char *key = join_key(p->ckpt_prefix, rest);
    struct lmr_err err;
    if (text && key && lmr_store_put(p->ckpt_store, key, text, strlen(text), 0, &err))
        LMR_WARN("stream: cannot write the failed batch descriptor %s: %s", key, err.msg);
    free(key);
    free(text);
}

/* Remove the first n records of the lane queue (they are in l->batch[0..n)). */
static void lane_pop(struct lane *l, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct lmr_stream_item *it = l->head;
        l->head = it->next;
        if (!l->head)
            l->tail = NULL;
        l->count--;
        free(it);
    }
}

static bool invocation_failed(struct lane *l)
{
    return l->inv_r || l->res.function_error[0] || l->res.status_code >= 300;
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

/* Make the final invoke for a lane's window state (also used for an early termination). */
static enum lmr_result final_invoke(struct poller *p, struct lane *l, uint64_t window, const char *state,
                                    bool terminated_early, char **state_out, struct lmr_err *err)
{
    for (unsigned attempt = 0;; attempt++) {
        l->batch_n = 0;
        l->batch_window = window;
        l->final = true;
        l->terminated_early = terminated_early;
        l->state_in = state;
        struct lane *one = l;
        run_invocations(p, &one, 1);
        struct lmr_stream_response resp;
        if (!invocation_failed(l) && !lmr_stream_response_parse(l->res.payload.data ? l->res.payload.data : "",
                                                                l->res.payload.len, &resp, &l->inv_err)) {
            *state_out = resp.state_json;
            resp.state_json = NULL;
            lmr_stream_response_clean_up(&resp);
            return LMR_OK;
        }
        /* As on AWS, processing of the shard waits until the final invoke succeeds. */
        p->stats.invoke_failures++;
        log_failure(l);
        if (p->o->stop && *p->o->stop)
            return lmr_fail(err, LMR_ERR_CANCELLED, "stopped while retrying the final invoke of %s", l->shard->info.id);
        lmr_sleep_ms(lmr_backoff_ms(attempt, 100, 5000));
    }
}

static bool has_item_beyond(const struct lane *l, uint64_t window)
{
    return l->tail && l->tail->window_start_ms > window;
}

/* Is the shard done delivering records of window w? */
static bool shard_done_with(struct poller *p, const struct shard *s, uint64_t w, uint64_t now_ms)
{
    if (!s->started || s->ended || s->ckpt_ended)
        return true;
    if (s->last_window > w)
        return true;
    return s->caught_up && now_ms >= w + p->window_ms + p->o->close_grace_ms;
}

/* Choose the next batch of a lane. @return true if it should be invoked now. */
static bool prepare_batch(struct poller *p, struct lane *l, uint64_t now_wall, uint64_t now_mono)
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
    size_t limit = p->o->batch_size ? p->o->batch_size : 100;
    if (l->bisect_limit && l->bisect_limit < limit)
        limit = l->bisect_limit;
    uint64_t w = l->head->window_start_ms;
    size_t n = 0, bytes = 0;
    for (struct lmr_stream_item *it = l->head; it && n < limit && it->window_start_ms == w; it = it->next) {
        size_t rb = lmr_base64_len(it->rec.len) + 400;
        if (n && bytes + rb > EVENT_BUDGET_BYTES)
            break;
        bytes += rb;
        l->batch[n++] = it;
    }
    l->batch_n = n;
    l->batch_window = w;
    l->final = false;
    l->terminated_early = false;
    struct lane_win *lw = lane_win(l, w, false);
    l->state_in = lw ? lw->state : NULL;
    /* Full batch, batching window passed, a retry, or nothing more can join this batch. */
    if (n == limit || bytes + 4096 > EVENT_BUDGET_BYTES || l->retries || l->bisect_limit)
        return true;
    if (n < l->count && l->batch[n - 1]->next && l->batch[n - 1]->next->window_start_ms != w)
        return true;
    if (has_item_beyond(l, w) || shard_done_with(p, l->shard, w, now_wall))
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
    l->retry_at_mono_ms = mono_ms() + lmr_backoff_ms(l->retries, 20, 2000);
}

static enum lmr_result process_result(struct poller *p, struct lane *l, struct lmr_err *err)
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
    {
        /* The returned state holds exactly the records before k. */
        struct lane_win *lw = lane_win(l, l->batch_window, true);
        if (!lw) {
            lmr_stream_response_clean_up(&resp);
            return lmr_fail(err, LMR_ERR_NOMEM, "out of memory");
        }
        free(lw->state);
        lw->state = resp.state_json;
        resp.state_json = NULL;
        lw->records += k;
        p->stats.records_processed += k;
        lane_pop(l, k);
        if (resp.state_full) {
            /* The state reached its limit: end this part of the window early, go on with a fresh state. */
            char *final_state = NULL;
            enum lmr_result r = final_invoke(p, l, lw->window, lw->state, true, &final_state, err);
            lw = lane_win(l, l->batch_window, false);
            if (r) {
                lmr_stream_response_clean_up(&resp);
                return r;
            }
            char **parts = realloc(lw->partials, (lw->n_partials + 1) * sizeof *parts);
            if (!parts) {
                free(final_state);
                lmr_stream_response_clean_up(&resp);
                return lmr_fail(err, LMR_ERR_NOMEM, "out of memory");
            }
            lw->partials = parts;
            lw->partials[lw->n_partials++] = final_state;
            free(lw->state);
            lw->state = NULL;
            p->stats.windows_terminated_early++;
            lmr_stream_response_clean_up(&resp);
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
    lmr_stream_response_clean_up(&resp);
    return LMR_OK;
}

/* --- Window close ----------------------------------------------------------------------------- */

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
            struct lane_win *lw = lane_win(l, w, false);
            if (!lw)
                continue;
            any_state = true;
            records += lw->records;
            if (lw->state || !lw->n_partials) {
                char *final_state = NULL;
                r = final_invoke(p, l, w, lw->state, false, &final_state, err);
                lw = lane_win(l, w, false);
                if (!r)
                    r = lmr_stream_state_merge_text(st, p->o->job, p->o->job_state, final_state, NULL, err);
                free(final_state);
            }
            for (size_t k = 0; k < lw->n_partials && !r; k++)
                r = lmr_stream_state_merge_text(st, p->o->job, p->o->job_state, lw->partials[k], NULL, err);
        }
    }
    char *key = window_key(p, w);
    bool already = false;
    if (!r && any_state) {
        struct lmr_buf lines;
        lmr_buf_init(&lines, OUTPUT_MAX_BYTES);
        r = lmr_stream_state_reduce_lines(st, p->o->job, p->o->job_state, &lines, err);
        if (!r)
            r = write_positions(p, "pending.json", w, err);
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
            lane_drop_win(&s->lanes[li], w);
        if (s->started && s->ended && shard_finished(s))
            s->ckpt_ended = true;
    }
    r = write_positions(p, "checkpoint.json", w, err);
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
static enum lmr_result maybe_close_window(struct poller *p, bool *closed, struct lmr_err *err)
{
    *closed = false;
    bool any;
    uint64_t w = oldest_window(p, &any);
    if (!any)
        return LMR_OK;
    uint64_t now = lmr_wall_ms();
    for (size_t i = 0; i < p->n_shards; i++) {
        struct shard *s = &p->shards[i];
        if (!shard_done_with(p, s, w, now))
            return LMR_OK;
        for (uint32_t l = 0; l < s->n_lanes; l++)
            if (s->lanes[l].head && s->lanes[l].head->window_start_ms <= w)
                return LMR_OK;
    }
    *closed = true;
    return close_window(p, w, err);
}

static void fill_stats(struct poller *p)
{
    p->stats.elapsed_s = (double)(mono_ms() - p->start_mono_ms) / 1000.0;
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
        if (!shard_finished(&p->shards[i]))
            return false;
    bool any;
    oldest_window(p, &any);
    return !any;
}

enum lmr_result lmr_stream_poll(const struct lmr_stream_poller_options *o, struct lmr_stream_stats *stats,
                                struct lmr_err *err)
{
    enum lmr_result r = lmr_stream_poller_check(o, err);
    if (r)
        return r;
    struct poller p = {.o = o, .window_ms = o->window_ms};
    p.start_mono_ms = mono_ms();
    p.out_prefix = strdup(o->output_prefix ? o->output_prefix : "");
    p.ckpt_store = o->checkpoint ? o->checkpoint : o->output;
    p.ckpt_prefix = o->checkpoint_prefix ? strdup(o->checkpoint_prefix) : join_key(p.out_prefix, "_checkpoint");
    if (!p.out_prefix || !p.ckpt_prefix) {
        r = lmr_fail(err, LMR_ERR_NOMEM, "out of memory");
        goto done;
    }
    if ((r = load_checkpoint(&p, err)) || (r = list_shards(&p, err)))
        goto done;
    if (!o->source->replayable && p.saved_positions && json_object_size(p.saved_positions))
        LMR_WARN("stream: %s cannot be read again: records after the checkpoint that an earlier run had read are "
                 "not in this run",
                 o->source->name);
    uint64_t relist = o->relist_interval_ms ? o->relist_interval_ms : 10000;
    uint64_t progress_every = o->progress_interval_ms ? o->progress_interval_ms : 1000;
    uint64_t last_progress = mono_ms();
    struct lane **ready = NULL;
    size_t ready_cap = 0;
    while (!(o->stop && *o->stop)) {
        if (mono_ms() - p.last_list_mono_ms >= relist && (r = list_shards(&p, err)))
            break;
        if ((r = start_shards(&p, err)))
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
        uint64_t now_wall = lmr_wall_ms(), now_mono = mono_ms();
        for (size_t i = 0; i < p.n_shards; i++)
            for (uint32_t l = 0; l < p.shards[i].n_lanes; l++)
                if (prepare_batch(&p, &p.shards[i].lanes[l], now_wall, now_mono))
                    ready[n_ready++] = &p.shards[i].lanes[l];
        if ((r = read_shards(&p, n_ready ? 0 : 20, &got, err)))
            break;
        if (n_ready) {
            /* Invoke in groups that fit the thread table. */
            for (size_t off = 0; off < n_ready; off += LMR_STREAM_PARALLELIZATION_MAX * 64) {
                size_t n = n_ready - off < LMR_STREAM_PARALLELIZATION_MAX * 64 ? n_ready - off
                                                                               : LMR_STREAM_PARALLELIZATION_MAX * 64;
                run_invocations(&p, ready + off, n);
            }
            for (size_t i = 0; i < n_ready && !r; i++)
                r = process_result(&p, ready[i], err);
            if (r)
                break;
        }
        bool closed = true;
        while (closed && !r && !(o->stop && *o->stop))
            r = maybe_close_window(&p, &closed, err);
        if (r)
            break;
        if (o->on_progress && mono_ms() - last_progress >= progress_every) {
            last_progress = mono_ms();
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
    fill_stats(&p);
    for (size_t i = 0; i < p.n_shards; i++) {
        struct shard *s = &p.shards[i];
        if (s->reader)
            o->source->vtable->close_shard(s->reader);
        for (uint32_t l = 0; l < s->n_lanes; l++) {
            lmr_stream_item_free(s->lanes[l].head);
            lane_free_wins(&s->lanes[l]);
            lmr_buf_clean_up(&s->lanes[l].event);
            lmr_buf_clean_up(&s->lanes[l].res.payload);
        }
        free(s->marks);
    }
    free(p.shards);
    free(p.out_prefix);
    free(p.ckpt_prefix);
    json_decref(p.saved_positions);
    if (stats)
        *stats = p.stats;
    else
        lmr_stream_stats_clean_up(&p.stats);
    return r;
}
