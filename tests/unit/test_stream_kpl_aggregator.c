/*
 * The producer's aggregation (common/stream/kpl_aggregator.c): user records go to the aggregated
 * record of the shard their key's MD5 falls in, which is put with its first record's key; records
 * are packed up to the size limit; one user record goes plain, so does one too large to be
 * aggregated (after the record open for its shard); the buffered cap emits the fullest shard's;
 * every key is written once; a listing that does not cover the hash keys is refused.
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

#include "stream/kpl.h"
#include "stream/kpl_aggregator.h"

#define HALF "170141183460469231731687303715884105728" /* 2^127 */

static const struct lmr_kinesis_shard two_shards[] = {
    {.id = "shardId-000000000000",
     .starting_hash_key = "0",
     .ending_hash_key = "170141183460469231731687303715884105727"},
    {.id = "shardId-000000000001",
     .starting_hash_key = HALF,
     .ending_hash_key = "340282366920938463463374607431768211455"},
    {.id = "shardId-closed", .ending_seq = "49", .starting_hash_key = "0", .ending_hash_key = "1"},
};

/* What was emitted. */
struct got {
    struct lmr_kpl_out_record recs[64];
    char keys[64][LMR_KINESIS_PARTITION_KEY_MAX + 1];
    size_t n;
};

static enum lmr_result collect(void *ctx, struct lmr_kpl_out_record *rec, struct lmr_err *err)
{
    (void)err;
    struct got *g = ctx;
    assert_true(g->n < 64);
    snprintf(g->keys[g->n], sizeof g->keys[g->n], "%s", rec->partition_key);
    g->recs[g->n++] = *rec;
    return LMR_OK;
}

static void got_free(struct got *g)
{
    for (size_t i = 0; i < g->n; i++)
        free(g->recs[i].data);
    g->n = 0;
}

/* The shard (0 or 1) key maps to: the MD5's top bit. */
static size_t shard_of(const char *key)
{
    unsigned char d[16];
    unsigned got = 0;
    assert_int_equal(EVP_Digest(key, strlen(key), d, &got, EVP_md5(), NULL), 1);
    return d[0] >> 7;
}

/* n keys PREFIX<i> that map to shard. */
static void keys_on_shard(const char *prefix, size_t shard, char (*keys)[8], size_t n)
{
    for (int i = 0, k = 0; (size_t)k < n; i++) {
        snprintf(keys[k], sizeof keys[k], "%s%d", prefix, i);
        if (shard_of(keys[k]) == shard)
            k++;
    }
}

/* Check record i is aggregated: its user records' keys all map to its shard; returns how many. */
static size_t check_aggregated(const struct got *g, size_t i)
{
    struct lmr_kpl_reader rd;
    assert_true(lmr_kpl_open((const uint8_t *)g->recs[i].data, g->recs[i].len, &rd));
    struct lmr_kpl_user_record u;
    size_t n = 0;
    while (lmr_kpl_next(&rd, &u)) {
        const char *key;
        size_t len;
        assert_true(lmr_kpl_key(&rd, 1, u.partition_key_index, &key, &len));
        char k[LMR_KINESIS_PARTITION_KEY_MAX + 1];
        snprintf(k, sizeof k, "%.*s", (int)len, key);
        assert_int_equal(shard_of(k), g->recs[i].shard);
        if (!n) /* the record's key is its first user record's */
            assert_string_equal(k, g->keys[i]);
        n++;
    }
    assert_int_equal(n, g->recs[i].user_records);
    return n;
}

static void test_routing_and_keys(void **unused)
{
    (void)unused;
    struct lmr_kpl_aggregator *a;
    assert_int_equal(lmr_kpl_aggregator_new(NULL, two_shards, 3, &a, NULL), LMR_OK);
    struct got g = {0};
    char key[16];
    for (int i = 0; i < 200; i++) {
        snprintf(key, sizeof key, "k%d", i % 20); /* 20 keys, each 10 times */
        assert_int_equal(lmr_kpl_aggregator_add(a, "some line", 9, key, collect, &g, NULL), LMR_OK);
    }
    assert_int_equal(g.n, 0); /* all held: far below 1 MiB */
    assert_int_equal(lmr_kpl_aggregator_flush(a, collect, &g, NULL), LMR_OK);
    assert_int_equal(g.n, 2);
    assert_int_equal(check_aggregated(&g, 0) + check_aggregated(&g, 1), 200);
    for (size_t i = 0; i < 2; i++) {
        struct lmr_kpl_reader rd;
        assert_true(lmr_kpl_open((const uint8_t *)g.recs[i].data, g.recs[i].len, &rd));
        assert_int_equal(rd.n_explicit_hash_keys, 0);
        assert_true(rd.n_partition_keys < 20); /* each key once, the shards share them out */
        assert_string_equal(lmr_kpl_aggregator_shard_id(a, g.recs[i].shard), two_shards[g.recs[i].shard].id);
    }
    assert_int_equal(lmr_kpl_aggregator_held_bytes(a), 0);
    got_free(&g);
    lmr_kpl_aggregator_destroy(a);
}

static void test_limits(void **unused)
{
    (void)unused;
    struct lmr_kpl_aggregator_options o = {.record_max_bytes = 1000, .buffered_max_bytes = 1500};
    struct lmr_kpl_aggregator *a;
    assert_int_equal(lmr_kpl_aggregator_new(&o, two_shards, 2, &a, NULL), LMR_OK);
    struct got g = {0};
    char line[101];
    memset(line, 'x', 100);
    line[100] = '\0';
    /* One shard's keys only ("a" keys chosen to map to shard 0): packed up to 1000 bytes. */
    char keys[40][8];
    keys_on_shard("a", 0, keys, 40);
    for (size_t i = 0; i < 20; i++)
        assert_int_equal(lmr_kpl_aggregator_add(a, line, 100, keys[i], collect, &g, NULL), LMR_OK);
    assert_true(g.n >= 2);
    for (size_t i = 0; i < g.n; i++) {
        assert_true(g.recs[i].len + strlen(g.keys[i]) <= 1000);
        assert_true(g.recs[i].len + strlen(g.keys[i]) > 1000 - 130); /* no room was left for one more */
        check_aggregated(&g, i);
    }
    got_free(&g);
    /* Too large to aggregate: the open record first, then the line alone, plain. */
    char big[1200];
    memset(big, 'y', sizeof big);
    assert_int_equal(lmr_kpl_aggregator_add(a, big, sizeof big, keys[30], collect, &g, NULL), LMR_OK);
    assert_int_equal(g.n, 2);
    check_aggregated(&g, 0);
    assert_int_equal(g.recs[1].user_records, 1);
    assert_int_equal(g.recs[1].len, sizeof big);
    assert_memory_equal(g.recs[1].data, big, sizeof big);
    got_free(&g);
    /* One user record: plain. */
    assert_int_equal(lmr_kpl_aggregator_add(a, "solo", 4, keys[31], collect, &g, NULL), LMR_OK);
    assert_int_equal(lmr_kpl_aggregator_flush(a, collect, &g, NULL), LMR_OK);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.recs[0].len, 4);
    assert_memory_equal(g.recs[0].data, "solo", 4);
    assert_string_equal(g.keys[0], keys[31]);
    got_free(&g);
    /* The buffered cap: the fullest shard's record goes once 1500 bytes are held over both. */
    for (size_t i = 0; i < 8; i++)
        assert_int_equal(lmr_kpl_aggregator_add(a, line, 100, keys[i], collect, &g, NULL), LMR_OK);
    assert_int_equal(g.n, 0);
    char other[8][8];
    keys_on_shard("b", 1, other, 8);
    for (size_t i = 0; i < 8 && !g.n; i++)
        assert_int_equal(lmr_kpl_aggregator_add(a, line, 100, other[i], collect, &g, NULL), LMR_OK);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.recs[0].shard, 0); /* the fuller one */
    assert_true(lmr_kpl_aggregator_held_bytes(a) <= 1500);
    got_free(&g);
    /* Bad input: a key too long, a record past Kinesis's limit. */
    char long_key[300];
    memset(long_key, 'k', 299);
    long_key[299] = '\0';
    struct lmr_err err;
    assert_int_equal(lmr_kpl_aggregator_add(a, "x", 1, long_key, collect, &g, &err), LMR_ERR_INVALID);
    assert_int_equal(lmr_kpl_aggregator_add(a, "x", 1, "", collect, &g, &err), LMR_ERR_INVALID);
    lmr_kpl_aggregator_destroy(a);
}

static void test_bad_listings(void **unused)
{
    (void)unused;
    struct lmr_kpl_aggregator *a = NULL;
    struct lmr_err err;
    assert_int_equal(lmr_kpl_aggregator_new(NULL, two_shards, 1, &a, &err), LMR_ERR_INVALID); /* half the keys */
    assert_non_null(strstr(err.msg, "do not cover"));
    assert_int_equal(lmr_kpl_aggregator_new(NULL, two_shards + 2, 1, &a, &err), LMR_ERR_INVALID); /* only closed */
    struct lmr_kinesis_shard bad = {.id = "s", .starting_hash_key = "0", .ending_hash_key = "1e9"};
    assert_int_equal(lmr_kpl_aggregator_new(NULL, &bad, 1, &a, &err), LMR_ERR_INVALID);
    assert_non_null(strstr(err.msg, "HashKeyRange"));
    struct lmr_kpl_aggregator_options o = {.record_max_bytes = 10};
    assert_int_equal(lmr_kpl_aggregator_new(&o, two_shards, 2, &a, &err), LMR_ERR_INVALID);
    assert_null(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routing_and_keys),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_bad_listings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
