/* The whole job plan: request -> plan (planner.h for the inputs), locations, the manifest. */
#include "job_plan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#include "lambda/memory.h"
#include "shuffle/merge_stage.h"
#include "util/misc.h"

/* ---- the whole job ------------------------------------------------------------------------------------------ */

uint32_t lmr_plan_reducer_count(uint64_t input_bytes, uint32_t concurrency)
{
    uint64_t per_gib = input_bytes / LMR_PLAN_BYTES_PER_REDUCER + 1;
    uint64_t per_64m = input_bytes / LMR_PLAN_MIN_BYTES_PER_SPREAD_REDUCER + 1;
    uint64_t spread = per_64m < concurrency ? per_64m : concurrency;
    uint64_t r = per_gib > spread ? per_gib : spread;
    return (uint32_t)(r > LMR_PLAN_MAX_AUTO_REDUCERS ? LMR_PLAN_MAX_AUTO_REDUCERS : r);
}

char *lmr_plan_job_id(void)
{
    char rnd[9], *id = malloc(40);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    lmr_random_hex(rnd, 4);
    if (id) {
        size_t n = strftime(id, 40, "%Y%m%dT%H%M%SZ-", &tm);
        snprintf(id + n, 40 - n, "%s", rnd);
    }
    return id;
}

/* "a/b" -> "a/b/", "" -> "" (caller frees). */
static char *with_slash(const char *prefix)
{
    size_t n = strlen(prefix);
    char *s = malloc(n + 2);
    if (s)
        snprintf(s, n + 2, "%s%s", prefix, n && prefix[n - 1] != '/' ? "/" : "");
    return s;
}

static char *join3(const char *a, const char *b, const char *c)
{
    size_t n = strlen(a) + strlen(b) + strlen(c) + 1;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s%s%s", a, b, c);
    return s;
}

/* Open the store of uri into the set; *prefix receives the key prefix with a trailing '/'. */
static enum lmr_result open_location(const char *uri, const char *what, struct lmr_store_set *stores,
                                     struct lmr_store **store, char **prefix, struct lmr_err *err)
{
    char *raw = NULL;
    enum lmr_result r = lmr_store_open(uri, store, &raw, err);
    if (r)
        return lmr_err_prefix(err, "%s '%s'", what, uri);
    *prefix = with_slash(raw);
    free(raw);
    if ((r = lmr_store_set_adopt(stores, store, err)))
        return r;
    return *prefix ? LMR_OK : LMR_ERR_NOMEM;
}

/* The job's own copy of the arguments (the plan owns everything it points to). */
static enum lmr_result copy_args(const struct lmr_job_args *args, struct lmr_job_args **out, struct lmr_err *err)
{
    json_t *j = lmr_job_args_to_json(args);
    enum lmr_result r = j ? lmr_job_args_from_json(j, out, err) : LMR_ERR_NOMEM;
    json_decref(j);
    return r;
}

enum lmr_result lmr_plan_job(const struct lmr_plan_request *req, struct lmr_store_set *stores,
                             struct lmr_job_plan *plan, struct lmr_store **out_store, struct lmr_store **work_store,
                             struct lmr_err *err)
{
    double t0 = lmr_mono_ms();
    char *out_prefix = NULL, *work_base = NULL;
    memset(plan, 0, sizeof *plan);
    *out_store = *work_store = NULL;
    plan->job.job_id = req->job_id ? strdup(req->job_id) : lmr_plan_job_id();
    plan->job.job_name = strdup(req->job_name);
    plan->job.memory_mb = req->memory_mb ? req->memory_mb : LMR_MEMORY_DEFAULT_MB;
    plan->output_uri = strdup(req->output_uri);
    plan->input_uris = json_array();
    enum lmr_result r = plan->job.job_id && plan->job.job_name && plan->output_uri && plan->input_uris
                            ? copy_args(req->args, &plan->job.args, err)
                            : LMR_ERR_NOMEM;
    for (size_t i = 0; i < req->ninputs && !r; i++)
        if (json_array_append_new(plan->input_uris, json_string(req->inputs[i])))
            r = LMR_ERR_NOMEM;

    struct lmr_plan_options po = {.inputs = req->inputs,
                                  .ninputs = req->ninputs,
                                  .split_size_bytes =
                                      req->split_size_bytes ? req->split_size_bytes : LMR_PLAN_DEFAULT_SPLIT_BYTES,
                                  .split_size_given = req->split_size_given,
                                  .max_mappers = req->max_mappers,
                                  .concurrency = req->concurrency,
                                  .combining = req->combining,
                                  .assume_bytes = req->assume_bytes,
                                  .assume_objects = req->assume_objects};
    if (!r)
        r = lmr_plan_inputs(&po, stores, plan, err);
    if (!r)
        plan->job.reducers = req->map_only   ? 0
                             : req->reducers ? req->reducers
                                             : lmr_plan_reducer_count(plan->input_bytes, req->concurrency);
    if (!r)
        r = lmr_exchange_plan(req->exchange, req->merge_fan_in, plan->ntasks, plan->job.reducers, plan->job.memory_mb,
                              &plan->merge_fan_in, err);
    if (!r && req->range_ops && !req->assume_bytes) {
        struct lmr_sample_stats st;
        r = lmr_plan_sample_ranges(plan, req->range_ops, stores, &st, err);
        if (req->sample_stats)
            *req->sample_stats = st;
    }

    /* Output and work locations: WORK/<job id>/, by default OUTPUT/_lambdamr/work/<job id>/. */
    if (!r)
        r = open_location(req->output_uri, "output", stores, out_store, &out_prefix, err);
    if (!r && req->work_uri) {
        r = open_location(req->work_uri, "--work", stores, work_store, &work_base, err);
    } else if (!r) {
        *work_store = *out_store;
        work_base = join3(out_prefix, "_lambdamr/work/", "");
    }
    if (!r) {
        plan->job.work.root = strdup((*work_store)->root_uri);
        plan->job.work.key = work_base ? join3(work_base, plan->job.job_id, "/") : NULL;
        plan->job.output.root = strdup((*out_store)->root_uri);
        plan->job.output.key = out_prefix;
        out_prefix = NULL;
        if (!plan->job.work.root || !plan->job.work.key || !plan->job.output.root)
            r = LMR_ERR_NOMEM;
    }
    free(out_prefix);
    free(work_base);
    plan->plan_ms = lmr_mono_ms() - t0;
    if (r) {
        lmr_plan_clean_up(plan);
        *out_store = *work_store = NULL;
    }
    return r;
}

void lmr_plan_fingerprint(const struct lmr_plan_request *req, char out[17])
{
    json_t *in = json_array();
    for (size_t i = 0; in && i < req->ninputs; i++)
        json_array_append_new(in, json_string(req->inputs[i]));
    json_t *j =
        json_pack("{s:s, s:o, s:o, s:s, s:s, s:I, s:b, s:I, s:I, s:I, s:b}", "job", req->job_name, "args",
                  lmr_job_args_to_json(req->args), "inputs", in, "output", req->output_uri, "work",
                  req->work_uri ? req->work_uri : "", "split", (json_int_t)req->split_size_bytes, "split_given",
                  req->split_size_given, "mappers", (json_int_t)req->max_mappers, "reducers", (json_int_t)req->reducers,
                  "memory_mb", (json_int_t)req->memory_mb, "map_only", req->map_only);
    /* The exchange only when it was asked for: fingerprints of commands without it stay as they were. */
    if (j && req->exchange != LMR_EXCHANGE_AUTO)
        json_object_set_new(j, "exchange", json_string(lmr_exchange_mode_name(req->exchange)));
    if (j && req->merge_fan_in)
        json_object_set_new(j, "merge_fan_in", json_integer((json_int_t)req->merge_fan_in));
    char *text = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    snprintf(out, 17, "%016llx", (unsigned long long)(text ? XXH3_64bits(text, strlen(text)) : 0));
    free(text);
    json_decref(j);
}

void lmr_plan_clean_up(struct lmr_job_plan *plan)
{
    lmr_plan_tasks_free(plan);
    lmr_job_common_clean_up(&plan->job);
    json_decref(plan->input_uris);
    free(plan->output_uri);
    memset(plan, 0, sizeof *plan);
}

/* ---- the manifest ------------------------------------------------------------------------------------------- */

json_t *lmr_plan_manifest_json(const struct lmr_job_plan *plan)
{
    json_t *tasks = json_array();
    for (size_t i = 0; tasks && i < plan->ntasks; i++) {
        json_t *sh = json_array();
        for (size_t s = 0; sh && s < plan->tasks[i].nshards; s++)
            json_array_append_new(sh, lmr_shard_to_json(&plan->tasks[i].shards[s]));
        json_array_append_new(tasks, sh);
    }
    return json_pack("{s:i, s:o, s:O, s:s, s:I, s:I, s:f, s:{s:s, s:I}, s:o}", "version", LMR_MANIFEST_VERSION, "job",
                     lmr_job_common_to_json(&plan->job), "inputs", plan->input_uris ? plan->input_uris : json_null(),
                     "output", plan->output_uri ? plan->output_uri : "", "input_bytes", (json_int_t)plan->input_bytes,
                     "input_objects", (json_int_t)plan->input_objects, "plan_ms", plan->plan_ms, "exchange", "mode",
                     plan->merge_fan_in ? "merge" : "direct", "fan_in", (json_int_t)plan->merge_fan_in, "map_tasks",
                     tasks);
}

enum lmr_result lmr_plan_write_manifest(const struct lmr_job_plan *plan, struct lmr_store *work_store,
                                        struct lmr_err *err)
{
    json_t *m = lmr_plan_manifest_json(plan);
    char *text = m ? json_dumps(m, JSON_COMPACT) : NULL;
    char *key = lmr_work_key(&plan->job, "manifest.json");
    enum lmr_result r = text && key ? lmr_store_put(work_store, key, text, strlen(text), 0, err) : LMR_ERR_NOMEM;
    json_decref(m);
    free(text);
    free(key);
    return r;
}

enum lmr_result lmr_plan_from_manifest(const json_t *m, struct lmr_job_plan *plan, struct lmr_err *err)
{
    memset(plan, 0, sizeof *plan);
    if (lmr_json_u64(m, "version", 0) != LMR_MANIFEST_VERSION)
        return lmr_fail(err, LMR_ERR_FORMAT, "manifest: version %llu is not %d (written by another lambdamr?)",
                        (unsigned long long)lmr_json_u64(m, "version", 0), LMR_MANIFEST_VERSION);
    json_t *tasks = json_object_get(m, "map_tasks");
    if (!json_is_array(tasks) || json_array_size(tasks) == 0)
        return lmr_fail(err, LMR_ERR_FORMAT, "manifest: 'map_tasks' must be a non-empty array");
    enum lmr_result r = lmr_job_common_from_json(json_object_get(m, "job"), &plan->job, err);
    plan->input_uris = json_deep_copy(json_object_get(m, "inputs"));
    plan->output_uri = strdup(lmr_json_str(m, "output", ""));
    plan->input_bytes = lmr_json_u64(m, "input_bytes", 0);
    plan->input_objects = lmr_json_u64(m, "input_objects", 0);
    plan->plan_ms = lmr_json_double(m, "plan_ms", 0);
    plan->ntasks = json_array_size(tasks);
    /* The exchange: absent (an older manifest) is direct. */
    json_t *ex = json_object_get(m, "exchange");
    const char *mode = lmr_json_str(ex, "mode", "direct");
    uint64_t fan_in = lmr_json_u64(ex, "fan_in", 0);
    if (!r && (strcmp(mode, "direct") && strcmp(mode, "merge")))
        r = lmr_fail(err, LMR_ERR_FORMAT, "manifest: exchange mode '%s' is not direct or merge", mode);
    else if (!r && !strcmp(mode, "merge") && (fan_in < 2 || fan_in > LMR_MERGE_FAN_IN_MAX))
        r = lmr_fail(err, LMR_ERR_FORMAT, "manifest: the merge exchange's fan_in %llu is outside 2..%u",
                     (unsigned long long)fan_in, LMR_MERGE_FAN_IN_MAX);
    else if (!r && !strcmp(mode, "merge"))
        plan->merge_fan_in = (uint32_t)fan_in;
    plan->tasks = calloc(plan->ntasks, sizeof *plan->tasks);
    if (!r && (!plan->tasks || !plan->output_uri))
        r = LMR_ERR_NOMEM;
    for (size_t i = 0; !r && i < plan->ntasks; i++) {
        json_t *sh = json_array_get(tasks, i);
        if (!json_is_array(sh)) {
            r = lmr_fail(err, LMR_ERR_FORMAT, "manifest: map task %zu must be an array of shards", i);
            break;
        }
        struct lmr_map_task *t = &plan->tasks[i];
        t->shards = calloc(json_array_size(sh) + 1, sizeof *t->shards);
        if (!t->shards) {
            r = LMR_ERR_NOMEM;
            break;
        }
        for (size_t s = 0; !r && s < json_array_size(sh); s++, t->nshards++)
            r = lmr_shard_from_json(json_array_get(sh, s), &t->shards[s], err);
    }
    if (r) {
        lmr_err_prefix(err, "manifest");
        lmr_plan_clean_up(plan);
    }
    return r;
}
