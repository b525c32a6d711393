/*
 * The multi-stage exchange's pieces without processes: the exchange plan (direct or merge, the
 * fan-in, the request formulas), the merge stage (G shuffle objects -> one object whose every
 * partition holds exactly the records a direct k-way merge of the sources gives, in the same
 * order; combined for a combining job), a merger whose sources open several at once (the same
 * records as one after another), the step pool (every item once, at most `threads` at a time,
 * the lowest failing item's error), the commit records read in parallel, and a reducer's frame
 * list through the store (event -> frames_key -> the same frames).
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "exchange.h"
#include "job/registry.h"
#include "job/task.h"
#include "shuffle/merge.h"
#include "shuffle/merge_inputs.h"
#include "shuffle/merge_stage.h"
#include "store/store.h"
#include "test_store_fixture.h"

static int setup(void **state)
{
    return store_fixture_setup(state, "lmr-exchange");
}

static int teardown(void **state)
{
    return store_fixture_teardown(state);
}

/* ---- the plan ------------------------------------------------------------------------------------------------ */

static void test_plan(void **state)
{
    (void)state;
    struct lmr_err err;
    uint32_t g;
    /* Small jobs stay direct under auto; 2,000 x 200 (400,000 frame reads) merges. */
    assert_int_equal(lmr_exchange_plan(LMR_EXCHANGE_AUTO, 0, 40, 8, 1024, &g, &err), LMR_OK);
    assert_int_equal(g, 0);
    assert_int_equal(lmr_exchange_plan(LMR_EXCHANGE_AUTO, 0, 2000, 200, 1024, &g, &err), LMR_OK);
    assert_int_equal(g, 45); /* ceil(sqrt(2000)) */
    assert_int_equal(lmr_exchange_merge_tasks(2000, g), 45);
    assert_true(lmr_exchange_merge_requests(2000, 200, g) * 20 < lmr_exchange_direct_requests(2000, 200));
    /* Over the budget but with one reducer merging saves nothing: direct. */
    assert_int_equal(lmr_exchange_plan(LMR_EXCHANGE_AUTO, 0, 100000, 1, 1024, &g, &err), LMR_OK);
    assert_int_equal(g, 0);
    /* Forced either way; a map-only job or a single map task never merges. */
    assert_int_equal(lmr_exchange_plan(LMR_EXCHANGE_DIRECT, 0, 2000, 200, 1024, &g, &err), LMR_OK);
    assert_int_equal(g, 0);
    assert_int_equal(lmr_exchange_plan(LMR_EXCHANGE_MERGE, 0, 9, 2, 1024, &g, &err), LMR_OK);
    assert_int_equal(g, 3);
    assert_int_equal(lmr_exchange_plan(LMR_EXCHANGE_MERGE, 5, 9, 2, 1024, &g, &err), LMR_OK);
    assert_int_equal(g, 5);
    assert_int_equal(lmr_exchange_plan(LMR_EXCHANGE_MERGE, 0, 9, 0, 1024, &g, &err), LMR_OK);
    assert_int_equal(g, 0);
    assert_int_equal(lmr_exchange_plan(LMR_EXCHANGE_MERGE, 0, 1, 4, 1024, &g, &err), LMR_OK);
    assert_int_equal(g, 0);
    /* The fan-in is bounded by the function's memory and by the limit. */
    assert_int_equal(lmr_exchange_max_fan_in(128), 8); /* 70 MB shuffle budget / 8 MiB */
    assert_int_equal(lmr_exchange_default_fan_in(100000, 128), 8);
    assert_int_equal(lmr_exchange_max_fan_in(10240), LMR_MERGE_FAN_IN_MAX);
    assert_int_equal(lmr_exchange_plan(LMR_EXCHANGE_MERGE, 1, 9, 2, 1024, &g, &err), LMR_ERR_INVALID);
    assert_non_null(strstr(err.msg, "--merge-fan-in"));
    assert_int_equal(lmr_exchange_plan(LMR_EXCHANGE_MERGE, LMR_MERGE_FAN_IN_MAX + 1, 9, 2, 1024, &g, &err),
                     LMR_ERR_INVALID);
    /* The coordinator's frame lists are capped: a direct 100,000 x 10,000 shuffle is refused, auto merges. */
    assert_int_equal(lmr_exchange_plan(LMR_EXCHANGE_DIRECT, 0, 100000, 10000, 1024, &g, &err), LMR_ERR_TOO_LARGE);
    assert_non_null(strstr(err.msg, "--exchange merge"));
    assert_int_equal(lmr_exchange_plan(LMR_EXCHANGE_AUTO, 0, 100000, 10000, 1024, &g, &err), LMR_ERR_TOO_LARGE);
    assert_non_null(strstr(err.msg, "--merge-fan-in"));
    assert_int_equal(lmr_exchange_plan(LMR_EXCHANGE_AUTO, 0, 100000, 10000, 10240, &g, &err), LMR_OK);
    assert_int_equal(g, 317); /* ceil(sqrt(100000)) */
    assert_int_equal(lmr_exchange_plan(LMR_EXCHANGE_AUTO, 0, 20000, 600, 1024, &g, &err), LMR_OK);
    assert_int_equal(g, 70); /* 12M frames direct: over the cap, so merged, at 1,024 MB's fan-in */
    enum lmr_exchange_mode m;
    assert_true(lmr_exchange_mode_parse("merge", &m) && m == LMR_EXCHANGE_MERGE);
    assert_false(lmr_exchange_mode_parse("Merge", &m));
}

/* ---- shuffle objects for the merge stage ----------------------------------------------------------------------- */

struct rec {
    char key[16];
    uint64_t value;
};

static int rec_cmp(const void *a, const void *b)
{
    const struct rec *x = a, *y = b;
    return lmr_shuffle_default_compare(lmr_slice_make(x->key, strlen(x->key)), lmr_slice_make(y->key, strlen(y->key)));
}

/* Write a shuffle object of R partitions; partition r gets n random records (sorted, stable), or none. */
static void write_source(struct store_fixture *c, const char *key, uint32_t R, size_t n, uint64_t tag,
                         struct lmr_partition_frame *frames)
{
    struct lmr_err err;
    struct lmr_store_writer *sw;
    struct lmr_frame_writer *fw;
    assert_int_equal(lmr_store_open_write(c->store, key, 0, &sw, &err), LMR_OK);
    assert_int_equal(lmr_frame_writer_new(1, &fw, &err), LMR_OK);
    uint64_t off = 0;
    struct rec *recs = calloc(n + 1, sizeof *recs);
    for (uint32_t r = 0; r < R; r++) {
        size_t k = (rnd() % 4 == 0) ? 0 : n; /* some partitions empty */
        for (size_t i = 0; i < k; i++) {
            snprintf(recs[i].key, sizeof recs[i].key, "p%u-k%03u", r, (unsigned)(rnd() % 50)); /* duplicates */
            recs[i].value = tag * 1000000 + i;
        }
        qsort(recs, k, sizeof *recs, rec_cmp);
        lmr_frame_writer_begin(fw, sw, &off);
        for (size_t i = 0; i < k; i++)
            assert_int_equal(lmr_frame_writer_add(fw, lmr_slice_make(recs[i].key, strlen(recs[i].key)),
                                                  lmr_slice_make(&recs[i].value, 8), &err),
                             LMR_OK);
        assert_int_equal(lmr_frame_writer_end(fw, &frames[r], &err), LMR_OK);
        if (!frames[r].size_bytes)
            frames[r].offset = off;
    }
    assert_int_equal(lmr_shuffle_write_index(sw, &off, frames, R, &err), LMR_OK);
    assert_int_equal(lmr_store_commit(sw, &err), LMR_OK);
    lmr_frame_writer_destroy(fw);
    free(recs);
}

/*
 * Every record of a merge of srcs[0..n) (frame r of each): keys and values concatenated, in order.
 * The merger opens `opens` sources at once, each store reader capped at its share of 256 KiB.
 */
static char *merged_text_with(struct store_fixture *c, const struct lmr_job_ops *ops, struct lmr_merge_source *srcs,
                              size_t n, uint64_t *records, unsigned opens)
{
    struct lmr_err err;
    struct lmr_merger *m;
    assert_int_equal(lmr_merger_new(ops, n ? n : 1, &m, &err), LMR_OK);
    lmr_merger_set_reading(m, &(struct lmr_merger_reading){.opens_in_flight = opens, .in_flight_bytes = 256 << 10});
    assert_int_equal(lmr_merger_open(m, c->store, srcs, n, &err), LMR_OK);
    size_t cap = 1 << 16, len = 0;
    char *out = malloc(cap);
    out[0] = 0;
    *records = 0;
    uint8_t acc[8];
    char prev[64] = "";
    bool have_prev = false;
    for (;;) {
        bool has;
        struct lmr_slice k, v;
        assert_int_equal(lmr_merger_next(m, &has, &k, &v, &err), LMR_OK);
        if (!has || (ops->combine && have_prev && (k.len != strlen(prev) || memcmp(k.ptr, prev, k.len)))) {
            if (ops->combine && have_prev) { /* the combined group */
                uint64_t x;
                memcpy(&x, acc, 8);
                len += (size_t)snprintf(out + len, cap - len, "%s=%llu\n", prev, (unsigned long long)x);
                (*records)++;
            }
            have_prev = false;
        }
        if (!has)
            break;
        if (len + 200 > cap)
            out = realloc(out, cap *= 2);
        uint64_t x;
        memcpy(&x, v.ptr, 8);
        if (ops->combine) {
            if (!have_prev) {
                memcpy(prev, k.ptr, k.len);
                prev[k.len] = 0;
                memcpy(acc, v.ptr, 8);
                have_prev = true;
            } else {
                ops->combine(NULL, acc, v);
            }
        } else {
            len += (size_t)snprintf(out + len, cap - len, "%.*s=%llu\n", (int)k.len, (const char *)k.ptr,
                                    (unsigned long long)x);
            (*records)++;
        }
    }
    lmr_merger_destroy(m);
    return out;
}

/* The same, one source opened after another. */
static char *merged_text(struct store_fixture *c, const struct lmr_job_ops *ops, struct lmr_merge_source *srcs,
                         size_t n, uint64_t *records)
{
    return merged_text_with(c, ops, srcs, n, records, 1);
}

static void merge_and_compare(struct store_fixture *c, const struct lmr_job_ops *ops)
{
    enum { G = 7, R = 5 };
    struct lmr_err err;
    char keys[G][32];
    struct lmr_partition_frame frames[G][R];
    struct lmr_merge_stage_source src[G];
    for (int i = 0; i < G; i++) {
        snprintf(keys[i], sizeof keys[i], "work/map/m-%05d.lmr", i);
        write_source(c, keys[i], R, 40 + (size_t)i * 13, (uint64_t)i + 1, frames[i]);
        src[i] = (struct lmr_merge_stage_source){keys[i], frames[i]};
    }
    struct lmr_partition_frame out[R];
    struct lmr_merge_stage_options o = {
        .ops = ops, .store = c->store, .sources = src, .nsources = G, .partitions = R, .output_key = "work/g-0.lmr"};
    struct lmr_merge_stage_stats st;
    uint64_t before = atomic_load(&c->store->stats.get_requests);
    assert_int_equal(lmr_merge_stage_run(&o, out, &st, &err), LMR_OK);
    /* One sequential read per source with any frame, not one per frame. */
    assert_true(atomic_load(&c->store->stats.get_requests) - before <= G);
    /* The output has the layout of a map output: its index describes the same frames. */
    struct lmr_partition_frame *idx;
    uint32_t np;
    assert_int_equal(lmr_shuffle_read_index(c->store, "work/g-0.lmr", &idx, &np, &err), LMR_OK);
    assert_int_equal(np, R);
    assert_memory_equal(idx, out, sizeof out);
    free(idx);
    uint64_t in_total = 0, out_total = 0;
    for (int r = 0; r < R; r++) {
        struct lmr_merge_source direct[G];
        size_t n = 0;
        for (int i = 0; i < G; i++) {
            in_total += frames[i][r].records;
            if (frames[i][r].size_bytes)
                direct[n++] = (struct lmr_merge_source){keys[i], frames[i][r].offset, frames[i][r].size_bytes};
        }
        uint64_t rd, rm, rp;
        char *want = merged_text(c, ops, direct, n, &rd);
        /* Opening the sources 4 at once merges the same records in the same order. */
        char *par = merged_text_with(c, ops, direct, n, &rp, 4);
        assert_string_equal(par, want);
        assert_int_equal(rp, rd);
        free(par);
        struct lmr_merge_source merged = {"work/g-0.lmr", out[r].offset, out[r].size_bytes};
        char *got = merged_text(c, ops, &merged, out[r].size_bytes ? 1 : 0, &rm);
        assert_string_equal(got, want);
        assert_int_equal(rm, rd);
        out_total += out[r].records;
        free(want);
        free(got);
    }
    assert_int_equal(st.records_in, in_total);
    assert_int_equal(st.records_out, out_total);
    if (!ops->combine)
        assert_int_equal(out_total, in_total);
    else
        assert_true(out_total < in_total); /* duplicates were combined */
}

static int cmp_none(struct lmr_slice a, struct lmr_slice b)
{
    return lmr_shuffle_default_compare(a, b);
}

static void test_merge_stage_plain(void **state)
{
    static const struct lmr_job_ops plain = {.name = "plain", .compare = cmp_none};
    merge_and_compare(*state, &plain);
}

static void add_u64(void *st, uint8_t *acc, struct lmr_slice v)
{
    (void)st;
    uint64_t a, b;
    memcpy(&a, acc, 8);
    memcpy(&b, v.ptr, 8);
    a += b;
    memcpy(acc, &a, 8);
}

static void test_merge_stage_combining(void **state)
{
    static const struct lmr_job_ops sum = {.name = "sum", .value_size = 8, .combine = add_u64};
    merge_and_compare(*state, &sum);
}

static void test_merge_stage_bad_frames(void **state)
{
    struct store_fixture *c = *state;
    struct lmr_err err;
    static const struct lmr_job_ops plain = {.name = "plain"};
    struct lmr_partition_frame f[3];
    write_source(c, "work/a.lmr", 3, 20, 1, f);
    /* Frames out of order: refused, nothing committed. */
    struct lmr_partition_frame bad[3] = {{100, 50, 1, 1}, {10, 50, 1, 1}, {0, 0, 0, 0}};
    struct lmr_merge_stage_source s = {"work/a.lmr", bad};
    struct lmr_partition_frame out[3];
    struct lmr_merge_stage_options o = {
        .ops = &plain, .store = c->store, .sources = &s, .nsources = 1, .partitions = 3, .output_key = "work/x.lmr"};
    struct lmr_merge_stage_stats st;
    assert_int_equal(lmr_merge_stage_run(&o, out, &st, &err), LMR_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "work/a.lmr"));
    uint64_t size;
    assert_int_equal(lmr_store_head(c->store, "work/x.lmr", &size, &err), LMR_ERR_NOT_FOUND);
}

/* ---- the step pool ----------------------------------------------------------------------------------------------- */

struct steps {
    atomic_uint runs[200];
    atomic_uint in_flight, peak;
    size_t fail_a, fail_b; /* items that fail (SIZE_MAX: none) */
};

static enum lmr_result step(void *ctx, size_t i, struct lmr_err *err)
{
    struct steps *s = ctx;
    unsigned now = atomic_fetch_add(&s->in_flight, 1) + 1, p = atomic_load(&s->peak);
    while (now > p && !atomic_compare_exchange_weak(&s->peak, &p, now))
        ;
    atomic_fetch_add(&s->runs[i], 1);
    usleep(500);
    atomic_fetch_sub(&s->in_flight, 1);
    if (i == s->fail_a || i == s->fail_b)
        return lmr_fail(err, LMR_ERR_IO, "item %zu failed", i);
    return LMR_OK;
}

static void test_parallel_steps(void **state)
{
    (void)state;
    struct lmr_err err = {0};
    static struct steps s;
    memset(&s, 0, sizeof s);
    s.fail_a = s.fail_b = SIZE_MAX;
    assert_int_equal(lmr_shuffle_parallel(200, 8, step, &s, &err), LMR_OK);
    for (size_t i = 0; i < 200; i++)
        assert_int_equal(atomic_load(&s.runs[i]), 1);
    assert_true(atomic_load(&s.peak) <= 8);
    assert_true(atomic_load(&s.peak) >= 2);
    /* One thread: in order, one at a time. */
    memset(&s, 0, sizeof s);
    s.fail_a = s.fail_b = SIZE_MAX;
    assert_int_equal(lmr_shuffle_parallel(50, 1, step, &s, &err), LMR_OK);
    assert_int_equal(atomic_load(&s.peak), 1);
    /* Two failures: the lower item's error, whichever thread saw its failure first. */
    memset(&s, 0, sizeof s);
    s.fail_a = 9;
    s.fail_b = 3;
    assert_int_equal(lmr_shuffle_parallel(200, 8, step, &s, &err), LMR_ERR_IO);
    assert_string_equal(err.msg, "item 3 failed");
    assert_int_equal(lmr_shuffle_parallel(0, 8, step, &s, &err), LMR_OK);
}

/* ---- commit records in parallel -------------------------------------------------------------------------------- */

static void test_read_commits(void **state)
{
    struct store_fixture *c = *state;
    struct lmr_err err;
    enum { N = 100, R = 3 };
    char *keys[N];
    for (int i = 0; i < N; i++) {
        keys[i] = malloc(64);
        snprintf(keys[i], 64, "work/map/m-%05d/commit.json", i);
        char rec[256];
        snprintf(rec, sizeof rec,
                 "{\"attempt_id\":\"a\",\"object\":\"obj-%d\",\"frames\":[[0,%d,1,2],[%d,0,0,0],[%d,7,3,9]]}", i, i, i,
                 i);
        assert_int_equal(lmr_store_put(c->store, keys[i], rec, strlen(rec), 0, &err), LMR_OK);
    }
    struct lmr_shuffle_commit got[N];
    assert_int_equal(lmr_shuffle_read_commits(c->store, (const char *const *)keys, N, R, 0, got, &err), LMR_OK);
    for (int i = 0; i < N; i++) {
        char want[32];
        snprintf(want, sizeof want, "obj-%d", i);
        assert_string_equal(got[i].object, want);
        assert_int_equal(got[i].frames[0].size_bytes, (uint64_t)i);
        assert_int_equal(got[i].frames[2].raw_bytes, 9);
    }
    lmr_shuffle_commits_free(got, N);
    /* The wrong partition count, a missing record: errors that name the record. */
    assert_int_equal(lmr_shuffle_read_commits(c->store, (const char *const *)keys, N, 4, 0, got, &err), LMR_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "m-00000/commit.json"));
    lmr_store_delete(c->store, (const char *const *)&keys[57], 1, &err);
    assert_int_equal(lmr_shuffle_read_commits(c->store, (const char *const *)keys, N, R, 0, got, &err),
                     LMR_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, "m-00057"));
    for (int i = 0; i < N; i++)
        free(keys[i]);
}

/* ---- a frame list through the store ---------------------------------------------------------------------------- */

static void test_frames_key(void **state)
{
    struct store_fixture *c = *state;
    struct lmr_err err;
    struct lmr_frame frames[3] = {{"work/a.lmr", 0, 10, 1, 1}, {"work/b.lmr", 5, 20, 1, 1}, {"work/c.lmr", 9, 1, 1, 1}};
    json_t *list = lmr_reduce_frames_to_json(frames, 3);
    char *text = json_dumps(list, JSON_COMPACT);
    assert_int_equal(lmr_store_put(c->store, "work/frames/r-00002.json", text, strlen(text), 0, &err), LMR_OK);
    free(text);
    json_decref(list);
    struct lmr_job_args *args;
    assert_int_equal(lmr_job_args_from_json(NULL, &args, &err), LMR_OK);
    struct lmr_reduce_task t = {.job = {.job_id = "j",
                                        .job_name = "wordcount",
                                        .args = args,
                                        .work = {"file:///tmp", "work/"},
                                        .output = {"file:///tmp", "out/"},
                                        .reducers = 3,
                                        .memory_mb = 1024},
                                .task = 2,
                                .attempt = 1,
                                .attempt_id = "r00002-a1-x",
                                .frames_key = "work/frames/r-00002.json"};
    json_t *ev = lmr_reduce_task_to_json(&t);
    assert_int_equal(json_array_size(json_object_get(ev, "frames")), 0); /* the list is not in the event */
    char *evs = json_dumps(ev, JSON_COMPACT);
    json_decref(ev);
    lmr_job_args_destroy(args);
    struct lmr_reduce_task back;
    assert_int_equal(lmr_reduce_task_from_json(evs, strlen(evs), &back, &err), LMR_OK);
    free(evs);
    assert_string_equal(back.frames_key, "work/frames/r-00002.json");
    assert_int_equal(lmr_reduce_task_load_frames(&back, c->store, &err), LMR_OK);
    assert_int_equal(back.nframes, 3);
    for (int i = 0; i < 3; i++) {
        assert_string_equal(back.frames[i].key, frames[i].key);
        assert_int_equal(back.frames[i].offset, frames[i].offset);
        assert_int_equal(back.frames[i].size_bytes, frames[i].size_bytes);
    }
    /* A frame list that is not JSON, or missing: errors naming it. */
    assert_int_equal(lmr_store_put(c->store, "work/frames/r-00002.json", "[", 1, 0, &err), LMR_OK);
    assert_int_equal(lmr_reduce_task_load_frames(&back, c->store, &err), LMR_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "r-00002.json"));
    lmr_reduce_task_clean_up(&back);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plan),
        cmocka_unit_test_setup_teardown(test_merge_stage_plain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_merge_stage_combining, setup, teardown),
        cmocka_unit_test_setup_teardown(test_merge_stage_bad_frames, setup, teardown),
        cmocka_unit_test(test_parallel_steps),
        cmocka_unit_test_setup_teardown(test_read_commits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_frames_key, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
