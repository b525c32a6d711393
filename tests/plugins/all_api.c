/*
 * A test plugin that uses every part of include/lambdamr/job.h: every op of struct lmr_job_ops
 * (map and map_block, a combiner, custom partition and compare, start and finish) and every
 * function (lmr_job_arg, lmr_job_count, lmr_job_error, lmr_emit, lmr_values_next,
 * lmr_slice_make). It counts words like the built-in wordcount, plus:
 *   "~shards"  the number of input shards mapped (emitted by finish in the mappers)
 *   "~reducer r-NNNNN"  one line per reduce task (emitted by finish in the reducers)
 * counters: "lines" (records mapped), "starts" (start calls). Keys are ordered in reverse.
 * "warm_setups" (map tasks whose setup found an earlier task's setup in this loaded copy: the
 * plugin is loaded once per execution environment).
 * --arg fail=finish makes the mappers' finish fail through lmr_job_error.
 */
#include <lambdamr/job.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned setups_in_this_load; /* a fresh dlopen would start at zero */

struct state {
    unsigned seq;
    int counted;
    int fail_finish;
    int in_reduce;
    char task_id[32];
};

static int aa_setup(void **state, const struct lmr_job_args *args, char *errbuf, size_t errbuf_len)
{
    const char *f = lmr_job_arg(args, "fail");
    if (f && strcmp(f, "finish")) {
        snprintf(errbuf, errbuf_len, "--arg fail=%s: only fail=finish is known", f);
        return -1;
    }
    struct state *s = calloc(1, sizeof *s);
    if (!s)
        return -1;
    s->fail_finish = f != NULL;
    s->seq = ++setups_in_this_load;
    *state = s;
    return 0;
}

static void aa_teardown(void *state)
{
    free(state);
}

static int aa_start(void *state, const struct lmr_task_info *task, char *errbuf, size_t errbuf_len)
{
    struct state *s = state;
    s->in_reduce = !strcmp(task->role, "reduce");
    snprintf(s->task_id, sizeof s->task_id, "%s", task->task_id);
    if (!s->in_reduce && (!task->input_uri || task->memory_mb < 128)) {
        snprintf(errbuf, errbuf_len, "start: no input named for map task %s", task->task_id);
        return -1;
    }
    return 0;
}

static int aa_map(void *state, struct lmr_slice rec, struct lmr_emitter *out, struct lmr_job_counters *counters)
{
    (void)state;
    uint64_t one = 1;
    size_t i = 0;
    lmr_job_count(counters, "lines", 1);
    while (i < rec.len) {
        while (i < rec.len && (rec.ptr[i] == ' ' || rec.ptr[i] == '\t' || rec.ptr[i] == '\r'))
            i++;
        size_t b = i;
        while (i < rec.len && !(rec.ptr[i] == ' ' || rec.ptr[i] == '\t' || rec.ptr[i] == '\r'))
            i++;
        if (i > b)
            lmr_emit(out, lmr_slice_make(rec.ptr + b, i - b), lmr_slice_make(&one, 8));
    }
    return 0;
}

static int aa_map_block(void *state, struct lmr_slice block, struct lmr_emitter *out, struct lmr_job_counters *counters)
{
    const uint8_t *p = block.ptr, *end = block.ptr + block.len;
    while (p < end) {
        const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (len && p[len - 1] == '\r')
            len--;
        if (aa_map(state, lmr_slice_make(p, len), out, counters))
            return -1;
        p = nl ? nl + 1 : end;
    }
    return 0;
}

static void aa_combine(void *state, uint8_t *acc, struct lmr_slice value)
{
    (void)state;
    uint64_t a, b;
    memcpy(&a, acc, 8);
    memcpy(&b, value.ptr, 8);
    a += b;
    memcpy(acc, &a, 8);
}

static void aa_reduce(void *state, struct lmr_slice key, struct lmr_values *values, struct lmr_emitter *out)
{
    (void)state;
    struct lmr_slice v;
    uint64_t n = 0, x;
    while (lmr_values_next(values, &v)) {
        memcpy(&x, v.ptr, 8);
        n += x;
    }
    char num[24];
    int len = snprintf(num, sizeof num, "%llu", (unsigned long long)n);
    lmr_emit(out, key, lmr_slice_make(num, (size_t)len));
}

static uint32_t aa_partition(void *state, struct lmr_slice key, uint32_t nparts)
{
    (void)state;
    return key.len ? key.ptr[0] % nparts : 0;
}

static int aa_compare(struct lmr_slice a, struct lmr_slice b)
{
    size_t n = a.len < b.len ? a.len : b.len;
    int c = memcmp(a.ptr, b.ptr, n);
    if (!c)
        c = (a.len > b.len) - (a.len < b.len);
    return -c;
}

static int aa_finish(void *state, struct lmr_emitter *out, struct lmr_job_counters *counters)
{
    struct state *s = state;
    uint64_t one = 1;
    if (s->in_reduce) {
        char line[64];
        int n = snprintf(line, sizeof line, "~reducer %s", s->task_id);
        lmr_emit(out, lmr_slice_make(line, (size_t)n), lmr_slice_make("", 0));
        return 0;
    }
    lmr_job_count(counters, "starts", 1);
    if (!s->counted && s->seq > 1)
        lmr_job_count(counters, "warm_setups", 1);
    s->counted = 1;
    if (s->fail_finish) {
        lmr_job_error(counters, "all_api: asked to fail in finish of %s", s->task_id);
        return -1;
    }
    lmr_emit(out, lmr_slice_make("~shards", 7), lmr_slice_make(&one, 8));
    return 0;
}

static const struct lmr_job_ops ops = {
    .abi_version = LMR_JOB_ABI_VERSION,
    .name = "all_api",
    .summary = "uses every op and function of job.h (test)",
    .setup = aa_setup,
    .teardown = aa_teardown,
    .map = aa_map,
    .value_size = 8,
    .combine = aa_combine,
    .reduce = aa_reduce,
    .partition = aa_partition,
    .compare = aa_compare,
    .map_only = false,
    .map_block = aa_map_block,
    .start = aa_start,
    .finish = aa_finish,
};

const struct lmr_job_ops *lmr_job_plugin(void)
{
    return &ops;
}
