#include "coordinator.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "job/counters.h"
#include "phase.h"
#include "util/log.h"
#include "util/misc.h"

#define COMMIT_RECORD_MAX_BYTES (16u << 20)

struct job_run {
    const struct lmr_coordinator_options *opts;
    const struct lmr_prices *prices;
    double start_ms; /* wall clock when planning started */
    const struct lmr_job_plan *plan;
    struct lmr_reduce_task *reduce_tasks;
    size_t nreduce;
};

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
    struct lmr_map_task t = jr->plan->tasks[i]; /* shallow copy: shards and job are borrowed */
    t.job = jr->plan->job;
    t.task = (uint32_t)i;
    t.attempt = attempt;
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

/* ---- shuffle planning ------------------------------------------------------------------------------------- */

/* Read every map task's commit record and give each reducer the frames of its partition. */
static enum lmr_result plan_reducers(struct job_run *jr, struct lmr_err *err)
{
    uint32_t R = jr->plan->job.reducers;
    jr->reduce_tasks = calloc(R, sizeof *jr->reduce_tasks);
    if (!jr->reduce_tasks)
        return LMR_ERR_NOMEM;
    jr->nreduce = R;
    for (uint32_t r = 0; r < R; r++) {
        jr->reduce_tasks[r].task = r;
        jr->reduce_tasks[r].frames = calloc(jr->plan->ntasks + 1, sizeof(struct lmr_frame));
        if (!jr->reduce_tasks[r].frames)
            return LMR_ERR_NOMEM;
    }
    enum lmr_result res = LMR_OK;
    for (size_t m = 0; m < jr->plan->ntasks && !res; m++) {
        char *key = map_commit_key(jr, m);
        struct lmr_buf b;
        lmr_buf_init(&b, COMMIT_RECORD_MAX_BYTES);
        res = key ? lmr_store_get(jr->opts->work_store, key, 0, LMR_STORE_TO_END, &b, err) : LMR_ERR_NOMEM;
        json_t *rec = res ? NULL : json_loadb(b.data ? b.data : "", b.len, 0, NULL);
        const char *object = lmr_json_str(rec, "object", NULL);
        json_t *frames = json_object_get(rec, "frames");
        if (!res && (!object || json_array_size(frames) != R))
            res = lmr_fail(err, LMR_ERR_FORMAT, "commit record '%s' of map task %zu is malformed (expected %u frames)",
                           key, m, R);
        for (uint32_t r = 0; !res && r < R; r++) {
            json_t *f = json_array_get(frames, r);
            uint64_t records = (uint64_t)json_integer_value(json_array_get(f, 2));
            if (records == 0)
                continue; /* nothing for this reducer: save the request */
            struct lmr_reduce_task *t = &jr->reduce_tasks[r];
            struct lmr_frame *fr = &t->frames[t->nframes++];
            fr->key = strdup(object);
            fr->offset = (uint64_t)json_integer_value(json_array_get(f, 0));
            fr->size_bytes = (uint64_t)json_integer_value(json_array_get(f, 1));
            fr->records = records;
            fr->raw_bytes = (uint64_t)json_integer_value(json_array_get(f, 3));
            if (!fr->key)
                res = LMR_ERR_NOMEM;
        }
        json_decref(rec);
        lmr_buf_clean_up(&b);
        free(key);
    }
    return res;
}

static void free_reduce_tasks(struct job_run *jr)
{
    for (size_t r = 0; r < jr->nreduce; r++) {
        for (size_t i = 0; i < jr->reduce_tasks[r].nframes; i++)
            free(jr->reduce_tasks[r].frames[i].key);
        free(jr->reduce_tasks[r].frames);
    }
    free(jr->reduce_tasks);
}

/* ---- clean-up --------------------------------------------------------------------------------------------- */

struct key_list {
    char **keys;
    size_t n, cap;
    const char *keep; /* a key not to collect */
};

static enum lmr_result collect_key(void *user_data, const struct lmr_store_object *obj)
{
    struct key_list *kl = user_data;
    if (kl->keep && !strcmp(obj->key, kl->keep))
        return LMR_OK;
    if (kl->n == kl->cap) {
        size_t cap = kl->cap ? kl->cap * 2 : 64;
        char **k = realloc(kl->keys, cap * sizeof *k);
        if (!k)
            return LMR_ERR_NOMEM;
        kl->keys = k;
        kl->cap = cap;
    }
    if (!(kl->keys[kl->n] = strdup(obj->key)))
        return LMR_ERR_NOMEM;
    kl->n++;
    return LMR_OK;
}

static void delete_prefix(struct lmr_store *s, const char *prefix, const char *keep)
{
    struct key_list kl = {.keep = keep};
    struct lmr_err err = {0};
    if (lmr_store_list(s, prefix, collect_key, &kl, &err) == LMR_OK)
        lmr_store_delete(s, (const char *const *)kl.keys, kl.n, &err);
    if (err.code)
        LMR_WARN("could not clean up %s%s: %s", s->root_uri, prefix, err.msg);
    for (size_t i = 0; i < kl.n; i++)
        free(kl.keys[i]);
    free(kl.keys);
}

/* Remove the part files this job may have committed, so a failed job leaves no partial output. */
static void delete_parts(struct job_run *jr)
{
    const struct lmr_job_common *job = &jr->plan->job;
    bool map_only = job->reducers == 0;
    size_t n = map_only ? jr->plan->ntasks : job->reducers;
    for (size_t i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "part-%c-%05zu", map_only ? 'm' : 'r', i);
        char *key = lmr_output_key(job, name);
        if (key)
            lmr_store_delete(jr->opts->output_store, (const char *const *)&key, 1, NULL);
        free(key);
    }
}

/* ---- report ----------------------------------------------------------------------------------------------- */

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
    json_t *o = json_pack("{s:f, s:f, s:f, s:I, s:I, s:I}", "wall_ms", pr->wall_ms, "start_ms", pr->start_ms, "end_ms",
                          pr->end_ms, "tasks", (json_int_t)ntasks, "attempts", (json_int_t)pr->attempts,
                          "failed_attempts", (json_int_t)pr->failed_attempts);
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

static json_t *build_report(struct job_run *jr, const struct lmr_phase_result *map, const struct lmr_phase_result *red,
                            double commit_ms, double wall_ms, uint64_t *driver_store)
{
    const struct lmr_job_plan *plan = jr->plan;
    static const char *const map_fields[] = {
        "records_in",         "bytes_in",     "records_out", "intermediate_raw_bytes",
        "intermediate_bytes", "output_bytes", "spills",      "malformed_records"};
    static const char *const reduce_fields[] = {"frames", "records_in",  "bytes_in",
                                                "groups", "records_out", "bytes_out"};
    json_t *phases = json_object();
    json_object_set_new(phases, "plan",
                        json_pack("{s:f, s:f, s:f}", "wall_ms", plan->plan_ms, "start_ms", jr->start_ms, "end_ms",
                                  jr->start_ms + plan->plan_ms));
    json_object_set_new(phases, "map", phase_json(map, plan->ntasks, map_fields, 8));
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
    if (red)
        json_array_foreach(red->responses, i, r) add_store_stats(req, json_object_get(r, "store"));
    for (int k = 0; k < 5; k++)
        req[k] += driver_store[k];

    /* Billing: every invocation, failed attempts included, as Lambda bills them (Init included). */
    json_t *invocations = json_array();
    json_array_extend(invocations, map->invocations);
    if (red)
        json_array_extend(invocations, red->invocations);
    struct lmr_request_counts counts = {.get = req[0], .put = req[1], .list = req[2], .head = req[3], .del = req[4]};
    json_t *cost = lmr_cost_batch(jr->prices, invocations, &counts);
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
    json_object_set_new(report, "mappers", json_integer((json_int_t)plan->ntasks));
    json_object_set_new(report, "reducers", json_integer((json_int_t)plan->job.reducers));
    json_object_set_new(report, "memory_mb", json_integer((json_int_t)plan->job.memory_mb));
    json_object_set_new(report, "wall_ms", json_real(wall_ms));
    json_object_set_new(report, "throughput_mib_s", json_real(wall_ms > 0 ? mb / (wall_ms / 1000.0) : 0));
    json_t *counters = json_object();
    lmr_job_counters_sum_json(counters, json_object_get(json_object_get(phases, "map"), "counters"));
    lmr_job_counters_sum_json(counters, json_object_get(json_object_get(phases, "reduce"), "counters"));
    json_object_set_new(report, "counters", counters);
    json_object_set_new(report, "phases", phases);
    json_object_set_new(report, "store_requests",
                        json_pack("{s:I, s:I, s:I, s:I, s:I}", "get", (json_int_t)req[0], "put", (json_int_t)req[1],
                                  "list", (json_int_t)req[2], "head", (json_int_t)req[3], "delete",
                                  (json_int_t)req[4]));
    json_object_set_new(report, "cost", cost);
    json_object_set_new(report, "invocations", invocations);
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
    struct job_run jr = {.opts = &o, .plan = plan, .prices = o.prices, .start_ms = (double)lmr_wall_ms() - t_plan};
    struct lmr_phase_result map = {0}, red = {0};
    bool map_only = plan->job.reducers == 0;
    *report = NULL;

    struct lmr_phase map_phase = {.name = "map",
                                  .function = o.map_function,
                                  .ntasks = plan->ntasks,
                                  .build_event = map_event,
                                  .commit_key = map_commit_key,
                                  .user_data = &jr};
    enum lmr_result r = lmr_phase_run(&o, &map_phase, &map, err);
    if (!r && !map_only)
        r = plan_reducers(&jr, err);
    if (!r && !map_only) {
        struct lmr_phase reduce_phase = {.name = "reduce",
                                         .function = o.reduce_function,
                                         .ntasks = jr.nreduce,
                                         .build_event = reduce_event,
                                         .commit_key = reduce_commit_key,
                                         .user_data = &jr};
        r = lmr_phase_run(&o, &reduce_phase, &red, err);
    }

    double tc = lmr_mono_ms();
    char *success_key = lmr_output_key(&plan->job, "_SUCCESS");
    char *report_key = lmr_output_key(&plan->job, "_lambdamr/report.json");
    char *manifest_key = lmr_work_key(&plan->job, "manifest.json");
    if (!r && (!success_key || !report_key || !manifest_key))
        r = LMR_ERR_NOMEM;
    if (!r) {
        progress(&o, "commit", 0, 1);
        /* Intermediate data is no longer needed; the manifest stays as the job's record. */
        delete_prefix(o.work_store, plan->job.work.key, manifest_key);
        uint64_t driver_store[5] = {0};
        coordinator_requests(&o, driver_store);
        driver_store[1] += 2; /* the report and _SUCCESS, written below */
        double now = lmr_mono_ms();
        *report = build_report(&jr, &map, map_only ? NULL : &red, now - tc, now - t0 + plan->plan_ms, driver_store);
        char *text = *report ? json_dumps(*report, JSON_INDENT(2)) : NULL;
        r = text ? lmr_store_put(o.output_store, report_key, text, strlen(text), 0, err) : LMR_ERR_NOMEM;
        free(text);
        /* _SUCCESS last: its presence means every part above is complete. */
        if (!r)
            r = lmr_store_put(o.output_store, success_key, "", 0, 0, err);
        progress(&o, "commit", 1, 1);
    }
    if (r) {
        delete_parts(&jr);
        delete_prefix(o.work_store, plan->job.work.key, manifest_key);
        json_decref(*report);
        *report = NULL;
    }
    free(success_key);
    free(report_key);
    free(manifest_key);
    free_reduce_tasks(&jr);
    lmr_phase_result_clean_up(&map);
    lmr_phase_result_clean_up(&red);
    return r;
}
