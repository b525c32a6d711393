/*
 * bdb-q3: the Big Data Benchmark's Query 3,
 *   SELECT sourceIP, SUM(adRevenue) AS totalRevenue, AVG(pageRank) AS avgPageRank
 *   FROM rankings R JOIN uservisits UV ON R.pageURL = UV.destURL
 *   WHERE UV.visitDate BETWEEN date-from AND date-to GROUP BY UV.sourceIP
 * Output lines: sourceIP<TAB>totalRevenue<TAB>avgPageRank (every sourceIP; the driver prints the
 * top one by totalRevenue). The driver turns `--input DATA_DIR` into one of two plans
 * (driver/stages.c):
 *   broadcast (one stage): mappers over uservisits load rankings (arg "rankings", a location)
 *       into a hash table (job/join_table.h), join each visit in the date range and emit
 *       (sourceIP, {revenue, pageRank, 1}) combined at emit time: stage "broadcast".
 *   filter-broadcast (two stages, the default): stage 1 is `scan` over uservisits keeping the
 *       visits in the date range (lines sourceIP,destURL,visitDate,adRevenue; the filter keeps a
 *       small share), stage 2 is this job with stage "probe" over rankings: each mapper puts its
 *       own rankings shard in a hash table (pageURL -> pageRank) and, at the shard's end, streams
 *       the filtered visits (arg "visits", a location) against it, emitting (sourceIP, acc) for
 *       every match. Each ranking row lives in one shard, so every (visit, ranking) pair is
 *       joined exactly once; both tables are read once. A shard whose table outgrows its memory
 *       cap (a quarter of the task's memory, or arg "probe-table") is joined in several passes
 *       (the visits streamed once per pass).
 *   reduce-side (two stages): stage 1 is the `join` job (rankings ⋈ uservisits with the date
 *       filter, lines pageURL<TAB>pageRank<TAB>sourceIP,adRevenue); stage 2 is this job with
 *       stage "agg", which reads those lines and aggregates as above.
 * Values are 24-byte accumulators {double revenue, double rank sum, uint64 count}.
 */
#include <stdlib.h>
#include <string.h>

#include "job/fields.h"
#include "job/join_table.h"
#include "job/registry.h"
#include "lambda/memory.h"
#include "util/misc.h"

struct q3_acc {
    double revenue, rank;
    uint64_t count;
};

struct q3_state {
    bool agg;   /* stage "agg": input is the join's output */
    bool probe; /* stage "probe": input is rankings, the filtered visits at "visits" */
    char from[11], to[11];
    char *rankings, *visits;
    struct lmr_join_table *table;
    size_t table_cap; /* probe: the shard table's cap (Optional arg "probe-table") */
    size_t read_cap;  /* probe: the largest visits object read at once */
    uint64_t table_arg;
    struct lmr_emitter *out;           /* probe: where a pass emits */
    struct lmr_job_counters *counters; /* probe: where a pass counts malformed visits */
    uint64_t early_passes;             /* probe: passes made because the table was full */
};

static bool valid_date(const char *s)
{
    if (!s || strlen(s) != 10 || s[4] != '-' || s[7] != '-')
        return false;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
            return false;
    return true;
}

static int q3_setup(void **state, const struct lmr_job_args *args, char *errbuf, size_t errbuf_len)
{
    const char *from = lmr_job_arg(args, "date-from"), *to = lmr_job_arg(args, "date-to");
    const char *stage = lmr_job_arg(args, "stage"), *rankings = lmr_job_arg(args, "rankings");
    if (!valid_date(from) || !valid_date(to)) {
        snprintf(errbuf, errbuf_len,
                 "bdb-q3 needs --date-from and --date-to as YYYY-MM-DD (e.g. --date-from 1980-01-01 --date-to "
                 "1980-04-01)%s%s",
                 from || to ? "; got " : "",
                 from && !valid_date(from) ? from
                 : to && !valid_date(to)   ? to
                                           : "");
        return -1;
    }
    if (stage && strcmp(stage, "broadcast") && strcmp(stage, "agg") && strcmp(stage, "probe")) {
        snprintf(errbuf, errbuf_len, "bdb-q3 stage '%s' is not broadcast, probe or agg", stage);
        return -1;
    }
    const char *visits = lmr_job_arg(args, "visits");
    if (stage && !strcmp(stage, "probe") && !visits) {
        snprintf(errbuf, errbuf_len, "bdb-q3's probe stage needs the filtered visits' location (arg 'visits')");
        return -1;
    }
    struct q3_state *st = calloc(1, sizeof *st);
    if (!st || (rankings && !(st->rankings = strdup(rankings))) || (visits && !(st->visits = strdup(visits)))) {
        if (st)
            free(st->rankings);
        free(st);
        snprintf(errbuf, errbuf_len, "out of memory setting up bdb-q3");
        return -1;
    }
    st->agg = stage && !strcmp(stage, "agg");
    st->probe = stage && !strcmp(stage, "probe");
    const char *pt = lmr_job_arg(args, "probe-table");
    if (pt && (lmr_parse_size(pt, &st->table_arg) || st->table_arg < 65536)) {
        snprintf(errbuf, errbuf_len, "--arg probe-table='%s' is not a size of at least 64K", pt);
        free(st->rankings);
        free(st->visits);
        free(st);
        return -1;
    }
    memcpy(st->from, from, 11);
    memcpy(st->to, to, 11);
    *state = st;
    return 0;
}

static void q3_teardown(void *state)
{
    struct q3_state *st = state;
    if (!st)
        return;
    lmr_join_table_destroy(st->table);
    free(st->rankings);
    free(st->visits);
    free(st);
}

static int load_ranking(void *ud, struct lmr_slice line)
{
    struct q3_state *st = ud;
    struct lmr_slice f[3];
    if (lmr_fields_split(line, ',', f, 3) < 2)
        return 0;
    return lmr_join_table_add(st->table, f[0], f[1]) ? -1 : 0;
}

/* probe: one filtered visit (sourceIP,destURL,visitDate,adRevenue) against the shard's rankings. */
static int probe_visit(void *ud, struct lmr_slice line)
{
    struct q3_state *st = ud;
    struct lmr_slice f[4];
    struct q3_acc acc = {0, 0, 1};
    struct lmr_join_iter it;
    struct lmr_slice rank;
    if (!line.len)
        return 0;
    if (lmr_fields_split(line, ',', f, 4) < 4 || !lmr_parse_number(f[3], &acc.revenue)) {
        st->counters->malformed_records++;
        return 0;
    }
    if (!lmr_join_table_find(st->table, f[1], &it))
        return 0;
    while (lmr_join_table_next(&it, &rank)) {
        if (!lmr_parse_number(rank, &acc.rank)) {
            st->counters->malformed_records++;
            continue;
        }
        lmr_emit(st->out, f[0], lmr_slice_make(&acc, sizeof acc));
    }
    return 0;
}

/* probe: stream the filtered visits against the rankings in the table, then empty it. */
static int probe_pass(struct q3_state *st, struct lmr_emitter *out, struct lmr_job_counters *counters)
{
    struct lmr_err err = {0};
    st->out = out;
    st->counters = counters;
    if (lmr_join_scan_lines(st->visits, st->read_cap, probe_visit, st, &err)) {
        lmr_job_error(counters, "bdb-q3 probe: reading the filtered visits: %s", err.msg);
        return -1;
    }
    lmr_join_table_clear(st->table);
    return 0;
}

/* probe: a ranking into the shard's table; a full table is joined with the visits first. */
static int add_ranking(struct q3_state *st, struct lmr_slice url, struct lmr_slice rank, uint64_t h,
                       struct lmr_emitter *out, struct lmr_job_counters *counters)
{
    enum lmr_result r = lmr_join_table_add_hashed(st->table, url, rank, h);
    if (r == LMR_ERR_TOO_LARGE && lmr_join_table_bytes(st->table) > 0) {
        if (probe_pass(st, out, counters))
            return -1;
        st->early_passes++;
        r = lmr_join_table_add_hashed(st->table, url, rank, h);
    }
    if (r) {
        lmr_job_error(counters,
                      "bdb-q3 probe: a ranking row does not fit the table's %zu bytes; give the functions more "
                      "--memory",
                      st->table_cap);
        return -1;
    }
    return 0;
}

static int q3_start(void *state, const struct lmr_task_info *task, char *errbuf, size_t errbuf_len)
{
    struct q3_state *st = state;
    if (strcmp(task->role, "map") || st->agg || st->table)
        return 0;
    if (st->probe) {
        struct lmr_task_budget b = lmr_task_budget(task->memory_mb, task->memory_mb);
        st->table_cap = st->table_arg ? (size_t)st->table_arg : (size_t)(b.memory_bytes / 4);
        st->read_cap = (size_t)(b.memory_bytes / 4);
        if (!(st->table = lmr_join_table_new(st->table_cap))) {
            snprintf(errbuf, errbuf_len, "out of memory for the rankings shard's table");
            return -1;
        }
        return 0;
    }
    if (!st->rankings) {
        snprintf(errbuf, errbuf_len, "bdb-q3's broadcast stage needs the rankings location (arg 'rankings')");
        return -1;
    }
    struct lmr_task_budget b = lmr_task_budget(task->memory_mb, task->memory_mb);
    size_t cap = (size_t)(b.memory_bytes / 4);
    struct lmr_err err = {0};
    if (!(st->table = lmr_join_table_new(cap))) {
        snprintf(errbuf, errbuf_len, "out of memory for the rankings table");
        return -1;
    }
    if (lmr_join_load_lines(st->rankings, cap / 2, load_ranking, st, &err)) {
        snprintf(errbuf, errbuf_len, "%s",
                 err.msg[0] ? err.msg
                            : "the rankings table does not fit a quarter of the task's memory; use --arg join=reduce "
                              "or more --memory");
        return -1;
    }
    return 0;
}

static int q3_map(void *state, struct lmr_slice record, struct lmr_emitter *out, struct lmr_job_counters *counters)
{
    struct q3_state *st = state;
    struct q3_acc acc = {0, 0, 1};
    if (st->probe) {
        /* pageURL, pageRank, avgDuration */
        struct lmr_slice f[3];
        if (lmr_fields_split(record, ',', f, 3) < 2) {
            counters->malformed_records++;
            return 0;
        }
        return add_ranking(st, f[0], f[1], lmr_join_table_hash(f[0]), out, counters);
    }
    if (st->agg) {
        /* pageURL<TAB>pageRank<TAB>sourceIP,adRevenue */
        struct lmr_slice f[3], g[2];
        if (lmr_fields_split(record, '\t', f, 3) < 3 || lmr_fields_split(f[2], ',', g, 2) < 2 ||
            !lmr_parse_number(f[1], &acc.rank) || !lmr_parse_number(g[1], &acc.revenue)) {
            counters->malformed_records++;
            return 0;
        }
        lmr_emit(out, g[0], lmr_slice_make(&acc, sizeof acc));
        return 0;
    }
    /* sourceIP, destURL, visitDate, adRevenue, ... */
    struct lmr_slice f[4];
    if (lmr_fields_split(record, ',', f, 4) < 4 || f[2].len != 10) {
        counters->malformed_records++;
        return 0;
    }
    if (memcmp(f[2].ptr, st->from, 10) < 0 || memcmp(f[2].ptr, st->to, 10) > 0)
        return 0;
    struct lmr_join_iter it;
    struct lmr_slice rank;
    if (!lmr_join_table_find(st->table, f[1], &it))
        return 0;
    if (!lmr_parse_number(f[3], &acc.revenue)) {
        counters->malformed_records++;
        return 0;
    }
    while (lmr_join_table_next(&it, &rank)) { /* one ranking per pageURL in BDB; every match counts */
        if (!lmr_parse_number(rank, &acc.rank)) {
            counters->malformed_records++;
            continue;
        }
        lmr_emit(out, f[0], lmr_slice_make(&acc, sizeof acc));
    }
    return 0;
}

#define PROBE_BATCH 16

/*
 * map_block: the same as q3_map per line. In the probe stage the rankings of a block go into the
 * table PROBE_BATCH at a time: every slot is prefetched before the first of them is inserted, so
 * the cache misses of a large table overlap.
 */
static int q3_map_block(void *state, struct lmr_slice block, struct lmr_emitter *out, struct lmr_job_counters *counters)
{
    struct q3_state *st = state;
    const uint8_t *p = block.ptr, *end = block.ptr + block.len;
    struct lmr_slice f[3], line;
    if (!st->probe) {
        while (p < end) {
            lmr_fields_split_line(p, end, ',', f, 0, &line, &p);
            if (q3_map(state, line, out, counters))
                return -1;
        }
        return 0;
    }
    struct lmr_slice url[PROBE_BATCH], rank[PROBE_BATCH];
    uint64_t h[PROBE_BATCH];
    while (p < end) {
        size_t n = 0;
        while (n < PROBE_BATCH && p < end) {
            if (lmr_fields_split_line(p, end, ',', f, 3, &line, &p) < 2) {
                counters->malformed_records++;
                continue;
            }
            url[n] = f[0];
            rank[n] = f[1];
            h[n] = lmr_join_table_hash(f[0]);
            lmr_join_table_prefetch(st->table, h[n]);
            n++;
        }
        for (size_t i = 0; i < n; i++)
            if (add_ranking(st, url[i], rank[i], h[i], out, counters))
                return -1;
    }
    return 0;
}

static int q3_finish(void *state, struct lmr_emitter *out, struct lmr_job_counters *counters)
{
    struct q3_state *st = state;
    if (!st->probe || !st->table) /* the reducer's finish, or another stage */
        return 0;
    if (st->early_passes) {
        lmr_job_count(counters, "q3_early_probe_passes", st->early_passes);
        st->early_passes = 0;
    }
    return probe_pass(st, out, counters);
}

static void q3_combine(void *state, uint8_t *acc_bytes, struct lmr_slice value)
{
    (void)state;
    struct q3_acc a, v;
    memcpy(&a, acc_bytes, sizeof a);
    memcpy(&v, value.ptr, sizeof v);
    a.revenue += v.revenue;
    a.rank += v.rank;
    a.count += v.count;
    memcpy(acc_bytes, &a, sizeof a);
}

static void q3_reduce(void *state, struct lmr_slice key, struct lmr_values *values, struct lmr_emitter *out)
{
    struct lmr_slice v;
    uint8_t acc[sizeof(struct q3_acc)];
    bool first = true;
    while (lmr_values_next(values, &v)) {
        if (v.len != sizeof acc)
            continue;
        if (first)
            memcpy(acc, v.ptr, sizeof acc);
        else
            q3_combine(state, acc, v);
        first = false;
    }
    if (first)
        return;
    struct q3_acc a;
    memcpy(&a, acc, sizeof a);
    char text[80];
    size_t n = lmr_format_double(a.revenue, text, 40);
    text[n++] = '\t';
    n += lmr_format_double(a.rank / (double)a.count, text + n, 40);
    lmr_emit(out, key, lmr_slice_make(text, n));
}

const struct lmr_job_ops lmr_job_bdb_q3 = {
    .abi_version = LMR_JOB_ABI_VERSION,
    .name = "bdb-q3",
    .summary = "Big Data Benchmark Query 3 over --input DATA_DIR (rankings/, uservisits/): --date-from --date-to",
    .setup = q3_setup,
    .teardown = q3_teardown,
    .start = q3_start,
    .map = q3_map,
    .map_block = q3_map_block,
    .finish = q3_finish,
    .value_size = sizeof(struct q3_acc),
    .combine = q3_combine,
    .reduce = q3_reduce,
};
