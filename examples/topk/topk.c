/*
 * Top-k per key: for rows "key,number", the k largest numbers of each key (k from --arg k=N,
 * 1..TOPK_MAX, default 3), largest first.
 *
 * Shows a combiner whose natural accumulator (a list of up to k numbers) is not fixed-size:
 * give it a fixed-size shape with a cap — a count plus room for TOPK_MAX values — and set
 * value_size to that. Map emits a one-value accumulator; combine merges two lists keeping the k
 * largest. The framework combines at emit time, in spills and in the reducer, so the reducer
 * sees one accumulator per key.
 *
 *   lambdamr run ./topk.so --arg k=3 --input scores.csv --output out/topk
 *   -> lines "key<TAB>97,95,90"
 */
#include <lambdamr/job.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOPK_MAX 16

struct topk_acc {
    uint64_t n;          /* values held, <= k */
    int64_t v[TOPK_MAX]; /* largest first */
};

struct state {
    uint32_t k;
};

static int topk_setup(void **state, const struct lmr_job_args *args, char *errbuf, size_t errbuf_len)
{
    const char *ks = lmr_job_arg(args, "k");
    long k = 3;
    if (ks) {
        char *end;
        k = strtol(ks, &end, 10);
        if (*end || k < 1 || k > TOPK_MAX) {
            snprintf(errbuf, errbuf_len, "--arg k=%s: k must be a whole number from 1 to %d", ks, TOPK_MAX);
            return -1;
        }
    }
    struct state *s = malloc(sizeof *s);
    if (!s)
        return -1;
    s->k = (uint32_t)k;
    *state = s;
    return 0;
}

static void topk_teardown(void *state)
{
    free(state);
}

static int topk_map(void *state, struct lmr_slice rec, struct lmr_emitter *out, struct lmr_job_counters *counters)
{
    (void)state;
    const uint8_t *comma = memchr(rec.ptr, ',', rec.len);
    char num[32];
    size_t nlen = comma ? rec.len - (size_t)(comma + 1 - rec.ptr) : 0;
    if (!comma || nlen == 0 || nlen >= sizeof num) {
        lmr_job_count(counters, "bad_rows", 1);
        return 0;
    }
    memcpy(num, comma + 1, nlen);
    num[nlen] = '\0';
    char *end;
    long long v = strtoll(num, &end, 10);
    if (*end) {
        lmr_job_count(counters, "bad_rows", 1);
        return 0;
    }
    struct topk_acc a = {.n = 1, .v = {v}};
    lmr_emit(out, lmr_slice_make(rec.ptr, (size_t)(comma - rec.ptr)), lmr_slice_make(&a, sizeof a));
    return 0;
}

/* Merge value into acc, keeping the k largest (both lists are largest first). */
static void topk_combine(void *state, uint8_t *acc_bytes, struct lmr_slice value)
{
    const struct state *s = state;
    struct topk_acc a, b, m = {0};
    memcpy(&a, acc_bytes, sizeof a); /* the bytes need not be aligned */
    memcpy(&b, value.ptr, sizeof b);
    uint64_t i = 0, j = 0;
    while (m.n < s->k && (i < a.n || j < b.n))
        m.v[m.n++] = (j >= b.n || (i < a.n && a.v[i] >= b.v[j])) ? a.v[i++] : b.v[j++];
    memcpy(acc_bytes, &m, sizeof m);
}

static void topk_reduce(void *state, struct lmr_slice key, struct lmr_values *values, struct lmr_emitter *out)
{
    (void)state;
    struct lmr_slice v;
    if (!lmr_values_next(values, &v))
        return;
    struct topk_acc a;
    memcpy(&a, v.ptr, sizeof a);
    char line[TOPK_MAX * 22];
    size_t len = 0;
    for (uint64_t i = 0; i < a.n; i++)
        len += (size_t)snprintf(line + len, sizeof line - len, "%s%lld", i ? "," : "", (long long)a.v[i]);
    lmr_emit(out, key, lmr_slice_make(line, len));
}

static const struct lmr_job_ops ops = {
    .abi_version = LMR_JOB_ABI_VERSION,
    .name = "topk",
    .summary = "the k largest numbers per key of key,number rows (--arg k=N)",
    .setup = topk_setup,
    .teardown = topk_teardown,
    .map = topk_map,
    .value_size = sizeof(struct topk_acc),
    .combine = topk_combine,
    .reduce = topk_reduce,
};

const struct lmr_job_ops *lmr_job_plugin(void)
{
    return &ops;
}
