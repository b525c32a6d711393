/*
 * Rebalancing's cut (job/task.h lmr_map_cut_*; the shard reader's cut hook): where a map task's
 * input is cut (half of what remains, byte offsets inside plain shards, boundaries only for
 * whole compressed shards, both sides at least the minimum), that the task's head and its tail
 * cover the input exactly, and that a line straddling the cut is read by exactly one side (the
 * one it starts in), whether the shard is cut before it is read or while it is read.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "job/args.h"
#include "job/task.h"
#include "shard_reader.h"
#include "store/store.h"
#include "util/buf.h"

static char tmpdir[] = "/tmp/lmr-cut-XXXXXX";
static struct lmr_store *store;

static struct lmr_shard shard(const char *key, uint64_t offset, uint64_t length, enum lmr_codec codec)
{
    return (struct lmr_shard){.object = {.root = "file:///x", .key = (char *)key},
                              .offset = offset,
                              .length = length,
                              .object_size = offset + length + 100,
                              .codec = codec};
}

static void test_decide_offsets(void **state)
{
    struct lmr_map_cut c;
    struct lmr_shard one[] = {shard("a", 0, 1000, LMR_CODEC_NONE)};
    assert_true(lmr_map_cut_decide(one, 1, 0, 100, 10, 0, &c)); /* 900 left: keep 450 */
    assert_int_equal(c.shard, 0);
    assert_int_equal(c.offset, 550);
    struct lmr_shard two[] = {shard("a", 0, 400, LMR_CODEC_NONE), shard("b", 50, 600, LMR_CODEC_NONE)};
    assert_true(lmr_map_cut_decide(two, 2, 0, 0, 10, 0, &c)); /* 1000 left: keep 500, 100 of b */
    assert_int_equal(c.shard, 1);
    assert_int_equal(c.offset, 150);
    struct lmr_shard even[] = {shard("a", 0, 500, LMR_CODEC_NONE), shard("b", 0, 500, LMR_CODEC_NONE)};
    assert_true(lmr_map_cut_decide(even, 2, 0, 0, 10, 0, &c)); /* exactly at the boundary: all of b to the tail */
    assert_int_equal(c.shard, 1);
    assert_int_equal(c.offset, 0);
    assert_int_equal(lmr_map_head_shards(even, 2, &c), 1);
    /* A position before the shard's start (the reader fetches the byte before it) counts from its start. */
    struct lmr_shard mid[] = {shard("a", 1000, 1000, LMR_CODEC_NONE)};
    assert_true(lmr_map_cut_decide(mid, 1, 0, 999, 10, 0, &c));
    assert_int_equal(c.offset, 1500);
}

static void test_decide_too_small(void **state)
{
    struct lmr_map_cut c = {7, 7};
    struct lmr_shard one[] = {shard("a", 0, 1000, LMR_CODEC_NONE)};
    assert_false(lmr_map_cut_decide(one, 1, 0, 981, 10, 0, &c)); /* 19 left: less than 10 a side */
    assert_false(lmr_map_cut_decide(one, 1, 0, 1000, 1, 0, &c)); /* nothing left */
    assert_false(lmr_map_cut_decide(one, 1, 1, 0, 1, 0, &c));    /* past the last shard */
    assert_true(lmr_map_cut_decide(one, 1, 0, 980, 10, 0, &c));  /* 20 left: 10 a side */
    assert_int_equal(c.offset, 990);
    /* More than half to the tail (the task's own finish is worth extra bytes); at most all of it. */
    assert_true(lmr_map_cut_decide(one, 1, 0, 100, 10, 200, &c)); /* 900 left: 650 to the tail */
    assert_int_equal(c.offset, 350);
    assert_true(lmr_map_cut_decide(one, 1, 0, 100, 10, 5000, &c)); /* all of the rest */
    assert_int_equal(c.offset, 100);
    assert_true(lmr_map_cut_decide(one, 1, 0, 100, 10, -200, &c)); /* fewer: 250 to the tail */
    assert_int_equal(c.offset, 750);
    assert_false(lmr_map_cut_decide(one, 1, 0, 100, 10, -445, &c)); /* 5 to the tail: under the minimum */
}

static void test_decide_whole_shards(void **state)
{
    struct lmr_map_cut c;
    struct lmr_shard gz[] = {shard("a.gz", 0, 100, LMR_CODEC_GZIP), shard("b.gz", 0, 100, LMR_CODEC_GZIP),
                             shard("c.gz", 0, 100, LMR_CODEC_GZIP), shard("d.gz", 0, 100, LMR_CODEC_GZIP)};
    assert_true(lmr_map_cut_decide(gz, 4, 0, 0, 10, 0, &c));
    assert_int_equal(c.shard, 2);
    assert_int_equal(c.offset, 0);
    /* Inside a whole shard: the nearer boundary (150 of 300 kept: half of b is before the cut: before b). */
    assert_true(lmr_map_cut_decide(gz + 1, 3, 0, 0, 10, 0, &c));
    assert_int_equal(c.shard, 1);
    /* A compressed shard being read: its progress is not known; the cut is after it. */
    struct lmr_shard mixed[] = {shard("a.gz", 0, 1000, LMR_CODEC_GZIP), shard("b", 0, 100, LMR_CODEC_NONE)};
    assert_true(lmr_map_cut_decide(mixed, 2, 0, 12345, 50, 0, &c));
    assert_int_equal(c.shard, 1);
    assert_int_equal(c.offset, 0);
    assert_false(lmr_map_cut_decide(mixed, 2, 0, 0, 101, 0, &c)); /* the tail would get 100 < 101 */
    struct lmr_shard last[] = {shard("a.gz", 0, 1000, LMR_CODEC_GZIP)};
    assert_false(lmr_map_cut_decide(last, 1, 0, 0, 1, 0, &c)); /* one whole shard: no cut */
    /* lmr_map_cut_check: a compressed shard only whole, offsets inside the shard. */
    struct lmr_map_cut bad = {0, 10};
    struct lmr_err err = {0};
    assert_int_equal(lmr_map_cut_check(gz, 4, &bad, &err), LMR_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "compressed"));
    bad = (struct lmr_map_cut){4, 0};
    assert_int_equal(lmr_map_cut_check(gz, 4, &bad, NULL), LMR_ERR_FORMAT);
    struct lmr_shard one[] = {shard("a", 100, 50, LMR_CODEC_NONE)};
    bad = (struct lmr_map_cut){0, 150};
    assert_int_equal(lmr_map_cut_check(one, 1, &bad, NULL), LMR_ERR_FORMAT);
    bad = (struct lmr_map_cut){0, 99};
    assert_int_equal(lmr_map_cut_check(one, 1, &bad, NULL), LMR_ERR_FORMAT);
}

/* Random shard lists: a cut is valid, leaves the minimum to both sides, and head + tail are what remained. */
static void test_decide_random(void **state)
{
    srand(16);
    for (int round = 0; round < 20000; round++) {
        size_t n = 1 + (size_t)(rand() % 6);
        struct lmr_shard sh[6];
        for (size_t k = 0; k < n; k++)
            sh[k] = shard("k", (uint64_t)(rand() % 1000), 1 + (uint64_t)(rand() % 5000),
                          rand() % 3 == 0 ? LMR_CODEC_ZSTD : LMR_CODEC_NONE);
        size_t cur = (size_t)rand() % n;
        uint64_t pos = sh[cur].offset + (uint64_t)rand() % (sh[cur].length + 1);
        uint64_t min = 1 + (uint64_t)(rand() % 3000);
        struct lmr_map_cut c;
        int64_t extra = rand() % 2 ? 0 : (int64_t)(rand() % 16000) - 8000;
        if (!lmr_map_cut_decide(sh, n, cur, pos, min, extra, &c))
            continue;
        assert_int_equal(lmr_map_cut_check(sh, n, &c, NULL), LMR_OK);
        assert_true(c.shard >= cur);
        bool whole_cur = sh[cur].codec != LMR_CODEC_NONE;
        uint64_t remaining = whole_cur ? sh[cur].length : sh[cur].offset + sh[cur].length - pos;
        for (size_t k = cur + 1; k < n; k++)
            remaining += sh[k].length;
        if (c.shard == cur)
            assert_true(!whole_cur && c.offset >= pos);
        struct lmr_shard *tail;
        size_t nt;
        assert_int_equal(lmr_map_tail_shards(sh, n, &c, &tail, &nt, NULL), LMR_OK);
        uint64_t tail_bytes = 0;
        for (size_t k = 0; k < nt; k++)
            tail_bytes += tail[k].length;
        assert_int_equal(nt, n - c.shard);
        assert_int_equal(tail[0].offset, c.offset);
        assert_int_equal(tail[0].offset + tail[0].length, sh[c.shard].offset + sh[c.shard].length);
        assert_true(tail_bytes >= min && tail_bytes <= remaining);
        if (!extra)
            assert_true(remaining - tail_bytes >= min);
        /* Half plus extra: a plain cut inside a shard gives exactly that (all when extra is more than half). */
        int64_t w = (int64_t)(remaining / 2) + extra;
        uint64_t want = w < 0 ? 0 : (uint64_t)w < remaining ? (uint64_t)w : remaining;
        if (sh[c.shard].codec == LMR_CODEC_NONE && c.offset > sh[c.shard].offset)
            assert_int_equal(tail_bytes, want);
        for (size_t k = 0; k < nt; k++)
            lmr_location_clean_up(&tail[k].object);
        free(tail);
    }
}

/* ---- the record rule at a cut, with the real shard reader over a file store ---------------------------- */

struct lines {
    struct lmr_buf text;
    uint64_t n;
};

static enum lmr_result collect(void *ud, struct lmr_slice line, uint64_t offset, struct lmr_err *err)
{
    struct lines *l = ud;
    lmr_buf_append(&l->text, line.ptr, line.len);
    lmr_buf_append(&l->text, "\n", 1);
    l->n++;
    return LMR_OK;
}

struct hook {
    unsigned calls, cut_on_call;
    uint64_t extra, cut_at;
};

/* Cut the shard at the cut_on_call-th refill, `extra` bytes past what the reader has fetched. */
static uint64_t cut_hook(void *ud, uint64_t pos, uint64_t end)
{
    struct hook *h = ud;
    if (++h->calls != h->cut_on_call)
        return end;
    h->cut_at = pos + h->extra < end ? pos + h->extra : end;
    return h->cut_at;
}

static void read_range(const char *key, uint64_t size, uint64_t off, uint64_t len, struct hook *h, struct lines *l)
{
    struct lmr_shard sh = {
        .object = {.root = store->root_uri, .key = (char *)key}, .offset = off, .length = len, .object_size = size};
    struct lmr_shard_read_limits lim = {.max_line_bytes = 8u << 20, .cut = h ? cut_hook : NULL, .cut_user_data = h};
    struct lmr_shard_stats st = {0};
    struct lmr_err err = {0};
    if (lmr_shard_read(store, &sh, &lim, NULL, collect, l, &st, &err))
        fail_msg("reading %s [%llu, +%llu): %s", key, (unsigned long long)off, (unsigned long long)len, err.msg);
}

static void test_straddling_line_belongs_to_one_side(void **state)
{
    /* 3 MiB of lines of 1 to 3000 bytes: the reader refills several times. */
    size_t n = 3u << 20;
    char *data = malloc(n);
    srand(7);
    for (size_t i = 0; i < n;) {
        size_t len = 1 + (size_t)(rand() % 3000);
        for (size_t k = 0; k < len && i < n; k++)
            data[i++] = (char)('a' + rand() % 26);
        if (i < n)
            data[i++] = '\n';
    }
    data[n - 1] = '\n';
    assert_int_equal(lmr_store_put(store, "in.txt", data, n, 0, NULL), LMR_OK);
    struct lines all = {0};
    lmr_buf_init(&all.text, 1u << 30);
    read_range("in.txt", n, 0, n, NULL, &all);
    assert_int_equal(all.text.len, n);
    /* Cuts before reading: at line starts, inside lines, just before and after a '\n'. */
    uint64_t cuts[] = {1, 2, 17, 4095, 4096, 1u << 20, (1u << 20) + 1, n / 2, n - 2, n - 1};
    for (size_t k = 0; k < sizeof cuts / sizeof cuts[0]; k++) {
        struct lines got = {0};
        lmr_buf_init(&got.text, 1u << 30);
        read_range("in.txt", n, 0, cuts[k], NULL, &got);
        uint64_t head_lines = got.n;
        read_range("in.txt", n, cuts[k], n - cuts[k], NULL, &got);
        assert_int_equal(got.n, all.n);
        assert_int_equal(got.text.len, all.text.len);
        assert_memory_equal(got.text.data, all.text.data, all.text.len);
        assert_true(head_lines > 0);
        lmr_buf_clean_up(&got.text);
    }
    /* Cuts while reading (the hook shortens the shard at its first, second or third refill). */
    for (unsigned call = 1; call <= 3; call++) {
        for (uint64_t extra = 1; extra < 200000; extra += 49999) {
            struct hook h = {.cut_on_call = call, .extra = extra};
            struct lines got = {0};
            lmr_buf_init(&got.text, 1u << 30);
            read_range("in.txt", n, 0, n, &h, &got);
            assert_true(h.cut_at > 0 && h.cut_at < n);
            /* The head is what a shard ending at the cut reads... */
            struct lines fixed = {0};
            lmr_buf_init(&fixed.text, 1u << 30);
            read_range("in.txt", n, 0, h.cut_at, NULL, &fixed);
            assert_int_equal(got.n, fixed.n);
            assert_int_equal(got.text.len, fixed.text.len);
            assert_memory_equal(got.text.data, fixed.text.data, got.text.len);
            /* ... and with the tail it is every line once. */
            read_range("in.txt", n, h.cut_at, n - h.cut_at, NULL, &got);
            assert_int_equal(got.n, all.n);
            assert_memory_equal(got.text.data, all.text.data, all.text.len);
            lmr_buf_clean_up(&got.text);
            lmr_buf_clean_up(&fixed.text);
        }
    }
    lmr_buf_clean_up(&all.text);
    free(data);
}

static void test_cut_json(void **state)
{
    struct lmr_map_cut c = {3, 123456789012ull}, back;
    json_t *j = lmr_map_cut_to_json(&c);
    assert_true(lmr_map_cut_from_json(j, &back));
    assert_int_equal(back.shard, 3);
    assert_int_equal(back.offset, 123456789012ull);
    json_decref(j);
    j = json_pack("{s:b}", "declined", 1);
    assert_false(lmr_map_cut_from_json(j, &back));
    json_decref(j);
    j = json_pack("{s:i, s:i}", "shard", -1, "offset", 5);
    assert_false(lmr_map_cut_from_json(j, &back));
    json_decref(j);
    /* The map event carries the rebalancing fields. */
    struct lmr_shard sh[] = {shard("a", 0, 10, LMR_CODEC_NONE)};
    struct lmr_job_args *args = lmr_job_args_new();
    struct lmr_map_task t = {.job = {.job_id = "j",
                                     .job_name = "wordcount",
                                     .args = args,
                                     .work = {"file:///w", "w/"},
                                     .output = {"file:///o", ""},
                                     .reducers = 1},
                             .attempt_id = "m00000-a2-x",
                             .attempt = 2,
                             .shards = sh,
                             .nshards = 1,
                             .split_min_bytes = 4096,
                             .check_cut = true};
    json_t *ev = lmr_map_task_to_json(&t);
    assert_non_null(ev);
    char *text = json_dumps(ev, JSON_COMPACT);
    json_decref(ev);
    struct lmr_map_task p;
    struct lmr_err err = {0};
    assert_int_equal(lmr_map_task_from_json(text, strlen(text), &p, &err), LMR_OK);
    assert_int_equal(p.split_min_bytes, 4096);
    assert_true(p.check_cut);
    lmr_map_task_clean_up(&p);
    lmr_job_args_destroy(args);
    free(text);
}

static int setup(void **state)
{
    if (!mkdtemp(tmpdir))
        return -1;
    return lmr_file_store_new(tmpdir, &store, NULL) == LMR_OK ? 0 : -1;
}

static int teardown(void **state)
{
    lmr_store_destroy(store);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    return system(cmd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decide_offsets),
        cmocka_unit_test(test_decide_too_small),
        cmocka_unit_test(test_decide_whole_shards),
        cmocka_unit_test(test_decide_random),
        cmocka_unit_test(test_straddling_line_belongs_to_one_side),
        cmocka_unit_test(test_cut_json),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
