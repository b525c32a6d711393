/*
 * The window output protocol the stream function follows on its final invokes
 * (common/stream/window_output.h), on the file store: parts are create-only (a retried final
 * invoke writes nothing twice), the window is complete only when every shard's lanes have their
 * final parts, the merge commits the output once (a second merge finds it and writes nothing),
 * early-ended parts are merged with the rest exactly once, and only the completing run's parts
 * are merged.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "job/registry.h"
#include "store/store.h"
#include "stream/state.h"
#include "stream/window_output.h"

#define W 1700000000000ull

static char dir[64];
static struct lmr_store *store;

static struct lmr_stream_state *state_of(const char *words)
{
    struct lmr_stream_state *st = lmr_stream_state_new(8);
    uint64_t one = 1;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", words);
    for (char *t = strtok(buf, " "); t; t = strtok(NULL, " "))
        assert_int_equal(
            lmr_stream_state_add(st, &lmr_job_wordcount, NULL, lmr_slice_make(t, strlen(t)), lmr_slice_make(&one, 8)),
            LMR_OK);
    return st;
}

static void put_part(const char *shard, uint32_t lane, const char *run, bool early, const char *first,
                     const char *words, bool expect_already)
{
    struct lmr_stream_state *st = state_of(words);
    struct lmr_stream_part_id id = {
        .window_start_ms = W, .shard_id = shard, .lane = lane, .run = run, .early = early, .first_seq = first};
    bool already = !expect_already;
    assert_int_equal(lmr_stream_window_write_part(store, "out", &id, st, "wordcount", "{}", 1, &already, NULL), LMR_OK);
    assert_int_equal(already, expect_already);
    lmr_stream_state_destroy(st);
}

static bool complete(const char *run, uint32_t lanes)
{
    const char *shards[] = {"shardId-000000000000", "shardId-000000000001"};
    bool c = false;
    assert_int_equal(lmr_stream_window_complete(store, "out", W, shards, 2, run, lanes, &c, NULL), LMR_OK);
    return c;
}

static char *output(void)
{
    char *key = lmr_stream_window_output_key("out", W);
    struct lmr_buf b;
    lmr_buf_init(&b, 1 << 20);
    enum lmr_result r = lmr_store_get(store, key, 0, LMR_STORE_TO_END, &b, NULL);
    free(key);
    if (r) {
        lmr_buf_clean_up(&b);
        return NULL;
    }
    return lmr_buf_detach(&b, NULL);
}

static int setup(void **unused)
{
    snprintf(dir, sizeof dir, "/tmp/lmr-test-window-XXXXXX");
    assert_non_null(mkdtemp(dir));
    assert_int_equal(lmr_store_open(dir, &store, NULL, NULL), LMR_OK);
    return 0;
}

static int teardown(void **unused)
{
    lmr_store_destroy(store);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd);
}

static void test_parts_complete_and_merge_once(void **unused)
{
    /* Shard 0: an early-ended part, then its last part; a retried final invoke writes nothing. */
    put_part("shardId-000000000000", 0, "", true, "00000000000000000001", "a b", false);
    put_part("shardId-000000000000", 0, "", false, "00000000000000000005", "a c", false);
    put_part("shardId-000000000000", 0, "", false, "00000000000000000005", "a c", true);
    assert_false(complete("", 1));
    /* An interrupted run's part (another run token) does not count and is not merged. */
    put_part("shardId-000000000001", 0, "0badc0ffee", false, "7", "zzz", false);
    assert_false(complete("", 1));
    put_part("shardId-000000000001", 0, "", false, "00000000000000000002", "b d", false);
    assert_true(complete("", 1));
    assert_false(complete("", 2)); /* two lanes each would need two final parts per shard */
    struct lmr_stream_merge_result mr;
    assert_int_equal(lmr_stream_window_merge(store, "out", W, "", &lmr_job_wordcount, NULL, &mr, NULL), LMR_OK);
    assert_false(mr.already);
    assert_int_equal(mr.parts, 3);
    assert_int_equal(mr.other_runs, 1);
    char *text = output();
    assert_non_null(text);
    assert_string_equal(text, "a\t2\nb\t2\nc\t1\nd\t1\n");
    /* The parts are gone; a second merger (the other shard's final, `stream merge`) writes nothing. */
    uint64_t *ws;
    size_t n;
    assert_int_equal(lmr_stream_window_list(store, "out", &ws, &n, NULL), LMR_OK);
    assert_int_equal(n, 0);
    free(ws);
    assert_int_equal(lmr_stream_window_merge(store, "out", W, "", &lmr_job_wordcount, NULL, &mr, NULL), LMR_OK);
    assert_true(mr.already || mr.no_parts);
    /* A late retried final invoke rewrites its part; merging it again leaves the output as it was. */
    put_part("shardId-000000000001", 0, "", false, "00000000000000000002", "b d", false);
    assert_int_equal(lmr_stream_window_merge(store, "out", W, "", &lmr_job_wordcount, NULL, &mr, NULL), LMR_OK);
    assert_true(mr.already);
    char *again = output();
    assert_string_equal(again, text);
    free(again);
    free(text);
    char *job;
    json_t *args;
    assert_int_equal(lmr_stream_window_job(store, "out", W, &job, &args, NULL), LMR_ERR_NOT_FOUND);
}

static void test_corrupt_part_is_refused(void **unused)
{
    put_part("shardId-000000000000", 0, "", false, "1", "x", false);
    char path[256];
    snprintf(path, sizeof path, "%s/out/_lambdamr/windows/window=2023-11-14T22:13:20Z/shardId-000000000000/final-L0.kv",
             dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("not a part", f);
    fclose(f);
    struct lmr_stream_merge_result mr;
    struct lmr_err err = {0};
    assert_int_equal(lmr_stream_window_merge(store, "out", W, "", &lmr_job_wordcount, NULL, &mr, &err), LMR_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "final-L0.kv"));
    assert_null(output());
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_parts_complete_and_merge_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_part_is_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
