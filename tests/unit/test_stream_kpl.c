/*
 * KPL aggregated records (common/stream/kpl.c): the reader against records made by Google's
 * protobuf library (kpl_vectors.h, from gen_kpl_vectors.py), the writer byte for byte against
 * the same library, events of aggregated lines, and the stream function taking or failing an
 * aggregated record as a whole.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "job/registry.h"
#include "kpl_vectors.h"
#include "stream/event.h"
#include "stream/kpl.h"
#include "stream/state.h"
#include "stream_function.h"
#include "test_stream_common.h"

/* lmr_kpl_md5_many (8 lanes at once with AVX2) against OpenSSL's MD5, message by message: lengths around every
   padding boundary, mixed lengths in one group of 8, groups not a multiple of 8, long messages beside empty ones. */
static void test_md5_many(void **unused)
{
    enum { N = 203 };
    static const size_t edges[] = {0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 121, 127, 128, 129, 100000, 65536};
    size_t len[N];
    const uint8_t *msg[N];
    uint8_t *buf = malloc(200000), (*got)[LMR_KPL_DIGEST_BYTES] = malloc(N * LMR_KPL_DIGEST_BYTES);
    assert_true(buf && got);
    srand(16);
    for (size_t i = 0; i < 200000; i++)
        buf[i] = (uint8_t)rand();
    for (size_t i = 0; i < N; i++) {
        len[i] = i < sizeof edges / sizeof edges[0] ? edges[i] : (size_t)rand() % (i % 9 == 0 ? 5000 : 300);
        msg[i] = buf + (size_t)rand() % 1000;
    }
    for (size_t n = 1; n <= N; n = n < 20 ? n + 1 : n == 20 ? 100 : N + (n == N)) {
        memset(got, 0, N * LMR_KPL_DIGEST_BYTES);
        assert_true(lmr_kpl_md5_many(msg, len, n, got));
        for (size_t i = 0; i < n; i++) {
            uint8_t want[LMR_KPL_DIGEST_BYTES];
            unsigned wl = 0;
            assert_int_equal(EVP_Digest(msg[i], len[i], want, &wl, EVP_md5(), NULL), 1);
            if (memcmp(want, got[i], sizeof want))
                fail_msg("MD5 of message %zu (%zu bytes) of %zu differs", i, len[i], n);
        }
        if (n == N)
            break;
    }
    free(buf);
    free(got);
}

static void test_reader_against_protobuf(void **unused)
{
    (void)unused;
    for (size_t v = 0; v < sizeof kpl_vectors / sizeof kpl_vectors[0]; v++) {
        const struct kpl_vector *kv = &kpl_vectors[v];
        struct lmr_kpl_reader rd;
        bool agg = lmr_kpl_open(kv->data, kv->len, &rd);
        if (agg != kv->aggregated)
            fail_msg("%s: aggregated %d, protobuf says %d", kv->name, agg, kv->aggregated);
        if (!agg)
            continue;
        assert_int_equal(rd.n_records, kv->n_records);
        assert_int_equal(rd.n_partition_keys, kv->n_pks);
        struct lmr_kpl_user_record u;
        size_t i = 0;
        while (lmr_kpl_next(&rd, &u)) {
            assert_true(i < kv->n_records);
            const struct kpl_vector_record *want = &kv->records[i++];
            assert_int_equal(u.len, want->len);
            assert_memory_equal(u.data, want->data, want->len ? want->len : 0);
            assert_int_equal(u.partition_key_index, want->pk);
            assert_int_equal(u.has_explicit_hash_key_index, want->has_ehk);
            if (want->has_ehk)
                assert_int_equal(u.explicit_hash_key_index, want->ehk);
            /* Zero-copy: the data lies inside the record. */
            assert_true(u.data >= kv->data && u.data + u.len <= kv->data + kv->len);
        }
        assert_int_equal(i, kv->n_records);
        for (size_t k = 0; k < kv->n_pks; k++) {
            const char *key;
            size_t len;
            assert_true(lmr_kpl_key(&rd, 1, k, &key, &len));
            assert_int_equal(len, strlen(kv->pks[k]));
            assert_memory_equal(key, kv->pks[k], len);
        }
        const char *key;
        size_t len;
        assert_false(lmr_kpl_key(&rd, 1, kv->n_pks, &key, &len));
    }
}

/* The vector of that name (the test fails if there is none). */
static const struct kpl_vector *vector(const char *name)
{
    const struct kpl_vector *kv = NULL;
    for (size_t v = 0; v < sizeof kpl_vectors / sizeof kpl_vectors[0]; v++)
        if (!strcmp(kpl_vectors[v].name, name))
            kv = &kpl_vectors[v];
    assert_non_null(kv);
    return kv;
}

/* lambdamr's writer produces what protobuf serializes for the same message, byte for byte. */
static void test_writer_matches_protobuf(void **unused)
{
    (void)unused;
    const struct kpl_vector *kv = vector("kpl_lines");
    struct lmr_buf b;
    lmr_buf_init(&b, 1 << 20);
    assert_int_equal(lmr_buf_append_str(&b, "prefix"), LMR_OK); /* a record need not start the buffer */
    size_t start, expect = lmr_kpl_fixed_bytes(strlen(kv->pks[0]));
    assert_int_equal(lmr_kpl_begin(&b, kv->pks[0], &start), LMR_OK);
    assert_int_equal(start, 6);
    for (size_t i = 0; i < sizeof kpl_lines_text / sizeof kpl_lines_text[0]; i++) {
        assert_int_equal(lmr_kpl_add(&b, kpl_lines_text[i], strlen(kpl_lines_text[i])), LMR_OK);
        expect += lmr_kpl_user_record_bytes(strlen(kpl_lines_text[i]));
    }
    assert_int_equal(lmr_kpl_finish(&b, start), LMR_OK);
    assert_int_equal(b.len - start, kv->len);
    assert_int_equal(expect, kv->len);
    assert_memory_equal(b.data + start, kv->data, kv->len);
    lmr_buf_clean_up(&b);
}

/* With a table of keys (what `lambdamr put` writes), too: the same bytes as protobuf's. */
static void test_writer_keyed_matches_protobuf(void **unused)
{
    (void)unused;
    const struct kpl_vector *kv = vector("kpl_keyed");
    struct lmr_buf b;
    lmr_buf_init(&b, 1 << 20);
    assert_int_equal(lmr_buf_append_str(&b, "prefix"), LMR_OK);
    size_t start, expect = LMR_KPL_MAGIC_BYTES + LMR_KPL_DIGEST_BYTES;
    assert_int_equal(lmr_kpl_start(&b, &start), LMR_OK);
    assert_int_equal(start, 6);
    for (size_t i = 0; i < kv->n_pks; i++) {
        assert_int_equal(lmr_kpl_add_key(&b, 1, kv->pks[i], strlen(kv->pks[i])), LMR_OK);
        expect += lmr_kpl_key_bytes(strlen(kv->pks[i]));
    }
    for (size_t i = 0; i < kv->n_records; i++) {
        const struct kpl_vector_record *r = &kv->records[i];
        assert_int_equal(lmr_kpl_add_indexed(&b, r->data, r->len, r->pk), LMR_OK);
        expect += lmr_kpl_indexed_record_bytes(r->len, r->pk);
    }
    assert_int_equal(lmr_kpl_finish(&b, start), LMR_OK);
    assert_int_equal(b.len - start, kv->len);
    assert_int_equal(expect, kv->len);
    assert_memory_equal(b.data + start, kv->data, kv->len);
    lmr_buf_clean_up(&b);
}

/* Every prefix and every single-byte change of a valid message (with its MD5 made right again):
   never a read outside the record, and user records only inside it. */
static void test_reader_damaged(void **unused)
{
    (void)unused;
    const struct kpl_vector *kv = &kpl_vectors[0];
    assert_true(kv->aggregated);
    size_t msg_len = kv->len - LMR_KPL_MAGIC_BYTES - LMR_KPL_DIGEST_BYTES;
    uint8_t *msg = malloc(msg_len);
    for (size_t cut = 0; cut <= msg_len; cut++) {
        memcpy(msg, kv->data + LMR_KPL_MAGIC_BYTES, cut);
        struct lmr_kpl_reader rd;
        if (lmr_kpl_open_message(msg, cut, &rd)) {
            struct lmr_kpl_user_record u;
            size_t n = 0;
            while (lmr_kpl_next(&rd, &u)) {
                assert_true(u.data >= msg && u.data + u.len <= msg + cut);
                n++;
            }
            assert_int_equal(n, rd.n_records);
        }
    }
    for (size_t at = 0; at < msg_len; at++) {
        for (int bit = 0; bit < 8; bit++) {
            memcpy(msg, kv->data + LMR_KPL_MAGIC_BYTES, msg_len);
            msg[at] ^= (uint8_t)(1u << bit);
            struct lmr_kpl_reader rd;
            if (lmr_kpl_open_message(msg, msg_len, &rd)) {
                struct lmr_kpl_user_record u;
                size_t n = 0;
                while (lmr_kpl_next(&rd, &u)) {
                    assert_true(u.data >= msg && u.data + u.len <= msg + msg_len);
                    n++;
                }
                assert_int_equal(n, rd.n_records);
            }
        }
    }
    /* The MD5 guards the message: one changed byte makes it a plain record. */
    uint8_t *copy = malloc(kv->len);
    memcpy(copy, kv->data, kv->len);
    copy[LMR_KPL_MAGIC_BYTES + 3] ^= 1;
    struct lmr_kpl_reader rd;
    assert_false(lmr_kpl_open(copy, kv->len, &rd));
    free(copy);
    free(msg);
}

/* Counts are capped: more user records than LMR_KPL_USER_RECORDS_MAX make a plain record. */
static void test_reader_caps(void **unused)
{
    (void)unused;
    struct lmr_buf b;
    lmr_buf_init(&b, 16u << 20);
    size_t start;
    assert_int_equal(lmr_kpl_begin(&b, "k", &start), LMR_OK);
    for (size_t i = 0; i < LMR_KPL_USER_RECORDS_MAX; i++)
        assert_int_equal(lmr_kpl_add(&b, "", 0), LMR_OK);
    assert_int_equal(lmr_kpl_finish(&b, start), LMR_OK);
    struct lmr_kpl_reader rd;
    assert_true(lmr_kpl_open((const uint8_t *)b.data, b.len, &rd));
    assert_int_equal(rd.n_records, LMR_KPL_USER_RECORDS_MAX);
    b.len -= LMR_KPL_DIGEST_BYTES;
    assert_int_equal(lmr_kpl_add(&b, "", 0), LMR_OK);
    assert_int_equal(lmr_kpl_finish(&b, start), LMR_OK);
    assert_false(lmr_kpl_open((const uint8_t *)b.data, b.len, &rd));
    lmr_buf_clean_up(&b);
}

/* Lines for an event: line i is "l<i> ..." (some empty, one near 1 MiB when big). */
struct lines {
    struct lmr_stream_record recs[3000];
    char seq[3000][24];
    char *text[3000];
    size_t n;
};

static void lines_make(struct lines *L, size_t n, bool big)
{
    L->n = n;
    for (size_t i = 0; i < n; i++) {
        size_t len = i % 97 == 13 ? 0 : 5 + i % 40;
        if (big && i == n / 2)
            len = LMR_STREAM_RECORD_MAX_BYTES - 8;
        L->text[i] = malloc(len + 1);
        for (size_t j = 0; j < len; j++)
            L->text[i][j] = (char)('a' + (i + j) % 26);
        if (len > 4)
            snprintf(L->text[i], 5, "l%03zu", i % 1000), L->text[i][4] = ' ';
        L->text[i][len] = '\0';
        snprintf(L->seq[i], sizeof L->seq[i], "%020zu", i + 1);
        L->recs[i] = (struct lmr_stream_record){L->text[i], len, L->seq[i], L->seq[i], 1700000000000ull + i / 100};
    }
}

static void lines_free(struct lines *L)
{
    for (size_t i = 0; i < L->n; i++)
        free(L->text[i]);
}

/* An aggregated event: few Kinesis records, each its first line's sequence number, whose user
   records are the lines in order; the poller's size estimate is an upper bound of the event. */
static void check_aggregated_event(size_t n, bool big, size_t agg_max)
{
    static struct lines L;
    lines_make(&L, n, big);
    struct lmr_stream_event_info info = {.shard_id = "shardId-000000000000",
                                         .event_source_arn = "arn:aws:kinesis:local:000000000000:stream/stdin",
                                         .window_start_ms = 0,
                                         .window_end_ms = 10000,
                                         .aggregate = true,
                                         .agg_records_max = agg_max};
    struct lmr_buf ev;
    lmr_buf_init(&ev, 8u << 20);
    assert_int_equal(lmr_stream_event_build(&ev, &info, L.recs, n, NULL), LMR_OK);
    /* The estimate the poller sizes batches with. */
    size_t overhead = lmr_stream_event_record_overhead(&info), est = 0, starts = 0;
    struct lmr_stream_agg_cursor c = {0};
    for (size_t i = 0; i < n; i++) {
        enum lmr_stream_agg_place place = lmr_stream_agg_place(&c, agg_max, &L.recs[i]);
        starts += place != LMR_STREAM_AGG_JOIN;
        est += lmr_stream_event_agg_bytes(overhead, place, &L.recs[i]);
    }
    struct lmr_buf plain;
    lmr_buf_init(&plain, 8u << 20);
    info.aggregate = false;
    assert_int_equal(lmr_stream_event_build(&plain, &info, L.recs, 0, NULL), LMR_OK);
    assert_true(ev.len <= plain.len + est);
    assert_true(ev.len + n + 64 * starts >= plain.len + est); /* and a close one: a byte a line at most */
    struct lmr_stream_event e;
    assert_int_equal(lmr_stream_event_parse(ev.data, ev.len, &e, NULL), LMR_OK);
    assert_int_equal(e.n_records, starts);
    if (!big && !agg_max)
        assert_int_equal(e.n_records, 1);
    size_t line = 0;
    for (size_t k = 0; k < e.n_records; k++) {
        const struct lmr_stream_parsed_record *r = &e.records[k];
        assert_string_equal(r->sequence_number, L.seq[line]);
        assert_string_equal(r->partition_key, L.seq[line]);
        assert_int_equal(r->arrival_ms, L.recs[line].arrival_ms);
        struct lmr_kpl_reader rd;
        if (!lmr_kpl_open(r->data, r->len, &rd)) { /* the near-1 MiB line goes alone, plain */
            assert_true(big);
            assert_int_equal(r->len, L.recs[line].len);
            assert_memory_equal(r->data, L.text[line], r->len);
            line++;
            continue;
        }
        if (agg_max)
            assert_true(rd.n_records <= agg_max);
        assert_true(r->len + strlen(r->partition_key) <= LMR_STREAM_RECORD_MAX_BYTES);
        struct lmr_kpl_user_record u;
        while (lmr_kpl_next(&rd, &u)) {
            assert_true(line < n);
            assert_int_equal(u.len, L.recs[line].len);
            assert_memory_equal(u.data, L.text[line], u.len);
            line++;
        }
    }
    assert_int_equal(line, n);
    lmr_stream_event_clean_up(&e);
    lmr_buf_clean_up(&ev);
    lmr_buf_clean_up(&plain);
    lines_free(&L);
}

static void test_aggregated_event(void **unused)
{
    (void)unused;
    check_aggregated_event(3000, false, 0);
    check_aggregated_event(3000, false, 7);
    check_aggregated_event(1, false, 0);
    check_aggregated_event(40, true, 0);      /* a near-1 MiB line in the middle: three records */
    check_aggregated_event(40, true, 3);      /* the aggregated records waiting for their digests go before it */
    check_aggregated_event(3000, false, 100); /* groups of 8 digested together, and a short last group */
}

/* Lines 1..n as aggregated records of at most agg_max lines each, through the handler. */
static enum lmr_result run_lines(struct lmr_stream_handler_config *cfg, const char *const *lines, size_t n,
                                 size_t agg_max, struct lmr_stream_response *resp)
{
    struct lmr_stream_event_info info = {.window_end_ms = 10000, .aggregate = true, .agg_records_max = agg_max};
    return test_stream_run_lines(cfg, info, NULL, lines, n, resp);
}

static uint64_t count_of(const char *state_json, const char *word)
{
    struct lmr_stream_state *st = lmr_stream_state_new(8);
    assert_int_equal(lmr_stream_state_merge_text(st, &lmr_job_wordcount, NULL, state_json, NULL, NULL), LMR_OK);
    uint64_t total = 0;
    struct lmr_buf out;
    lmr_buf_init(&out, 1 << 20);
    assert_int_equal(lmr_stream_state_reduce_lines(st, &lmr_job_wordcount, NULL, &out, NULL), LMR_OK);
    size_t wl = strlen(word);
    for (const char *p = out.data; p && *p;) {
        const char *nl = strchr(p, '\n');
        if (!strncmp(p, word, wl) && p[wl] == '\t')
            total = strtoull(p + wl + 1, NULL, 10);
        p = nl ? nl + 1 : p + strlen(p);
    }
    lmr_buf_clean_up(&out);
    lmr_stream_state_destroy(st);
    return total;
}

/* A failing user record fails its whole aggregated record: the state holds the aggregated records
   before it and nothing of its own; "n" counts user records. */
static void test_handler_fails_aggregated_record_whole(void **unused)
{
    (void)unused;
    struct lmr_stream_handler_config cfg;
    assert_int_equal(lmr_stream_handler_config_init(&cfg, &lmr_job_wordcount, NULL, NULL), LMR_OK);
    cfg.fail_match = strdup("POISON");
    const char *lines[] = {"a", "a b", "a", "a", "a x", "b POISON", "a", "a", "a", "a"};
    struct lmr_stream_response r;
    /* Aggregated 4 by 4: [1-4] [5-8] [9-10]; line 6 fails record 5-8, reported by its sequence number. */
    assert_int_equal(run_lines(&cfg, lines, 10, 4, &r), LMR_OK);
    assert_int_equal(r.n_failed, 1);
    assert_string_equal(r.failed_ids[0], "00000000000000000005");
    assert_int_equal(count_of(r.state_json, "a"), 4);
    assert_int_equal(count_of(r.state_json, "b"), 1);
    assert_int_equal(count_of(r.state_json, "x"), 0); /* line 5 went back with its record */
    assert_non_null(strstr(r.state_json, "\"n\":\"4\""));
    assert_non_null(strstr(r.state_json, "\"first\":\"00000000000000000001\""));
    lmr_stream_response_clean_up(&r);
    /* Without the poison line everything is taken. */
    assert_int_equal(run_lines(&cfg, lines, 5, 0, &r), LMR_OK);
    assert_int_equal(r.n_failed, 0);
    assert_int_equal(count_of(r.state_json, "a"), 5);
    assert_non_null(strstr(r.state_json, "\"n\":\"5\""));
    lmr_stream_response_clean_up(&r);
    lmr_stream_handler_config_clean_up(&cfg);
}

/* The state limit with aggregated records: a record that would pass it goes back whole (the window
   ends early); one that alone overflows an empty state is answered "full" too (the poller packs fewer
   lines), unless it holds one line: that line cannot be processed (a function error). */
static void test_handler_state_limit_aggregated(void **unused)
{
    (void)unused;
    struct lmr_stream_handler_config cfg;
    assert_int_equal(lmr_stream_handler_config_init(&cfg, &lmr_job_wordcount, NULL, NULL), LMR_OK);
    cfg.state_max_bytes = 300;
    const char *lines[] = {"k1 k2",   "k3 k4",   "k5 k6",   "k7 k8",   "k9 k10",  "k11 k12", "k13 k14", "k15 k16",
                           "k17 k18", "k19 k20", "k21 k22", "k23 k24", "k25 k26", "k27 k28", "k29 k30", "k31 k32"};
    struct lmr_stream_response r;
    assert_int_equal(run_lines(&cfg, lines, 16, 2, &r), LMR_OK);
    assert_true(r.state_full);
    assert_int_equal(r.n_failed, 1);
    size_t failed = (size_t)strtoull(r.failed_ids[0], NULL, 10);
    assert_int_equal(failed % 2, 1); /* the first line of an aggregated record of two */
    assert_true(failed > 1);
    assert_int_equal(count_of(r.state_json, "k1"), 1);
    char w[8];
    snprintf(w, sizeof w, "k%zu", 2 * (failed - 1)); /* the last word taken */
    assert_int_equal(count_of(r.state_json, w), 1);
    snprintf(w, sizeof w, "k%zu", 2 * failed - 1); /* the first word of the record sent back */
    assert_int_equal(count_of(r.state_json, w), 0);
    lmr_stream_response_clean_up(&r);
    /* All 16 lines in one aggregated record overflow the empty state: "full", nothing taken. */
    assert_int_equal(run_lines(&cfg, lines, 16, 0, &r), LMR_OK);
    assert_true(r.state_full);
    assert_string_equal(r.failed_ids[0], "00000000000000000001");
    assert_null(strstr(r.state_json, "\"n\":"));
    lmr_stream_response_clean_up(&r);
    /* One line too many keys for the limit, alone in its aggregated record: an error. */
    const char *huge[] = {"a1 a2 a3 a4 a5 a6 a7 a8 a9 a10 a11 a12 a13 a14 a15 a16 a17 a18 a19 a20 a21 a22 a23 a24"};
    assert_int_equal(run_lines(&cfg, huge, 1, 0, &r), LMR_ERR_TOO_LARGE);
    lmr_stream_handler_config_clean_up(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_md5_many),
        cmocka_unit_test(test_reader_against_protobuf),
        cmocka_unit_test(test_writer_matches_protobuf),
        cmocka_unit_test(test_writer_keyed_matches_protobuf),
        cmocka_unit_test(test_reader_damaged),
        cmocka_unit_test(test_reader_caps),
        cmocka_unit_test(test_aggregated_event),
        cmocka_unit_test(test_handler_fails_aggregated_record_whole),
        cmocka_unit_test(test_handler_state_limit_aggregated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
