/*
 * The poller's window and checkpoint logic with a scripted source (two shards, fixed arrival
 * times like Kinesis) and the in-process invoker: window assignment, one commit per window,
 * and restarts after a crash between the output commit and the checkpoint, or before the commit.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "job/registry.h"
#include "store/store.h"
#include "stream_function.h"
#include "stream_inproc.h"
#include "stream/poller.h"

#define N_SHARDS 2
#define N_RECORDS 300
#define WINDOW_MS 10000
#define T0 1700000000000ull /* a window boundary */

struct rec {
    char data[32];
    char seq[24];
    uint64_t arrival_ms;
};
static struct rec recs[N_SHARDS][N_RECORDS];

struct fake_reader {
    struct lmr_stream_shard_reader base;
    int shard;
    size_t next;
};
struct fake {
    struct fake_reader readers[N_SHARDS];
};

static enum lmr_result fake_list(struct lmr_stream_source *src, struct lmr_stream_shard_info **out, size_t *n,
                                 struct lmr_err *err)
{
    *out = calloc(N_SHARDS, sizeof **out);
    for (int i = 0; i < N_SHARDS; i++)
        snprintf((*out)[i].id, sizeof(*out)[i].id, "shardId-%012d", i);
    *n = N_SHARDS;
    return LMR_OK;
}

static enum lmr_result fake_open(struct lmr_stream_source *src, const char *shard_id,
                                 const struct lmr_stream_position *pos, struct lmr_stream_shard_reader **out,
                                 struct lmr_err *err)
{
    struct fake *f = src->impl;
    int shard = atoi(shard_id + 8);
    struct fake_reader *r = &f->readers[shard];
    r->base.source = src;
    r->shard = shard;
    r->next = 0;
    if (pos->type == LMR_STREAM_AFTER_SEQUENCE_NUMBER) {
        while (r->next < N_RECORDS && strcmp(recs[shard][r->next].seq, pos->sequence_number))
            r->next++;
        assert_true(r->next < N_RECORDS);
        r->next++;
    }
    *out = &r->base;
    return LMR_OK;
}

static enum lmr_result fake_read(struct lmr_stream_shard_reader *rd, size_t max, uint64_t wait_ms,
                                 struct lmr_stream_read_result *res, struct lmr_err *err)
{
    struct fake_reader *r = (struct fake_reader *)rd;
    size_t take = max < 37 ? max : 37; /* uneven reads */
    while (take-- && r->next < N_RECORDS) {
        struct rec *x = &recs[r->shard][r->next++];
        lmr_stream_read_result_push(res, lmr_stream_item_new(x->data, strlen(x->data), x->seq, x->seq, x->arrival_ms));
    }
    res->shard_ended = r->next == N_RECORDS;
    return LMR_OK;
}

static void fake_close(struct lmr_stream_shard_reader *r) {}
static void fake_destroy(struct lmr_stream_source *src) {}

static const struct lmr_stream_source_vtable fake_vtable = {"fake",    fake_list,  fake_open,
                                                            fake_read, fake_close, fake_destroy};

static char dir[256];
static struct lmr_store *store;
static struct lmr_stream_handler_config cfg;
static struct lmr_invoker *inv;
static struct fake fake;
static struct lmr_stream_source src = {.vtable = &fake_vtable,
                                       .impl = &fake,
                                       .name = "fake",
                                       .arn = "arn:aws:kinesis:us-east-1:000000000000:stream/fake",
                                       .replayable = true};
static char *saved_ckpt; /* checkpoint.json right after the second window */
static int windows_seen;

static void on_window(void *user, uint64_t start, uint64_t records, bool already, const char *key)
{
    if (++windows_seen == 2) {
        struct lmr_buf b;
        lmr_buf_init(&b, 1 << 20);
        assert_int_equal(lmr_store_get(store, "_checkpoint/checkpoint.json", 0, LMR_STORE_TO_END, &b, NULL), LMR_OK);
        free(saved_ckpt);
        saved_ckpt = lmr_buf_detach(&b, NULL);
    }
}

/* The options every poll here shares: the wordcount job through function "f" in windows of WINDOW_MS,
   retries without end, no record age limit, and an exit once the source is drained. */
static struct lmr_stream_poller_options poller_options(struct lmr_stream_source *source, struct lmr_invoker *invoker,
                                                       struct lmr_store *output, size_t batch_size)
{
    return (struct lmr_stream_poller_options){.source = source,
                                              .invoker = invoker,
                                              .function_name = "f",
                                              .job = &lmr_job_wordcount,
                                              .output = output,
                                              .window_ms = WINDOW_MS,
                                              .batch_size = batch_size,
                                              .max_retries = -1,
                                              .max_record_age_ms = -1,
                                              .exit_when_drained = true};
}

static struct lmr_stream_stats run(void)
{
    struct lmr_stream_poller_options o = poller_options(&src, inv, store, 50);
    o.parallelization = 2;
    o.on_window = on_window;
    struct lmr_stream_stats st = {0};
    struct lmr_err err = {0};
    windows_seen = 0;
    enum lmr_result r = lmr_stream_poll(&o, &st, &err);
    if (r)
        fprintf(stderr, "poll: %s\n", err.msg);
    assert_int_equal(r, LMR_OK);
    return st;
}

static char *read_key(const char *key)
{
    struct lmr_buf b;
    lmr_buf_init(&b, 1 << 20);
    enum lmr_result r = lmr_store_get(store, key, 0, LMR_STORE_TO_END, &b, NULL);
    if (r) {
        lmr_buf_clean_up(&b);
        return NULL;
    }
    return lmr_buf_detach(&b, NULL);
}

static const char *win_key(int w)
{
    static char k[3][64];
    char iso[40];
    snprintf(k[w], sizeof k[w], "window=%s/part-00000", lmr_stream_iso8601(T0 + (uint64_t)w * WINDOW_MS, iso, 40));
    return k[w];
}

/* The window's shards, as the stream function would list them: the fake source's shards. */
static enum lmr_result fake_window_shards(void *user, const char *arn, const char *shard_id, uint64_t start,
                                          uint64_t end, char (**ids)[LMR_STREAM_FN_SHARD_ID_MAX], size_t *n,
                                          struct lmr_err *err)
{
    *ids = calloc(N_SHARDS, sizeof **ids);
    for (int s = 0; s < N_SHARDS; s++)
        snprintf((*ids)[s], sizeof **ids, "shardId-%012d", s);
    *n = N_SHARDS;
    return LMR_OK;
}

static int setup(void **unused)
{
    snprintf(dir, sizeof dir, "/tmp/lmr-test-poller-XXXXXX");
    assert_non_null(mkdtemp(dir));
    assert_int_equal(lmr_store_open(dir, &store, NULL, NULL), LMR_OK);
    assert_int_equal(lmr_stream_handler_config_init(&cfg, &lmr_job_wordcount, NULL, NULL), LMR_OK);
    assert_int_equal(lmr_stream_handler_config_set_output(&cfg, dir, NULL), LMR_OK);
    cfg.window_shards = fake_window_shards;
    assert_int_equal(lmr_stream_inproc_invoker_new(&cfg, &inv, NULL), LMR_OK);
    /* Records spread over three windows; word "s<shard>w<window>" and a shared word. */
    for (int s = 0; s < N_SHARDS; s++)
        for (int i = 0; i < N_RECORDS; i++) {
            int w = i * 3 / N_RECORDS;
            struct rec *x = &recs[s][i];
            snprintf(x->data, sizeof x->data, "s%dw%d all", s, w);
            snprintf(x->seq, sizeof x->seq, "%020d", i + 1);
            x->arrival_ms = T0 + (uint64_t)w * WINDOW_MS + (uint64_t)(i % 100) * 90;
        }
    return 0;
}

static int teardown(void **unused)
{
    lmr_invoker_destroy(inv);
    lmr_stream_handler_config_clean_up(&cfg);
    lmr_store_destroy(store);
    free(saved_ckpt);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd);
}

/* A restart that must find everything done: it reads no record and commits no window. */
static void run_expect_no_work(void)
{
    struct lmr_stream_stats st = run();
    assert_int_equal(st.records_read, 0);
    assert_int_equal(st.windows_committed + st.windows_already_committed, 0);
    lmr_stream_stats_clean_up(&st);
}

static void test_windows_and_restarts(void **unused)
{
    struct lmr_stream_stats st = run();
    assert_int_equal(st.records_processed, N_SHARDS * N_RECORDS);
    assert_int_equal(st.windows_committed, 3);
    assert_int_equal(st.windows_merged_by_poller, 0); /* the stream function merged every window itself */
    lmr_stream_stats_clean_up(&st);
    char *orig[3];
    for (int w = 0; w < 3; w++) {
        orig[w] = read_key(win_key(w));
        assert_non_null(orig[w]);
        char expect[128];
        snprintf(expect, sizeof expect, "all\t%d\ns0w%d\t100\ns1w%d\t100\n", 200, w, w);
        assert_string_equal(orig[w], expect);
    }
    assert_non_null(saved_ckpt);

    /* 1. Everything committed: a restart reads nothing again and writes nothing. */
    run_expect_no_work();

    /* 2. Crash after the last output commit, before its checkpoint: pending.json is adopted. */
    assert_int_equal(lmr_store_put(store, "_checkpoint/checkpoint.json", saved_ckpt, strlen(saved_ckpt), 0, NULL),
                     LMR_OK);
    run_expect_no_work();

    /* 3. Crash after pending.json, before the output commit: the window is read again and committed once. */
    assert_int_equal(lmr_store_put(store, "_checkpoint/checkpoint.json", saved_ckpt, strlen(saved_ckpt), 0, NULL),
                     LMR_OK);
    const char *k = win_key(2);
    assert_int_equal(lmr_store_delete(store, &k, 1, NULL), LMR_OK);
    st = run();
    assert_int_equal(st.records_read, N_SHARDS * N_RECORDS / 3);
    assert_int_equal(st.windows_committed, 1);
    assert_int_equal(st.windows_already_committed, 0);
    assert_int_equal(st.windows_merged_by_poller, 0);
    lmr_stream_stats_clean_up(&st);
    char *again = read_key(win_key(2));
    assert_string_equal(again, orig[2]);
    free(again);

    /* 4. No checkpoint at all: everything is read again, no window is written twice. */
    const char *ck[] = {"_checkpoint/checkpoint.json", "_checkpoint/pending.json"};
    assert_int_equal(lmr_store_delete(store, ck, 2, NULL), LMR_OK);
    st = run();
    assert_int_equal(st.records_read, N_SHARDS * N_RECORDS);
    assert_int_equal(st.windows_committed, 0);
    assert_int_equal(st.windows_already_committed, 3);
    lmr_stream_stats_clean_up(&st);
    for (int w = 0; w < 3; w++) {
        char *now = read_key(win_key(w));
        assert_string_equal(now, orig[w]);
        free(now);
        free(orig[w]);
    }
}

/* One shard of records with 256-character partition keys (Kinesis's longest), all in one window. */
#define BIG_RECORDS 12000
static size_t big_next;
static enum lmr_result big_list(struct lmr_stream_source *s, struct lmr_stream_shard_info **out, size_t *n,
                                struct lmr_err *err)
{
    *out = calloc(1, sizeof **out);
    snprintf((*out)[0].id, sizeof(*out)[0].id, "shardId-000000000000");
    *n = 1;
    return LMR_OK;
}
static struct lmr_stream_shard_reader big_reader;
static enum lmr_result big_open(struct lmr_stream_source *s, const char *shard_id,
                                const struct lmr_stream_position *pos, struct lmr_stream_shard_reader **out,
                                struct lmr_err *err)
{
    big_reader.source = s;
    big_next = 0;
    *out = &big_reader;
    return LMR_OK;
}
static enum lmr_result big_read(struct lmr_stream_shard_reader *rd, size_t max, uint64_t wait_ms,
                                struct lmr_stream_read_result *res, struct lmr_err *err)
{
    char pk[257], seq[24], data[64];
    memset(pk, 'p', 256);
    pk[256] = '\0';
    for (; max-- && big_next < BIG_RECORDS; big_next++) {
        snprintf(seq, sizeof seq, "%020zu", big_next + 1);
        snprintf(data, sizeof data, "w%zu common", big_next % 5000);
        lmr_stream_read_result_push(res, lmr_stream_item_new(data, strlen(data), seq, pk, T0 + 1000));
    }
    res->shard_ended = big_next == BIG_RECORDS;
    return LMR_OK;
}
static const struct lmr_stream_source_vtable big_vtable = {"fake",   big_list,   big_open,
                                                           big_read, fake_close, fake_destroy};

static enum lmr_result one_shard(void *user, const char *arn, const char *shard_id, uint64_t start, uint64_t end,
                                 char (**ids)[LMR_STREAM_FN_SHARD_ID_MAX], size_t *n, struct lmr_err *err)
{
    *ids = calloc(1, sizeof **ids);
    snprintf((*ids)[0], sizeof **ids, "shardId-000000000000");
    *n = 1;
    return LMR_OK;
}

/* An output directory of its own, a handler writing there and an in-process invoker for it. */
struct fixture {
    char dir[64];
    struct lmr_store *out;
    struct lmr_stream_handler_config c;
    struct lmr_invoker *iv;
};

static void fixture_open(struct fixture *f, const char *dir_template, lmr_stream_window_shards_fn window_shards,
                         unsigned forget_every)
{
    snprintf(f->dir, sizeof f->dir, "%s", dir_template);
    assert_non_null(mkdtemp(f->dir));
    assert_int_equal(lmr_store_open(f->dir, &f->out, NULL, NULL), LMR_OK);
    assert_int_equal(lmr_stream_handler_config_init(&f->c, &lmr_job_wordcount, NULL, NULL), LMR_OK);
    assert_int_equal(lmr_stream_handler_config_set_output(&f->c, f->dir, NULL), LMR_OK);
    f->c.window_shards = window_shards;
    f->c.forget_every = forget_every;
    assert_int_equal(lmr_stream_inproc_invoker_new(&f->c, &f->iv, NULL), LMR_OK);
}

static void fixture_close(struct fixture *f)
{
    lmr_invoker_destroy(f->iv);
    lmr_stream_handler_config_clean_up(&f->c);
    lmr_store_destroy(f->out);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
}

/* --batch-size 10000 of records whose events would pass 6 MB: the batch is cut to fit (as Lambda's event
   source mapping does); nothing is refused, nothing retried, every record counted once. */
static void test_batches_fit_the_payload(void **unused)
{
    struct fixture f;
    fixture_open(&f, "/tmp/lmr-test-bigbatch-XXXXXX", one_shard, 0);
    struct lmr_stream_source bsrc = {.vtable = &big_vtable,
                                     .name = "big",
                                     .arn = "arn:aws:kinesis:us-east-1:000000000000:stream/big",
                                     .replayable = true};
    struct lmr_stream_poller_options o = poller_options(&bsrc, f.iv, f.out, 10000);
    o.max_retries = 0;
    struct lmr_stream_stats st = {0};
    struct lmr_err err = {0};
    assert_int_equal(lmr_stream_poll(&o, &st, &err), LMR_OK);
    assert_int_equal(st.records_failed, 0);
    assert_int_equal(st.invoke_failures, 0);
    assert_int_equal(st.records_processed, BIG_RECORDS);
    assert_true(st.invocations >= 3); /* 12,000 records of ~700 event bytes: at least two batches and a final */
    lmr_stream_stats_clean_up(&st);
    char iso[40], key[128];
    snprintf(key, sizeof key, "window=%s/part-00000", lmr_stream_iso8601(T0, iso, sizeof iso));
    struct lmr_buf b;
    lmr_buf_init(&b, 1 << 20);
    assert_int_equal(lmr_store_get(f.out, key, 0, LMR_STORE_TO_END, &b, NULL), LMR_OK);
    assert_int_equal(strncmp(b.data, "common\t12000\n", 13), 0);
    lmr_buf_clean_up(&b);
    fixture_close(&f);
}

/* An invoker in front of another that counts the Kinesis records (JSON records) of every event. */
struct counting {
    struct lmr_invoker base;
    struct lmr_invoker *inner;
    size_t json_records;
};
static enum lmr_result counting_invoke(struct lmr_invoker *inv, const char *function, const void *payload, size_t len,
                                       enum lmr_invoke_type type, unsigned flags, struct lmr_invoke_result *res,
                                       struct lmr_err *err)
{
    struct counting *c = inv->impl;
    for (const char *p = payload; (p = memmem(p, len - (size_t)(p - (const char *)payload), "\"sequenceNumber\"", 16));
         p += 16)
        c->json_records++;
    return lmr_invoke(c->inner, function, payload, len, type, flags, res, err);
}
static void counting_destroy(struct lmr_invoker *inv)
{
    (void)inv;
}
static const struct lmr_invoker_vtable counting_vtable = {
    .name = "counting", .invoke = counting_invoke, .destroy = counting_destroy};

/* States held by reference and lost: every Nth invocation of the function forgets the states it keeps (as
   a cold or another environment would); the poller rebuilds them from its last full copy (a snapshot every
   10 records here) and the records since, in the middle of a window and at its final invoke. The windows are
   exactly those of a run that loses nothing. With aggregate, the source is a local one's kind (arrival is
   read time): its batches travel as KPL aggregated records, the rebuilds too. */
static void lost_run(unsigned forget_every, bool aggregate)
{
    struct fixture f;
    fixture_open(&f, "/tmp/lmr-test-lost-XXXXXX", fake_window_shards, forget_every);
    setenv("LMR_STREAM_KEPT_RECORDS_MAX", "10", 1);
    src.arrival_is_read_time = aggregate;
    struct counting counter = {{&counting_vtable, &counter}, f.iv, 0};
    struct lmr_stream_poller_options o = poller_options(&src, &counter.base, f.out, 7);
    struct lmr_stream_stats st = {0};
    struct lmr_err err = {0};
    enum lmr_result r = lmr_stream_poll(&o, &st, &err);
    unsetenv("LMR_STREAM_KEPT_RECORDS_MAX");
    src.arrival_is_read_time = false;
    if (r)
        fprintf(stderr, "poll: %s\n", err.msg);
    assert_int_equal(r, LMR_OK);
    assert_int_equal(st.records_processed, N_SHARDS * N_RECORDS);
    assert_int_equal(st.records_failed, 0);
    assert_int_equal(st.windows_committed, 3);
    /* Far more invocations than the 2 x 300 / 7 batches and 6 finals: the rebuilds. */
    assert_true(st.invocations > 2 * (N_RECORDS / 7 + 1) + 6);
    /* Aggregated: one Kinesis record per batch of up to 7 (rebuilds included); else one per record. */
    if (aggregate)
        assert_true(counter.json_records <= st.invocations);
    else
        assert_true(counter.json_records >= st.records_processed);
    lmr_stream_stats_clean_up(&st);
    for (int w = 0; w < 3; w++) {
        struct lmr_buf b;
        lmr_buf_init(&b, 1 << 20);
        assert_int_equal(lmr_store_get(f.out, win_key(w), 0, LMR_STORE_TO_END, &b, NULL), LMR_OK);
        char expect[128];
        snprintf(expect, sizeof expect, "all\t%d\ns0w%d\t100\ns1w%d\t100\n", 200, w, w);
        assert_string_equal(b.data, expect);
        lmr_buf_clean_up(&b);
    }
    fixture_close(&f);
}

static void test_lost_states_are_rebuilt(void **unused)
{
    lost_run(5, false);
    /* Every other invocation: lanes lose their state twice in a row and go on with whole states. */
    lost_run(2, false);
    /* The same with batches of aggregated records. */
    lost_run(5, true);
    lost_run(2, true);
}

static void test_option_ranges(void **unused)
{
    struct lmr_stream_poller_options o = poller_options(&src, inv, store, 0);
    o.window_ms = 5000;
    o.exit_when_drained = false;
    struct lmr_err err;
    assert_int_equal(lmr_stream_poller_check(&o, &err), LMR_OK);
    o.batch_size = 10001;
    assert_int_equal(lmr_stream_poller_check(&o, &err), LMR_ERR_INVALID);
    assert_non_null(strstr(err.msg, "--batch-size"));
    o.batch_size = 10000;
    o.parallelization = 11;
    assert_int_equal(lmr_stream_poller_check(&o, &err), LMR_ERR_INVALID);
    o.parallelization = 10;
    o.max_record_age_ms = 59000;
    assert_int_equal(lmr_stream_poller_check(&o, &err), LMR_ERR_INVALID);
    o.max_record_age_ms = 60000;
    o.batch_window_ms = 301000;
    assert_int_equal(lmr_stream_poller_check(&o, &err), LMR_ERR_INVALID);
    o.batch_window_ms = 300000;
    assert_int_equal(lmr_stream_poller_check(&o, &err), LMR_OK);
    struct lmr_stream_position pos;
    assert_int_equal(lmr_stream_position_parse("TRIM_HORIZON", &pos, NULL), LMR_OK);
    assert_int_equal(pos.type, LMR_STREAM_TRIM_HORIZON);
    assert_int_equal(lmr_stream_position_parse("latest", &pos, NULL), LMR_OK);
    assert_int_equal(pos.type, LMR_STREAM_LATEST);
    assert_int_equal(lmr_stream_position_parse("AT_TIMESTAMP=2023-11-14T22:13:20Z", &pos, NULL), LMR_OK);
    assert_int_equal(pos.type, LMR_STREAM_AT_TIMESTAMP);
    assert_int_equal(pos.timestamp_ms, T0);
    assert_int_equal(lmr_stream_position_parse("at-timestamp=yesterday", &pos, &err), LMR_ERR_INVALID);
    assert_int_equal(lmr_stream_position_parse("oldest", &pos, &err), LMR_ERR_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_windows_and_restarts),
        cmocka_unit_test(test_option_ranges),
        cmocka_unit_test(test_batches_fit_the_payload),
        cmocka_unit_test(test_lost_states_are_rebuilt),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
