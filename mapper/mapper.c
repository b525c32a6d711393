/*
 * A map task: for each shard, stream its lines into the job's map; map emits into the
 * combining collector (shuffle/map_output), which writes ONE intermediate object with a zstd
 * frame per reducer. Then the task commits with a create-only record naming that object:
 * a late or duplicate attempt loses the race and removes its own object, so nothing that a
 * reducer reads can change after the commit.
 * Map-only jobs write their output part (part-m-NNNNN) directly, also create-only.
 */
#include "mapper.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "job/counters.h"
#include "job/part_owner.h"
#include "job/registry.h"
#include "job/task.h"
#include "job/task_log.h"
#include "util/log.h"
#include "job/text_output.h"
#include "lambda/memory.h"
#include "shard_reader.h"
#include "shuffle/map_output.h"
#include "store/store_set.h"
#include "util/fault.h"
#include "util/misc.h"

/*
 * Rebalancing (docs/ARCHITECTURE.md): while reading, the task looks for the coordinator's
 * WORK/map/m-NNNNN/split-request; when it appears the task decides where to stop (half of what
 * remains) and writes the decision, create-only, as WORK/map/m-NNNNN/cut.json ({"shard",
 * "offset"}, or {"declined": true}); the first decision of any attempt is the task's, and every
 * later attempt honours it. The commit record names the cut as "end".
 */
struct split_state {
    bool polling; /* looking for the request (no decision yet) */
    bool cut;     /* the task's input ends at `at` */
    struct lmr_map_cut at;
    size_t cur;                          /* the shard being read */
    uint64_t every_bytes, last_fetched;  /* poll rate: a look per every_bytes fetched from the store */
    const struct lmr_shard_stats *stats; /* the task's input so far */
    double read_start_ms;                /* monotonic, when its input began */
    uint64_t polls;
    struct lmr_store *work;
    char *request_key, *cut_key;
    enum lmr_result failed; /* a decision that could not be written or honoured (ends the task) */
    struct lmr_err err;
};

struct map_run {
    const struct lmr_map_task *task;
    struct split_state split;
    const struct lmr_job_ops *ops;
    void *job_state;
    struct lmr_emitter *out;
    struct lmr_job_counters counters;
    const struct lmr_shard *shard;
    uint64_t row;     /* line number within the shard, 1-based, for error messages */
    uint64_t lines;   /* lines mapped by this task so far */
    bool kill_midway; /* fault injection (tests): die after some input */
    double read_ms;   /* the time the input took (map included), for the response */
};

static enum lmr_result on_line(void *user_data, struct lmr_slice line, uint64_t offset, struct lmr_err *err)
{
    struct map_run *m = user_data;
    m->row++;
    if (m->kill_midway && ++m->lines == 64)
        raise(SIGKILL);
    if (m->ops->map(m->job_state, line, m->out, &m->counters)) {
        if (lmr_job_counters_error(&m->counters))
            return lmr_fail(err, LMR_ERR_FUNCTION, "job '%s': %s", m->ops->name, lmr_job_counters_error(&m->counters));
        return lmr_fail(err, LMR_ERR_FORMAT,
                        "job '%s' rejected row %llu of the shard at byte %llu of %s/%s (line starting at byte %llu); "
                        "fix the input or run without --strict to skip malformed rows",
                        m->ops->name, (unsigned long long)m->row, (unsigned long long)m->shard->offset,
                        m->shard->object.root, m->shard->object.key, (unsigned long long)offset);
    }
    return LMR_OK;
}

static enum lmr_result on_block(void *user_data, struct lmr_slice block, uint64_t lines, uint64_t offset,
                                struct lmr_err *err)
{
    struct map_run *m = user_data;
    uint64_t first_row = m->row + 1;
    m->row += lines;
    if (m->ops->map_block(m->job_state, block, m->out, &m->counters)) {
        if (lmr_job_counters_error(&m->counters))
            return lmr_fail(err, LMR_ERR_FUNCTION, "job '%s': %s", m->ops->name, lmr_job_counters_error(&m->counters));
        return lmr_fail(err, LMR_ERR_FORMAT,
                        "job '%s' rejected a row among rows %llu-%llu of the shard at byte %llu of %s/%s (lines from "
                        "byte %llu); fix the input or run without --strict to skip malformed rows",
                        m->ops->name, (unsigned long long)first_row, (unsigned long long)m->row,
                        (unsigned long long)m->shard->offset, m->shard->object.root, m->shard->object.key,
                        (unsigned long long)offset);
    }
    return LMR_OK;
}

/* The job's optional start hook for shard i (its input object and byte range). */
static enum lmr_result start_shard(struct map_run *m, size_t i, struct lmr_err *err)
{
    if (!m->ops->start)
        return LMR_OK;
    const struct lmr_shard *sh = &m->task->shards[i];
    char task_id[16], uri[2048], msg[LMR_ERR_MSG_BYTES] = "";
    snprintf(task_id, sizeof task_id, "m-%05u", m->task->task);
    /* file:// roots are folders: name the file as a path, as a user wrote it */
    const char *root = sh->object.root;
    if (!strncmp(root, "file://", 7))
        root += 7;
    snprintf(uri, sizeof uri, "%s%s%s", root, root[0] && root[strlen(root) - 1] != '/' ? "/" : "", sh->object.key);
    struct lmr_task_info info = {.role = "map",
                                 .task_id = task_id,
                                 .attempt = m->task->attempt,
                                 .input_uri = uri,
                                 .input_offset = sh->offset,
                                 .input_length = sh->length,
                                 .memory_mb = m->task->job.memory_mb};
    if (m->ops->start(m->job_state, &info, msg, sizeof msg))
        return lmr_fail(err, LMR_ERR_FUNCTION, "job '%s': %s", m->ops->name, msg[0] ? msg : "start failed");
    return LMR_OK;
}

static enum lmr_result finish_shard(struct map_run *m, struct lmr_err *err)
{
    if (m->ops->finish && m->ops->finish(m->job_state, m->out, &m->counters)) {
        const char *e = lmr_job_counters_error(&m->counters);
        return lmr_fail(err, LMR_ERR_FUNCTION, "job '%s': %s", m->ops->name,
                        e ? e : "finish failed (the job gave no reason)");
    }
    return LMR_OK;
}

/* Write the decision (create-only); when another attempt decided first, adopt its decision if this attempt has
 * not read past its cut (cur, pos), else fail (a retry honours it). */
static void split_decide(struct map_run *m, const struct lmr_map_cut *want, uint64_t pos)
{
    struct split_state *sp = &m->split;
    const struct lmr_map_task *t = m->task;
    sp->polling = false;
    json_t *rec = want ? lmr_map_cut_to_json(want) : json_pack("{s:b}", "declined", 1);
    if (rec)
        json_object_set_new(rec, "attempt_id", json_string(t->attempt_id));
    char *text = rec ? json_dumps(rec, JSON_COMPACT) : NULL;
    json_decref(rec);
    struct lmr_err err = {0};
    enum lmr_result r =
        text ? lmr_store_put(sp->work, sp->cut_key, text, strlen(text), LMR_PUT_CREATE_ONLY, &err) : LMR_ERR_NOMEM;
    free(text);
    if (!r) {
        if (want) {
            sp->cut = true;
            sp->at = *want;
            LMR_INFO("map task %u attempt %u: split: the input now ends at byte %llu of shard %zu (%s); the rest goes "
                     "to a tail task",
                     t->task, t->attempt, (unsigned long long)want->offset, want->shard,
                     t->shards[want->shard].object.key);
        } else {
            LMR_INFO("map task %u attempt %u: split declined (too little input left)", t->task, t->attempt);
        }
        if (want && lmr_fault("map-cut-kill", t->task, t->attempt))
            raise(SIGKILL);
        return;
    }
    if (r != LMR_ERR_EXISTS) {
        sp->failed = r;
        sp->err = err;
        lmr_err_prefix(&sp->err, "map task %u: writing its split decision %s", t->task, sp->cut_key);
        return;
    }
    /* Another attempt decided first: its decision is the task's. */
    struct lmr_buf b;
    lmr_buf_init(&b, 64 * 1024);
    json_t *j = lmr_store_get(sp->work, sp->cut_key, 0, LMR_STORE_TO_END, &b, &err) == LMR_OK
                    ? json_loadb(b.data ? b.data : "", b.len, 0, NULL)
                    : NULL;
    lmr_buf_clean_up(&b);
    struct lmr_map_cut at;
    if (!j) {
        sp->failed = lmr_fail(&sp->err, LMR_ERR_FORMAT, "map task %u: its split decision %s cannot be read", t->task,
                              sp->cut_key);
    } else if (lmr_map_cut_from_json(j, &at)) {
        if (lmr_map_cut_check(t->shards, t->nshards, &at, &sp->err))
            sp->failed = LMR_ERR_FORMAT;
        else if (at.shard < sp->cur || (at.shard == sp->cur && at.offset < pos))
            sp->failed = lmr_fail(&sp->err, LMR_ERR_FUNCTION,
                                  "map task %u attempt %u: another attempt cut the task's input at byte %llu of shard "
                                  "%zu, which this attempt has read past; a retry honours the cut",
                                  t->task, t->attempt, (unsigned long long)at.offset, at.shard);
        else {
            sp->cut = true;
            sp->at = at;
        }
    }
    json_decref(j);
}

/*
 * How many bytes more than half of the rest the tail should get (negative: fewer). After its
 * input the task still finishes its output (sorting, compressing and writing the combined table:
 * about a third of its input's time for Query 2, 70-100 ms of ~300), and a tail of less input
 * finishes faster, but starts later: O after the cut (its invocation; LMR_SPLIT_TAIL_START_MS,
 * default 20), plus, when a peer asked as its own input ended, what remains of that peer's
 * finish (about as long as this task's, phi E, less the request's age). With rate rho (bytes/ms
 * so far), E ms of input so far, finish share phi and that wait W, both end together when the
 * tail gets R/2 + rho (phi E - O - W) / (2 (1 + phi)).
 */
#define MAP_FINISH_SHARE 0.33
#define TAIL_START_MS 20.0
static int64_t extra_tail_bytes(const struct split_state *sp, double peer_wait_ms)
{
    double e = lmr_mono_ms() - sp->read_start_ms, bytes = sp->stats ? (double)sp->stats->bytes_read : 0;
    if (e <= 0 || bytes <= 0)
        return 0;
    const char *o = getenv("LMR_SPLIT_TAIL_START_MS");
    double start = o && *o ? strtod(o, NULL) : TAIL_START_MS;
    double wait = peer_wait_ms > 0 ? peer_wait_ms : 0;
    return (int64_t)(bytes / e * (MAP_FINISH_SHARE * e - start - wait) / (2 * (1 + MAP_FINISH_SHARE)));
}

/* How long the tail will wait for the slot of the peer that asked (request) as its input ended. */
static double peer_wait_ms(const struct split_state *sp, const json_t *request)
{
    double at = lmr_json_double(request, "at_ms", 0);
    if (!json_object_get(request, "from") || at <= 0)
        return 0;
    double e = lmr_mono_ms() - sp->read_start_ms, age = (double)lmr_wall_ms() - at;
    return MAP_FINISH_SHARE * e - (age > 0 ? age : 0);
}

/* Is there a split request? Rate-limited: a HEAD every chunk on a file store (a stat), every every_bytes else. */
static void split_poll(struct map_run *m, uint64_t pos)
{
    struct split_state *sp = &m->split;
    if (!sp->polling || sp->failed)
        return;
    uint64_t fetched = sp->stats ? sp->stats->bytes_read : 0;
    if (fetched - sp->last_fetched < sp->every_bytes)
        return;
    sp->last_fetched = fetched;
    const struct lmr_map_task *t = m->task;
    struct lmr_map_cut at;
    if (!lmr_map_cut_decide(t->shards, t->nshards, sp->cur, pos, t->split_min_bytes, extra_tail_bytes(sp, false),
                            &at)) {
        sp->polling = false; /* what remains only shrinks: no split can come any more */
        return;
    }
    sp->polls++;
    if (lmr_store_head(sp->work, sp->request_key, NULL, NULL) != LMR_OK)
        return;
    /* A peer that finished its input asked: the tail waits for the end of its finish (its slot). */
    struct lmr_buf b;
    lmr_buf_init(&b, 4096);
    json_t *req = lmr_store_get(sp->work, sp->request_key, 0, LMR_STORE_TO_END, &b, NULL) == LMR_OK
                      ? json_loadb(b.data ? b.data : "", b.len, 0, NULL)
                      : NULL;
    lmr_buf_clean_up(&b);
    double wait = peer_wait_ms(sp, req);
    json_decref(req);
    if (wait > 0 &&
        !lmr_map_cut_decide(t->shards, t->nshards, sp->cur, pos, t->split_min_bytes, extra_tail_bytes(sp, wait), &at)) {
        sp->polling = false;
        return;
    }
    split_decide(m, &at, pos);
}

/* The shard reader's hook: poll, and shorten the current shard when the cut falls in it. */
static uint64_t on_refill(void *user_data, uint64_t pos, uint64_t end)
{
    struct map_run *m = user_data;
    struct split_state *sp = &m->split;
    const struct lmr_shard *sh = &m->task->shards[sp->cur];
    bool whole = sh->codec != LMR_CODEC_NONE;
    split_poll(m, whole ? sh->offset : pos);
    if (sp->failed)
        return whole ? end : pos; /* stop reading: the task fails */
    if (sp->cut && sp->at.shard == sp->cur && !whole)
        return sp->at.offset;
    return end;
}

/* Map the task's shards into `out`: a block of lines at a time when the job can (and no fault
   injection counts lines). */
static enum lmr_result map_shards(const struct lmr_map_task *t, struct lmr_store_set *stores, struct map_run *m,
                                  const struct lmr_shard_read_limits *limits, struct lmr_shard_stats *in,
                                  struct lmr_err *err)
{
    struct split_state *sp = &m->split;
    sp->stats = in;
    sp->read_start_ms = lmr_mono_ms();
    struct lmr_shard_read_limits lim = *limits;
    if (sp->polling) {
        lim.cut = on_refill;
        lim.cut_user_data = m;
    }
    for (size_t i = 0; i < t->nshards; i++) {
        sp->cur = i;
        split_poll(m, t->shards[i].offset); /* (a request between shards) */
        if (sp->failed)
            break;
        if (sp->cut && i >= lmr_map_head_shards(t->shards, t->nshards, &sp->at))
            break; /* the rest is the tail's */
        struct lmr_shard sh = t->shards[i];
        if (sp->cut && sp->at.shard == i)
            sh.length = sp->at.offset - sh.offset;
        struct lmr_store *s;
        enum lmr_result r = lmr_store_set_get(stores, sh.object.root, &s, err);
        if (r)
            return r;
        m->shard = &t->shards[i];
        m->row = 0;
        if ((r = start_shard(m, i, err)))
            return r;
        bool blocks = m->ops->map_block && !m->kill_midway;
        r = lmr_shard_read(s, &sh, &lim, blocks ? on_block : NULL, on_line, m, in, err);
        if (!r)
            r = finish_shard(m, err);
        if (r)
            return r;
        if (sp->failed)
            break;
    }
    if (sp->failed) {
        if (err)
            *err = sp->err;
        return sp->failed;
    }
    return LMR_OK;
}

static json_t *frames_json(const struct lmr_map_output_index *idx)
{
    json_t *a = json_array();
    for (uint32_t p = 0; p < idx->partitions; p++) {
        const struct lmr_partition_frame *f = &idx->frames[p];
        json_array_append_new(a, json_pack("[I, I, I, I]", (json_int_t)f->offset, (json_int_t)f->size_bytes,
                                           (json_int_t)f->records, (json_int_t)f->raw_bytes));
    }
    return a;
}

/* Has another attempt committed this task already? Then this one writes nothing more: its result
 * would be removed anyway, and after the job's end (a speculative backup won and the coordinator
 * cleaned up) nothing may reappear in the work location. */
static bool committed_by_other(const struct lmr_map_task *t, struct lmr_store *work)
{
    char *key = lmr_work_key(&t->job, "map/m-%05u/commit.json", t->task);
    bool yes = key && lmr_store_head(work, key, NULL, NULL) == LMR_OK;
    free(key);
    if (yes)
        LMR_INFO("map task %u attempt %u (%s): another attempt committed the task first; this one stops before "
                 "its commit and leaves no output",
                 t->task, t->attempt, t->attempt_id);
    return yes;
}

/* Write the create-only commit record; *won is false when another attempt committed first. */
static enum lmr_result commit_task(const struct lmr_map_task *t, struct lmr_store *work, json_t *record, bool *won,
                                   struct lmr_err *err)
{
    char *key = lmr_work_key(&t->job, "map/m-%05u/commit.json", t->task);
    char *text = json_dumps(record, JSON_COMPACT);
    enum lmr_result r = key && text ? LMR_OK : LMR_ERR_NOMEM;
    if (!r)
        r = lmr_store_put(work, key, text, strlen(text), LMR_PUT_CREATE_ONLY, err);
    *won = r == LMR_OK;
    if (r == LMR_ERR_EXISTS) {
        lmr_err_clear(err);
        r = LMR_OK;
    }
    free(key);
    free(text);
    return r;
}

/* This task's input is done and its slot idles after its finish: ask its peer of the last wave to split now
 * (create-only: the coordinator's request for it, if any, is the same object). */
static void ask_peer(const struct lmr_map_task *t, struct lmr_store *work)
{
    char *key = lmr_work_key(&t->job, "map/m-%05u/split-request", t->peer);
    char body[128];
    snprintf(body, sizeof body, "{\"from\": %u, \"reason\": \"input done\", \"at_ms\": %llu}", t->task,
             (unsigned long long)lmr_wall_ms());
    struct lmr_err err = {0};
    enum lmr_result r = key ? lmr_store_put(work, key, body, strlen(body), LMR_PUT_CREATE_ONLY, &err) : LMR_ERR_NOMEM;
    if (r && r != LMR_ERR_EXISTS)
        LMR_WARN("map task %u: could not ask task %u to split: %s", t->task, t->peer, err.msg);
    else if (!r)
        LMR_INFO("map task %u: its input is done: asked task %u to split", t->task, t->peer);
    free(key);
}

/* Rebalancing's set-up: the keys, the poll rate, and (check_cut) the decision an earlier attempt made. */
static enum lmr_result split_setup(struct map_run *m, struct lmr_store *work, struct lmr_err *err)
{
    const struct lmr_map_task *t = m->task;
    struct split_state *sp = &m->split;
    sp->work = work;
    sp->request_key = lmr_work_key(&t->job, "map/m-%05u/split-request", t->task);
    sp->cut_key = lmr_work_key(&t->job, "map/m-%05u/cut.json", t->task);
    if (!sp->request_key || !sp->cut_key)
        return LMR_ERR_NOMEM;
    /* A stat on a file store costs microseconds: every 4 MiB fetched (about 4 ms of input); a HEAD elsewhere:
     * every 32 MiB; at most every half minimum. The first look is after that much input too. A task too small
     * to split never looks. */
    sp->every_bytes = strncmp(work->root_uri, "file://", 7) ? 32u << 20 : 4u << 20;
    if (sp->every_bytes > t->split_min_bytes / 2) /* (small minimums: tests) */
        sp->every_bytes = t->split_min_bytes / 2;
    struct lmr_map_cut at;
    sp->polling = t->split_min_bytes > 0 && lmr_map_cut_decide(t->shards, t->nshards, 0, 0, t->split_min_bytes, 0, &at);
    if (!t->check_cut)
        return LMR_OK;
    struct lmr_buf b;
    lmr_buf_init(&b, 64 * 1024);
    struct lmr_err gerr = {0};
    enum lmr_result r = lmr_store_get(work, sp->cut_key, 0, LMR_STORE_TO_END, &b, &gerr);
    json_t *j = r ? NULL : json_loadb(b.data ? b.data : "", b.len, 0, NULL);
    lmr_buf_clean_up(&b);
    if (r == LMR_ERR_NOT_FOUND)
        return LMR_OK;
    if (r) {
        if (err)
            *err = gerr;
        lmr_err_prefix(err, "map task %u: reading its split decision %s", t->task, sp->cut_key);
        return r;
    }
    sp->polling = false; /* decided already */
    if (lmr_map_cut_from_json(j, &sp->at)) {
        r = lmr_map_cut_check(t->shards, t->nshards, &sp->at, err);
        sp->cut = r == LMR_OK;
        if (!r)
            LMR_INFO("map task %u attempt %u: an earlier attempt cut the task at byte %llu of shard %zu: this one "
                     "stops there too",
                     t->task, t->attempt, (unsigned long long)sp->at.offset, sp->at.shard);
    } else if (!json_is_true(json_object_get(j, "declined"))) {
        r = lmr_fail(err, LMR_ERR_FORMAT, "map task %u: its split decision %s is not a cut", t->task, sp->cut_key);
    }
    json_decref(j);
    return r;
}

enum lmr_result lmr_mapper_handle(void *user_data, const struct lmr_runtime_context *ctx, const char *event,
                                  size_t event_len, struct lmr_buf *response, struct lmr_err *err)
{
    double t0 = lmr_mono_ms();
    struct lmr_map_task t;
    enum lmr_result r = lmr_map_task_from_json(event, event_len, &t, err);
    if (r)
        return r;
    struct lmr_store_set stores = {0};
    struct map_run m = {.task = &t};
    struct lmr_shard_stats in = {0};
    struct lmr_map_output *mo = NULL;
    struct lmr_map_output_index idx = {0};
    struct lmr_text_output text = {0};
    bool text_open = false, won = false, already = false, superseded = false;
    char *object_key = NULL, *spill_prefix = NULL;
    json_t *record = NULL;
    /* The function's own memory size (the Runtime API's), else what the job was planned with. */
    struct lmr_task_budget budget = lmr_task_budget(ctx ? ctx->memory_size_mb : 0, t.job.memory_mb);
    size_t collector_bytes = (size_t)budget.shuffle_bytes;
    /* Lines up to the line share; the input's read-ahead (ranged GETs in flight) within its share. */
    struct lmr_shard_read_limits limits = {.max_line_bytes = (size_t)budget.max_line_bytes,
                                           .read_ahead_bytes = budget.read_ahead_bytes};
    struct lmr_store *work = NULL;

    struct lmr_buf log;
    lmr_buf_init(&log, LMR_TASK_LOG_MAX_BYTES);
    lmr_task_log_begin(&log);
    LMR_INFO("map task %u attempt %u (%s) of job %s: %zu shard%s", t.task, t.attempt, t.attempt_id, t.job.job_id,
             t.nshards, t.nshards == 1 ? "" : "s");
    m.kill_midway = lmr_fault("map-kill", t.task, t.attempt);
    lmr_fault_misbehave("map", t.task, t.attempt);
    if (lmr_fault("map-slow", t.task, t.attempt)) {
        const char *ms = getenv("LMR_FAULT_SLOW_MS");
        lmr_sleep_ms(ms ? strtoull(ms, NULL, 10) : 1000);
    }
    if ((r = lmr_job_find(t.job.job_name, &m.ops, err)))
        goto done;
    {
        char msg[512] = "";
        if (lmr_job_setup(&m.ops, &m.job_state, t.job.args, msg, sizeof msg)) {
            r = lmr_fail(err, LMR_ERR_INVALID, "job '%s': %s", m.ops->name, msg);
            goto done;
        }
    }
    if ((r = lmr_store_set_get(&stores, t.job.work.root, &work, err)))
        goto done;
    if (!m.ops->map_only && (t.split_min_bytes || t.check_cut) && (r = split_setup(&m, work, err)))
        goto done;

    if (m.ops->map_only) {
        struct lmr_store *out_store;
        char name[32];
        snprintf(name, sizeof name, "part-m-%05u", t.task);
        char *key = lmr_output_key(&t.job, name);
        r = key ? lmr_store_set_get(&stores, t.job.output.root, &out_store, err) : LMR_ERR_NOMEM;
        if (!r)
            r = lmr_text_output_init(&text, out_store, key, err);
        free(key);
        if (r)
            goto done;
        text_open = true;
        m.out = &text.emitter;
        if ((r = map_shards(&t, &stores, &m, &limits, &in, err)))
            goto done;
        if ((superseded = committed_by_other(&t, work)))
            goto respond; /* the part is not committed: its clean-up aborts it */
        char *task_prefix = lmr_work_key(&t.job, "map/m-%05u/", t.task);
        r = task_prefix ? lmr_part_claim(work, task_prefix, t.attempt_id, text.key, err) : LMR_ERR_NOMEM;
        if (!r)
            r = lmr_text_output_commit(&text, &already, err);
        /* A part that was there already counts only if this job wrote it (never adopt another's). */
        if (!r && already)
            r = lmr_part_check_owned(work, task_prefix, t.attempt_id, text.key, t.job.job_id, err);
        free(task_prefix);
        if (r)
            goto done;
        record =
            json_pack("{s:s, s:s, s:I}", "attempt_id", t.attempt_id, "part", name, "records", (json_int_t)text.records);
    } else {
        object_key = lmr_work_key(&t.job, "map/m-%05u/%s.lmr", t.task, t.attempt_id);
        spill_prefix = lmr_work_key(&t.job, "map/m-%05u/%s-spill-", t.task, t.attempt_id);
        if (!object_key || !spill_prefix) {
            r = LMR_ERR_NOMEM;
            goto done;
        }
        struct lmr_map_output_options mo_opts = {
            .ops = m.ops,
            .job_state = m.job_state,
            .partitions = t.job.reducers ? t.job.reducers : 1,
            .memory_limit_bytes = collector_bytes,
            .store = work,
            .spill_prefix = spill_prefix,
            .object_key = object_key,
        };
        if ((r = lmr_map_output_new(&mo_opts, &mo, err)))
            goto done;
        m.out = lmr_map_output_emitter(mo);
        double t_read = lmr_mono_ms();
        if ((r = map_shards(&t, &stores, &m, &limits, &in, err)))
            goto done;
        m.read_ms = lmr_mono_ms() - t_read;
        if (t.ask_peer && t.split_min_bytes)
            ask_peer(&t, work);
        LMR_INFO("map task %u attempt %u: input read and mapped in %.1f ms (%llu bytes)", t.task, t.attempt, m.read_ms,
                 (unsigned long long)in.bytes_read);
        if ((r = lmr_map_output_status(mo, err)))
            goto done;
        if ((superseded = committed_by_other(&t, work)))
            goto respond; /* no object: the spills go with the collector */
        if ((r = lmr_map_output_finish(mo, &idx, err)))
            goto done;
        record =
            json_pack("{s:s, s:s, s:o}", "attempt_id", t.attempt_id, "object", object_key, "frames", frames_json(&idx));
        if (record && m.split.cut) /* where this task's input really ended: the rest is its tail task's */
            json_object_set_new(record, "end", lmr_map_cut_to_json(&m.split.at));
    }
    if (!record) {
        r = LMR_ERR_NOMEM;
        goto done;
    }
    if ((r = commit_task(&t, work, record, &won, err)))
        goto done;
    if (!won && object_key) /* another attempt committed first: its object is the one reducers read */
        lmr_store_delete(work, (const char *const *)&object_key, 1, NULL);

respond:;
    json_t *resp =
        json_pack("{s:s, s:I, s:s, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:f, s:o}", "kind", "map", "task",
                  (json_int_t)t.task, "attempt_id", t.attempt_id, "committed", won, "records_in",
                  (json_int_t)in.records, "bytes_in", (json_int_t)in.bytes_read, "records_out",
                  (json_int_t)(m.ops->map_only ? text.records : idx.records_out), "intermediate_raw_bytes",
                  (json_int_t)(m.ops->map_only ? 0 : idx.raw_bytes), "intermediate_bytes",
                  (json_int_t)(m.ops->map_only ? 0 : idx.object_bytes), "output_bytes",
                  (json_int_t)(m.ops->map_only ? text.bytes : 0), "spills",
                  (json_int_t)(m.ops->map_only ? 0 : idx.spills), "malformed_records",
                  (json_int_t)m.counters.malformed_records, "counters", lmr_job_counters_to_json(&m.counters),
                  "task_ms", lmr_mono_ms() - t0, "store", lmr_store_set_stats_json(&stores));
    if (resp && m.split.cut)
        json_object_set_new(resp, "end", lmr_map_cut_to_json(&m.split.at));
    if (resp && m.read_ms > 0)
        json_object_set_new(resp, "read_ms", json_real(m.read_ms));
    if (resp && m.split.work)
        json_object_set_new(resp, "split_polls", json_integer((json_int_t)m.split.polls));
    char *s = resp ? json_dumps(resp, JSON_COMPACT) : NULL;
    json_decref(resp);
    r = s ? lmr_buf_append_str(response, s) : LMR_ERR_NOMEM;
    free(s);
done:
    json_decref(record);
    if (text_open)
        lmr_text_output_clean_up(&text);
    lmr_map_output_index_clean_up(&idx);
    lmr_map_output_destroy(mo);
    if (m.ops && m.ops->teardown && m.job_state)
        m.ops->teardown(m.job_state);
    lmr_job_counters_clean_up(&m.counters);
    char task_name[16];
    snprintf(task_name, sizeof task_name, "m-%05u", t.task);
    lmr_task_log_end(&log, work, &t.job, task_name, t.attempt_id, t0, r, err);
    lmr_store_set_clean_up(&stores);
    free(object_key);
    free(spill_prefix);
    free(m.split.request_key);
    free(m.split.cut_key);
    lmr_map_task_clean_up(&t);
    return r;
}
