/*
 * sort: total order over lines (TeraSort). Lines are sorted bytewise (memcmp, shorter first),
 * on the whole line by default or on a key:
 *   --key N            field N (1-based) split on --delimiter (default tab)
 *   --key bytes:A-B    bytes A..B of the line (1-based, inclusive; a shorter line gives what it has)
 * The map emits (sort key, line) — or (line, "") for a whole-line sort, so the key is stored
 * once — through the collector's non-combining path; the partition is the range partitioner
 * (shuffle/range_partition.h) over the boundaries the planner sampled ("ranges", set by
 * coordinator/sample.c), so reducer i holds keys below reducer i+1's and concatenating
 * part-r-00000, part-r-00001 … in name order gives the sorted input. Lines with equal keys keep
 * no particular order. Each output line is the input line, with "\r" put back before the "\n"
 * when the sample found "\r\n" line ends ("line-end" = "crlf", also settable by hand).
 */
#include <stdlib.h>
#include <string.h>

#include "job/fields.h"
#include "job/registry.h"
#include "shuffle/range_partition.h"

enum sort_key { SORT_LINE, SORT_FIELD, SORT_BYTES };

struct sort_state {
    enum sort_key kind;
    uint8_t delim;
    uint32_t field;
    size_t from, to; /* 0-based [from, to) for SORT_BYTES */
    bool crlf;
    struct lmr_range_partitioner ranges;
    uint8_t *line; /* reduce: a line with its "\r" */
    size_t line_cap;
    bool out_of_memory; /* a line could not be copied: finish fails the task */
};

static int parse_key(struct sort_state *st, const char *key, char *errbuf, size_t errbuf_len)
{
    if (!key)
        return 0;
    if (!strncmp(key, "bytes:", 6)) {
        char *end;
        unsigned long long a = strtoull(key + 6, &end, 10), b = 0;
        bool ok = key[6] >= '0' && key[6] <= '9' && *end == '-';
        if (ok) {
            const char *q = end + 1;
            b = strtoull(q, &end, 10);
            ok = *q >= '0' && *q <= '9' && !*end && a >= 1 && b >= a && b <= (1u << 20);
        }
        if (!ok) {
            snprintf(errbuf, errbuf_len,
                     "--key '%s' is not a byte range; write bytes:FIRST-LAST with 1-based inclusive positions, e.g. "
                     "bytes:1-10",
                     key);
            return -1;
        }
        st->kind = SORT_BYTES;
        st->from = (size_t)a - 1;
        st->to = (size_t)b;
        return 0;
    }
    if (!lmr_fields_parse_index(key, strlen(key), &st->field)) {
        snprintf(errbuf, errbuf_len,
                 "--key '%s' is neither a field number nor a byte range; give e.g. --key 2 (field 2) or --key "
                 "bytes:1-10",
                 key);
        return -1;
    }
    st->kind = SORT_FIELD;
    return 0;
}

static int sort_setup(void **state, const struct lmr_job_args *args, char *errbuf, size_t errbuf_len)
{
    struct sort_state *st = calloc(1, sizeof *st);
    if (!st) {
        snprintf(errbuf, errbuf_len, "out of memory setting up the sort job");
        return -1;
    }
    st->delim = '\t';
    const char *delim = lmr_job_arg(args, "delimiter"), *ranges = lmr_job_arg(args, "ranges");
    const char *line_end = lmr_job_arg(args, "line-end");
    struct lmr_err err = {0};
    if ((delim && !lmr_fields_parse_delimiter(delim, &st->delim, errbuf, errbuf_len)) ||
        parse_key(st, lmr_job_arg(args, "key"), errbuf, errbuf_len))
        goto fail;
    if (line_end && strcmp(line_end, "lf") && strcmp(line_end, "crlf")) {
        snprintf(errbuf, errbuf_len, "line-end '%s' is not lf or crlf", line_end);
        goto fail;
    }
    st->crlf = line_end && !strcmp(line_end, "crlf");
    if (ranges && lmr_range_partitioner_parse(&st->ranges, ranges, &err)) {
        snprintf(errbuf, errbuf_len, "%s", err.msg);
        goto fail;
    }
    *state = st;
    return 0;
fail:
    free(st);
    return -1;
}

static void sort_teardown(void *state)
{
    struct sort_state *st = state;
    if (!st)
        return;
    lmr_range_partitioner_clean_up(&st->ranges);
    free(st->line);
    free(st);
}

static int sort_map(void *state, struct lmr_slice record, struct lmr_emitter *out, struct lmr_job_counters *counters)
{
    (void)counters;
    const struct sort_state *st = state;
    struct lmr_slice key = record;
    switch (st->kind) {
    case SORT_LINE:
        lmr_emit(out, record, lmr_slice_make("", 0));
        return 0;
    case SORT_FIELD: {
        struct lmr_slice f[LMR_FIELDS_MAX];
        size_t n = lmr_fields_split(record, st->delim, f, st->field);
        key = n >= st->field ? f[st->field - 1] : lmr_slice_make("", 0);
        break;
    }
    case SORT_BYTES:
        key.ptr = record.ptr + (record.len < st->from ? record.len : st->from);
        key.len = record.len <= st->from ? 0 : (record.len < st->to ? record.len : st->to) - st->from;
        break;
    }
    lmr_emit(out, key, record);
    return 0;
}

static uint32_t sort_partition(void *state, struct lmr_slice key, uint32_t nparts)
{
    return lmr_range_partition(&((struct sort_state *)state)->ranges, key, nparts);
}

/* Emit line as an output line, with its "\r" when the input's lines end in "\r\n". */
static void emit_line(struct sort_state *st, struct lmr_slice line, struct lmr_emitter *out)
{
    if (!st->crlf) {
        lmr_emit(out, line, lmr_slice_make("", 0));
        return;
    }
    if (line.len + 1 > st->line_cap) {
        size_t cap = (line.len + 1) * 2;
        uint8_t *p = realloc(st->line, cap);
        if (!p) {
            st->out_of_memory = true;
            return;
        }
        st->line = p;
        st->line_cap = cap;
    }
    memcpy(st->line, line.ptr, line.len);
    st->line[line.len] = '\r';
    lmr_emit(out, lmr_slice_make(st->line, line.len + 1), lmr_slice_make("", 0));
}

static void sort_reduce(void *state, struct lmr_slice key, struct lmr_values *values, struct lmr_emitter *out)
{
    struct sort_state *st = state;
    struct lmr_slice v;
    while (lmr_values_next(values, &v))
        emit_line(st, st->kind == SORT_LINE ? key : v, out);
}

static int sort_finish(void *state, struct lmr_emitter *out, struct lmr_job_counters *counters)
{
    (void)out;
    struct sort_state *st = state;
    if (!st->out_of_memory)
        return 0;
    lmr_job_error(counters, "out of memory copying a %zu-byte line to the output; give the reducers more --memory",
                  st->line_cap);
    return -1;
}

const struct lmr_job_ops lmr_job_sort = {
    .abi_version = LMR_JOB_ABI_VERSION,
    .name = "sort",
    .summary = "total-order sort of lines, bytewise, on the whole line or --key N | bytes:A-B (TeraSort)",
    .setup = sort_setup,
    .teardown = sort_teardown,
    .map = sort_map,
    .reduce = sort_reduce,
    .partition = sort_partition,
    .finish = sort_finish,
};

bool lmr_job_wants_ranges(const struct lmr_job_ops *ops)
{
    return ops == &lmr_job_sort;
}
