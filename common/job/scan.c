/*
 * scan (Big Data Benchmark Query 1): a map-only filter and projection over delimited text.
 *   --delimiter ,      field separator (one byte; default ',')
 *   --fields 1,2       1-based fields to output, joined by the delimiter (default: the whole row)
 *   --where '2>1000'   optional condition on one field: > >= < <= = != against a number (the
 *                      field must parse as a number), or = != against a string (bytewise)
 *   --arg between=FIELD,LOW,HIGH  optional: keep rows whose field lies in [LOW, HIGH], bytewise
 *                      (dates as YYYY-MM-DD, fixed-width codes); with --where, both must hold
 *   --strict 1         a malformed row fails the task instead of being counted and skipped
 * A row is malformed when it has fewer fields than the highest field used, or when a numeric
 * condition's field is not a number.
 */
#include <stdlib.h>
#include <string.h>

#include "job/fields.h"
#include "job/registry.h"

enum scan_op { OP_GT, OP_GE, OP_LT, OP_LE, OP_EQ, OP_NE };

struct scan_state {
    uint8_t delim;
    uint32_t fields[LMR_FIELDS_MAX];
    size_t nfields; /* 0: whole row */
    bool has_where, numeric, strict;
    uint32_t where_field;
    enum scan_op op;
    double number;
    char *text; /* string literal */
    size_t text_len;
    uint32_t between_field; /* 0: no range filter */
    char *lo, *hi;
    size_t lo_len, hi_len;
    uint32_t max_field; /* fields to split */
};

static bool parse_bool_arg(const char *v)
{
    return v && (!strcmp(v, "1") || !strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "on"));
}

static int parse_where(struct scan_state *st, const char *w, char *errbuf, size_t errbuf_len)
{
    static const struct {
        const char *text;
        enum scan_op op;
    } ops[] = {{">=", OP_GE}, {"<=", OP_LE}, {"!=", OP_NE}, {">", OP_GT}, {"<", OP_LT}, {"=", OP_EQ}};
    size_t flen = strspn(w, "0123456789");
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        size_t olen = strlen(ops[i].text);
        if (strncmp(w + flen, ops[i].text, olen) != 0)
            continue;
        if (!lmr_fields_parse_index(w, flen, &st->where_field))
            break;
        const char *lit = w + flen + olen;
        st->op = ops[i].op;
        st->has_where = true;
        double v;
        if (lmr_parse_number(lmr_slice_make(lit, strlen(lit)), &v)) {
            st->numeric = true;
            st->number = v;
        } else if (st->op == OP_EQ || st->op == OP_NE) {
            st->text_len = strlen(lit);
            if (!(st->text = strdup(lit)))
                return -1;
        } else {
            snprintf(errbuf, errbuf_len,
                     "--where '%s': '%s' compares numbers, and '%s' is not a number; use = or != to compare strings", w,
                     ops[i].text, lit);
            return -1;
        }
        return 0;
    }
    snprintf(errbuf, errbuf_len,
             "--where '%s' is not a condition; write FIELD OP VALUE with a 1-based field number and one of "
             "> >= < <= = !=, e.g. '2>1000' or '7=USA'",
             w);
    return -1;
}

/* "FIELD,LOW,HIGH" (LOW and HIGH may not hold commas) into the range filter. */
static int parse_between(struct scan_state *st, const char *v, char *errbuf, size_t errbuf_len)
{
    const char *c1 = strchr(v, ','), *c2 = c1 ? strchr(c1 + 1, ',') : NULL;
    if (!c2 || strchr(c2 + 1, ',') || !lmr_fields_parse_index(v, (size_t)(c1 - v), &st->between_field)) {
        snprintf(errbuf, errbuf_len,
                 "--arg between='%s' is not FIELD,LOW,HIGH (keep rows whose field lies in [LOW, HIGH], bytewise; e.g. "
                 "3,1980-01-01,1980-04-01)",
                 v);
        return -1;
    }
    st->lo_len = (size_t)(c2 - c1 - 1);
    st->hi_len = strlen(c2 + 1);
    if (!(st->lo = strndup(c1 + 1, st->lo_len)) || !(st->hi = strdup(c2 + 1))) {
        snprintf(errbuf, errbuf_len, "out of memory setting up the scan job");
        return -1;
    }
    return 0;
}

/* Bytewise order (memcmp, then the shorter first) of a against b[0..blen). */
static int compare_bytes(struct lmr_slice a, const char *b, size_t blen)
{
    int c = memcmp(a.ptr, b, a.len < blen ? a.len : blen);
    return c ? c : (a.len > blen) - (a.len < blen);
}

static void scan_teardown(void *state)
{
    struct scan_state *st = state;
    if (st) {
        free(st->text);
        free(st->lo);
        free(st->hi);
        free(st);
    }
}

static int scan_setup(void **state, const struct lmr_job_args *args, char *errbuf, size_t errbuf_len)
{
    struct scan_state *st = calloc(1, sizeof *st);
    if (!st) {
        snprintf(errbuf, errbuf_len, "out of memory setting up the scan job");
        return -1;
    }
    const char *fields = lmr_job_arg(args, "fields"), *where = lmr_job_arg(args, "where");
    if (!lmr_fields_parse_delimiter(lmr_job_arg(args, "delimiter"), &st->delim, errbuf, errbuf_len))
        goto fail;
    if (fields &&
        !(st->nfields = lmr_fields_parse_list("fields", fields, st->fields, LMR_FIELDS_MAX, errbuf, errbuf_len)))
        goto fail;
    if (where && parse_where(st, where, errbuf, errbuf_len))
        goto fail;
    const char *between = lmr_job_arg(args, "between");
    if (between && parse_between(st, between, errbuf, errbuf_len))
        goto fail;
    st->strict = parse_bool_arg(lmr_job_arg(args, "strict"));
    for (size_t i = 0; i < st->nfields; i++)
        if (st->fields[i] > st->max_field)
            st->max_field = st->fields[i];
    if (st->has_where && st->where_field > st->max_field)
        st->max_field = st->where_field;
    if (st->between_field > st->max_field)
        st->max_field = st->between_field;
    *state = st;
    return 0;
fail:
    scan_teardown(st);
    return -1;
}

static bool keep(const struct scan_state *st, struct lmr_slice f, bool *malformed)
{
    if (!st->numeric) {
        bool eq = f.len == st->text_len && !memcmp(f.ptr, st->text, f.len);
        return st->op == OP_EQ ? eq : !eq;
    }
    double v;
    if (!lmr_parse_number(f, &v)) {
        *malformed = true;
        return false;
    }
    switch (st->op) {
    case OP_GT:
        return v > st->number;
    case OP_GE:
        return v >= st->number;
    case OP_LT:
        return v < st->number;
    case OP_LE:
        return v <= st->number;
    case OP_EQ:
        return v == st->number;
    case OP_NE:
        return v != st->number;
    }
    return false;
}

/* One row (record), already split into its first n fields (at most max_field). */
static int scan_map_fields(const struct scan_state *st, struct lmr_slice record, const struct lmr_slice *f, size_t n,
                           struct lmr_emitter *out, struct lmr_job_counters *counters)
{
    bool malformed = n < st->max_field;
    if (!malformed && st->between_field) {
        struct lmr_slice b = f[st->between_field - 1];
        if (compare_bytes(b, st->lo, st->lo_len) < 0 || compare_bytes(b, st->hi, st->hi_len) > 0)
            return 0;
    }
    if (!malformed && st->has_where && !keep(st, f[st->where_field - 1], &malformed) && !malformed)
        return 0;
    if (malformed) {
        counters->malformed_records++;
        return st->strict ? -1 : 0;
    }
    static const uint8_t nothing = 0;
    const struct lmr_slice empty = {&nothing, 0};
    if (!st->nfields) {
        lmr_emit(out, record, empty);
        return 0;
    }
    if (st->nfields == 1) {
        lmr_emit(out, f[st->fields[0] - 1], empty);
        return 0;
    }
    /* Adjacent fields in order (1,2 / 3,4,5) are one contiguous slice of the record. */
    bool contiguous = true;
    for (size_t i = 1; i < st->nfields && contiguous; i++)
        contiguous = st->fields[i] == st->fields[i - 1] + 1;
    if (contiguous) {
        const struct lmr_slice a = f[st->fields[0] - 1], b = f[st->fields[st->nfields - 1] - 1];
        lmr_emit(out, (struct lmr_slice){a.ptr, (size_t)(b.ptr + b.len - a.ptr)}, empty);
        return 0;
    }
    size_t total = st->nfields - 1;
    for (size_t i = 0; i < st->nfields; i++)
        total += f[st->fields[i] - 1].len;
    uint8_t stackbuf[4096];
    uint8_t *buf = total <= sizeof stackbuf ? stackbuf : malloc(total);
    if (!buf)
        return -1;
    size_t pos = 0;
    for (size_t i = 0; i < st->nfields; i++) {
        if (i)
            buf[pos++] = st->delim;
        const struct lmr_slice s = f[st->fields[i] - 1];
        memcpy(buf + pos, s.ptr, s.len);
        pos += s.len;
    }
    lmr_emit(out, (struct lmr_slice){buf, pos}, empty);
    if (buf != stackbuf)
        free(buf);
    return 0;
}

/* A block of whole lines: the same emits as scan_map on each line (terminator and a "\r" before it
   removed), the block's separators found in one scan (lmr_fields_block_next). */
static int scan_map_block(void *state, struct lmr_slice block, struct lmr_emitter *out,
                          struct lmr_job_counters *counters)
{
    const struct scan_state *st = state;
    struct lmr_fields_block lines;
    struct lmr_slice f[LMR_FIELDS_MAX], line;
    size_t n;
    lmr_fields_block_init(&lines, block, st->delim);
    while (lmr_fields_block_next(&lines, f, st->max_field, &n, &line))
        if (scan_map_fields(st, line, f, n, out, counters))
            return -1; /* --strict: the framework names the block's rows and the file */
    return 0;
}

static int scan_map(void *state, struct lmr_slice record, struct lmr_emitter *out, struct lmr_job_counters *counters)
{
    const struct scan_state *st = state;
    struct lmr_slice f[LMR_FIELDS_MAX];
    size_t n = st->max_field ? lmr_fields_split(record, st->delim, f, st->max_field) : 0;
    return scan_map_fields(st, record, f, n, out, counters);
}

const struct lmr_job_ops lmr_job_scan = {
    .abi_version = LMR_JOB_ABI_VERSION,
    .name = "scan",
    .summary = "filter and project delimited rows, map-only (--delimiter , --fields 1,2 --where '2>1000')",
    .setup = scan_setup,
    .teardown = scan_teardown,
    .map = scan_map,
    .map_block = scan_map_block,
    .map_only = true,
};
