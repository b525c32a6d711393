#include "stream/kpl_aggregator.h"

#include <openssl/evp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "stream/event.h"
#include "stream/kpl.h"
#include "util/buf.h"

typedef unsigned __int128 u128;

#define KEY_SLOTS_MIN 64

/* The aggregated record open for one shard: its key table and user records, written as they come
   (the key table goes before the records when the record is put together). */
struct shard_agg {
    char id[LMR_KINESIS_SHARD_ID_MAX];
    u128 lo, hi;                      /* HashKeyRange */
    struct lmr_buf keys, recs;        /* partition_key_table entries; records entries */
    size_t *key_off;                  /* where key i's bytes start in keys */
    uint32_t *key_len;                /* and its length */
    size_t n_keys, keys_cap;          /* entries of key_off and key_len */
    uint32_t *slots;                  /* open addressing over the keys: 0 empty, else index + 1 */
    size_t n_slots;                   /* a power of two, or 0 */
    size_t n_recs;                    /* user records */
    size_t first_data_off, first_len; /* the first user record's data inside recs */
};

struct lmr_kpl_aggregator {
    size_t record_max_bytes, buffered_max_bytes;
    size_t buffered; /* keys.len + recs.len over all shards */
    struct shard_agg *s;
    size_t n;
    EVP_MD *md5;
};

static bool parse_u128(const char *s, u128 *out)
{
    u128 v = 0;
    if (!*s)
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        u128 d = (u128)(*s - '0');
        if (v > (~(u128)0 - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

static int by_lo(const void *x, const void *y)
{
    const struct shard_agg *a = x, *b = y;
    return a->lo < b->lo ? -1 : a->lo > b->lo;
}

enum lmr_result lmr_kpl_aggregator_new(const struct lmr_kpl_aggregator_options *opts,
                                       const struct lmr_kinesis_shard *shards, size_t n,
                                       struct lmr_kpl_aggregator **out, struct lmr_err *err)
{
    *out = NULL;
    size_t max = opts && opts->record_max_bytes ? opts->record_max_bytes : LMR_STREAM_RECORD_MAX_BYTES;
    if (max < 64 || max > LMR_STREAM_RECORD_MAX_BYTES)
        return lmr_fail(err, LMR_ERR_INVALID, "an aggregated record of at most %zu bytes is not possible (64 to %u)",
                        max, LMR_STREAM_RECORD_MAX_BYTES);
    struct lmr_kpl_aggregator *a = calloc(1, sizeof *a);
    if (a)
        a->s = calloc(n ? n : 1, sizeof *a->s);
    if (!a || !a->s) {
        if (a)
            free(a);
        return lmr_fail(err, LMR_ERR_NOMEM, "out of memory for the aggregation of %zu shards", n);
    }
    a->record_max_bytes = max;
    a->buffered_max_bytes = opts && opts->buffered_max_bytes ? opts->buffered_max_bytes : LMR_KINESIS_PUT_BYTES_MAX;
    for (size_t i = 0; i < n; i++) {
        if (shards[i].ending_seq[0])
            continue; /* closed: takes no new records */
        struct shard_agg *s = &a->s[a->n++];
        snprintf(s->id, sizeof s->id, "%s", shards[i].id);
        if (!parse_u128(shards[i].starting_hash_key, &s->lo) || !parse_u128(shards[i].ending_hash_key, &s->hi) ||
            s->lo > s->hi) {
            lmr_kpl_aggregator_destroy(a);
            return lmr_fail(err, LMR_ERR_INVALID, "shard %s has no valid HashKeyRange ('%s' .. '%s')", shards[i].id,
                            shards[i].starting_hash_key, shards[i].ending_hash_key);
        }
        lmr_buf_init(&s->keys, LMR_STREAM_RECORD_MAX_BYTES);
        lmr_buf_init(&s->recs, LMR_STREAM_RECORD_MAX_BYTES);
    }
    qsort(a->s, a->n, sizeof *a->s, by_lo);
    /* The open shards cover every hash key exactly once (Kinesis's invariant; a listing taken
       in the middle of a reshard may not). */
    bool covered = a->n && a->s[0].lo == 0 && a->s[a->n - 1].hi == ~(u128)0;
    for (size_t i = 1; covered && i < a->n; i++)
        covered = a->s[i].lo == a->s[i - 1].hi + 1;
    if (!covered) {
        lmr_kpl_aggregator_destroy(a);
        return lmr_fail(
            err, LMR_ERR_INVALID,
            "the %zu open shards listed do not cover the hash key space once; retry when resharding is done", n);
    }
    a->md5 = EVP_MD_fetch(NULL, "MD5", NULL);
    *out = a;
    return LMR_OK;
}

void lmr_kpl_aggregator_destroy(struct lmr_kpl_aggregator *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->n; i++) {
        struct shard_agg *s = &a->s[i];
        lmr_buf_clean_up(&s->keys);
        lmr_buf_clean_up(&s->recs);
        free(s->key_off);
        free(s->key_len);
        free(s->slots);
    }
    EVP_MD_free(a->md5);
    free(a->s);
    free(a);
}

size_t lmr_kpl_aggregator_held_bytes(const struct lmr_kpl_aggregator *a)
{
    return a ? a->buffered : 0;
}

const char *lmr_kpl_aggregator_shard_id(const struct lmr_kpl_aggregator *a, size_t shard)
{
    return shard < a->n ? a->s[shard].id : "";
}

/* The shard of a partition key: MD5 of the key, big-endian, as Kinesis maps it. */
static enum lmr_result shard_of(const struct lmr_kpl_aggregator *a, const char *key, size_t len, size_t *out,
                                struct lmr_err *err)
{
    if (a->n == 1) {
        *out = 0;
        return LMR_OK;
    }
    uint8_t d[16];
    unsigned got = 0;
    if (EVP_Digest(key, len, d, &got, a->md5 ? a->md5 : EVP_md5(), NULL) != 1 || got != sizeof d)
        return lmr_fail(err, LMR_ERR_INTERNAL, "MD5 of a partition key failed (OpenSSL)");
    u128 h = 0;
    for (size_t i = 0; i < sizeof d; i++)
        h = h << 8 | d[i];
    size_t lo = 0, hi = a->n - 1; /* the last shard whose range starts at or below h */
    while (lo < hi) {
        size_t mid = lo + (hi - lo + 1) / 2;
        if (a->s[mid].lo <= h)
            lo = mid;
        else
            hi = mid - 1;
    }
    *out = lo;
    return LMR_OK;
}

/* Index of key in s's table, or -1 (*slot: where it would go). */
static long find_key(const struct shard_agg *s, const char *key, size_t len, uint64_t h, size_t *slot)
{
    if (!s->n_slots)
        return -1;
    for (size_t i = (size_t)h & (s->n_slots - 1);; i = (i + 1) & (s->n_slots - 1)) {
        uint32_t v = s->slots[i];
        if (!v) {
            *slot = i;
            return -1;
        }
        if (s->key_len[v - 1] == len && !memcmp(s->keys.data + s->key_off[v - 1], key, len))
            return (long)(v - 1);
    }
}

/* Room for one more key: the arrays, and a slot table at most half full. */
static enum lmr_result grow_keys(struct shard_agg *s)
{
    if (s->n_keys == s->keys_cap) {
        size_t cap = s->keys_cap ? 2 * s->keys_cap : KEY_SLOTS_MIN / 2;
        size_t *off = realloc(s->key_off, cap * sizeof *off);
        if (off)
            s->key_off = off;
        uint32_t *len = off ? realloc(s->key_len, cap * sizeof *len) : NULL;
        if (!len)
            return LMR_ERR_NOMEM;
        s->key_len = len;
        s->keys_cap = cap;
    }
    if (2 * (s->n_keys + 1) <= s->n_slots)
        return LMR_OK;
    size_t n_slots = s->n_slots ? 2 * s->n_slots : KEY_SLOTS_MIN;
    uint32_t *slots = calloc(n_slots, sizeof *slots);
    if (!slots)
        return LMR_ERR_NOMEM;
    for (size_t k = 0; k < s->n_keys; k++) {
        size_t i = (size_t)XXH3_64bits(s->keys.data + s->key_off[k], s->key_len[k]) & (n_slots - 1);
        while (slots[i])
            i = (i + 1) & (n_slots - 1);
        slots[i] = (uint32_t)(k + 1);
    }
    free(s->slots);
    s->slots = slots;
    s->n_slots = n_slots;
    return LMR_OK;
}

/* Bytes of s's aggregated record if it were put now: data plus its partition key (key 0). */
static size_t agg_bytes(const struct shard_agg *s)
{
    return LMR_KPL_MAGIC_BYTES + s->keys.len + s->recs.len + LMR_KPL_DIGEST_BYTES + (s->n_keys ? s->key_len[0] : 0);
}

/* Put s's aggregated record together, hand it to emit, and empty s. */
static enum lmr_result emit_shard(struct lmr_kpl_aggregator *a, size_t shard, lmr_kpl_emit_fn emit, void *ctx,
                                  struct lmr_err *err)
{
    struct shard_agg *s = &a->s[shard];
    if (!s->n_recs)
        return LMR_OK;
    char key[LMR_KINESIS_PARTITION_KEY_MAX + 1];
    memcpy(key, s->keys.data + s->key_off[0], s->key_len[0]);
    key[s->key_len[0]] = '\0';
    struct lmr_kpl_out_record rec = {.partition_key = key, .shard = shard, .user_records = s->n_recs};
    enum lmr_result r = LMR_OK;
    struct lmr_buf b;
    lmr_buf_init(&b, LMR_STREAM_RECORD_MAX_BYTES);
    if (s->n_recs == 1) { /* one user record: put it as it is, as the KPL does */
        r = lmr_buf_append(&b, s->recs.data + s->first_data_off, s->first_len);
    } else {
        size_t start;
        r = lmr_buf_reserve(&b, agg_bytes(s));
        if (!r)
            r = lmr_kpl_start(&b, &start);
        if (!r)
            r = lmr_buf_append(&b, s->keys.data, s->keys.len);
        if (!r)
            r = lmr_buf_append(&b, s->recs.data, s->recs.len);
        if (!r)
            r = lmr_kpl_finish(&b, start);
    }
    if (r) {
        lmr_buf_clean_up(&b);
        return lmr_fail(err, r, "could not put together the aggregated record of %zu user records for shard %s",
                        s->n_recs, s->id);
    }
    a->buffered -= s->keys.len + s->recs.len;
    lmr_buf_reset(&s->keys);
    lmr_buf_reset(&s->recs);
    if (s->n_slots)
        memset(s->slots, 0, s->n_slots * sizeof *s->slots);
    s->n_keys = s->n_recs = 0;
    rec.data = lmr_buf_detach(&b, &rec.len);
    return emit(ctx, &rec, err);
}

enum lmr_result lmr_kpl_aggregator_add(struct lmr_kpl_aggregator *a, const void *data, size_t len,
                                       const char *partition_key, lmr_kpl_emit_fn emit, void *ctx, struct lmr_err *err)
{
    size_t klen = strlen(partition_key), shard = 0;
    if (!klen || klen > LMR_KINESIS_PARTITION_KEY_MAX)
        return lmr_fail(err, LMR_ERR_INVALID, "a partition key must have 1 to %u bytes, not %zu",
                        LMR_KINESIS_PARTITION_KEY_MAX, klen);
    if (len > LMR_STREAM_RECORD_MAX_BYTES - klen)
        return lmr_fail(err, LMR_ERR_TOO_LARGE, "a record of %zu bytes and its key pass Kinesis's %u-byte limit", len,
                        LMR_STREAM_RECORD_MAX_BYTES);
    enum lmr_result r = shard_of(a, partition_key, klen, &shard, err);
    if (r)
        return r;
    struct shard_agg *s = &a->s[shard];
    uint64_t h = XXH3_64bits(partition_key, klen);
    size_t slot = 0;
    long idx = find_key(s, partition_key, klen, h, &slot);
    size_t kb = idx < 0 ? lmr_kpl_key_bytes(klen) : 0;
    size_t rb = lmr_kpl_indexed_record_bytes(len, idx < 0 ? s->n_keys : (uint64_t)idx);
    if (s->n_recs && agg_bytes(s) + kb + rb > a->record_max_bytes) {
        if ((r = emit_shard(a, shard, emit, ctx, err)))
            return r;
        idx = find_key(s, partition_key, klen, h, &slot); /* -1: the table is empty */
        kb = lmr_kpl_key_bytes(klen);
        rb = lmr_kpl_indexed_record_bytes(len, 0);
    }
    if (!s->n_recs && LMR_KPL_MAGIC_BYTES + kb + rb + LMR_KPL_DIGEST_BYTES + klen > a->record_max_bytes) {
        /* Too large to be aggregated: alone, as a plain record (the shard's open record is empty). */
        struct lmr_kpl_out_record rec = {.partition_key = partition_key, .shard = shard, .user_records = 1};
        rec.data = malloc(len + 1);
        if (!rec.data)
            return lmr_fail(err, LMR_ERR_NOMEM, "out of memory for a record of %zu bytes", len);
        memcpy(rec.data, data, len);
        rec.len = len;
        return emit(ctx, &rec, err);
    }
    if (idx < 0) {
        if ((r = grow_keys(s)))
            return lmr_fail(err, r, "out of memory for the partition keys of shard %s", s->id);
        find_key(s, partition_key, klen, h, &slot); /* the slot table may have grown */
        if ((r = lmr_kpl_add_key(&s->keys, 1, partition_key, klen)))
            return lmr_fail(err, r, "the partition key table of shard %s is full", s->id);
        s->key_off[s->n_keys] = s->keys.len - klen;
        s->key_len[s->n_keys] = (uint32_t)klen;
        s->slots[slot] = (uint32_t)(s->n_keys + 1);
        idx = (long)s->n_keys++;
    }
    if (!s->n_recs) {
        s->first_data_off = s->recs.len + rb - len; /* a user record ends with its data */
        s->first_len = len;
    }
    if ((r = lmr_kpl_add_indexed(&s->recs, data, len, (uint64_t)idx)))
        return lmr_fail(err, r, "the aggregated record of shard %s is full", s->id);
    s->n_recs++;
    a->buffered += kb + rb;
    while (a->buffered > a->buffered_max_bytes) { /* emit the fullest */
        size_t most = 0;
        for (size_t i = 1; i < a->n; i++)
            if (a->s[i].recs.len + a->s[i].keys.len > a->s[most].recs.len + a->s[most].keys.len)
                most = i;
        if ((r = emit_shard(a, most, emit, ctx, err)))
            return r;
    }
    return LMR_OK;
}

enum lmr_result lmr_kpl_aggregator_flush(struct lmr_kpl_aggregator *a, lmr_kpl_emit_fn emit, void *ctx,
                                         struct lmr_err *err)
{
    enum lmr_result r = LMR_OK;
    for (size_t i = 0; i < a->n && !r; i++)
        r = emit_shard(a, i, emit, ctx, err);
    return r;
}
