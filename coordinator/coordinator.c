#include "coordinator.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "job/counters.h"
#include <math.h>
#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>

#include "exchange.h"
#include "job/part_owner.h"
#include "job/registry.h"
#include "lambda/limits.h"
#include "lease.h"
#include "shuffle/merge_inputs.h"
#include "output.h"
#include "phase.h"
#include "util/log.h"
#include "util/misc.h"

/*
 * A map task of the job: one of the plan's (shards borrowed from it) or a tail task that
 * rebalancing made of what a cut task left (shards owned). Tail tasks are WORK/map/m-NNNNN with
 * NNNNN from the plan's count up, each described by its WORK/map/m-NNNNN/task.json.
 */
struct map_entry {
    struct lmr_map_task t; /* t.shards, t.nshards (the other fields are set per event) */
    bool owned;            /* t.shards is this entry's */
    size_t parent;         /* SIZE_MAX for the plan's tasks */
    bool cut;              /* the task's input was cut at `at`; `tail` has the rest */
    struct lmr_map_cut at;
    size_t tail;
};

struct job_run {
    const struct lmr_coordinator_options *opts;
    /* The map tasks (the plan's, then tails), in room for max_maps; nmaps grows under maps_lock. */
    struct map_entry *maps;
    size_t max_maps;
    atomic_size_t nmaps;
    pthread_mutex_t maps_lock;
    uint64_t split_min_bytes; /* 0: no rebalancing */
    const struct lmr_prices *prices;
    double start_ms; /* wall clock when planning started */
    const struct lmr_job_plan *plan;
    struct lmr_reduce_task *reduce_tasks;
    size_t nreduce;
    size_t nmerge;        /* merge tasks (0: direct exchange) */
    uint64_t frame_lists; /* reducers whose frame list went through the store */
    uint64_t started_ms;
    /* Lease renewal (when opts->lease): a thread renews every third of the duration. */
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool renewing, quit;
    atomic_bool stop; /* the phases' stop flag: cancel, or the lease was lost */
    bool lease_lost;
    bool deadline_hit; /* opts->stop_at_ms passed: hand over to a continuation */
    bool abandoned;    /* the service is gone: stop, leave everything for a resume */
    bool cancelled;    /* WORK/cancel appeared */
    struct lmr_err lease_err;
    /* Progress in the job record, at most every PROGRESS_EVERY_MS. */
    pthread_mutex_t progress_lock;
    double progress_written_ms;
    struct lmr_progress last;
    /* Figures so far, for the job record: the finished map phase's invocations (borrowed), the
     * running phase's (only during a progress call), the round's phase. */
    json_t *done_invocations; /* owned: the ended phases' */
    const json_t *live_invocations;
    const char *phase;
};

#define PROGRESS_EVERY_MS 300.0

/* ---- events ----------------------------------------------------------------------------------------------- */

static char *attempt_id(const char *kind, size_t i, uint32_t attempt)
{
    char rnd[9], *s = malloc(48);
    lmr_random_hex(rnd, 4);
    if (s)
        snprintf(s, 48, "%s%05zu-a%u-%s", kind, i, attempt, rnd);
    return s;
}

/* The event text of a task (NULL when out of memory); takes the JSON and the attempt id. */
static char *event_text(json_t *j, char *attempt_id)
{
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    free(attempt_id);
    return s;
}

static char *map_event(void *user_data, size_t i, uint32_t attempt)
{
    struct job_run *jr = user_data;
    pthread_mutex_lock(&jr->maps_lock);
    struct lmr_map_task t = jr->maps[i].t; /* shallow copy: shards and job are borrowed */
    pthread_mutex_unlock(&jr->maps_lock);
    t.job = jr->plan->job;
    t.task = (uint32_t)i;
    t.attempt = attempt;
    t.split_min_bytes = jr->split_min_bytes;
    /* A retry (or any attempt of a resumed job) honours a cut an earlier attempt made, with --rebalance off too. */
    t.check_cut = jr->plan->job.reducers > 0 && (attempt > 1 || jr->opts->resume);
    /* One wave (every planned task runs at once): the slot of the first task to finish its input idles next, so
     * that task asks the next one round (a ring) to split as soon as its input is done, and the tail is ready
     * when the slot frees (its own output's finish, a third of its time for Query 2, would be too late). */
    size_t planned = jr->plan->ntasks;
    if (jr->split_min_bytes && planned >= 2 && planned <= jr->opts->concurrency && i < planned && !jr->opts->resume) {
        t.ask_peer = true;
        t.peer = (uint32_t)((i + 1) % planned);
    }
    t.attempt_id = attempt_id("m", i, attempt);
    return event_text(t.attempt_id ? lmr_map_task_to_json(&t) : NULL, t.attempt_id);
}

static char *reduce_event(void *user_data, size_t i, uint32_t attempt)
{
    struct job_run *jr = user_data;
    struct lmr_reduce_task t = jr->reduce_tasks[i];
    t.job = jr->plan->job;
    t.attempt = attempt;
    t.attempt_id = attempt_id("r", i, attempt);
    return event_text(t.attempt_id ? lmr_reduce_task_to_json(&t) : NULL, t.attempt_id);
}

static char *merge_event(void *user_data, size_t i, uint32_t attempt)
{
    struct job_run *jr = user_data;
    size_t G = jr->plan->merge_fan_in, first = i * G;
    struct lmr_merge_task t = {.job = jr->plan->job,
                               .task = (uint32_t)i,
                               .attempt = attempt,
                               .attempt_id = attempt_id("g", i, attempt),
                               .first_map = (uint32_t)first,
                               .maps = (uint32_t)(jr->nmaps - first < G ? jr->nmaps - first : G)};
    return event_text(t.attempt_id ? lmr_merge_task_to_json(&t) : NULL, t.attempt_id);
}

static char *merge_commit_key(void *user_data, size_t i)
{
    struct job_run *jr = user_data;
    return lmr_work_key(&jr->plan->job, "merge/g-%05zu/commit.json", i);
}

static char *map_commit_key(void *user_data, size_t i)
{
    struct job_run *jr = user_data;
    return lmr_work_key(&jr->plan->job, "map/m-%05zu/commit.json", i);
}

static char *reduce_commit_key(void *user_data, size_t i)
{
    struct job_run *jr = user_data;
    return lmr_work_key(&jr->plan->job, "reduce/r-%05zu/commit.json", i);
}

/* ---- rebalancing ------------------------------------------------------------------------------------------ */

/* The most tail tasks a job may have (over all rounds), and per round at most 2 per slot plus 16. */
#define MAP_TAILS_MAX 4096u
#define SPLIT_POLL_FILE_MS 5u
#define SPLIT_POLL_REMOTE_MS 50u

bool lmr_rebalance_exact(const struct lmr_job_common *job)
{
    return lmr_job_cut_invariant(job->job_name, job->args);
}

static uint64_t split_min_bytes(void)
{
    const char *e = getenv("LMR_SPLIT_MIN_BYTES"); /* tests: small inputs */
    uint64_t v = e && *e ? strtoull(e, NULL, 10) : 0;
    return v ? v : LMR_MAP_SPLIT_MIN_BYTES;
}

/* A small JSON object at key, or NULL (*res says why: LMR_ERR_NOT_FOUND when there is none). */
static json_t *get_json(struct job_run *jr, const char *key, enum lmr_result *res)
{
    struct lmr_buf b;
    lmr_buf_init(&b, LMR_COMMIT_RECORD_MAX_BYTES);
    struct lmr_err e = {0};
    *res = key ? lmr_store_get(jr->opts->work_store, key, 0, LMR_STORE_TO_END, &b, &e) : LMR_ERR_NOMEM;
    json_t *j = *res ? NULL : json_loadb(b.data ? b.data : "", b.len, 0, NULL);
    if (!*res && !j)
        *res = LMR_ERR_FORMAT;
    lmr_buf_clean_up(&b);
    return j;
}

static uint64_t entry_bytes(const struct map_entry *e)
{
    uint64_t n = 0;
    for (size_t k = 0; k < e->t.nshards; k++)
        n += e->t.shards[k].length;
    return n;
}

/* Ask map task i to split: WORK/map/m-NNNNN/split-request (create-only). LMR_ERR_INVALID: too small to split. */
static enum lmr_result map_split_request(void *user_data, size_t i, struct lmr_err *err)
{
    struct job_run *jr = user_data;
    pthread_mutex_lock(&jr->maps_lock);
    uint64_t bytes = entry_bytes(&jr->maps[i]);
    pthread_mutex_unlock(&jr->maps_lock);
    if (bytes < 2 * jr->split_min_bytes)
        return LMR_ERR_INVALID;
    char *key = lmr_work_key(&jr->plan->job, "map/m-%05zu/split-request", i);
    enum lmr_result r =
        key ? lmr_store_put(jr->opts->work_store, key, "{}", 2, LMR_PUT_CREATE_ONLY, err) : LMR_ERR_NOMEM;
    if (r == LMR_ERR_EXISTS) {
        lmr_err_clear(err);
        r = LMR_OK;
    }
    free(key);
    return r;
}

/*
 * Task i's input was cut at `at`: make its tail task (the next index), described by
 * WORK/map/m-NNNNN/task.json (create-only), unless it has one. A tail made for another cut is a
 * conflict (the job could not be exact). *tail: the new task, or SIZE_MAX.
 */
static enum lmr_result make_tail(struct job_run *jr, size_t i, const struct lmr_map_cut *at, size_t *tail,
                                 struct lmr_err *err)
{
    *tail = SIZE_MAX;
    pthread_mutex_lock(&jr->maps_lock);
    struct map_entry *e = &jr->maps[i];
    enum lmr_result r = LMR_OK;
    if (e->cut) {
        if (e->at.shard != at->shard || e->at.offset != at->offset)
            r = lmr_fail(
                err, LMR_ERR_INTERNAL,
                "map task %zu ended at byte %llu of its shard %zu, but its tail task %zu was made for a cut at "
                "byte %llu of shard %zu: two attempts cut the task differently; rerun the job",
                i, (unsigned long long)at->offset, at->shard, e->tail, (unsigned long long)e->at.offset, e->at.shard);
        pthread_mutex_unlock(&jr->maps_lock);
        return r;
    }
    size_t idx = atomic_load(&jr->nmaps);
    struct lmr_shard *sh = NULL;
    size_t n = 0;
    if (idx >= jr->max_maps)
        r = lmr_fail(err, LMR_ERR_TOO_LARGE, "map task %zu was cut, but the job has its most map tasks (%zu) already",
                     i, jr->max_maps);
    if (!r && (r = lmr_map_tail_shards(e->t.shards, e->t.nshards, at, &sh, &n, err)))
        lmr_err_prefix(err, "map task %zu's cut", i);
    json_t *desc = NULL;
    if (!r) {
        json_t *shards = json_array();
        for (size_t k = 0; k < n; k++)
            json_array_append_new(shards, lmr_shard_to_json(&sh[k]));
        desc = json_pack("{s:I, s:o, s:o}", "parent", (json_int_t)i, "cut", lmr_map_cut_to_json(at), "shards", shards);
    }
    char *key = r ? NULL : lmr_work_key(&jr->plan->job, "map/m-%05zu/task.json", idx);
    char *text = desc ? json_dumps(desc, JSON_COMPACT) : NULL;
    json_decref(desc);
    if (!r && (!key || !text))
        r = LMR_ERR_NOMEM;
    if (!r)
        r = lmr_store_put(jr->opts->work_store, key, text, strlen(text), LMR_PUT_CREATE_ONLY, err);
    if (r == LMR_ERR_EXISTS) { /* an earlier round wrote it and stopped before the next: the same tail (resume) */
        lmr_err_clear(err);
        r = LMR_OK;
    }
    if (!r) {
        jr->maps[idx] =
            (struct map_entry){.t = {.shards = sh, .nshards = n}, .owned = true, .parent = i, .tail = SIZE_MAX};
        e->cut = true;
        e->at = *at;
        e->tail = idx;
        atomic_store(&jr->nmaps, idx + 1);
        *tail = idx;
        sh = NULL;
        LMR_INFO("map task %zu was cut at byte %llu of %s: tail task %zu takes the rest (%zu shard%s)", i,
                 (unsigned long long)at->offset, jr->maps[i].t.shards[at->shard].object.key, idx, n, n == 1 ? "" : "s");
    }
    for (size_t k = 0; sh && k < n; k++)
        lmr_location_clean_up(&sh[k].object);
    free(sh);
    free(key);
    free(text);
    pthread_mutex_unlock(&jr->maps_lock);
    return r;
}

/* Has map task i decided (WORK/map/m-NNNNN/cut.json)? A cut makes its tail at once. */
static int map_split_poll(void *user_data, size_t i, size_t *tail)
{
    struct job_run *jr = user_data;
    *tail = SIZE_MAX;
    char *key = lmr_work_key(&jr->plan->job, "map/m-%05zu/cut.json", i);
    enum lmr_result r;
    json_t *j = get_json(jr, key, &r);
    free(key);
    if (r == LMR_ERR_NOT_FOUND || (r && r != LMR_ERR_FORMAT))
        return LMR_PHASE_SPLIT_PENDING;
    struct lmr_map_cut at;
    int st = LMR_PHASE_SPLIT_NONE;
    if (j && lmr_map_cut_from_json(j, &at)) {
        struct lmr_err e = {0};
        if (make_tail(jr, i, &at, tail, &e))
            LMR_WARN("map task %zu's cut: %s (its commit decides)", i, e.msg);
        else if (*tail != SIZE_MAX)
            st = LMR_PHASE_SPLIT_TAIL;
    }
    json_decref(j);
    return st;
}

/* Map task i committed: where its input ended ("end" in the committing attempt's response or its commit record)
 * decides its tail. */
static enum lmr_result map_split_committed(void *user_data, size_t i, const json_t *payload, size_t *tail,
                                           struct lmr_err *err)
{
    struct job_run *jr = user_data;
    *tail = SIZE_MAX;
    json_t *rec = NULL;
    const json_t *end;
    if (payload && json_is_true(json_object_get(payload, "committed"))) {
        end = json_object_get(payload, "end");
    } else { /* another attempt's commit (or no answer): its record says */
        char *key = map_commit_key(jr, i);
        enum lmr_result r;
        rec = get_json(jr, key, &r);
        free(key);
        if (r)
            return lmr_fail(err, r, "map task %zu: its commit record cannot be read (%s)", i, lmr_result_str(r));
        end = json_object_get(rec, "end");
    }
    struct lmr_map_cut at;
    enum lmr_result r = LMR_OK;
    if (end && !lmr_map_cut_from_json(end, &at)) {
        r = lmr_fail(err, LMR_ERR_FORMAT, "map task %zu: its commit record's \"end\" is not a cut", i);
    } else if (end) {
        r = make_tail(jr, i, &at, tail, err);
    } else {
        pthread_mutex_lock(&jr->maps_lock);
        if (jr->maps[i].cut)
            r = lmr_fail(err, LMR_ERR_INTERNAL,
                         "map task %zu committed all of its input, but its tail task %zu was made for a cut at byte "
                         "%llu of its shard %zu: two attempts disagree; rerun the job",
                         i, jr->maps[i].tail, (unsigned long long)jr->maps[i].at.offset, jr->maps[i].at.shard);
        pthread_mutex_unlock(&jr->maps_lock);
    }
    json_decref(rec);
    return r;
}

/*
 * A resumed job: the tails earlier rounds made (WORK/map/m-NNNNN/task.json from the plan's
 * count up), then the cuts no tail was made for yet (a round that stopped in between).
 */
static enum lmr_result discover_tails(struct job_run *jr, struct lmr_err *err)
{
    enum lmr_result r = LMR_OK;
    for (size_t k = jr->plan->ntasks; !r && k < jr->max_maps; k++) {
        char *key = lmr_work_key(&jr->plan->job, "map/m-%05zu/task.json", k);
        json_t *j = get_json(jr, key, &r);
        free(key);
        if (r == LMR_ERR_NOT_FOUND) {
            r = LMR_OK;
            json_decref(j);
            break;
        }
        if (r) {
            r = lmr_fail(err, r, "reading the tail task description map/m-%05zu/task.json of job %s", k,
                         jr->plan->job.job_id);
            break;
        }
        size_t parent = (size_t)lmr_json_u64(j, "parent", SIZE_MAX);
        json_t *shards = json_object_get(j, "shards");
        struct lmr_map_cut at;
        if (!r && (parent >= k || !lmr_map_cut_from_json(json_object_get(j, "cut"), &at) || !json_is_array(shards) ||
                   json_array_size(shards) == 0 || jr->maps[parent].cut))
            r = lmr_fail(err, LMR_ERR_FORMAT, "the tail task description map/m-%05zu/task.json of job %s is not valid",
                         k, jr->plan->job.job_id);
        struct map_entry *e = &jr->maps[k];
        if (!r) {
            *e = (struct map_entry){.owned = true, .parent = parent, .tail = SIZE_MAX};
            e->t.nshards = json_array_size(shards);
            if (!(e->t.shards = calloc(e->t.nshards, sizeof *e->t.shards)))
                r = LMR_ERR_NOMEM;
            for (size_t q = 0; !r && q < e->t.nshards; q++)
                r = lmr_shard_from_json(json_array_get(shards, q), &e->t.shards[q], err);
            jr->maps[parent].cut = true;
            jr->maps[parent].at = at;
            jr->maps[parent].tail = k;
            atomic_store(&jr->nmaps, k + 1);
        }
        json_decref(j);
    }
    for (size_t i = 0; !r && i < atomic_load(&jr->nmaps); i++) {
        if (jr->maps[i].cut)
            continue;
        char *key = lmr_work_key(&jr->plan->job, "map/m-%05zu/cut.json", i);
        enum lmr_result g;
        json_t *j = get_json(jr, key, &g);
        free(key);
        struct lmr_map_cut at;
        size_t tail;
        if (!g && lmr_map_cut_from_json(j, &at))
            r = make_tail(jr, i, &at, &tail, err);
        else if (g && g != LMR_ERR_NOT_FOUND)
            r = lmr_fail(err, g, "reading map task %zu's split decision of job %s", i, jr->plan->job.job_id);
        json_decref(j);
    }
    return r;
}

/* ---- shuffle planning ------------------------------------------------------------------------------------- */

uint64_t lmr_coordinator_frames_inline_max_bytes(void)
{
    const char *e = getenv("LMR_FRAMES_INLINE_MAX_BYTES");
    uint64_t v = e && *e ? strtoull(e, NULL, 10) : LMR_FRAMES_INLINE_MAX_BYTES;
    return v < LMR_LAMBDA_SYNC_PAYLOAD_MAX_BYTES / 2 ? v : LMR_LAMBDA_SYNC_PAYLOAD_MAX_BYTES / 2;
}

/* Run fn(i) for i in [0, n) on up to LMR_COMMIT_READ_THREADS threads; the first failure (lowest i) wins. */
struct par_job {
    size_t n;
    atomic_size_t next;
    atomic_bool failed;
    enum lmr_result (*fn)(void *arg, size_t i, struct lmr_err *err);
    void *arg;
    pthread_mutex_t lock;
    size_t bad;
    enum lmr_result res;
    struct lmr_err err;
};

static void *par_worker(void *a)
{
    struct par_job *p = a;
    for (size_t i; (i = atomic_fetch_add(&p->next, 1)) < p->n && !atomic_load(&p->failed);) {
        struct lmr_err e = {0};
        enum lmr_result r = p->fn(p->arg, i, &e);
        if (r) {
            pthread_mutex_lock(&p->lock);
            if (!p->res || i < p->bad) {
                p->res = r;
                p->err = e;
                p->bad = i;
            }
            pthread_mutex_unlock(&p->lock);
            atomic_store(&p->failed, true);
        }
    }
    return NULL;
}

static enum lmr_result parallel_for(size_t n, enum lmr_result (*fn)(void *, size_t, struct lmr_err *), void *arg,
                                    struct lmr_err *err)
{
    struct par_job p = {.n = n, .fn = fn, .arg = arg};
    atomic_init(&p.next, 0);
    atomic_init(&p.failed, false);
    pthread_mutex_init(&p.lock, NULL);
    pthread_t tid[LMR_COMMIT_READ_THREADS];
    unsigned want = n < LMR_COMMIT_READ_THREADS ? (unsigned)n : LMR_COMMIT_READ_THREADS, started = 0;
    for (; started < want; started++)
        if (pthread_create(&tid[started], NULL, par_worker, &p))
            break;
    if (!started && n)
        par_worker(&p);
    for (unsigned t = 0; t < started; t++)
        pthread_join(tid[t], NULL);
    pthread_mutex_destroy(&p.lock);
    if (p.res && err)
        *err = p.err;
    return p.res;
}

/* The JSON length of a frame list in an event (as lmr_reduce_task_to_json writes it). */
static uint64_t frame_list_bytes(const struct lmr_reduce_task *t)
{
    uint64_t n = 16;
    for (size_t i = 0; i < t->nframes; i++)
        n += strlen(t->frames[i].key) + LMR_FRAME_LIST_ENTRY_BYTES;
    return n;
}

/* Write reducer r's frame list to WORK/frames/r-NNNNN.json (create-only, attempt-independent). */
static enum lmr_result store_frame_list(void *arg, size_t r, struct lmr_err *err)
{
    struct job_run *jr = arg;
    struct lmr_reduce_task *t = &jr->reduce_tasks[r];
    if (frame_list_bytes(t) <= lmr_coordinator_frames_inline_max_bytes())
        return LMR_OK;
    char *key = lmr_work_key(&jr->plan->job, "frames/r-%05zu.json", r);
    json_t *j = lmr_reduce_frames_to_json(t->frames, t->nframes);
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    enum lmr_result res = key && text ? LMR_OK : lmr_fail(err, LMR_ERR_NOMEM, "out of memory writing frame lists");
    if (!res && strlen(text) > LMR_REDUCE_FRAMES_MAX_BYTES)
        res = lmr_fail(err, LMR_ERR_TOO_LARGE,
                       "reducer %zu's frame list of %zu frames is over %u MiB: give the job fewer map tasks (a larger "
                       "--split-size) or use --exchange merge",
                       r, t->nframes, LMR_REDUCE_FRAMES_MAX_BYTES >> 20);
    if (!res)
        res = lmr_store_put(jr->opts->work_store, key, text, strlen(text), LMR_PUT_CREATE_ONLY, err);
    if (res == LMR_ERR_EXISTS) { /* written by an earlier round: the commit records, so the list, are the same */
        lmr_err_clear(err);
        res = LMR_OK;
    }
    free(text);
    if (!res) {
        t->frames_key = key;
        key = NULL;
    }
    free(key);
    return res;
}

/*
 * Read the commit records of the shuffle's sources (the M map tasks, or the merge tasks of a
 * merge exchange) with bounded parallelism and give each reducer the frames of its partition;
 * frame lists too long for an event go through the store.
 */
static enum lmr_result plan_reducers(struct job_run *jr, struct lmr_err *err)
{
    uint32_t R = jr->plan->job.reducers;
    bool merged = jr->nmerge > 0;
    size_t S = merged ? jr->nmerge : jr->nmaps;
    jr->reduce_tasks = calloc(R, sizeof *jr->reduce_tasks);
    if (!jr->reduce_tasks)
        return LMR_ERR_NOMEM;
    jr->nreduce = R;
    for (uint32_t r = 0; r < R; r++) {
        jr->reduce_tasks[r].task = r;
        jr->reduce_tasks[r].frames = calloc(S + 1, sizeof(struct lmr_frame));
        if (!jr->reduce_tasks[r].frames)
            return LMR_ERR_NOMEM;
    }
    char **keys = calloc(S + 1, sizeof *keys);
    struct lmr_shuffle_commit *commits = calloc(S + 1, sizeof *commits);
    enum lmr_result res = keys && commits ? LMR_OK : LMR_ERR_NOMEM;
    for (size_t i = 0; !res && i < S; i++)
        if (!(keys[i] = merged ? merge_commit_key(jr, i) : map_commit_key(jr, i)))
            res = LMR_ERR_NOMEM;
    if (!res)
        res = lmr_shuffle_read_commits(jr->opts->work_store, (const char *const *)keys, S, R, 0, commits, err);
    for (size_t i = 0; !res && i < S; i++) {
        for (uint32_t r = 0; !res && r < R; r++) {
            const struct lmr_partition_frame *f = &commits[i].frames[r];
            if (f->records == 0)
                continue; /* nothing for this reducer: save the request */
            struct lmr_reduce_task *t = &jr->reduce_tasks[r];
            struct lmr_frame *fr = &t->frames[t->nframes++];
            *fr = (struct lmr_frame){.key = strdup(commits[i].object),
                                     .offset = f->offset,
                                     .size_bytes = f->size_bytes,
                                     .records = f->records,
                                     .raw_bytes = f->raw_bytes};
            if (!fr->key)
                res = LMR_ERR_NOMEM;
        }
    }
    if (commits)
        lmr_shuffle_commits_free(commits, S);
    for (size_t i = 0; keys && i < S; i++)
        free(keys[i]);
    free(keys);
    free(commits);
    if (!res)
        res = parallel_for(R, store_frame_list, jr, err);
    for (uint32_t r = 0; !res && r < R; r++)
        jr->frame_lists += jr->reduce_tasks[r].frames_key != NULL;
    return res;
}

static void free_reduce_tasks(struct job_run *jr)
{
    for (size_t r = 0; r < jr->nreduce; r++) {
        for (size_t i = 0; i < jr->reduce_tasks[r].nframes; i++)
            free(jr->reduce_tasks[r].frames[i].key);
        free(jr->reduce_tasks[r].frames);
        free(jr->reduce_tasks[r].frames_key);
    }
    free(jr->reduce_tasks);
}

/* ---- clean-up --------------------------------------------------------------------------------------------- */

struct key_list {
    struct lmr_store_keys keys;
    const char *const *keep; /* keys not to collect (NULL-terminated; NULL entries end it) */
    const char *keep_prefix; /* nor keys below this prefix */
};

static enum lmr_result collect_key(void *user_data, const struct lmr_store_object *obj)
{
    struct key_list *kl = user_data;
    for (size_t k = 0; kl->keep && kl->keep[k]; k++)
        if (!strcmp(obj->key, kl->keep[k]))
            return LMR_OK;
    if (kl->keep_prefix && !strncmp(obj->key, kl->keep_prefix, strlen(kl->keep_prefix)))
        return LMR_OK;
    return lmr_store_keys_add(&kl->keys, obj);
}

/* Delete the job's work data below prefix, except the keys in keep (NULL-terminated: the manifest, ...) and
 * the task logs (logs/). */
static void delete_prefix(struct lmr_store *s, const char *prefix, const char *const *keep)
{
    char logs[1024];
    snprintf(logs, sizeof logs, "%slogs/", prefix);
    struct key_list kl = {.keep = keep, .keep_prefix = logs};
    struct lmr_err err = {0};
    if (lmr_store_list(s, prefix, collect_key, &kl, &err) == LMR_OK)
        lmr_store_delete(s, (const char *const *)kl.keys.v, kl.keys.n, &err);
    if (err.code)
        LMR_WARN("could not clean up %s%s: %s", s->root_uri, prefix, err.msg);
    lmr_store_keys_free(&kl.keys);
}

/* The job's part names, in task order (part-r-NNNNN, or part-m-NNNNN for map-only jobs). */
static void part_name(const struct lmr_job_common *job, size_t i, char name[32])
{
    snprintf(name, 32, "part-%c-%05zu", job->reducers == 0 ? 'm' : 'r', i);
}

static size_t part_count(const struct job_run *jr)
{
    return jr->plan->job.reducers == 0 ? jr->plan->ntasks : jr->plan->job.reducers;
}

/*
 * Remove the part files this job committed, so a failed job leaves no partial output: exactly
 * the parts whose task has a commit record or a claim in this job's work location
 * (job/part_owner.h), never a part of the same name that another job or a user wrote.
 */
static void delete_parts(struct job_run *jr)
{
    const struct lmr_job_common *job = &jr->plan->job;
    for (size_t i = 0; i < part_count(jr); i++) {
        char name[32];
        part_name(job, i, name);
        char *task_prefix = lmr_work_key(job, job->reducers == 0 ? "map/m-%05zu/" : "reduce/r-%05zu/", i);
        char *key = lmr_output_key(job, name);
        if (key && task_prefix && lmr_part_task_touched(jr->opts->work_store, task_prefix))
            lmr_store_delete(jr->opts->output_store, (const char *const *)&key, 1, NULL);
        free(key);
        free(task_prefix);
    }
}

/* ---- superseded attempts (speculation) ------------------------------------------------------------------- */

/* The attempt id that task_prefix's commit record names, or "" (malloc'd; NULL when out of memory). */
static char *committed_attempt(struct lmr_store *work, const char *task_prefix)
{
    size_t n = strlen(task_prefix) + sizeof "commit.json";
    char *key = malloc(n);
    if (!key)
        return NULL;
    snprintf(key, n, "%scommit.json", task_prefix);
    struct lmr_buf b;
    lmr_buf_init(&b, LMR_COMMIT_RECORD_MAX_BYTES);
    json_t *rec = lmr_store_get(work, key, 0, LMR_STORE_TO_END, &b, NULL) == LMR_OK
                      ? json_loadb(b.data ? b.data : "", b.len, 0, NULL)
                      : NULL;
    char *id = strdup(lmr_json_str(rec, "attempt_id", ""));
    json_decref(rec);
    lmr_buf_clean_up(&b);
    free(key);
    return id;
}

struct loser_keys {
    struct key_list kl;
    const char *prefix, *winner;
};

/* Collect the keys of task_prefix that are not the commit record and not the winner's (its object
 * "<id>.lmr", its claim "<id>.claim", its scratch "<id>-..."). */
static enum lmr_result collect_loser_key(void *user_data, const struct lmr_store_object *obj)
{
    struct loser_keys *lk = user_data;
    const char *name = obj->key + strlen(lk->prefix);
    size_t wn = strlen(lk->winner);
    if (!strcmp(name, "commit.json") || strchr(name, '/'))
        return LMR_OK;
    /* Rebalancing's objects are the task's, not an attempt's. */
    if (!strcmp(name, "task.json") || !strcmp(name, "cut.json") || !strcmp(name, "split-request"))
        return LMR_OK;
    if (wn && !strncmp(name, lk->winner, wn) && (name[wn] == '.' || name[wn] == '-'))
        return LMR_OK;
    return collect_key(&lk->kl, obj);
}

/* Remove what the attempts of a committed task other than the committing one left in its work folder. */
static void discard_losers(struct job_run *jr, const char *task_prefix)
{
    struct lmr_store *work = jr->opts->work_store;
    char *winner = committed_attempt(work, task_prefix);
    if (!winner || !winner[0]) { /* no (readable) commit record: nothing is known to be a loser's */
        free(winner);
        return;
    }
    struct loser_keys lk = {.prefix = task_prefix, .winner = winner};
    struct lmr_err err = {0};
    if (lmr_store_list(work, task_prefix, collect_loser_key, &lk, &err) == LMR_OK && lk.kl.keys.n)
        lmr_store_delete(work, (const char *const *)lk.kl.keys.v, lk.kl.keys.n, &err);
    if (err.code)
        LMR_WARN("could not remove a superseded attempt's data in %s%s: %s", work->root_uri, task_prefix, err.msg);
    else if (lk.kl.keys.n)
        LMR_INFO("removed %zu object%s of a superseded attempt in %s%s", lk.kl.keys.n, lk.kl.keys.n == 1 ? "" : "s",
                 work->root_uri, task_prefix);
    lmr_store_keys_free(&lk.kl.keys);
    free(winner);
}

static void map_discard(void *user_data, size_t i)
{
    struct job_run *jr = user_data;
    char *prefix = lmr_work_key(&jr->plan->job, "map/m-%05zu/", i);
    if (prefix)
        discard_losers(jr, prefix);
    free(prefix);
}

static void reduce_discard(void *user_data, size_t i)
{
    struct job_run *jr = user_data;
    char *prefix = lmr_work_key(&jr->plan->job, "reduce/r-%05zu/", i);
    if (prefix)
        discard_losers(jr, prefix);
    free(prefix);
}

void lmr_coordinator_remove_superseded(struct lmr_store *work, const struct lmr_job_common *job, const json_t *report)
{
    size_t i;
    json_t *inv;
    json_array_foreach(json_object_get(report, "invocations"), i, inv)
    {
        if (!json_is_true(json_object_get(inv, "unfinished")))
            continue;
        bool map = !strcmp(lmr_json_str(inv, "phase", ""), "map");
        char *prefix = lmr_work_key(job, map ? "map/m-%05llu/" : "reduce/r-%05llu/",
                                    (unsigned long long)lmr_json_u64(inv, "task", 0));
        const char *keep[] = {NULL};
        if (prefix)
            delete_prefix(work, prefix, keep);
        free(prefix);
    }
}

/* ---- the job record and the lease ------------------------------------------------------------------------- */

/* WORK/job.json: the job's status and phase, for status commands and a coordinator that takes over. */
static void write_job_record(struct job_run *jr, const char *status, const char *phase, const char *error);

/* The phases' progress callback: the caller's, and the job record (throttled) for status readers. */
static void record_progress(void *user_data, const struct lmr_progress *p)
{
    struct job_run *jr = user_data;
    if (jr->opts->progress)
        jr->opts->progress(jr->opts->progress_user_data, p);
    pthread_mutex_lock(&jr->progress_lock);
    jr->last = *p;
    bool now = lmr_mono_ms() - jr->progress_written_ms >= PROGRESS_EVERY_MS || (p->done == p->total && !p->running);
    if (now) {
        jr->progress_written_ms = lmr_mono_ms();
        jr->live_invocations = p->invocations;
        write_job_record(jr, "running", p->phase, NULL);
        jr->live_invocations = NULL;
    }
    pthread_mutex_unlock(&jr->progress_lock);
}

static void add_store_stats(uint64_t *acc, json_t *stats);
static void coordinator_requests(const struct lmr_coordinator_options *o, uint64_t *acc);

/*
 * This round's coordinator invocation as the report keeps task invocations, measured by the
 * coordinator itself from the moment it got its event to end_ms (so Init and the last few
 * milliseconds before its response are not in it); billed as Lambda bills, rounded up to 1 ms.
 */
static json_t *self_invocation(const struct job_run *jr, double end_ms)
{
    const struct lmr_coordinator_options *o = jr->opts;
    struct rusage ru;
    uint32_t max_mb = getrusage(RUSAGE_SELF, &ru) ? 0 : (uint32_t)((ru.ru_maxrss + 1023) / 1024);
    double dur = end_ms > o->invoked_ms ? end_ms - o->invoked_ms : 0;
    return json_pack("{s:s, s:I, s:I, s:I, s:f, s:f, s:s, s:f, s:f, s:f, s:b, s:I, s:I, s:b}", "phase", "coordinator",
                     "task", (json_int_t)0, "attempt", (json_int_t)(o->round ? o->round : 1), "round",
                     (json_int_t)(o->round ? o->round : 1), "start_ms", o->invoked_ms, "end_ms", end_ms, "request_id",
                     o->request_id, "duration_ms", dur, "billed_duration_ms", ceil(dur), "init_duration_ms", 0.0,
                     "cold", 0, "memory_size_mb", (json_int_t)o->memory_mb, "max_memory_used_mb", (json_int_t)max_mb,
                     "measured_by_coordinator", 1);
}

/* The coordinator's invocations: earlier rounds' (from their job record) and this one, up to now. */
static json_t *coordinator_invocations(const struct job_run *jr)
{
    json_t *a = json_deep_copy(json_object_get(jr->opts->earlier_record, "coordinator_invocations"));
    if (!json_is_array(a)) {
        json_decref(a);
        a = json_array();
    }
    if (a && jr->opts->request_id)
        json_array_append_new(a, self_invocation(jr, (double)lmr_wall_ms()));
    return a;
}

/*
 * What the job has read, written and cost so far (every round): the tasks' invocations and
 * store figures, the coordinators' invocations, every store request. "carried" holds the task
 * and request figures a continuation adds its own to.
 */
static json_t *so_far_json(struct job_run *jr, const json_t *coord)
{
    const json_t *base = json_object_get(json_object_get(jr->opts->earlier_record, "so_far"), "carried");
    struct lmr_billing_totals t = {.invocations = lmr_json_u64(base, "invocations", 0),
                                   .billed_ms = lmr_json_double(base, "billed_ms", 0),
                                   .init_ms = lmr_json_double(base, "init_ms", 0),
                                   .gb_seconds = lmr_json_double(base, "gb_seconds", 0),
                                   .init_gb_seconds = lmr_json_double(base, "init_gb_seconds", 0)};
    static const char *const kinds[] = {"get", "put", "list", "head", "delete"};
    uint64_t req[5] = {0}, bytes[2] = {lmr_json_u64(base, "bytes_read", 0), lmr_json_u64(base, "bytes_written", 0)};
    add_store_stats(req, json_object_get(base, "requests"));
    const json_t *sets[2] = {jr->done_invocations, jr->live_invocations};
    for (int k = 0; k < 2; k++) {
        size_t i;
        json_t *inv;
        json_array_foreach(sets[k], i, inv)
        {
            lmr_billing_add(&t, lmr_json_double(inv, "duration_ms", 0), lmr_json_double(inv, "init_duration_ms", 0),
                            lmr_json_double(inv, "billed_duration_ms", 0),
                            (uint32_t)lmr_json_u64(inv, "memory_size_mb", 0), 512);
            json_t *st = json_object_get(inv, "store");
            add_store_stats(req, st);
            bytes[0] += lmr_json_u64(st, "bytes_read", 0);
            bytes[1] += lmr_json_u64(st, "bytes_written", 0);
        }
    }
    /* This round's own requests and bytes (and, in the first round, the driver's planning). */
    uint64_t own[5] = {0};
    coordinator_requests(jr->opts, own);
    const struct lmr_store_set *set = jr->opts->driver_stores;
    json_t *stats = set ? lmr_store_set_stats_json(set) : NULL;
    bytes[0] += lmr_json_u64(stats, "bytes_read", 0);
    bytes[1] += lmr_json_u64(stats, "bytes_written", 0);
    json_decref(stats);
    for (int k = 0; k < 5; k++)
        req[k] += own[k] + (jr->opts->round <= 1 ? jr->opts->earlier_requests[k] : 0);
    json_t *carried =
        json_pack("{s:I, s:f, s:f, s:f, s:f, s:I, s:I, s:{s:I, s:I, s:I, s:I, s:I}}", "invocations",
                  (json_int_t)t.invocations, "billed_ms", t.billed_ms, "init_ms", t.init_ms, "gb_seconds", t.gb_seconds,
                  "init_gb_seconds", t.init_gb_seconds, "bytes_read", (json_int_t)bytes[0], "bytes_written",
                  (json_int_t)bytes[1], "requests", kinds[0], (json_int_t)req[0], kinds[1], (json_int_t)req[1],
                  kinds[2], (json_int_t)req[2], kinds[3], (json_int_t)req[3], kinds[4], (json_int_t)req[4]);
    size_t i;
    json_t *inv;
    json_array_foreach(coord, i, inv)
        lmr_billing_add(&t, lmr_json_double(inv, "duration_ms", 0), 0, lmr_json_double(inv, "billed_duration_ms", 0),
                        (uint32_t)lmr_json_u64(inv, "memory_size_mb", 0), 512);
    struct lmr_request_counts counts = {.get = req[0], .put = req[1], .list = req[2], .head = req[3], .del = req[4]};
    json_t *cost = lmr_cost_stream_totals(jr->prices, &t, &counts, 0, 0);
    json_t *o = json_pack("{s:I, s:I, s:I, s:f, s:f, s:o}", "bytes_read", (json_int_t)bytes[0], "bytes_written",
                          (json_int_t)bytes[1], "invocations", (json_int_t)t.invocations, "gb_seconds", t.gb_seconds,
                          "cost_usd", lmr_json_double(cost, "total_usd", 0), "carried", carried);
    json_decref(cost);
    return o;
}

static void write_job_record(struct job_run *jr, const char *status, const char *phase, const char *error)
{
    const struct lmr_job_plan *plan = jr->plan;
    jr->phase = phase;
    json_t *parts = json_array();
    for (size_t i = 0; parts && i < part_count(jr); i++) {
        char name[32];
        part_name(&plan->job, i, name);
        json_array_append_new(parts, json_string(name));
    }
    json_t *rec =
        json_pack("{s:i, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:o}", "version", 1, "job_id", plan->job.job_id,
                  "status", status, "phase", phase, "output", plan->output_uri ? plan->output_uri : "", "map_tasks",
                  (json_int_t)atomic_load(&jr->nmaps), "reduce_tasks", (json_int_t)plan->job.reducers, "started_ms",
                  (json_int_t)jr->started_ms, "updated_ms", (json_int_t)lmr_wall_ms(), "parts", parts);
    if (rec)
        json_object_set_new(rec, "round", json_integer(jr->opts->round ? jr->opts->round : 1));
    if (rec && error)
        json_object_set_new(rec, "error", json_string(error));
    json_t *coord = coordinator_invocations(jr);
    if (rec && coord) {
        json_object_set_new(rec, "so_far", so_far_json(jr, coord));
        json_object_set(rec, "coordinator_invocations", coord);
    }
    json_decref(coord);
    if (rec && jr->last.phase)
        json_object_set_new(rec, "progress",
                            json_pack("{s:s, s:I, s:I, s:I, s:I}", "phase", jr->last.phase, "done",
                                      (json_int_t)jr->last.done, "total", (json_int_t)jr->last.total, "running",
                                      (json_int_t)jr->last.running, "failed_attempts",
                                      (json_int_t)jr->last.failed_attempts));
    char *text = rec ? json_dumps(rec, JSON_INDENT(1)) : NULL;
    char *key = lmr_work_key(&plan->job, "job.json");
    struct lmr_err err = {0};
    if (!text || !key || lmr_store_put(jr->opts->work_store, key, text, strlen(text), 0, &err))
        LMR_WARN("could not write the job record of job %s: %s", plan->job.job_id,
                 err.msg[0] ? err.msg : "out of memory");
    json_decref(rec);
    free(text);
    free(key);
}

/*
 * The watcher thread: renews the lease every third of its duration and passes the caller's
 * stop flag (cancel) on to the phases, looking every WATCH_MS.
 */
#define WATCH_MS 100u

static void *watch_loop(void *arg)
{
    struct job_run *jr = arg;
    uint64_t every_ms = jr->opts->lease ? lmr_lease_duration_ms(jr->opts->lease) / 3 : UINT64_MAX;
    uint64_t next_renew = lmr_wall_ms() + every_ms;
    unsigned polls = 0;
    char *cancel_key = lmr_work_key(&jr->plan->job, "cancel");
    pthread_mutex_lock(&jr->lock);
    while (!jr->quit && !jr->lease_lost) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t ns = (uint64_t)ts.tv_nsec + WATCH_MS * 1000000ull;
        ts.tv_sec += (time_t)(ns / 1000000000ull);
        ts.tv_nsec = (long)(ns % 1000000000ull);
        pthread_cond_timedwait(&jr->wake, &jr->lock, &ts);
        if (jr->quit)
            break;
        if (jr->opts->stop && atomic_load(jr->opts->stop))
            atomic_store(&jr->stop, true);
        /* `lambdamr cancel` writes WORK/cancel: look for it twice a second. */
        if (++polls % (500 / WATCH_MS) == 0 && cancel_key) {
            pthread_mutex_unlock(&jr->lock);
            bool cancel = lmr_store_head(jr->opts->work_store, cancel_key, NULL, NULL) == LMR_OK;
            pthread_mutex_lock(&jr->lock);
            if (cancel) {
                jr->cancelled = true;
                atomic_store(&jr->stop, true);
            }
        }
        if (jr->opts->parent_pid && getppid() != jr->opts->parent_pid && !jr->deadline_hit) {
            LMR_WARN("job %s: the Lambda service that ran this coordinator is gone; stopping", jr->plan->job.job_id);
            jr->deadline_hit = jr->abandoned = true;
            atomic_store(&jr->stop, true);
        }
        if (jr->opts->stop_at_ms && lmr_wall_ms() >= jr->opts->stop_at_ms && !jr->deadline_hit) {
            jr->deadline_hit = true;
            atomic_store(&jr->stop, true);
        }
        if (!jr->opts->lease || lmr_wall_ms() < next_renew)
            continue;
        next_renew = lmr_wall_ms() + every_ms;
        pthread_mutex_unlock(&jr->lock);
        struct lmr_err err = {0};
        enum lmr_result r = lmr_lease_renew(jr->opts->lease, &err);
        pthread_mutex_lock(&jr->lock);
        if (r == LMR_ERR_EXISTS) { /* taken over: stop at once */
            jr->lease_lost = true;
            jr->lease_err = err;
            atomic_store(&jr->stop, true);
        } else if (r) { /* the store hiccupped: the next round tries again, well before expiry */
            LMR_WARN("could not renew the lease of job %s: %s", jr->plan->job.job_id, err.msg);
        }
    }
    pthread_mutex_unlock(&jr->lock);
    free(cancel_key);
    return NULL;
}

/* ---- report ----------------------------------------------------------------------------------------------- */

static bool map_only_plan(const struct lmr_job_plan *plan)
{
    return plan->job.reducers == 0;
}

static void sum_field(json_t *into, const char *name, json_t *responses)
{
    uint64_t total = 0;
    size_t i;
    json_t *r;
    json_array_foreach(responses, i, r) total += lmr_json_u64(r, name, 0);
    json_object_set_new(into, name, json_integer((json_int_t)total));
}

static void add_store_stats(uint64_t *acc, json_t *stats)
{
    static const char *const names[] = {"get", "put", "list", "head", "delete"};
    for (int k = 0; k < 5; k++)
        acc[k] += lmr_json_u64(stats, names[k], 0);
}

static json_t *phase_json(const struct lmr_phase_result *pr, size_t ntasks, const char *const *fields, size_t nfields)
{
    json_t *o = json_pack("{s:f, s:f, s:f, s:I, s:I, s:I, s:I}", "wall_ms", pr->wall_ms, "start_ms", pr->start_ms,
                          "end_ms", pr->end_ms, "tasks", (json_int_t)ntasks, "attempts", (json_int_t)pr->attempts,
                          "failed_attempts", (json_int_t)pr->failed_attempts, "reused", (json_int_t)pr->reused);
    json_object_set_new(o, "backups_started", json_integer((json_int_t)pr->backups));
    json_object_set_new(o, "backups_won", json_integer((json_int_t)pr->backups_won));
    for (size_t f = 0; f < nfields; f++)
        sum_field(o, fields[f], pr->responses);
    uint64_t req[5] = {0};
    size_t i;
    json_t *r;
    json_array_foreach(pr->responses, i, r) add_store_stats(req, json_object_get(r, "store"));
    json_t *counters = json_object(); /* the jobs' named counters (lmr_job_count), summed */
    json_array_foreach(pr->responses, i, r) lmr_job_counters_sum_json(counters, json_object_get(r, "counters"));
    json_object_set_new(o, "counters", counters);
    json_object_set_new(o, "store_requests",
                        json_pack("{s:I, s:I, s:I, s:I, s:I}", "get", (json_int_t)req[0], "put", (json_int_t)req[1],
                                  "list", (json_int_t)req[2], "head", (json_int_t)req[3], "delete",
                                  (json_int_t)req[4]));
    return o;
}

static json_t *build_report(struct job_run *jr, const struct lmr_phase_result *map,
                            const struct lmr_phase_result *merge, const struct lmr_phase_result *red, double commit_ms,
                            double wall_ms, uint64_t *driver_store)
{
    const struct lmr_job_plan *plan = jr->plan;
    static const char *const map_fields[] = {
        "records_in",         "bytes_in",     "records_out", "intermediate_raw_bytes",
        "intermediate_bytes", "output_bytes", "spills",      "malformed_records"};
    static const char *const reduce_fields[] = {"frames", "records_in",  "bytes_in",
                                                "groups", "records_out", "bytes_out"};
    static const char *const merge_fields[] = {"sources", "records_in", "bytes_in", "records_out", "bytes_out"};
    json_t *phases = json_object();
    json_object_set_new(phases, "plan",
                        json_pack("{s:f, s:f, s:f}", "wall_ms", plan->plan_ms, "start_ms", jr->start_ms, "end_ms",
                                  jr->start_ms + plan->plan_ms));
    json_t *mp = phase_json(map, jr->nmaps, map_fields, 8);
    json_object_set_new(mp, "planned_tasks", json_integer((json_int_t)plan->ntasks));
    json_object_set_new(mp, "split_requests", json_integer((json_int_t)map->split_requests));
    json_object_set_new(mp, "splits", json_integer((json_int_t)map->splits));
    json_object_set_new(phases, "map", mp);
    if (merge)
        json_object_set_new(phases, "merge", phase_json(merge, jr->nmerge, merge_fields, 5));
    if (red)
        json_object_set_new(phases, "reduce", phase_json(red, jr->nreduce, reduce_fields, 6));
    json_object_set_new(phases, "commit",
                        json_pack("{s:f, s:f, s:f}", "wall_ms", commit_ms, "start_ms",
                                  (double)lmr_wall_ms() - commit_ms, "end_ms", (double)lmr_wall_ms()));

    /* Store requests: the tasks' own plus the coordinator's. */
    uint64_t req[5] = {0};
    size_t i;
    json_t *r;
    json_array_foreach(map->responses, i, r) add_store_stats(req, json_object_get(r, "store"));
    if (merge)
        json_array_foreach(merge->responses, i, r) add_store_stats(req, json_object_get(r, "store"));
    if (red)
        json_array_foreach(red->responses, i, r) add_store_stats(req, json_object_get(r, "store"));
    for (int k = 0; k < 5; k++)
        req[k] += driver_store[k];

    /* Billing: every invocation, failed attempts included, as Lambda bills them (Init included). */
    json_t *invocations = json_array();
    json_array_extend(invocations, map->invocations);
    if (merge)
        json_array_extend(invocations, merge->invocations);
    if (red)
        json_array_extend(invocations, red->invocations);
    /* The coordinator's own invocations (every round) are billed too: the cost covers them. */
    json_t *coord = coordinator_invocations(jr), *billed = json_copy(invocations);
    json_array_extend(billed, coord);
    struct lmr_request_counts counts = {.get = req[0], .put = req[1], .list = req[2], .head = req[3], .del = req[4]};
    json_t *cost = lmr_cost_batch(jr->prices, billed, &counts);
    json_decref(billed);
    if (cost) {
        struct lmr_request_counts none = {0};
        json_t *cc = lmr_cost_batch(jr->prices, coord, &none);
        json_object_set_new(cost, "coordinator",
                            json_pack("{s:I, s:f, s:f}", "invocations", (json_int_t)json_array_size(coord),
                                      "gb_seconds", lmr_json_double(cc, "gb_seconds", 0), "lambda_usd",
                                      lmr_json_double(cc, "lambda_usd", 0)));
        json_decref(cc);
    }
    double mb = (double)plan->input_bytes / (1024.0 * 1024.0);

    json_t *report = json_object();
    json_object_set_new(report, "schema_version", json_integer(LMR_REPORT_SCHEMA_VERSION));
    json_object_set_new(report, "kind", json_string("batch"));
    json_object_set_new(report, "job_id", json_string(plan->job.job_id));
    json_object_set_new(report, "job", json_string(plan->job.job_name));
    json_object_set_new(report, "args", lmr_job_args_to_json(plan->job.args));
    json_object_set_new(report, "status", json_string("succeeded"));
    json_object_set_new(report, "input",
                        json_pack("{s:O, s:I, s:I}", "uris", plan->input_uris ? plan->input_uris : json_null(),
                                  "objects", (json_int_t)plan->input_objects, "bytes", (json_int_t)plan->input_bytes));
    json_object_set_new(report, "output", json_string(plan->output_uri ? plan->output_uri : ""));
    if (plan->command)
        json_object_set_new(report, "command", json_string(plan->command));
    json_object_set_new(report, "start_ms", json_real(jr->start_ms));
    json_object_set_new(report, "mappers", json_integer((json_int_t)jr->nmaps));
    json_object_set_new(report, "rebalance", json_boolean(jr->split_min_bytes > 0));
    json_object_set_new(report, "reducers", json_integer((json_int_t)plan->job.reducers));
    if (!map_only_plan(plan))
        json_object_set_new(report, "exchange",
                            json_pack("{s:s, s:I, s:I, s:I}", "mode", plan->merge_fan_in ? "merge" : "direct", "fan_in",
                                      (json_int_t)plan->merge_fan_in, "merge_tasks", (json_int_t)jr->nmerge,
                                      "frame_lists_stored", (json_int_t)jr->frame_lists));
    json_object_set_new(report, "memory_mb", json_integer((json_int_t)plan->job.memory_mb));
    json_object_set_new(report, "wall_ms", json_real(wall_ms));
    json_object_set_new(report, "throughput_mib_s", json_real(wall_ms > 0 ? mb / (wall_ms / 1000.0) : 0));
    json_t *counters = json_object();
    lmr_job_counters_sum_json(counters, json_object_get(json_object_get(phases, "map"), "counters"));
    lmr_job_counters_sum_json(counters, json_object_get(json_object_get(phases, "merge"), "counters"));
    lmr_job_counters_sum_json(counters, json_object_get(json_object_get(phases, "reduce"), "counters"));
    json_object_set_new(report, "counters", counters);
    json_object_set_new(report, "phases", phases);
    json_object_set_new(report, "store_requests",
                        json_pack("{s:I, s:I, s:I, s:I, s:I}", "get", (json_int_t)req[0], "put", (json_int_t)req[1],
                                  "list", (json_int_t)req[2], "head", (json_int_t)req[3], "delete",
                                  (json_int_t)req[4]));
    json_object_set_new(report, "cost", cost);
    json_object_set_new(report, "invocations", invocations);
    json_object_set_new(report, "coordinator_invocations", coord);
    return report;
}

/* ---- the job ---------------------------------------------------------------------------------------------- */

static void progress(const struct lmr_coordinator_options *opts, const char *phase, uint32_t done, uint32_t total)
{
    if (opts->progress) {
        struct lmr_progress p = {.phase = phase, .done = done, .total = total};
        opts->progress(opts->progress_user_data, &p);
    }
}

/* Requests this process made itself, through its stores (counted like the tasks' "store" figures). */
static void coordinator_requests(const struct lmr_coordinator_options *o, uint64_t *acc)
{
    struct lmr_store_set own = {.n = 0};
    const struct lmr_store_set *set = o->driver_stores;
    if (!set) {
        own.stores[own.n++] = o->work_store;
        if (o->output_store != o->work_store)
            own.stores[own.n++] = o->output_store;
        set = &own;
    }
    json_t *stats = lmr_store_set_stats_json(set);
    add_store_stats(acc, stats);
    json_decref(stats);
}

/*
 * The keys the clean-up at the job's end keeps: the manifest, and the commit records of tasks with
 * a superseded attempt still in flight (so that it finds its task committed and writes nothing;
 * they go once it has returned). NULL-terminated, malloc'd; the keys too except the first.
 */
static char **keep_keys(struct job_run *jr, const char *manifest_key, const struct lmr_phase_result *map,
                        const struct lmr_phase_result *red)
{
    size_t n = 1 + (map ? map->nlingering : 0) + (red ? red->nlingering : 0), k = 1;
    char **keep = calloc(n + 1, sizeof *keep);
    if (!keep)
        return NULL;
    keep[0] = (char *)manifest_key;
    for (size_t i = 0; map && i < map->nlingering; i++)
        if ((keep[k] = map_commit_key(jr, map->lingering_tasks[i])))
            k++;
    for (size_t i = 0; red && i < red->nlingering; i++)
        if ((keep[k] = reduce_commit_key(jr, red->lingering_tasks[i])))
            k++;
    return keep;
}

static void free_keep_keys(char **keep)
{
    for (size_t k = 1; keep && keep[k]; k++)
        free(keep[k]);
    free(keep);
}

/*
 * At the job's end: wait (until the deadline margin) for superseded attempts still in flight, then
 * remove what they wrote: all leftover work data when the job ended (ended), else (a continuation
 * takes over) only their own. @return attempts still in flight after the wait (they use the invoker).
 */
static size_t settle_lingering(struct job_run *jr, struct lmr_phase_result *map, struct lmr_phase_result *red,
                               bool ended)
{
    const struct lmr_coordinator_options *o = jr->opts;
    size_t n = map->nlingering + red->nlingering;
    if (!n)
        return 0;
    uint64_t now = lmr_wall_ms(), until = o->stop_at_ms ? o->stop_at_ms : 0;
    if (until && until < now + 1000)
        until = now + 1000;
    LMR_INFO("job %s: waiting for %zu superseded attempt%s still in flight", jr->plan->job.job_id, n,
             n == 1 ? "" : "s");
    size_t still = lmr_phase_wait_lingering(map, until) + lmr_phase_wait_lingering(red, until);
    if (still)
        LMR_WARN("job %s: %zu superseded attempt%s still running at the deadline; what %s writes stays in %s%s",
                 jr->plan->job.job_id, still, still == 1 ? " is" : "s are", still == 1 ? "it" : "they",
                 o->work_store->root_uri, jr->plan->job.work.key);
    if (ended) {
        char *manifest_key = lmr_work_key(&jr->plan->job, "manifest.json");
        char *record_key = lmr_work_key(&jr->plan->job, "job.json");
        const char *keep[] = {manifest_key, record_key, NULL};
        if (manifest_key && record_key)
            delete_prefix(o->work_store, jr->plan->job.work.key, keep);
        free(manifest_key);
        free(record_key);
    } else {
        for (size_t i = 0; i < map->nlingering; i++)
            map_discard(jr, map->lingering_tasks[i]);
        for (size_t i = 0; i < red->nlingering; i++)
            reduce_discard(jr, red->lingering_tasks[i]);
    }
    return still;
}

/* The job commit: _SUCCESS (the job id and its parts) once the lease is confirmed ours, then the report. */
static enum lmr_result commit_job(struct job_run *jr, const struct lmr_phase_result *map,
                                  const struct lmr_phase_result *merge, const struct lmr_phase_result *red, double t0,
                                  double tc, json_t **report, struct lmr_err *err)
{
    const struct lmr_coordinator_options *o = jr->opts;
    const struct lmr_job_plan *plan = jr->plan;
    char *success_key = lmr_output_key(&plan->job, "_SUCCESS");
    char *report_key = lmr_output_key(&plan->job, "_lambdamr/report.json");
    char *manifest_key = lmr_work_key(&plan->job, "manifest.json");
    char *record_key = lmr_work_key(&plan->job, "job.json");
    size_t nparts = part_count(jr);
    char(*names)[32] = calloc(nparts + 1, sizeof *names);
    const char **parts = calloc(nparts + 1, sizeof *parts);
    enum lmr_result r = success_key && report_key && manifest_key && record_key && names && parts
                            ? LMR_OK
                            : lmr_fail(err, LMR_ERR_NOMEM, "out of memory committing job %s", plan->job.job_id);
    for (size_t i = 0; !r && i < nparts; i++) {
        part_name(&plan->job, i, names[i]);
        parts[i] = names[i];
    }
    /* Only the lease holder may commit: renew once more (fails if another job took the output over). */
    if (!r && o->lease)
        r = lmr_lease_renew(o->lease, err);
    if (!r && atomic_load(&jr->stop) && jr->lease_lost)
        r = lmr_fail(err, jr->lease_err.code, "%s", jr->lease_err.msg);
    else if (!r && atomic_load(&jr->stop))
        r = lmr_fail(err, LMR_ERR_CANCELLED, "job %s was cancelled before its commit", plan->job.job_id);
    char *success = r ? NULL : lmr_output_success_text(plan->job.job_id, parts, nparts);
    if (!r && !success)
        r = lmr_fail(err, LMR_ERR_NOMEM, "out of memory writing _SUCCESS of job %s", plan->job.job_id);
    /* _SUCCESS: its presence means every part it lists is complete. */
    if (!r && (r = lmr_store_put(o->output_store, success_key, success, strlen(success), 0, err)))
        lmr_err_prefix(err, "writing _SUCCESS of job %s", plan->job.job_id);
    free(success);
    if (!r) {
        /* Intermediate data is no longer needed; the manifest and the job record stay. */
        char **keep = keep_keys(jr, manifest_key, map, red);
        const char *only_manifest[] = {manifest_key, NULL};
        delete_prefix(o->work_store, plan->job.work.key,
                      keep ? (const char *const *)keep : only_manifest); /* the job record is rewritten after */
        free_keep_keys(keep);
        uint64_t driver_store[5] = {0};
        coordinator_requests(o, driver_store);
        for (int k = 0; k < 5; k++)
            driver_store[k] += o->earlier_requests[k];
        driver_store[1] += 2; /* the report and the job record, written below */
        double now = lmr_mono_ms();
        *report = build_report(jr, map, merge, red, now - tc, now - t0 + plan->plan_ms, driver_store);
        char *text = *report ? json_dumps(*report, JSON_INDENT(2)) : NULL;
        /* The job is committed once _SUCCESS is there: a report that cannot be written is a warning. */
        struct lmr_err rerr = {0};
        if (!text || lmr_store_put(o->output_store, report_key, text, strlen(text), 0, &rerr))
            LMR_WARN("job %s succeeded but its report %s could not be written: %s", plan->job.job_id, report_key,
                     rerr.msg[0] ? rerr.msg : "out of memory");
        free(text);
    }
    free(success_key);
    free(report_key);
    free(manifest_key);
    free(record_key);
    free(names);
    free(parts);
    return r;
}

enum lmr_result lmr_coordinator_run(const struct lmr_coordinator_options *opts, const struct lmr_job_plan *plan,
                                    json_t **report, struct lmr_err *err)
{
    double t0 = lmr_mono_ms(), t_plan = plan->plan_ms;
    enum lmr_result r0;
    struct lmr_coordinator_options o = *opts;
    if (!o.concurrency)
        o.concurrency = 8;
    if (!o.max_attempts)
        o.max_attempts = 3;
    struct lmr_prices default_prices;
    if (!o.prices) {
        if ((r0 = lmr_prices_load(NULL, NULL, NULL, &default_prices, err)))
            return r0;
        o.prices = &default_prices;
    }
    struct job_run jr = {.opts = &o,
                         .plan = plan,
                         .prices = o.prices,
                         .start_ms = (double)lmr_wall_ms() - t_plan,
                         .started_ms = lmr_json_u64(o.earlier_record, "started_ms", 0),
                         .done_invocations = json_array()};
    if (!jr.started_ms) /* the job's start: the first round's */
        jr.started_ms = lmr_wall_ms();
    struct lmr_phase_result map = {0}, merge = {0}, red = {0};
    bool map_only = plan->job.reducers == 0;
    *report = NULL;
    /* The map tasks: the plan's, and room for the tails rebalancing may add (jobs with a reduce phase). */
    bool rebalance = !map_only && (o.rebalance == LMR_REBALANCE_ON ||
                                   (o.rebalance == LMR_REBALANCE_AUTO && lmr_rebalance_exact(&plan->job)));
    jr.split_min_bytes = rebalance ? split_min_bytes() : 0;
    jr.max_maps = plan->ntasks + (map_only ? 0 : MAP_TAILS_MAX);
    jr.maps = calloc(jr.max_maps, sizeof *jr.maps);
    pthread_mutex_init(&jr.maps_lock, NULL);
    atomic_init(&jr.nmaps, plan->ntasks);
    if (!jr.maps) {
        pthread_mutex_destroy(&jr.maps_lock);
        json_decref(jr.done_invocations);
        return lmr_fail(err, LMR_ERR_NOMEM, "out of memory for the map tasks of job %s", plan->job.job_id);
    }
    for (size_t i = 0; i < plan->ntasks; i++)
        jr.maps[i] = (struct map_entry){.t = plan->tasks[i], .parent = SIZE_MAX, .tail = SIZE_MAX};
    /* A resumed job's tails (any earlier round may have split its tasks, with or without --rebalance now). */
    enum lmr_result rt = !map_only && o.resume ? discover_tails(&jr, err) : LMR_OK;
    atomic_init(&jr.stop, false);
    pthread_mutex_init(&jr.lock, NULL);
    pthread_cond_init(&jr.wake, NULL);
    pthread_mutex_init(&jr.progress_lock, NULL);
    struct lmr_coordinator_options phase_opts = o;
    phase_opts.stop = &jr.stop; /* the watcher sets it on cancel, a lost lease or the deadline */
    phase_opts.progress = record_progress;
    phase_opts.progress_user_data = &jr;
    if (o.continued)
        *o.continued = false;
    pthread_t watcher;
    bool watching = pthread_create(&watcher, NULL, watch_loop, &jr) == 0;

    write_job_record(&jr, "running", "map", NULL);
    size_t nmaps0 = atomic_load(&jr.nmaps), room = 2 * (size_t)o.concurrency + 16;
    struct lmr_phase map_phase = {.name = "map",
                                  .function = o.map_function,
                                  .ntasks = nmaps0,
                                  .planned_tasks = plan->ntasks,
                                  .build_event = map_event,
                                  .commit_key = map_commit_key,
                                  .discard = map_discard,
                                  .user_data = &jr,
                                  .check_committed_first = o.resume};
    if (rebalance) {
        map_phase.max_tasks = nmaps0 + room < jr.max_maps ? nmaps0 + room : jr.max_maps;
        map_phase.split_poll_ms =
            strncmp(o.work_store->root_uri, "file://", 7) ? SPLIT_POLL_REMOTE_MS : SPLIT_POLL_FILE_MS;
        map_phase.split_request = map_split_request;
        map_phase.split_poll = map_split_poll;
        map_phase.split_committed = map_split_committed;
    }
    enum lmr_result r = rt ? rt : lmr_phase_run(&phase_opts, &map_phase, &map, err);
    pthread_mutex_lock(&jr.progress_lock);
    json_array_extend(jr.done_invocations, map.invocations); /* the reduce phase's progress adds its own */
    pthread_mutex_unlock(&jr.progress_lock);
    /* The map task count is known now: the exchange's merge tasks cover them all. */
    jr.nmerge = map_only ? 0 : (size_t)lmr_exchange_merge_tasks(atomic_load(&jr.nmaps), plan->merge_fan_in);
    if (!r && jr.nmerge) {
        /* The multi-stage exchange: merge tasks (the reducer function, event kind "merge") merge
         * groups of map outputs, so reducers read ceil(M/G) objects instead of M. */
        write_job_record(&jr, "running", "merge", NULL);
        struct lmr_phase merge_phase = {.name = "merge",
                                        .function = o.reduce_function,
                                        .ntasks = jr.nmerge,
                                        .build_event = merge_event,
                                        .commit_key = merge_commit_key,
                                        .user_data = &jr,
                                        .check_committed_first = o.resume};
        r = lmr_phase_run(&phase_opts, &merge_phase, &merge, err);
        pthread_mutex_lock(&jr.progress_lock);
        json_array_extend(jr.done_invocations, merge.invocations);
        pthread_mutex_unlock(&jr.progress_lock);
    }
    if (!r && !map_only) {
        write_job_record(&jr, "running", "reduce", NULL);
        r = plan_reducers(&jr, err);
    }
    /* (function scope: superseded reduce attempts still in flight after the phase use them) */
    struct lmr_phase reduce_phase = {.name = "reduce",
                                     .function = o.reduce_function,
                                     .build_event = reduce_event,
                                     .commit_key = reduce_commit_key,
                                     .discard = reduce_discard,
                                     .user_data = &jr,
                                     .check_committed_first = o.resume};
    struct lmr_coordinator_options reduce_opts = phase_opts;
    if (!r && !map_only) {
        reduce_phase.ntasks = jr.nreduce;
        /* Superseded map attempts still in flight hold slots of the concurrency limit. */
        uint32_t held = (uint32_t)map.nlingering;
        reduce_opts.concurrency = phase_opts.concurrency > held ? phase_opts.concurrency - held : 1;
        r = lmr_phase_run(&reduce_opts, &reduce_phase, &red, err);
        pthread_mutex_lock(&jr.progress_lock);
        json_array_extend(jr.done_invocations, red.invocations);
        pthread_mutex_unlock(&jr.progress_lock);
    }
    /* A lost lease explains a stopped phase better than the phase does. */
    if (r && jr.lease_lost)
        r = lmr_fail(err, jr.lease_err.code, "%s", jr.lease_err.msg);
    /* Tasks fail fast once the service is gone: look again now, before calling the job failed. */
    if (r && o.parent_pid && getppid() != o.parent_pid)
        jr.deadline_hit = jr.abandoned = true;
    if (r && jr.cancelled)
        r = lmr_fail(err, LMR_ERR_CANCELLED, "job %s was cancelled (lambdamr cancel)", plan->job.job_id);
    /* The deadline: leave everything (lease, work data, job record) to a continuation. */
    bool continued = r && jr.deadline_hit && !jr.lease_lost && !jr.cancelled;
    if (continued)
        r = lmr_fail(err, LMR_ERR_TIMEOUT, "job %s paused before its deadline; a continuation takes it over",
                     plan->job.job_id);

    double tc = lmr_mono_ms();
    if (!r) {
        write_job_record(&jr, "running", "commit", NULL);
        progress(&o, "commit", 0, 1);
        r = commit_job(&jr, &map, jr.nmerge ? &merge : NULL, map_only ? NULL : &red, t0, tc, report, err);
        progress(&o, "commit", 1, 1);
    }
    if (watching) {
        pthread_mutex_lock(&jr.lock);
        jr.quit = true;
        pthread_cond_broadcast(&jr.wake);
        pthread_mutex_unlock(&jr.lock);
        pthread_join(watcher, NULL);
    }
    const char *status = !r ? "succeeded" : r == LMR_ERR_CANCELLED ? "cancelled" : "failed";
    if (continued) {
        if (o.continued)
            *o.continued = !jr.abandoned;
        if (settle_lingering(&jr, &map, &red, false) && o.invoker_in_use)
            *o.invoker_in_use = true;
        if (!jr.abandoned) /* this round's end and figures, for the next round to carry on */
            write_job_record(&jr, "running", jr.phase ? jr.phase : "map", NULL);
        goto done;
    }
    if (r && !jr.lease_lost) {
        /* Only the lease holder cleans up: a job that lost its output removes nothing there. */
        char *manifest_key = lmr_work_key(&plan->job, "manifest.json");
        delete_parts(&jr);
        char **keep = keep_keys(&jr, manifest_key, &map, &red);
        const char *only_manifest[] = {manifest_key, NULL};
        delete_prefix(o.work_store, plan->job.work.key, keep ? (const char *const *)keep : only_manifest);
        free_keep_keys(keep);
        free(manifest_key);
    }
    if (!jr.lease_lost)
        write_job_record(&jr, status, "done", r ? (err && err->msg[0] ? err->msg : lmr_result_str(r)) : NULL);
    if (o.lease && !jr.lease_lost) {
        struct lmr_err lerr = {0};
        if (lmr_lease_release(o.lease, status, &lerr))
            LMR_WARN("could not release the lease of job %s: %s", plan->job.job_id, lerr.msg);
    }
    /* The job has ended (followers see it): now wait for superseded attempts and remove their data. */
    if (settle_lingering(&jr, &map, &red, !jr.lease_lost) && o.invoker_in_use)
        *o.invoker_in_use = true;
done:
    if (r) {
        json_decref(*report);
        *report = NULL;
    }
    free_reduce_tasks(&jr);
    json_decref(jr.done_invocations);
    lmr_phase_result_clean_up(&map);
    lmr_phase_result_clean_up(&merge);
    lmr_phase_result_clean_up(&red);
    for (size_t i = 0; i < atomic_load(&jr.nmaps); i++)
        if (jr.maps[i].owned) {
            for (size_t k = 0; k < jr.maps[i].t.nshards; k++)
                lmr_location_clean_up(&jr.maps[i].t.shards[k].object);
            free(jr.maps[i].t.shards);
        }
    free(jr.maps);
    pthread_mutex_destroy(&jr.maps_lock);
    pthread_mutex_destroy(&jr.lock);
    pthread_cond_destroy(&jr.wake);
    pthread_mutex_destroy(&jr.progress_lock);
    return r;
}
