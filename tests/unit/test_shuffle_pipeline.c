/*
 * Shuffle end to end: map output (combining and not, with and without spills) -> intermediate
 * objects -> reduce input (single and multi-pass merges), checked against an independent oracle
 * computed in the test (all pairs sorted with qsort, counts summed by a separate pass).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <xxhash.h>

#include "job/registry.h"
#include "shuffle/map_output.h"
#include "shuffle/reduce_input.h"
#include "store/store.h"
#include "test_store_fixture.h"

/* ---- fixtures ----------------------------------------------------------------------------------------------- */

static int setup(void **state)
{
    return store_fixture_setup(state, "lmr-shuffle-pipe");
}

static int teardown(void **state)
{
    return store_fixture_teardown(state);
}

static enum lmr_result count_fn(void *user, const struct lmr_store_object *obj)
{
    ++*(size_t *)user;
    return LMR_OK;
}

static size_t count_keys(struct store_fixture *c, const char *prefix)
{
    size_t n = 0;
    struct lmr_err err;
    enum lmr_result rc = lmr_store_list(c->store, prefix, count_fn, &n, &err);
    assert_true(rc == LMR_OK || rc == LMR_ERR_NOT_FOUND);
    return n;
}

/* ---- pairs and the oracle ----------------------------------------------------------------------------------- */

struct pair {
    uint8_t *key, *value;
    size_t klen, vlen;
};

static int (*oracle_cmp)(struct lmr_slice, struct lmr_slice);

static int bytewise(struct lmr_slice a, struct lmr_slice b)
{
    size_t n = a.len < b.len ? a.len : b.len;
    int c = n ? memcmp(a.ptr, b.ptr, n) : 0;
    return c ? c : (a.len > b.len) - (a.len < b.len);
}

static int pair_cmp(const void *pa, const void *pb)
{
    const struct pair *a = pa, *b = pb;
    int c = oracle_cmp(lmr_slice_make(a->key, a->klen), lmr_slice_make(b->key, b->klen));
    if (c)
        return c;
    return bytewise(lmr_slice_make(a->value, a->vlen), lmr_slice_make(b->value, b->vlen));
}

/* A key drawn from a vocabulary of `vocab` keys (with empty, NUL and 0xFF keys in it). */
static size_t vocab_key(uint64_t id, uint8_t *out)
{
    if (id == 0)
        return 0; /* the empty key */
    uint64_t h = XXH3_64bits(&id, sizeof id);
    size_t len = 1 + h % 14;
    for (size_t i = 0; i < len; i++) {
        uint8_t b = (uint8_t)(h >> (i % 8 * 8)) ^ (uint8_t)(i * 37);
        out[i] = (i % 5 == 1) ? 0x00 : (i % 7 == 3) ? 0xff : b;
    }
    memcpy(out + len, &id, 4); /* unique per id */
    return len + 4;
}

static struct pair *gen_pairs(size_t n, uint64_t vocab, uint64_t seed)
{
    rng_state = seed * 0x9e3779b97f4a7c15ull + 1;
    struct pair *p = calloc(n, sizeof *p);
    uint8_t buf[32];
    for (size_t i = 0; i < n; i++) {
        /* skewed: half the draws from the first 1% of the vocabulary */
        uint64_t id = rnd() % 2 ? rnd() % (vocab / 100 + 1) : rnd() % vocab;
        p[i].klen = vocab_key(id, buf);
        p[i].key = malloc(p[i].klen + 1);
        memcpy(p[i].key, buf, p[i].klen);
        p[i].vlen = rnd() % 4 == 0 ? 0 : rnd() % 24;
        p[i].value = malloc(p[i].vlen + 1);
        for (size_t j = 0; j < p[i].vlen; j++)
            p[i].value[j] = (uint8_t)rnd();
    }
    return p;
}

static void free_pairs(struct pair *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(p[i].key);
        free(p[i].value);
    }
    free(p);
}

/* ---- test jobs ---------------------------------------------------------------------------------------------- */

/* Non-combining job: a record is [u8 klen][key][value]. */
static int pairs_map(void *state, struct lmr_slice rec, struct lmr_emitter *out, struct lmr_job_counters *counters)
{
    if (rec.len < 1 || rec.ptr[0] > rec.len - 1)
        return 1;
    size_t kl = rec.ptr[0];
    lmr_emit(out, lmr_slice_make(rec.ptr + 1, kl), lmr_slice_make(rec.ptr + 1 + kl, rec.len - 1 - kl));
    return 0;
}

static const struct lmr_job_ops pairs_job = {.name = "pairs", .map = pairs_map};

static uint32_t first_byte_partition(void *state, struct lmr_slice key, uint32_t nparts)
{
    return key.len ? key.ptr[0] % nparts : 0;
}

static int reverse_compare(struct lmr_slice a, struct lmr_slice b)
{
    return -bytewise(a, b);
}

static const struct lmr_job_ops pairs_custom_job = {
    .name = "pairs-custom", .map = pairs_map, .partition = first_byte_partition, .compare = reverse_compare};

static const struct lmr_job_ops *wc(void)
{
    return &lmr_job_wordcount;
}

/* Combining job on binary keys (empty, NUL, 0xFF): a record is [u8 klen][key][ignored]; emits (key, 1). */
static int sum_map(void *state, struct lmr_slice rec, struct lmr_emitter *out, struct lmr_job_counters *counters)
{
    static const uint64_t one = 1;
    if (rec.len < 1 || rec.ptr[0] > rec.len - 1)
        return 1;
    lmr_emit(out, lmr_slice_make(rec.ptr + 1, rec.ptr[0]), lmr_slice_make(&one, 8));
    return 0;
}

static void sum_combine(void *state, uint8_t *acc, struct lmr_slice value)
{
    lmr_job_wordcount.combine(state, acc, value);
}

static const struct lmr_job_ops sum_job = {.name = "sum", .map = sum_map, .value_size = 8, .combine = sum_combine};

/* ---- running the map side ----------------------------------------------------------------------------------- */

static uint32_t expected_partition(const struct lmr_job_ops *ops, struct lmr_slice key, uint32_t R)
{
    return ops->partition ? ops->partition(NULL, key, R) : (uint32_t)(XXH3_64bits(key.ptr, key.len) % R);
}

/* Map pairs[0..n) through ops->map (pairs job) or straight emits of count 1 (wordcount). */
static void run_map(struct store_fixture *c, const struct lmr_job_ops *ops, const struct pair *pairs, size_t n,
                    uint32_t R, size_t budget, const char *obj, struct lmr_map_output_index *index)
{
    struct lmr_err err;
    char spill[128];
    snprintf(spill, sizeof spill, "work/%s-spill/s-", obj);
    struct lmr_map_output_options o = {.ops = ops,
                                       .partitions = R,
                                       .memory_limit_bytes = budget,
                                       .store = c->store,
                                       .spill_prefix = spill,
                                       .object_key = obj,
                                       /* the minimum budget with level 1's compressor: two runs per merge
                                          pass (the default, raw frames on this file store, frees room for
                                          more); larger budgets take the default */
                                       .zstd_level = budget == lmr_map_output_min_memory_bytes() ? 1 : 0};
    struct lmr_map_output *mo;
    assert_int_equal(lmr_map_output_new(&o, &mo, &err), LMR_OK);
    struct lmr_emitter *em = lmr_map_output_emitter(mo);
    uint8_t rec[300];
    struct lmr_job_counters counters = {0};
    for (size_t i = 0; i < n; i++) {
        if (ops == wc()) {
            /* wordcount's own map on a line holding the key between spaces (keys hold no whitespace
               bytes except by chance: the oracle below splits the same way) */
            rec[0] = ' ';
            memcpy(rec + 1, pairs[i].key, pairs[i].klen);
            rec[1 + pairs[i].klen] = '\t';
            assert_int_equal(ops->map(NULL, lmr_slice_make(rec, pairs[i].klen + 2), em, &counters), 0);
        } else {
            rec[0] = (uint8_t)pairs[i].klen;
            memcpy(rec + 1, pairs[i].key, pairs[i].klen);
            memcpy(rec + 1 + pairs[i].klen, pairs[i].value, pairs[i].vlen);
            assert_int_equal(ops->map(NULL, lmr_slice_make(rec, 1 + pairs[i].klen + pairs[i].vlen), em, &counters), 0);
        }
    }
    assert_int_equal(lmr_map_output_status(mo, &err), LMR_OK);
    assert_int_equal(lmr_map_output_finish(mo, index, &err), LMR_OK);
    lmr_map_output_destroy(mo);
    char prefix[128];
    snprintf(prefix, sizeof prefix, "work/%s-spill/", obj);
    assert_int_equal(count_keys(c, prefix), 0); /* spills deleted */
    assert_true(index->peak_memory_bytes <= budget);
}

/* Word splitting of the oracle: the words wordcount sees in one key (split at ASCII whitespace). */
static size_t split_words(const struct pair *p, struct pair *out)
{
    size_t n = 0, i = 0;
    while (i < p->klen) {
        while (i < p->klen && strchr(" \t\n\v\f\r", p->key[i]) && p->key[i])
            i++;
        size_t s = i;
        while (i < p->klen && !(strchr(" \t\n\v\f\r", p->key[i]) && p->key[i]))
            i++;
        if (i > s) {
            out[n].key = p->key + s;
            out[n].klen = i - s;
            out[n].value = NULL;
            out[n].vlen = 0;
            n++;
        }
    }
    return n;
}

/* Read every partition of obj and check it against the oracle (pairs sorted by (key, value)). */
static void check_object(struct store_fixture *c, const struct lmr_job_ops *ops, const char *obj, uint32_t R,
                         const struct pair *pairs, size_t n, const struct lmr_map_output_index *index)
{
    struct lmr_err err;
    struct lmr_partition_frame *frames;
    uint32_t np;
    assert_int_equal(lmr_shuffle_read_index(c->store, obj, &frames, &np, &err), LMR_OK);
    assert_int_equal(np, R);
    assert_memory_equal(frames, index->frames, R * sizeof *frames);

    /* Oracle: the emitted pairs (for wordcount: words with count 1), sorted. */
    oracle_cmp = ops->compare ? ops->compare : bytewise;
    struct pair *exp = calloc(n * 10 + 1, sizeof *exp);
    size_t ne = 0;
    for (size_t i = 0; i < n; i++) {
        if (ops == wc())
            ne += split_words(&pairs[i], exp + ne);
        else
            exp[ne++] = pairs[i];
    }
    qsort(exp, ne, sizeof *exp, pair_cmp);
    assert_int_equal(index->records_in, ne);

    struct lmr_frame_reader *fr;
    assert_int_equal(lmr_frame_reader_new(&fr, &err), LMR_OK);
    size_t total = 0;
    uint8_t *seen = calloc(ne + 1, 1);
    for (uint32_t r = 0; r < R; r++) {
        assert_int_equal(lmr_frame_reader_open(fr, c->store, obj, frames[r].offset, frames[r].size_bytes, &err),
                         LMR_OK);
        uint8_t prev[64];
        size_t prevlen = 0, recs = 0;
        for (;;) {
            bool has;
            struct lmr_slice k, v;
            assert_int_equal(lmr_frame_reader_next(fr, &has, &k, &v, &err), LMR_OK);
            if (!has)
                break;
            assert_int_equal(expected_partition(ops, k, R), r);
            if (recs) {
                int cmp = oracle_cmp(lmr_slice_make(prev, prevlen), k);
                if (ops->combine)
                    assert_true(cmp < 0); /* duplicate-free */
                else
                    assert_true(cmp <= 0);
            }
            assert_true(k.len <= sizeof prev);
            memcpy(prev, k.ptr, k.len);
            prevlen = k.len;
            recs++;
            /* Find this key's range in the oracle (binary search on the key). */
            size_t lo = 0, hi = ne;
            while (lo < hi) {
                size_t mid = (lo + hi) / 2;
                if (oracle_cmp(lmr_slice_make(exp[mid].key, exp[mid].klen), k) < 0)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            assert_true(lo < ne);
            if (ops->combine) {
                size_t cnt = 0;
                while (lo + cnt < ne && oracle_cmp(lmr_slice_make(exp[lo + cnt].key, exp[lo + cnt].klen), k) == 0) {
                    assert_false(seen[lo + cnt]);
                    seen[lo + cnt] = 1;
                    cnt++;
                }
                uint64_t got;
                assert_int_equal(v.len, 8);
                memcpy(&got, v.ptr, 8);
                assert_int_equal(got, cnt);
                total += cnt;
            } else {
                /* the first unseen pair with this key and value */
                size_t i = lo;
                while (i < ne && oracle_cmp(lmr_slice_make(exp[i].key, exp[i].klen), k) == 0 &&
                       (seen[i] || bytewise(lmr_slice_make(exp[i].value, exp[i].vlen), v) != 0))
                    i++;
                assert_true(i < ne && oracle_cmp(lmr_slice_make(exp[i].key, exp[i].klen), k) == 0);
                seen[i] = 1;
                total++;
            }
        }
        assert_int_equal(recs, frames[r].records);
    }
    assert_int_equal(total, ne); /* every oracle pair was seen exactly once */
    lmr_frame_reader_destroy(fr);
    free(seen);
    free(exp);
    free(frames);
}

/* ---- map side tests ----------------------------------------------------------------------------------------- */

static void map_case(void **state, const struct lmr_job_ops *ops, size_t n, uint64_t vocab, uint32_t R, size_t budget,
                     bool expect_spills)
{
    struct store_fixture *c = *state;
    struct pair *p = gen_pairs(n, vocab, n ^ R);
    struct lmr_map_output_index index;
    run_map(c, ops, p, n, R, budget, "inter/m-00000", &index);
    if (expect_spills)
        assert_true(index.spills >= 2);
    else
        assert_int_equal(index.spills, 0);
    /* The minimum budget merges two runs at a time: three or more runs need intermediate passes. */
    if (budget == lmr_map_output_min_memory_bytes() && index.spills >= 3)
        assert_true(index.merge_passes >= 1);
    check_object(c, ops, "inter/m-00000", R, p, n, &index);
    lmr_map_output_index_clean_up(&index);
    free_pairs(p, n);
}

static void test_wordcount_in_memory(void **state)
{
    map_case(state, wc(), 20000, 3000, 4, 64u << 20, false);
}

/* A table beyond the caches: emits go through the prefetching batch. */
static void test_wordcount_large_table(void **state)
{
    map_case(state, wc(), 150000, 400000, 4, 64u << 20, false);
}

/* Binary keys, including the empty one, through the batched combine path, then with spills. */
static void test_sum_binary_keys(void **state)
{
    map_case(state, &sum_job, 150000, 400000, 4, 64u << 20, false);
    struct store_fixture *c = *state;
    lmr_store_delete(c->store, (const char *const[]){"inter/m-00000"}, 1, NULL);
    map_case(state, &sum_job, 100000, 100000, 3, lmr_map_output_min_memory_bytes(), true);
}

static void test_reduce_sum_multipass(void **state);

static void test_wordcount_spills(void **state)
{
    map_case(state, wc(), 120000, 100000, 5, lmr_map_output_min_memory_bytes(), true);
}

static void test_pairs_in_memory(void **state)
{
    map_case(state, &pairs_job, 20000, 5000, 3, 64u << 20, false);
}

static void test_pairs_spills(void **state)
{
    map_case(state, &pairs_job, 100000, 50000, 3, lmr_map_output_min_memory_bytes(), true);
}

static void test_custom_partition_and_order(void **state)
{
    map_case(state, &pairs_custom_job, 60000, 20000, 7, lmr_map_output_min_memory_bytes(), true);
}

static void test_one_partition_many_spills(void **state)
{
    map_case(state, &pairs_job, 150000, 150000, 1, lmr_map_output_min_memory_bytes(), true);
}

static void test_map_errors(void **state)
{
    struct store_fixture *c = *state;
    struct lmr_err err;
    struct lmr_map_output *mo;
    struct lmr_map_output_options o = {.ops = wc(),
                                       .partitions = 2,
                                       .memory_limit_bytes = 1000,
                                       .store = c->store,
                                       .spill_prefix = "w/s-",
                                       .object_key = "o"};
    assert_int_equal(lmr_map_output_new(&o, &mo, &err), LMR_ERR_INVALID); /* budget too small */
    assert_non_null(strstr(err.msg, "budget"));
    o.memory_limit_bytes = lmr_map_output_min_memory_bytes();
    o.partitions = 0;
    assert_int_equal(lmr_map_output_new(&o, &mo, &err), LMR_ERR_INVALID);
    o.partitions = 2;
    assert_int_equal(lmr_map_output_new(&o, &mo, &err), LMR_OK);
    /* A combining job's value of the wrong size: a sticky error, finish refuses. */
    lmr_emit(lmr_map_output_emitter(mo), lmr_slice_make("k", 1), lmr_slice_make("abc", 3));
    assert_int_equal(lmr_map_output_status(mo, &err), LMR_ERR_INVALID);
    struct lmr_map_output_index index;
    assert_int_equal(lmr_map_output_finish(mo, &index, &err), LMR_ERR_INVALID);
    lmr_map_output_destroy(mo);
    assert_int_equal(count_keys(c, "o"), 0);

    /* An aborted task (destroy without finish) leaves no spill runs behind. */
    o.ops = &pairs_job;
    assert_int_equal(lmr_map_output_new(&o, &mo, &err), LMR_OK);
    char key[32];
    for (int i = 0; i < 200000; i++) {
        int n = snprintf(key, sizeof key, "key-%d", i * 7919 % 200000);
        lmr_emit(lmr_map_output_emitter(mo), lmr_slice_make(key, (size_t)n), lmr_slice_make("value", 5));
    }
    assert_int_equal(lmr_map_output_status(mo, &err), LMR_OK);
    assert_true(count_keys(c, "w/") > 0);
    lmr_map_output_destroy(mo);
    assert_int_equal(count_keys(c, "w/"), 0);
}

/* ---- reduce side -------------------------------------------------------------------------------------------- */

enum { M = 6, R = 3 };

struct maps {
    struct pair *pairs[M];
    size_t n[M];
    struct lmr_map_output_index index[M];
    char obj[M][32];
};

static void make_maps(struct store_fixture *c, const struct lmr_job_ops *ops, struct maps *mp, size_t per_map)
{
    for (int m = 0; m < M; m++) {
        mp->n[m] = per_map + (size_t)m * 1000;
        mp->pairs[m] = gen_pairs(mp->n[m], 30000, (uint64_t)m + 77);
        snprintf(mp->obj[m], sizeof mp->obj[m], "inter/m-%05d", m);
        run_map(c, ops, mp->pairs[m], mp->n[m], R, m % 2 ? lmr_map_output_min_memory_bytes() : 64u << 20, mp->obj[m],
                &mp->index[m]);
    }
}

static void free_maps(struct maps *mp)
{
    for (int m = 0; m < M; m++) {
        free_pairs(mp->pairs[m], mp->n[m]);
        lmr_map_output_index_clean_up(&mp->index[m]);
    }
}

static void reduce_case(void **state, const struct lmr_job_ops *ops, size_t budget, bool expect_passes,
                        bool read_one_value)
{
    struct store_fixture *c = *state;
    struct maps mp;
    make_maps(c, ops, &mp, 8000);
    oracle_cmp = ops->compare ? ops->compare : bytewise;
    for (uint32_t r = 0; r < R; r++) {
        /* Oracle: all pairs of partition r (words for wordcount), sorted. */
        size_t cap = 0;
        for (int m = 0; m < M; m++)
            cap += mp.n[m] * 10;
        struct pair *exp = calloc(cap + 1, sizeof *exp);
        size_t ne = 0;
        for (int m = 0; m < M; m++)
            for (size_t i = 0; i < mp.n[m]; i++) {
                struct pair w[16];
                size_t nw = ops == wc() ? split_words(&mp.pairs[m][i], w) : (w[0] = mp.pairs[m][i], 1);
                for (size_t j = 0; j < nw; j++)
                    if (expected_partition(ops, lmr_slice_make(w[j].key, w[j].klen), R) == r)
                        exp[ne++] = w[j];
            }
        qsort(exp, ne, sizeof *exp, pair_cmp);

        struct lmr_frame_ref refs[M];
        for (int m = 0; m < M; m++)
            refs[m] = (struct lmr_frame_ref){c->store->root_uri, mp.obj[m], mp.index[m].frames[r].offset,
                                             mp.index[m].frames[r].size_bytes};
        char scratch[64];
        snprintf(scratch, sizeof scratch, "work/reduce/r-%05u/", r);
        struct lmr_reduce_input_options o = {.ops = ops,
                                             .store = c->store,
                                             .frames = refs,
                                             .nframes = M,
                                             .memory_limit_bytes = budget,
                                             .scratch_prefix = scratch};
        struct lmr_reduce_input *ri;
        struct lmr_err err;
        assert_int_equal(lmr_reduce_input_new(&o, &ri, &err), LMR_OK);
        size_t at = 0; /* position in the oracle */
        uint8_t prev[64];
        size_t prevlen = 0, groups = 0;
        for (;;) {
            bool has;
            struct lmr_slice key;
            struct lmr_values *vals;
            assert_int_equal(lmr_reduce_input_next(ri, &has, &key, &vals, &err), LMR_OK);
            if (!has)
                break;
            if (groups)
                assert_true(oracle_cmp(lmr_slice_make(prev, prevlen), key) < 0); /* one group per key */
            assert_non_null(key.ptr);
            memcpy(prev, key.ptr, key.len);
            prevlen = key.len;
            groups++;
            /* The oracle's group for this key. */
            assert_true(at < ne);
            assert_int_equal(oracle_cmp(lmr_slice_make(exp[at].key, exp[at].klen), key), 0);
            size_t end = at;
            while (end < ne && oracle_cmp(lmr_slice_make(exp[end].key, exp[end].klen), key) == 0)
                end++;
            struct lmr_slice v;
            if (ops->combine) {
                assert_true(lmr_values_next(vals, &v));
                uint64_t got;
                assert_int_equal(v.len, 8);
                memcpy(&got, v.ptr, 8);
                assert_int_equal(got, end - at);
                assert_false(lmr_values_next(vals, &v));
            } else if (read_one_value) {
                assert_true(lmr_values_next(vals, &v)); /* the rest is skipped by the next call */
            } else {
                /* values as a multiset: sort what we got and compare with the oracle's sorted values */
                struct pair *got = calloc(end - at + 1, sizeof *got);
                size_t ng = 0;
                while (lmr_values_next(vals, &v)) {
                    assert_true(ng < end - at);
                    got[ng].key = exp[at].key;
                    got[ng].klen = exp[at].klen;
                    got[ng].value = malloc(v.len + 1);
                    memcpy(got[ng].value, v.ptr, v.len);
                    got[ng].vlen = v.len;
                    ng++;
                }
                assert_int_equal(ng, end - at);
                qsort(got, ng, sizeof *got, pair_cmp);
                for (size_t i = 0; i < ng; i++) {
                    assert_int_equal(got[i].vlen, exp[at + i].vlen);
                    if (got[i].vlen)
                        assert_memory_equal(got[i].value, exp[at + i].value, got[i].vlen);
                    free(got[i].value);
                }
                free(got);
            }
            at = end;
        }
        assert_int_equal(at, ne);
        assert_int_equal(lmr_reduce_input_status(ri, &err), LMR_OK);
        struct lmr_reduce_input_stats st;
        lmr_reduce_input_stats(ri, &st);
        assert_int_equal(st.groups, groups);
        assert_true(st.peak_memory_bytes <= budget);
        if (expect_passes)
            assert_true(st.merge_passes >= 1);
        else
            assert_int_equal(st.merge_passes, 0);
        lmr_reduce_input_destroy(ri);
        assert_int_equal(count_keys(c, scratch), 0); /* temporary runs deleted */
        free(exp);
    }
    free_maps(&mp);
}

static void test_reduce_pairs(void **state)
{
    reduce_case(state, &pairs_job, 256u << 20, false, false);
}

static void test_reduce_pairs_multipass(void **state)
{
    reduce_case(state, &pairs_job, lmr_reduce_input_min_memory_bytes(), true, false);
}

static void test_reduce_wordcount_multipass(void **state)
{
    reduce_case(state, wc(), lmr_reduce_input_min_memory_bytes(), true, false);
}

static void test_reduce_sum_multipass(void **state)
{
    reduce_case(state, &sum_job, lmr_reduce_input_min_memory_bytes(), true, false);
}

static void test_reduce_custom_order_skipping_values(void **state)
{
    reduce_case(state, &pairs_custom_job, lmr_reduce_input_min_memory_bytes(), true, true);
}

static void test_reduce_corrupt_frame(void **state)
{
    struct store_fixture *c = *state;
    struct maps mp;
    make_maps(c, &pairs_job, &mp, 3000);
    /* Damage map 2's object in the middle of partition 1's frame. */
    struct lmr_err err;
    struct lmr_buf b;
    lmr_buf_init(&b, 64u << 20);
    assert_int_equal(lmr_store_get(c->store, mp.obj[2], 0, LMR_STORE_TO_END, &b, &err), LMR_OK);
    const struct lmr_partition_frame *f = &mp.index[2].frames[1];
    b.data[f->offset + f->size_bytes / 2] ^= 0x5a;
    assert_int_equal(lmr_store_put(c->store, mp.obj[2], b.data, b.len, 0, &err), LMR_OK);
    lmr_buf_clean_up(&b);
    for (int budget_small = 0; budget_small < 2; budget_small++) {
        struct lmr_frame_ref refs[M];
        for (int m = 0; m < M; m++)
            refs[m] =
                (struct lmr_frame_ref){NULL, mp.obj[m], mp.index[m].frames[1].offset, mp.index[m].frames[1].size_bytes};
        struct lmr_reduce_input_options o = {.ops = &pairs_job,
                                             .store = c->store,
                                             .frames = refs,
                                             .nframes = M,
                                             .memory_limit_bytes =
                                                 budget_small ? lmr_reduce_input_min_memory_bytes() : 256u << 20,
                                             .scratch_prefix = "work/scratch/"};
        struct lmr_reduce_input *ri;
        enum lmr_result rc = lmr_reduce_input_new(&o, &ri, &err);
        if (rc == LMR_OK) {
            bool has = true;
            while (rc == LMR_OK && has) {
                struct lmr_slice key, v;
                struct lmr_values *vals;
                rc = lmr_reduce_input_next(ri, &has, &key, &vals, &err);
                while (rc == LMR_OK && has && lmr_values_next(vals, &v))
                    ;
            }
            lmr_reduce_input_destroy(ri);
        }
        assert_int_equal(rc, LMR_ERR_FORMAT);
        assert_non_null(strstr(err.msg, mp.obj[2]));
        assert_int_equal(count_keys(c, "work/scratch/"), 0);
    }
    /* A frame from another store is refused. */
    struct lmr_frame_ref other = {"file:///elsewhere", mp.obj[0], 0, 10};
    struct lmr_reduce_input_options o = {
        .ops = &pairs_job, .store = c->store, .frames = &other, .nframes = 1, .memory_limit_bytes = 64u << 20};
    struct lmr_reduce_input *ri;
    assert_int_equal(lmr_reduce_input_new(&o, &ri, &err), LMR_ERR_INVALID);
    free_maps(&mp);
}

static void test_reduce_empty(void **state)
{
    struct store_fixture *c = *state;
    struct lmr_frame_ref refs[2] = {{NULL, "nothing/a", 0, 0}, {NULL, "nothing/b", 0, 0}};
    struct lmr_reduce_input_options o = {
        .ops = wc(), .store = c->store, .frames = refs, .nframes = 2, .memory_limit_bytes = 64u << 20};
    struct lmr_reduce_input *ri;
    struct lmr_err err;
    assert_int_equal(lmr_reduce_input_new(&o, &ri, &err), LMR_OK);
    bool has = true;
    struct lmr_slice key;
    struct lmr_values *vals;
    assert_int_equal(lmr_reduce_input_next(ri, &has, &key, &vals, &err), LMR_OK);
    assert_false(has);
    lmr_reduce_input_destroy(ri);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_wordcount_in_memory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wordcount_large_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wordcount_spills, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sum_binary_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reduce_sum_multipass, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pairs_in_memory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pairs_spills, setup, teardown),
        cmocka_unit_test_setup_teardown(test_custom_partition_and_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_partition_many_spills, setup, teardown),
        cmocka_unit_test_setup_teardown(test_map_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reduce_pairs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reduce_pairs_multipass, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reduce_wordcount_multipass, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reduce_custom_order_skipping_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reduce_corrupt_frame, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reduce_empty, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
