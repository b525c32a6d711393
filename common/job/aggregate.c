/*
 * aggregate (Big Data Benchmark Query 2): GROUP BY one field (optionally cut to a prefix) over
 * delimited text.
 *   --delimiter ,   field separator (one byte; default ',')
 *   --key 1:8       group key: field 1 cut to its first 8 bytes (SUBSTR(f, 1, 8)); "1" = whole field
 *   --value 4       the field to aggregate (optional for count: given, rows whose value is not a
 *                   number are malformed, as for the other ops; absent, every row counts)
 *   --op sum        sum | count | min | max | avg
 *   --strict 1      a malformed row fails the task instead of being counted and skipped
 * Values are accumulators combined at emit time: 16 bytes {double x (sum, min or max), uint64
 * count} as declared (lmr_job_aggregate.value_size), or 8 when the task was set up through
 * lmr_job_setup and the op needs only one of them (sum, min, max: x; count: the count): every
 * batch task does so, and the smaller slot halves the map side's table (Query 2). Numbers are
 * printed as the shortest decimal that parses back to the same double.
 * A row is malformed when it has too few fields or its value is not a decimal number.
 */
#include <stdlib.h>
#include <string.h>

#include "job/fields.h"
#include "job/registry.h"

enum agg_op { AGG_SUM, AGG_COUNT, AGG_MIN, AGG_MAX, AGG_AVG };

struct agg_state {
    uint8_t delim;
    uint32_t key_field, value_field; /* value_field 0 for count */
    size_t key_prefix;               /* 0: whole field */
    enum agg_op op;
    bool strict;
    uint32_t max_field;
    bool narrow; /* 8-byte accumulators (lmr_job_aggregate_for_task): x alone, or the count for count */
};

struct agg_acc {
    double x;
    uint64_t count;
};

bool lmr_job_aggregate_cut_invariant(const struct lmr_job_args *args)
{
    const char *op = args ? lmr_job_arg(args, "op") : NULL;
    return op && (!strcmp(op, "count") || !strcmp(op, "min") || !strcmp(op, "max"));
}

static int agg_setup(void **state, const struct lmr_job_args *args, char *errbuf, size_t errbuf_len)
{
    static const char *const names[] = {"sum", "count", "min", "max", "avg"};
    struct agg_state st = {0};
    if (!lmr_fields_parse_delimiter(lmr_job_arg(args, "delimiter"), &st.delim, errbuf, errbuf_len))
        return -1;
    const char *op = lmr_job_arg(args, "op"), *key = lmr_job_arg(args, "key"), *value = lmr_job_arg(args, "value");
    size_t i = 0;
    while (op && i < 5 && strcmp(op, names[i]))
        i++;
    if (!op || i == 5) {
        snprintf(errbuf, errbuf_len, "%s%s%s; give --op sum, count, min, max or avg", op ? "unknown --op '" : "",
                 op ? op : "--op is required", op ? "'" : "");
        return -1;
    }
    st.op = (enum agg_op)i;
    if (!key) {
        snprintf(errbuf, errbuf_len,
                 "--key is required: the field to group by, e.g. --key 1 or --key 1:8 (field 1 "
                 "cut to its first 8 bytes)");
        return -1;
    }
    const char *colon = strchr(key, ':');
    bool ok = lmr_fields_parse_index(key, colon ? (size_t)(colon - key) : strlen(key), &st.key_field);
    if (ok && colon) {
        char *end;
        unsigned long long n = strtoull(colon + 1, &end, 10);
        ok = colon[1] >= '0' && colon[1] <= '9' && !*end && n >= 1 && n <= 1u << 20;
        st.key_prefix = (size_t)n;
    }
    if (!ok) {
        snprintf(errbuf, errbuf_len,
                 "--key '%s' is not a field; write FIELD or FIELD:LENGTH with a 1-based field number, e.g. '1' or "
                 "'1:8'",
                 key);
        return -1;
    }
    if (value && !lmr_fields_parse_index(value, strlen(value), &st.value_field)) {
        snprintf(errbuf, errbuf_len, "--value '%s' is not a field number; give a 1-based number such as 4", value);
        return -1;
    }
    if (!value && st.op != AGG_COUNT) {
        snprintf(errbuf, errbuf_len, "--op %s needs --value: the 1-based number of the field to aggregate", names[i]);
        return -1;
    }
    const char *strict = lmr_job_arg(args, "strict");
    st.strict = strict && (!strcmp(strict, "1") || !strcmp(strict, "true") || !strcmp(strict, "yes"));
    st.max_field = st.key_field > st.value_field ? st.key_field : st.value_field;
    struct agg_state *heap = malloc(sizeof *heap);
    if (!heap) {
        snprintf(errbuf, errbuf_len, "out of memory setting up the aggregate job");
        return -1;
    }
    *heap = st;
    *state = heap;
    return 0;
}

static void agg_teardown(void *state)
{
    free(state);
}

/* One row, already split into its first n fields (at most max_field). */
static inline __attribute__((always_inline)) int agg_map_fields(const struct agg_state *st, const struct lmr_slice *f,
                                                                size_t n, struct lmr_emitter *out,
                                                                struct lmr_job_counters *counters)
{
    struct agg_acc acc = {0, 1};
    if (n < st->max_field || (st->value_field && !lmr_parse_number(f[st->value_field - 1], &acc.x))) {
        counters->malformed_records++;
        return st->strict ? -1 : 0;
    }
    struct lmr_slice key = f[st->key_field - 1];
    if (st->key_prefix && key.len > st->key_prefix)
        key.len = st->key_prefix;
    if (!st->narrow)
        lmr_emit(out, key, lmr_slice_make(&acc, sizeof acc));
    else if (st->op == AGG_COUNT)
        lmr_emit(out, key, lmr_slice_make(&acc.count, sizeof acc.count));
    else
        lmr_emit(out, key, lmr_slice_make(&acc.x, sizeof acc.x));
    return 0;
}

static int agg_map(void *state, struct lmr_slice record, struct lmr_emitter *out, struct lmr_job_counters *counters)
{
    const struct agg_state *st = state;
    struct lmr_slice f[LMR_FIELDS_MAX];
    size_t n = lmr_fields_split(record, st->delim, f, st->max_field);
    return agg_map_fields(st, f, n, out, counters);
}

/*
 * A block of whole lines: the same emits as agg_map on each line (terminator and a "\r" before it
 * removed), the block's separators found in one scan (lmr_fields_block_next). With --strict the first
 * malformed row fails the task.
 */
static int agg_map_block(void *state, struct lmr_slice block, struct lmr_emitter *out,
                         struct lmr_job_counters *counters)
{
    const struct agg_state *st = state;
    struct lmr_fields_block lines;
    struct lmr_slice f[LMR_FIELDS_MAX], line;
    size_t n;
    lmr_fields_block_init(&lines, block, st->delim);
    while (lmr_fields_block_next(&lines, f, st->max_field, &n, &line))
        if (agg_map_fields(st, f, n, out, counters))
            return -1; /* --strict: the framework names the block's rows and the file */
    return 0;
}

/* An accumulator of st's size (16 or 8 bytes) as {x, count}; the half a narrow one lacks is 0. */
static inline struct agg_acc acc_load(const struct agg_state *st, const uint8_t *p)
{
    struct agg_acc a = {0, 0};
    if (!st->narrow)
        memcpy(&a, p, sizeof a);
    else if (st->op == AGG_COUNT)
        memcpy(&a.count, p, sizeof a.count);
    else
        memcpy(&a.x, p, sizeof a.x);
    return a;
}

static inline void acc_store(const struct agg_state *st, uint8_t *p, const struct agg_acc *a)
{
    if (!st->narrow)
        memcpy(p, a, sizeof *a);
    else if (st->op == AGG_COUNT)
        memcpy(p, &a->count, sizeof a->count);
    else
        memcpy(p, &a->x, sizeof a->x);
}

static void agg_combine(void *state, uint8_t *acc_bytes, struct lmr_slice value)
{
    const struct agg_state *st = state;
    struct agg_acc a = acc_load(st, acc_bytes), v = acc_load(st, value.ptr);
    switch (st->op) {
    case AGG_SUM:
    case AGG_AVG:
        a.x += v.x;
        break;
    case AGG_MIN:
        if (v.x < a.x)
            a.x = v.x;
        break;
    case AGG_MAX:
        if (v.x > a.x)
            a.x = v.x;
        break;
    case AGG_COUNT:
        break;
    }
    a.count += v.count;
    acc_store(st, acc_bytes, &a);
}

static void agg_reduce(void *state, struct lmr_slice key, struct lmr_values *values, struct lmr_emitter *out)
{
    const struct agg_state *st = state;
    struct lmr_slice v;
    uint8_t acc[sizeof(struct agg_acc)];
    size_t size = st->narrow ? 8 : sizeof(struct agg_acc);
    bool first = true;
    while (lmr_values_next(values, &v)) {
        if (v.len != size)
            continue;
        if (first && size == 8) /* the sizes spelled out: a copy, not a call */
            memcpy(acc, v.ptr, 8);
        else if (first)
            memcpy(acc, v.ptr, sizeof(struct agg_acc));
        else
            agg_combine(state, acc, v);
        first = false;
    }
    if (first)
        return;
    struct agg_acc a = acc_load(st, acc);
    char text[40];
    size_t n;
    if (st->op == AGG_COUNT)
        n = (size_t)snprintf(text, sizeof text, "%llu", (unsigned long long)a.count);
    else
        n = lmr_format_double(st->op == AGG_AVG ? a.x / (double)a.count : a.x, text, sizeof text);
    lmr_emit(out, key, lmr_slice_make(text, n));
}

/* The narrow accumulators' combiners, one per op (what agg_combine does on 8 bytes, without its
   loads and branches on the op): the map side's table calls one per repeated key. */
static void agg_combine_sum8(void *state, uint8_t *acc, struct lmr_slice value)
{
    (void)state;
    double a, v;
    memcpy(&a, acc, 8);
    memcpy(&v, value.ptr, 8);
    a += v;
    memcpy(acc, &a, 8);
}

static void agg_combine_min8(void *state, uint8_t *acc, struct lmr_slice value)
{
    (void)state;
    double a, v;
    memcpy(&a, acc, 8);
    memcpy(&v, value.ptr, 8);
    if (v < a)
        memcpy(acc, &v, 8);
}

static void agg_combine_max8(void *state, uint8_t *acc, struct lmr_slice value)
{
    (void)state;
    double a, v;
    memcpy(&a, acc, 8);
    memcpy(&v, value.ptr, 8);
    if (v > a)
        memcpy(acc, &v, 8);
}

static void agg_combine_count8(void *state, uint8_t *acc, struct lmr_slice value)
{
    (void)state;
    uint64_t a, v;
    memcpy(&a, acc, 8);
    memcpy(&v, value.ptr, 8);
    a += v;
    memcpy(acc, &a, 8);
}

#define AGG_OPS(VALUE_SIZE, COMBINE)                                                                                   \
    {                                                                                                                  \
        .abi_version = LMR_JOB_ABI_VERSION, .name = "aggregate",                                                       \
        .summary = "group delimited rows by a field (prefix) and sum|count|min|max|avg another (--key 1:8 "            \
                   "--value 4 --op sum)",                                                                              \
        .setup = agg_setup, .teardown = agg_teardown, .map = agg_map, .map_block = agg_map_block,                      \
        .value_size = (VALUE_SIZE), .combine = (COMBINE), .reduce = agg_reduce,                                        \
    }

const struct lmr_job_ops lmr_job_aggregate = AGG_OPS(sizeof(struct agg_acc), agg_combine);
/* The same job with 8-byte accumulators (a state narrowed by lmr_job_aggregate_for_task), per op. */
static const struct lmr_job_ops agg_sum8_ops = AGG_OPS(8, agg_combine_sum8);
static const struct lmr_job_ops agg_min8_ops = AGG_OPS(8, agg_combine_min8);
static const struct lmr_job_ops agg_max8_ops = AGG_OPS(8, agg_combine_max8);
static const struct lmr_job_ops agg_count8_ops = AGG_OPS(8, agg_combine_count8);

const struct lmr_job_ops *lmr_job_aggregate_for_task(void *state)
{
    struct agg_state *st = state;
    if (!st || st->op == AGG_AVG)
        return &lmr_job_aggregate;
    st->narrow = true;
    switch (st->op) {
    case AGG_SUM:
        return &agg_sum8_ops;
    case AGG_MIN:
        return &agg_min8_ops;
    case AGG_MAX:
        return &agg_max8_ops;
    default:
        return &agg_count8_ops;
    }
}
