/*
 * The combining table (common/shuffle/combine_table.h) against a plain reference (the emits
 * sorted and summed per key): short keys (inline), long keys (arena), keys longer than the
 * pipeline takes, zero bytes in keys, the pipelined and the synchronous paths, tables large
 * enough for the pipeline, accumulators inline and out of line, removal (backward shift),
 * the budget with a spilling callback and without one, in-place and copied sorted views, a
 * job's own key order, a wrong value size reported by flush, and lmr_emit_keys (many keys, one
 * value) against the same emits one by one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "shuffle/combine_table.h"

#define MAX_WORDS 8 /* accumulators of up to 64 bytes: u64 words, summed */

static size_t g_words = 1;

static void sum_combine(void *state, uint8_t *acc, struct lmr_slice value)
{
    (void)state;
    for (size_t i = 0; i < value.len / 8; i++) {
        uint64_t a, v;
        memcpy(&a, acc + 8 * i, 8);
        memcpy(&v, value.ptr + 8 * i, 8);
        a += v;
        memcpy(acc + 8 * i, &a, 8);
    }
}

static const struct lmr_job_ops sum_job = {.name = "sum", .combine = sum_combine};
/* The table's own adder: its emitter adds inline (the same sums as sum_combine for one word). */
static const struct lmr_job_ops adder_job = {.name = "adder", .combine = lmr_combine_add_u64};
static bool g_adder = false;    /* new_table: adder_job instead of sum_job */
static size_t g_n_keys = 20000; /* run_emits' distinct keys */

struct kv {
    uint8_t key[80];
    size_t len;
    uint64_t v[MAX_WORDS];
};

static uint64_t rng = 88172645463325252ull;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static int bytewise(struct lmr_slice a, struct lmr_slice b)
{
    size_t n = a.len < b.len ? a.len : b.len;
    int c = n ? memcmp(a.ptr, b.ptr, n) : 0;
    return c ? c : (a.len > b.len) - (a.len < b.len);
}

static int kv_cmp(const void *pa, const void *pb)
{
    const struct kv *a = pa, *b = pb;
    return bytewise(lmr_slice_make(a->key, a->len), lmr_slice_make(b->key, b->len));
}

/* n distinct keys: lengths 0..70 (short, long, longer than the pipeline's 48), bytes 0..3 and letters. */
static struct kv *make_keys(size_t n)
{
    struct kv *k = calloc(n, sizeof *k);
    for (size_t i = 0; i < n; i++) {
        uint64_t r = next_rand();
        k[i].len = r % 8 == 0 ? 17 + (r >> 8) % 54 : (r >> 8) % 17;
        if (k[i].len < 4)
            k[i].len = 4;
        for (size_t j = 0; j < k[i].len; j++)
            k[i].key[j] = (uint8_t)(next_rand() % 5 == 0 ? next_rand() % 4 : 'a' + next_rand() % 26);
        memcpy(k[i].key, &i, 4); /* distinct: the index in the first 4 bytes */
    }
    return k;
}

static struct kv *sum_emits(const struct kv *e, size_t n_emits, size_t words, size_t *n_sums);

/* emits: n_emits picks of keys[0, n_keys) with random values; the expected sums into *expect (sorted, unique). */
static struct kv *make_emits(const struct kv *keys, size_t n_keys, size_t n_emits, size_t words, struct kv **expect,
                             size_t *n_expect)
{
    struct kv *e = calloc(n_emits, sizeof *e);
    for (size_t i = 0; i < n_emits; i++) {
        size_t k = (size_t)(next_rand() % n_keys);
        if (i < n_keys)
            k = i; /* every key at least once */
        memcpy(e[i].key, keys[k].key, keys[k].len);
        e[i].len = keys[k].len;
        for (size_t w = 0; w < words; w++)
            e[i].v[w] = next_rand() % 1000;
    }
    *expect = sum_emits(e, n_emits, words, n_expect);
    return e;
}

/* The emits e[0, n) summed per key, sorted by key (count in *n_sums). */
static struct kv *sum_emits(const struct kv *e, size_t n_emits, size_t words, size_t *n_sums)
{
    struct kv *s = malloc((n_emits ? n_emits : 1) * sizeof *s);
    memcpy(s, e, n_emits * sizeof *s);
    qsort(s, n_emits, sizeof *s, kv_cmp);
    size_t u = 0;
    for (size_t i = 0; i < n_emits; i++) {
        if (u && kv_cmp(&s[u - 1], &s[i]) == 0) {
            for (size_t w = 0; w < words; w++)
                s[u - 1].v[w] += s[i].v[w];
        } else {
            s[u++] = s[i];
        }
    }
    *n_sums = u;
    return s;
}

static struct lmr_combine_table *new_table(size_t words, size_t limit, lmr_combine_table_full_fn full, void *user)
{
    g_words = words;
    struct lmr_combine_table_options o = {.value_size = 8 * words,
                                          .ops = g_adder ? &adder_job : &sum_job,
                                          .memory_limit_bytes = limit,
                                          .full = full,
                                          .full_user = user};
    struct lmr_combine_table *t;
    assert_int_equal(lmr_combine_table_new(&o, &t, NULL), LMR_OK);
    return t;
}

/* The table's sorted view equals expect[0, n). */
static void check_sorted(struct lmr_combine_table *t, const struct kv *expect, size_t n, size_t words, bool in_place)
{
    struct lmr_combine_sort how = {.in_place = in_place};
    struct lmr_combine_item *items;
    size_t got;
    assert_int_equal(lmr_combine_table_sorted(t, &how, &items, &got, NULL), LMR_OK);
    assert_int_equal(got, n);
    for (size_t i = 0; i < n; i++) {
        struct lmr_slice k = lmr_combine_item_key(t, &items[i]);
        assert_int_equal(k.len, expect[i].len);
        assert_memory_equal(k.ptr, expect[i].key, k.len);
        assert_memory_equal(lmr_combine_item_acc(t, &items[i]), expect[i].v, 8 * words);
    }
    if (!in_place)
        free(items);
}

static void run_emits(size_t words, bool pipelined)
{
    size_t n_keys = g_n_keys, n_emits = 100000, n_expect; /* > 16384 keys: the table reaches the pipeline */
    struct kv *keys = make_keys(n_keys), *expect;
    struct kv *emits = make_emits(keys, n_keys, n_emits, words, &expect, &n_expect);
    struct lmr_combine_table *t = new_table(words, 0, NULL, NULL);
    for (size_t i = 0; i < n_emits; i++) {
        struct lmr_slice k = lmr_slice_make(emits[i].key, emits[i].len), v = lmr_slice_make(emits[i].v, 8 * words);
        if (pipelined)
            lmr_combine_table_emit(t, k, v);
        else
            assert_int_equal(lmr_combine_table_add(t, k, v, NULL), LMR_OK);
    }
    assert_int_equal(lmr_combine_table_flush(t, NULL), LMR_OK);
    assert_int_equal(lmr_combine_table_count(t), n_expect);
    assert_int_equal(lmr_combine_table_emits(t), pipelined ? n_emits : 0);
    /* Lookups of a sample, then the whole table in order (copied view, then in place). */
    for (size_t i = 0; i < n_expect; i += 101) {
        uint8_t *acc = lmr_combine_table_find(t, lmr_slice_make(expect[i].key, expect[i].len));
        assert_non_null(acc);
        assert_memory_equal(acc, expect[i].v, 8 * words);
    }
    uint8_t absent[20] = {0xff, 0xff, 0xff, 0xff};
    assert_null(lmr_combine_table_find(t, lmr_slice_make(absent, 20)));
    check_sorted(t, expect, n_expect, words, false);
    check_sorted(t, expect, n_expect, words, true);
    /* After a clear it is an empty table again. */
    lmr_combine_table_clear(t);
    assert_int_equal(lmr_combine_table_count(t), 0);
    assert_int_equal(lmr_combine_table_add(t, lmr_slice_make("x", 1), lmr_slice_make(expect[0].v, 8 * words), NULL),
                     LMR_OK);
    assert_int_equal(lmr_combine_table_count(t), 1);
    assert_true(lmr_combine_table_peak_bytes(t) >= lmr_combine_table_memory_bytes(t));
    lmr_combine_table_destroy(t);
    free(keys);
    free(emits);
    free(expect);
}

static void test_pipelined_8_byte_values(void **unused)
{
    run_emits(1, true);
}

static void test_u64_adder_pipelined_and_in_cache(void **unused)
{
    g_adder = true;
    run_emits(1, true); /* 20,000 keys: through the pipeline */
    g_n_keys = 1000;
    run_emits(1, true); /* a table that stays small: combined at once */
    run_emits(1, false);
    g_n_keys = 20000;
    g_adder = false;
}

static void test_pipelined_16_byte_values(void **unused)
{
    run_emits(2, true);
}

static void test_synchronous_out_of_line_accumulators(void **unused)
{
    run_emits(6, false); /* 48 bytes: the accumulator lives in the arena */
}

static void test_pipelined_large_values_bypass(void **unused)
{
    run_emits(8, true); /* 64 bytes: too large for the pipeline, combined at once */
}

static void test_remove_keeps_every_other_key_findable(void **unused)
{
    size_t n = 6000;
    struct kv *keys = make_keys(n);
    struct lmr_combine_table *t = new_table(1, 0, NULL, NULL);
    uint64_t one = 1;
    for (size_t i = 0; i < n; i++)
        assert_int_equal(
            lmr_combine_table_add(t, lmr_slice_make(keys[i].key, keys[i].len), lmr_slice_make(&one, 8), NULL), LMR_OK);
    for (size_t i = 0; i < n; i += 3)
        assert_true(lmr_combine_table_remove(t, lmr_slice_make(keys[i].key, keys[i].len)));
    assert_false(lmr_combine_table_remove(t, lmr_slice_make(keys[0].key, keys[0].len)));
    assert_int_equal(lmr_combine_table_count(t), n - (n + 2) / 3);
    for (size_t i = 0; i < n; i++) {
        uint8_t *acc = lmr_combine_table_find(t, lmr_slice_make(keys[i].key, keys[i].len));
        if (i % 3 == 0) {
            assert_null(acc);
        } else {
            assert_non_null(acc);
            assert_memory_equal(acc, &one, 8);
        }
    }
    /* upsert: a removed key comes back as new, an existing one is found. */
    uint8_t *acc;
    bool inserted;
    assert_int_equal(lmr_combine_table_upsert(t, lmr_slice_make(keys[3].key, keys[3].len), &acc, &inserted, NULL),
                     LMR_OK);
    assert_true(inserted);
    memcpy(acc, &one, 8);
    assert_int_equal(lmr_combine_table_upsert(t, lmr_slice_make(keys[4].key, keys[4].len), &acc, &inserted, NULL),
                     LMR_OK);
    assert_false(inserted);
    lmr_combine_table_destroy(t);
    free(keys);
}

/* A budget with a callback that "spills": the sorted view is summed into spilled[], then the table cleared. */
struct spill_sink {
    struct kv *spilled;
    size_t n, cap, calls;
};

static enum lmr_result spill_cb(void *user, struct lmr_combine_table *t, struct lmr_err *err)
{
    struct spill_sink *s = user;
    struct lmr_combine_sort how = {.in_place = true};
    struct lmr_combine_item *items;
    size_t n;
    enum lmr_result rc = lmr_combine_table_sorted(t, &how, &items, &n, err);
    if (rc != LMR_OK)
        return rc;
    for (size_t i = 0; i < n; i++) {
        if (s->n == s->cap) {
            s->cap = s->cap ? 2 * s->cap : 1024;
            s->spilled = realloc(s->spilled, s->cap * sizeof *s->spilled);
        }
        struct kv *e = &s->spilled[s->n++];
        struct lmr_slice k = lmr_combine_item_key(t, &items[i]);
        memset(e, 0, sizeof *e);
        memcpy(e->key, k.ptr, k.len);
        e->len = k.len;
        memcpy(e->v, lmr_combine_item_acc(t, &items[i]), 8 * g_words);
    }
    s->calls++;
    lmr_combine_table_clear(t);
    return LMR_OK;
}

static void test_budget_spills_through_the_callback(void **unused)
{
    /* Large enough for the pipeline (32768 slots and more) before the budget is reached. */
    size_t n_keys = 40000, n_emits = 120000, n_expect;
    struct kv *keys = make_keys(n_keys), *expect;
    struct kv *emits = make_emits(keys, n_keys, n_emits, 1, &expect, &n_expect);
    struct spill_sink sink = {0};
    size_t limit = 2 * 1024 * 1024; /* 32768 slots (1 MiB) fit, 65536 (2 MiB) do not */
    struct lmr_combine_table *t = new_table(1, limit, spill_cb, &sink);
    for (size_t i = 0; i < n_emits; i++)
        lmr_combine_table_emit(t, lmr_slice_make(emits[i].key, emits[i].len), lmr_slice_make(emits[i].v, 8));
    assert_int_equal(lmr_combine_table_flush(t, NULL), LMR_OK);
    assert_true(sink.calls > 0);
    assert_true(lmr_combine_table_peak_bytes(t) <= limit);
    spill_cb(&sink, t, NULL); /* the rest */
    /* Spilled runs summed per key = the reference. */
    qsort(sink.spilled, sink.n, sizeof *sink.spilled, kv_cmp);
    size_t u = 0;
    for (size_t i = 0; i < sink.n; i++) {
        if (u && kv_cmp(&sink.spilled[u - 1], &sink.spilled[i]) == 0)
            sink.spilled[u - 1].v[0] += sink.spilled[i].v[0];
        else
            sink.spilled[u++] = sink.spilled[i];
    }
    assert_int_equal(u, n_expect);
    for (size_t i = 0; i < u; i++) {
        assert_int_equal(sink.spilled[i].len, expect[i].len);
        assert_memory_equal(sink.spilled[i].key, expect[i].key, expect[i].len);
        assert_int_equal(sink.spilled[i].v[0], expect[i].v[0]);
    }
    lmr_combine_table_destroy(t);

    /* Without a callback, the insert that passes the budget fails and says so. */
    t = new_table(1, 64 * 1024, NULL, NULL);
    struct lmr_err err = {0};
    enum lmr_result rc = LMR_OK;
    for (size_t i = 0; i < n_keys && rc == LMR_OK; i++)
        rc = lmr_combine_table_add(t, lmr_slice_make(keys[i].key, keys[i].len), lmr_slice_make(emits[0].v, 8), &err);
    assert_int_equal(rc, LMR_ERR_NOMEM);
    assert_non_null(strstr(err.msg, "memory budget"));
    lmr_combine_table_destroy(t);
    free(sink.spilled);
    free(keys);
    free(emits);
    free(expect);
}

static int reverse(struct lmr_slice a, struct lmr_slice b)
{
    return -bytewise(a, b);
}

static uint64_t zero_key(void *user, struct lmr_slice key)
{
    return 0;
}

static void test_own_order_and_wrong_value_size(void **unused)
{
    struct lmr_combine_table *t = new_table(1, 0, NULL, NULL);
    uint64_t one = 1;
    const char *words[] = {"pear", "apple", "a-much-longer-key-than-sixteen", "fig", ""};
    for (int i = 0; i < 5; i++)
        lmr_combine_table_emit(t, lmr_slice_make(words[i], strlen(words[i])), lmr_slice_make(&one, 8));
    struct lmr_combine_sort how = {.sortkey = zero_key, .compare = reverse};
    struct lmr_combine_item *items;
    size_t n;
    assert_int_equal(lmr_combine_table_sorted(t, &how, &items, &n, NULL), LMR_OK);
    assert_int_equal(n, 5);
    const char *want[] = {"pear", "fig", "apple", "a-much-longer-key-than-sixteen", ""};
    for (int i = 0; i < 5; i++) {
        struct lmr_slice k = lmr_combine_item_key(t, &items[i]);
        assert_int_equal(k.len, strlen(want[i]));
        assert_memory_equal(k.ptr, want[i], k.len);
    }
    free(items);
    /* A 4-byte value for an 8-byte accumulator: sticky, reported by flush with the job's name. */
    uint32_t small = 1;
    lmr_combine_table_emit(t, lmr_slice_make("x", 1), lmr_slice_make(&small, 4));
    lmr_combine_table_emit(t, lmr_slice_make("y", 1), lmr_slice_make(&one, 8));
    struct lmr_err err = {0};
    assert_int_equal(lmr_combine_table_flush(t, &err), LMR_ERR_INVALID);
    assert_non_null(strstr(err.msg, "sum"));
    assert_int_equal(lmr_combine_table_add(t, lmr_slice_make("z", 1), lmr_slice_make(&small, 4), NULL),
                     LMR_ERR_INVALID);
    lmr_combine_table_destroy(t);
}

/* An emitter that is not a table: records what it is given. */
struct recorder {
    struct lmr_emitter emitter;
    const struct lmr_slice *want;
    size_t calls;
    uint64_t value;
};

static void record_emit(struct lmr_emitter *self, struct lmr_slice key, struct lmr_slice value)
{
    struct recorder *r = (struct recorder *)self;
    assert_ptr_equal(key.ptr, r->want[r->calls].ptr);
    assert_int_equal(key.len, r->want[r->calls].len);
    assert_int_equal(value.len, 8);
    assert_memory_equal(value.ptr, &r->value, 8);
    r->calls++;
}

/*
 * lmr_emit_keys in batches of 1-150 keys with one value each, single emits in between (so the
 * ring holds pairs of both, long keys among them), into a table that grows through the pipeline,
 * with and without a budget that spills: the same sums as the emits one by one.
 */
static void run_emit_keys(size_t words, bool adder, size_t limit)
{
    g_adder = adder;
    size_t n_keys = 30000, n_emits = 0, cap = 200000;
    struct kv *keys = make_keys(n_keys), *emits = calloc(cap + 200, sizeof *emits);
    struct spill_sink sink = {0};
    struct lmr_combine_table *t = new_table(words, limit, limit ? spill_cb : NULL, &sink);
    struct lmr_emitter *out = lmr_combine_table_emitter(t);
    struct lmr_slice batch[150];
    size_t next_key = 0;
    while (n_emits < cap) {
        if (next_rand() % 4 == 0) { /* a single emit */
            struct kv *e = &emits[n_emits++];
            size_t k = (size_t)(next_rand() % n_keys);
            memcpy(e->key, keys[k].key, keys[k].len);
            e->len = keys[k].len;
            for (size_t w = 0; w < words; w++)
                e->v[w] = next_rand() % 1000;
            lmr_combine_table_emit(t, lmr_slice_make(e->key, e->len), lmr_slice_make(e->v, 8 * words));
            continue;
        }
        size_t m = 1 + (size_t)(next_rand() % 150);
        uint64_t v[MAX_WORDS] = {0};
        for (size_t w = 0; w < words; w++)
            v[w] = next_rand() % 1000;
        for (size_t i = 0; i < m; i++) {
            size_t k = next_key < n_keys ? next_key++ : (size_t)(next_rand() % n_keys); /* every key once first */
            struct kv *e = &emits[n_emits++];
            memcpy(e->key, keys[k].key, keys[k].len);
            e->len = keys[k].len;
            memcpy(e->v, v, sizeof v);
            batch[i] = lmr_slice_make(keys[k].key, keys[k].len);
        }
        lmr_emit_keys(out, batch, m, lmr_slice_make(v, 8 * words));
    }
    assert_int_equal(lmr_combine_table_flush(t, NULL), LMR_OK);
    assert_int_equal(lmr_combine_table_emits(t), n_emits);
    size_t n_expect;
    struct kv *expect = sum_emits(emits, n_emits, words, &n_expect);
    if (!limit) {
        assert_int_equal(lmr_combine_table_count(t), n_expect);
        check_sorted(t, expect, n_expect, words, false);
    } else {
        assert_true(sink.calls > 0);
        spill_cb(&sink, t, NULL); /* the rest */
        struct kv *got = sum_emits(sink.spilled, sink.n, words, &sink.n);
        assert_int_equal(sink.n, n_expect);
        for (size_t i = 0; i < n_expect; i++) {
            assert_int_equal(got[i].len, expect[i].len);
            assert_memory_equal(got[i].key, expect[i].key, expect[i].len);
            assert_memory_equal(got[i].v, expect[i].v, 8 * words);
        }
        free(got);
    }
    lmr_combine_table_destroy(t);
    free(sink.spilled);
    free(keys);
    free(emits);
    free(expect);
    g_adder = false;
}

static void test_emit_keys_equals_single_emits(void **unused)
{
    run_emit_keys(1, true, 0);  /* the table's own adder */
    run_emit_keys(1, false, 0); /* the job's combiner, 8 bytes */
    run_emit_keys(2, false, 0); /* 16-byte accumulators: 64-byte slots */
    run_emit_keys(1, true, 2 * 1024 * 1024);
    run_emit_keys(2, false, 4 * 1024 * 1024);

    /* Any other emitter: the same pairs in the same order, one call each. */
    uint64_t one = 1;
    struct lmr_slice keys[3] = {lmr_slice_make("b", 1), lmr_slice_make("a-key-longer-than-sixteen", 25),
                                lmr_slice_make("b", 1)};
    struct recorder r = {.emitter = {.emit = record_emit}, .want = keys, .value = one};
    lmr_emit_keys(&r.emitter, keys, 3, lmr_slice_make(&one, 8));
    assert_int_equal(r.calls, 3);

    /* A wrong value size: sticky, reported by flush (no key is read past the value). */
    struct lmr_combine_table *t = new_table(1, 0, NULL, NULL);
    uint32_t small = 1;
    lmr_emit_keys(lmr_combine_table_emitter(t), keys, 3, lmr_slice_make(&small, 4));
    assert_int_equal(lmr_combine_table_flush(t, NULL), LMR_ERR_INVALID);
    assert_int_equal(lmr_combine_table_count(t), 0);
    lmr_combine_table_destroy(t);
}

/* Slot i of a test array: occupied flag at 0, hash bits at 4, an id at 8. */
static uint32_t slot_u32(const uint8_t *sl, size_t i, size_t st, size_t off)
{
    uint32_t v;
    memcpy(&v, sl + i * st + off, 4);
    return v;
}

/* lmr_combine_slots_double_in_place on 200,000 small random arrays (2-512 slots, 32- and 64-byte
   slots, loads up to 1/2, hashes spread or crowded at the array's end so that clusters wrap):
   afterwards every slot is there once and found by probing from its new home before an empty slot. */
static void test_double_in_place_small_arrays(void **unused)
{
    (void)unused;
    uint8_t *sl = malloc(1024 * 64);
    assert_non_null(sl);
    for (int round = 0; round < 200000; round++) {
        size_t st = round % 2 ? 32 : 64, line = 64 / st, cap = (size_t)2 << (next_rand() % 9);
        if (cap < line)
            cap = line;
        size_t n = (size_t)(next_rand() % (cap / 2 + 1)), mask = cap - 1, home = mask & ~(line - 1);
        int crowd = (int)(next_rand() % 3); /* 0: spread; 1: homes near the end; 2: near the end and the start */
        memset(sl, 0, 2 * cap * st);
        for (uint32_t id = 1; id <= n; id++) {
            uint32_t h = (uint32_t)next_rand();
            if (crowd && next_rand() % 2)
                h = (uint32_t)((h & ~(uint32_t)mask) |
                               ((crowd == 2 && next_rand() % 2 ? 0 : cap - 1 - next_rand() % 4) & mask));
            size_t j = h & home;
            while (slot_u32(sl, j, st, 0))
                j = (j + 1) & mask;
            uint32_t one = 1;
            memcpy(sl + j * st, &one, 4);
            memcpy(sl + j * st + 4, &h, 4);
            memcpy(sl + j * st + 8, &id, 4);
        }
        assert_true(lmr_combine_slots_double_in_place(sl, cap, st));
        size_t ncap = 2 * cap, nmask = ncap - 1, nhome = nmask & ~(line - 1), seen = 0;
        uint8_t found[1024] = {0};
        for (size_t i = 0; i < ncap; i++) {
            if (!slot_u32(sl, i, st, 0))
                continue;
            seen++;
            uint32_t h = slot_u32(sl, i, st, 4), id = slot_u32(sl, i, st, 8);
            assert_true(id >= 1 && id <= n);
            assert_false(found[id]);
            found[id] = 1;
            for (size_t j = h & nhome; j != i; j = (j + 1) & nmask)
                if (!slot_u32(sl, j, st, 0))
                    fail_msg("round %d: slot %u (home %zu) at %zu lies past an empty slot %zu (%zu of %zu slots)",
                             round, id, (size_t)(h & nhome), i, j, n, cap);
        }
        assert_int_equal(seen, n); /* each id once: none lost, none doubled */
    }
    free(sl);
}

/* Tables that grow far past the 2 MiB slot array from which growth happens in place (inside one
   reservation, the slots re-placed where they lie; those whose new probe would wrap placed last):
   after every growth each key is still found (a duplicate would show as an extra entry), with
   the sums of the reference, for 32- and 64-byte slots, at several sizes (so that some growths
   end a cluster at the array's end). */
static void test_growth_in_place_keeps_every_key(void **unused)
{
    (void)unused;
    static const size_t sizes[] = {70000, 90001, 140000};
    for (size_t words = 1; words <= 5; words += 4) {
        for (size_t z = 0; z < sizeof sizes / sizeof sizes[0]; z++) {
            size_t n_keys = sizes[z], n_emits = 2 * n_keys, n_expect;
            struct kv *keys = make_keys(n_keys), *expect;
            struct kv *emits = make_emits(keys, n_keys, n_emits, words, &expect, &n_expect);
            struct lmr_combine_table *t = new_table(words, 0, NULL, NULL);
            for (size_t i = 0; i < n_emits; i++)
                lmr_combine_table_emit(t, lmr_slice_make(emits[i].key, emits[i].len),
                                       lmr_slice_make(emits[i].v, 8 * words));
            assert_int_equal(lmr_combine_table_flush(t, NULL), LMR_OK);
            assert_int_equal(lmr_combine_table_count(t), n_expect);
            assert_true(lmr_combine_table_memory_bytes(t) >= ((size_t)4 << 20)); /* grown in place at least once */
            for (size_t i = 0; i < n_expect; i++) {
                uint8_t *acc = lmr_combine_table_find(t, lmr_slice_make(expect[i].key, expect[i].len));
                if (!acc)
                    fail_msg("key %zu of %zu (%zu bytes) not found after growth", i, n_expect, expect[i].len);
                assert_memory_equal(acc, expect[i].v, 8 * words);
            }
            check_sorted(t, expect, n_expect, words, z % 2 == 0);
            lmr_combine_table_destroy(t);
            free(keys);
            free(emits);
            free(expect);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_double_in_place_small_arrays),
        cmocka_unit_test(test_growth_in_place_keeps_every_key),
        cmocka_unit_test(test_pipelined_8_byte_values),
        cmocka_unit_test(test_u64_adder_pipelined_and_in_cache),
        cmocka_unit_test(test_pipelined_16_byte_values),
        cmocka_unit_test(test_synchronous_out_of_line_accumulators),
        cmocka_unit_test(test_pipelined_large_values_bypass),
        cmocka_unit_test(test_remove_keeps_every_other_key_findable),
        cmocka_unit_test(test_budget_spills_through_the_callback),
        cmocka_unit_test(test_own_order_and_wrong_value_size),
        cmocka_unit_test(test_emit_keys_equals_single_emits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
