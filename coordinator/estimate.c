#include "estimate.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exchange.h"
#include "lambda/memory.h"
#include "util/misc.h"

#define MiB (1024.0 * 1024.0)
/* How the tasks read (mapper/shard_reader.c, common/store/s3_store.c). */
#define TAIL_AHEAD_BYTES (16u << 10) /* read with the shard, usually the rest of its last line */
#define S3_READ_AHEAD_PARTS 4.0
#define S3_MIN_READ_PART (256.0 * 1024)
#define S3_FIRST_READ_PART (1.0 * MiB)
#define S3_MAX_READ_PART (8.0 * MiB)
#define S3_PART_BYTES (8.0 * MiB) /* a written object larger than this is a multipart upload */

static const struct {
    const char *name;
    size_t offset;
    double dflt;
} params[] = {
    {"map_cpu_mib_s", offsetof(struct lmr_estimate_model, map_cpu_mib_s), 150},
    {"reduce_cpu_mib_s", offsetof(struct lmr_estimate_model, reduce_cpu_mib_s), 60},
    {"function_mib_s", offsetof(struct lmr_estimate_model, function_mib_s), 90},
    {"request_latency_ms", offsetof(struct lmr_estimate_model, request_latency_ms), 30},
    {"requests_in_flight", offsetof(struct lmr_estimate_model, requests_in_flight), 4},
    {"cold_start_ms", offsetof(struct lmr_estimate_model, cold_start_ms), 120},
    {"invoke_ms", offsetof(struct lmr_estimate_model, invoke_ms), 25},
    {"shuffle_ratio", offsetof(struct lmr_estimate_model, shuffle_ratio), 0.05},
    {"output_ratio", offsetof(struct lmr_estimate_model, output_ratio), 0.01},
    {"ramp_per_10s", offsetof(struct lmr_estimate_model, ramp_per_10s), 1000},
    {"full_vcpu_mb", offsetof(struct lmr_estimate_model, full_vcpu_mb), 1769},
    {"coordinator_ms", offsetof(struct lmr_estimate_model, coordinator_ms), 500},
};
#define NPARAMS (sizeof params / sizeof params[0])

static double *param(struct lmr_estimate_model *m, size_t i)
{
    return (double *)((char *)m + params[i].offset);
}

void lmr_estimate_model_defaults(struct lmr_estimate_model *m)
{
    for (size_t i = 0; i < NPARAMS; i++)
        *param(m, i) = params[i].dflt;
}

enum lmr_result lmr_estimate_model_parse(struct lmr_estimate_model *m, const char *spec, struct lmr_err *err)
{
    char *copy = strdup(spec), *save = NULL;
    if (!copy)
        return lmr_fail(err, LMR_ERR_NOMEM, "out of memory parsing --model");
    enum lmr_result r = LMR_OK;
    for (char *item = strtok_r(copy, ",", &save); item && !r; item = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(item, '=');
        size_t i = NPARAMS;
        if (eq) {
            *eq = '\0';
            for (i = 0; i < NPARAMS && strcmp(params[i].name, item); i++)
                ;
        }
        char *end = NULL;
        double v = eq ? strtod(eq + 1, &end) : 0;
        if (i == NPARAMS) {
            char names[512];
            size_t n = 0;
            for (size_t k = 0; k < NPARAMS; k++)
                n += (size_t)snprintf(names + n, sizeof names - n, "%s%s", k ? ", " : "", params[k].name);
            r = lmr_fail(err, LMR_ERR_INVALID, "--model '%s' is not NAME=VALUE with a known NAME (%s)", item, names);
        } else if (!end || *end || !(v > 0) || !isfinite(v)) {
            r = lmr_fail(err, LMR_ERR_INVALID, "--model %s='%s' is not a positive number", item, eq + 1);
        } else {
            *param(m, i) = v;
        }
    }
    free(copy);
    return r;
}

/* GETs of one ranged read of len bytes: one on the file store; S3's parts grow 1, 2, 4, 8, 8 … MiB. */
static uint64_t read_gets(bool s3, double len)
{
    if (!s3 || len <= 0)
        return 1;
    uint64_t n = 0;
    for (double part = S3_FIRST_READ_PART; len > 0;
         n++, part = part * 2 > S3_MAX_READ_PART ? S3_MAX_READ_PART : part * 2)
        len -= part;
    return n;
}

/* GETs of a map task's sequential read of len bytes (its shard and the tail-ahead in one reader):
 * one on the file store; on S3 parts of 8 MiB (fewer bytes when the task's read-ahead share
 * cannot hold four and a half), all requested at once, the last up to 1.5 parts (no runt). */
static uint64_t shard_gets(bool s3, double len, uint32_t memory_mb)
{
    if (!s3 || len <= 0)
        return 1;
    double limit = (double)memory_mb * MiB * LMR_TASK_READ_AHEAD_PERCENT / 100, part = S3_MAX_READ_PART;
    if (S3_READ_AHEAD_PARTS * part + part / 2 > limit) {
        part = floor(limit * 2 / (2 * S3_READ_AHEAD_PARTS + 1));
        if (part < S3_MIN_READ_PART)
            part = fmin(S3_MIN_READ_PART, floor(limit * 2 / 3));
    }
    return len <= 1.5 * part ? 1 : (uint64_t)floor((len - part / 2 - 1) / part) + 1;
}

/* Extra GETs to finish the shard's last line past the tail-ahead: 0 when its last byte ends a
 * line or a newline comes within the tail-ahead, else one chunk. Only asked of file stores (a
 * cheap local read); on S3 assumed 0. */
static uint64_t tail_gets(struct lmr_store_set *stores, const struct lmr_shard *sh)
{
    struct lmr_store *st = NULL;
    if (!stores || strncmp(sh->object.root, "file://", 7) || !sh->length ||
        lmr_store_set_get(stores, sh->object.root, &st, NULL))
        return 0;
    struct lmr_buf b;
    lmr_buf_init(&b, TAIL_AHEAD_BYTES + 1);
    uint64_t gets = 0;
    if (lmr_store_get(st, sh->object.key, sh->offset + sh->length - 1, TAIL_AHEAD_BYTES + 1, &b, NULL) == LMR_OK &&
        b.len > 0 && b.data[0] != '\n' && !memchr(b.data + 1, '\n', b.len - 1) &&
        sh->offset + sh->length - 1 + b.len < sh->object_size)
        gets = 1;
    lmr_buf_clean_up(&b);
    return gets;
}

/* PUTs of writing an object of size bytes: one, or a multipart upload (create, parts, complete). */
static uint64_t write_puts(bool s3, double size)
{
    if (!s3 || size <= S3_PART_BYTES)
        return 1;
    return 2 + (uint64_t)ceil(size / S3_PART_BYTES);
}

struct env_heap {
    double *free_at; /* min-heap of the time each environment is next free */
    size_t n;
};

static void heap_push(struct env_heap *h, double t)
{
    size_t i = h->n++;
    h->free_at[i] = t;
    while (i && h->free_at[(i - 1) / 2] > h->free_at[i]) {
        double x = h->free_at[i];
        h->free_at[i] = h->free_at[(i - 1) / 2];
        h->free_at[(i - 1) / 2] = x;
        i = (i - 1) / 2;
    }
}

static double heap_pop(struct env_heap *h)
{
    double top = h->free_at[0];
    h->free_at[0] = h->free_at[--h->n];
    for (size_t i = 0;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < h->n && h->free_at[l] < h->free_at[m])
            m = l;
        if (r < h->n && h->free_at[r] < h->free_at[m])
            m = r;
        if (m == i)
            break;
        double x = h->free_at[i];
        h->free_at[i] = h->free_at[m];
        h->free_at[m] = x;
        i = m;
    }
    return top;
}

/*
 * A phase of n tasks, task i taking work_ms[i] once started (plus Init on a new environment),
 * run from t0 on at most `slots` environments that Lambda adds ramp_per_10s at a time every
 * 10 s. Warm environments from an earlier phase (warm, free at t0) are reused first.
 * @return the phase's end; durations[i] gets each task's billed duration, init[i] its Init.
 */
static double simulate(const double *work_ms, size_t n, double t0, uint32_t slots, size_t *warm,
                       const struct lmr_estimate_model *m, double *durations, double *init)
{
    struct env_heap h = {.free_at = calloc(slots ? slots : 1, sizeof(double))};
    if (!h.free_at)
        return -1;
    size_t envs = 0, reuse = *warm < slots ? *warm : slots;
    for (; envs < reuse; envs++)
        heap_push(&h, t0);
    double end = t0;
    for (size_t i = 0; i < n; i++) {
        /* A new environment when one may be added before a warm one frees up. */
        double next_new = envs < slots ? (double)(envs / (size_t)m->ramp_per_10s) * 10000.0 : INFINITY;
        if (next_new < t0)
            next_new = t0;
        double start;
        bool cold = false;
        if (h.n && h.free_at[0] <= next_new) {
            start = heap_pop(&h);
        } else {
            start = next_new;
            cold = true;
            envs++;
        }
        init[i] = cold ? m->cold_start_ms : 0;
        durations[i] = work_ms[i];
        double finish = start + m->invoke_ms + init[i] + work_ms[i];
        heap_push(&h, finish);
        if (finish > end)
            end = finish;
    }
    *warm = envs;
    free(h.free_at);
    return end;
}

static double cpu_share(const struct lmr_estimate_model *m, uint32_t memory_mb)
{
    double share = (double)memory_mb / m->full_vcpu_mb;
    return share > 1 ? 1 : share;
}

json_t *lmr_estimate(const struct lmr_estimate_options *o)
{
    const struct lmr_job_plan *plan = o->plan;
    const struct lmr_estimate_model *m = o->model;
    uint32_t memory = plan->job.memory_mb ? plan->job.memory_mb : 1024;
    size_t M = plan->ntasks, R = plan->job.reducers;
    double share = cpu_share(m, memory);
    double map_rate = fmin(m->function_mib_s, m->map_cpu_mib_s * share) * MiB / 1000.0; /* bytes per ms */
    double red_rate = fmin(m->function_mib_s, m->reduce_cpu_mib_s * share) * MiB / 1000.0;
    bool s3 = M && plan->tasks[0].nshards && !strncmp(plan->tasks[0].shards[0].object.root, "s3://", 5);
    double intermediate = (double)plan->input_bytes * m->shuffle_ratio;
    double output = (double)plan->input_bytes * m->output_ratio;

    /* The exchange: a merge stage of NG tasks of fan-in G between map and reduce (exchange.h). */
    uint32_t G = R ? plan->merge_fan_in : 0;
    size_t NG = (size_t)lmr_exchange_merge_tasks(M, G);
    size_t N = M + NG + R;
    double *work = calloc(N + 1, sizeof *work), *dur = calloc(N + 1, sizeof *dur), *init = calloc(N + 1, sizeof *init);
    json_t *est = NULL;
    if (!work || !dur || !init)
        goto out;
    uint64_t map_get = 0, map_put = 0, merge_get = 0, merge_put = 0, red_get = 0, red_put = 0, shards = 0;
    for (size_t i = 0; i < M; i++) {
        const struct lmr_map_task *t = &plan->tasks[i];
        uint64_t gets = 0, bytes = 0;
        for (size_t s = 0; s < t->nshards; s++) {
            const struct lmr_shard *sh = &t->shards[s];
            bool compressed = sh->codec != LMR_CODEC_NONE;
            uint64_t end = sh->offset + sh->length;
            double ahead =
                end + TAIL_AHEAD_BYTES < sh->object_size ? TAIL_AHEAD_BYTES : (double)(sh->object_size - end);
            double len = compressed ? (double)sh->object_size : (double)sh->length + (sh->offset > 0) + ahead;
            gets += shard_gets(s3, len, memory);
            if (!compressed && end < sh->object_size)
                gets += tail_gets(o->stores, sh); /* the chunk that finishes a long last line */
            bytes += sh->length;
            shards++;
        }
        double share_of_input = plan->input_bytes ? (double)bytes / (double)plan->input_bytes : 0;
        /* + the commit record; a map-only task also claims its part before committing it */
        uint64_t puts =
            R ? write_puts(s3, intermediate * share_of_input) + 1 : write_puts(s3, output * share_of_input) + 2;
        map_get += gets;
        map_put += puts;
        work[i] =
            (double)bytes / map_rate + ceil((double)(gets + puts) / m->requests_in_flight) * m->request_latency_ms;
    }
    /* Merge task g reads its maps' commit records and each map output once (one sequential read over
     * its frames), then writes one object and its commit record. */
    for (size_t g = 0; g < NG; g++) {
        size_t n = M - g * G < G ? M - g * G : G;
        double object = M ? intermediate / (double)M : 0;
        uint64_t gets = n * (1 + read_gets(s3, object));
        uint64_t puts = write_puts(s3, object * (double)n) + 1;
        merge_get += gets;
        merge_put += puts;
        work[M + g] =
            object * (double)n / red_rate + ceil((double)(gets + puts) / m->requests_in_flight) * m->request_latency_ms;
    }
    /* Each reducer reads one frame of every map output (direct) or of every merge output, and
     * its frame list when that goes through the store. */
    size_t sources = NG ? NG : M;
    double key_bytes = (double)strlen(plan->job.work.key ? plan->job.work.key : "") + (NG ? 36 : 34);
    bool stored_lists = 16 + (double)sources * (key_bytes + LMR_FRAME_LIST_ENTRY_BYTES) >
                        (double)lmr_coordinator_frames_inline_max_bytes();
    for (size_t r = 0; r < R; r++) {
        double frame = sources ? intermediate / (double)sources / (double)R : 0;
        uint64_t gets = stored_lists ? 1 : 0;
        for (size_t f = 0; f < sources; f++)
            gets += read_gets(s3, frame);
        uint64_t puts = write_puts(s3, output / (double)R) + 2; /* + its claim and its commit record */
        red_get += gets;
        red_put += puts;
        work[M + NG + r] = intermediate / (double)R / red_rate +
                           ceil((double)(gets + puts) / m->requests_in_flight) * m->request_latency_ms;
    }
    size_t warm = 0;
    double t_plan = m->coordinator_ms / 2;
    double t_map = simulate(work, M, t_plan, o->concurrency, &warm, m, dur, init);
    double t_merge = NG ? simulate(work + M, NG, t_map, o->concurrency, &warm, m, dur + M, init + M) : t_map;
    double t_red =
        R ? simulate(work + M + NG, R, t_merge, o->concurrency, &warm, m, dur + M + NG, init + M + NG) : t_merge;
    double t_end = t_red + m->coordinator_ms / 2;

    json_t *invs = json_array();
    for (size_t i = 0; i < N; i++)
        json_array_append_new(invs,
                              json_pack("{s:f, s:f, s:f, s:I}", "duration_ms", dur[i], "init_duration_ms", init[i],
                                        "billed_duration_ms", 0.0, "memory_size_mb", (json_int_t)memory));
    /* The coordinator's own requests: a HEAD per task attempt, the commit records the reducers are
     * planned from (M, or NG with a merge stage), the frame lists it stores, the manifest, report
     * and _SUCCESS; one LIST of the output and one of the work data. */
    struct lmr_request_counts q = {.get = map_get + merge_get + red_get + (NG ? NG : M),
                                   .put = map_put + merge_put + red_put + 3 + (stored_lists ? R : 0),
                                   .list = 2,
                                   .head = M + NG + R,
                                   .del = 1};
    json_t *cost = lmr_cost_batch(o->prices, invs, &q);
    json_decref(invs);
    json_t *model = json_object();
    for (size_t i = 0; i < NPARAMS; i++)
        json_object_set_new(model, params[i].name, json_real(*param((struct lmr_estimate_model *)m, i)));
    est = json_pack("{s:o, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:s}, s:{s:I, s:I, s:I, s:I}, "
                    "s:{s:{s:I, s:I}, s:{s:I, s:I}, s:{s:I, s:I}}, s:{s:f, s:f, s:f, s:f}, s:o}",
                    "model", model, "plan", "input_bytes", (json_int_t)plan->input_bytes, "input_objects",
                    (json_int_t)plan->input_objects, "map_tasks", (json_int_t)M, "shards", (json_int_t)shards,
                    "reduce_tasks", (json_int_t)R, "memory_mb", (json_int_t)memory, "store", s3 ? "s3" : "file",
                    "invocations", "map", (json_int_t)M, "merge", (json_int_t)NG, "reduce", (json_int_t)R, "total",
                    (json_int_t)N, "requests", "map", "get", (json_int_t)map_get, "put", (json_int_t)map_put, "merge",
                    "get", (json_int_t)merge_get, "put", (json_int_t)merge_put, "reduce", "get", (json_int_t)red_get,
                    "put", (json_int_t)red_put, "time_s", "map", (t_map - t_plan) / 1000.0, "merge",
                    (t_merge - t_map) / 1000.0, "reduce", (t_red - t_merge) / 1000.0, "total", t_end / 1000.0, "cost",
                    cost);
    if (est)
        json_object_set_new(est, "concurrency", json_integer((json_int_t)o->concurrency));
    if (est && R)
        json_object_set_new(est, "exchange",
                            json_pack("{s:s, s:I, s:I, s:b, s:I, s:I}", "mode", G ? "merge" : "direct", "fan_in",
                                      (json_int_t)G, "merge_tasks", (json_int_t)NG, "frame_lists_stored", stored_lists,
                                      "direct_requests", (json_int_t)lmr_exchange_direct_requests(M, R),
                                      "request_budget", (json_int_t)LMR_EXCHANGE_REQUEST_BUDGET));
out:
    free(work);
    free(dur);
    free(init);
    return est;
}

void lmr_estimate_print(FILE *f, const json_t *e)
{
    const json_t *plan = json_object_get(e, "plan"), *req = json_object_get(e, "requests"),
                 *t = json_object_get(e, "time_s"), *cost = json_object_get(e, "cost"),
                 *model = json_object_get(e, "model");
    char b[32];
    fprintf(f, "lambdamr estimate (nothing was run):\n");
    fprintf(f,
            "  plan     %s in %" JSON_INTEGER_FORMAT " objects -> %" JSON_INTEGER_FORMAT
            " map tasks (%" JSON_INTEGER_FORMAT " shards), %" JSON_INTEGER_FORMAT " reducers, %" JSON_INTEGER_FORMAT
            " MB per function, %" JSON_INTEGER_FORMAT " in flight\n",
            lmr_format_bytes((double)lmr_json_u64(plan, "input_bytes", 0), b, sizeof b),
            (json_int_t)lmr_json_u64(plan, "input_objects", 0), (json_int_t)lmr_json_u64(plan, "map_tasks", 0),
            (json_int_t)lmr_json_u64(plan, "shards", 0), (json_int_t)lmr_json_u64(plan, "reduce_tasks", 0),
            (json_int_t)lmr_json_u64(plan, "memory_mb", 0), (json_int_t)lmr_json_u64(e, "concurrency", 0));
    const json_t *rm = json_object_get(req, "map"), *rg = json_object_get(req, "merge"),
                 *rr = json_object_get(req, "reduce"), *ex = json_object_get(e, "exchange");
    if (lmr_json_u64(ex, "merge_tasks", 0))
        fprintf(f,
                "  exchange merge: %" JSON_INTEGER_FORMAT " merge tasks of up to %" JSON_INTEGER_FORMAT
                " map outputs (a direct shuffle would read %" JSON_INTEGER_FORMAT " frames)\n",
                (json_int_t)lmr_json_u64(ex, "merge_tasks", 0), (json_int_t)lmr_json_u64(ex, "fan_in", 0),
                (json_int_t)lmr_json_u64(ex, "direct_requests", 0));
    fprintf(f, "  requests map GET %" JSON_INTEGER_FORMAT ", PUT %" JSON_INTEGER_FORMAT,
            (json_int_t)lmr_json_u64(rm, "get", 0), (json_int_t)lmr_json_u64(rm, "put", 0));
    if (lmr_json_u64(ex, "merge_tasks", 0))
        fprintf(f, "; merge GET %" JSON_INTEGER_FORMAT ", PUT %" JSON_INTEGER_FORMAT,
                (json_int_t)lmr_json_u64(rg, "get", 0), (json_int_t)lmr_json_u64(rg, "put", 0));
    fprintf(f, "; reduce GET %" JSON_INTEGER_FORMAT ", PUT %" JSON_INTEGER_FORMAT " (%s store)\n",
            (json_int_t)lmr_json_u64(rr, "get", 0), (json_int_t)lmr_json_u64(rr, "put", 0),
            lmr_json_str(plan, "store", "?"));
    if (lmr_json_u64(ex, "merge_tasks", 0))
        fprintf(f, "  time     %.1f s on AWS (map %.1f s, merge %.1f s, reduce %.1f s)\n",
                lmr_json_double(t, "total", 0), lmr_json_double(t, "map", 0), lmr_json_double(t, "merge", 0),
                lmr_json_double(t, "reduce", 0));
    else
        fprintf(f, "  time     %.1f s on AWS (map %.1f s, reduce %.1f s)\n", lmr_json_double(t, "total", 0),
                lmr_json_double(t, "map", 0), lmr_json_double(t, "reduce", 0));
    const json_t *p = json_object_get(cost, "prices");
    fprintf(f, "  cost     $%.6f (Lambda $%.6f incl. Init, %.1f GB-s; S3 requests $%.6f) at %s %s prices of %s\n",
            lmr_json_double(cost, "total_usd", 0), lmr_json_double(cost, "lambda_usd", 0),
            lmr_json_double(cost, "gb_seconds", 0), lmr_json_double(cost, "s3_usd", 0), lmr_json_str(p, "region", "?"),
            lmr_json_str(p, "architecture", "?"), lmr_json_str(p, "date", "?"));
    fprintf(f, "  model   ");
    const char *name;
    json_t *v;
    json_object_foreach((json_t *)model, name, v) fprintf(f, " %s=%g", name, json_real_value(v));
    fprintf(f, "\n           (override with --model NAME=VALUE,...; see 'lambdamr run --help')\n");
}
