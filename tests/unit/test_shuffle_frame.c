/*
 * Shuffle frames: round trip of random records through frame writer + index + frame reader, and
 * damaged data (flipped bytes, truncation, garbage, bad footers) giving LMR_ERR_FORMAT, never a crash.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <malloc.h>
#include <zstd.h>

#include "shuffle/frame.h"
#include "store/store.h"
#include "test_store_fixture.h"

static int setup(void **state)
{
    return store_fixture_setup(state, "lmr-shuffle-frame");
}

static int teardown(void **state)
{
    return store_fixture_teardown(state);
}

struct rec {
    uint8_t *key, *value;
    size_t klen, vlen;
};

/* Random bytes biased towards 0x00 and 0xFF. */
static uint8_t *rand_bytes(size_t n)
{
    uint8_t *p = malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++) {
        uint64_t r = rnd() % 4;
        p[i] = r == 0 ? 0x00 : r == 1 ? 0xff : (uint8_t)rnd();
    }
    return p;
}

static size_t rand_len(void)
{
    switch (rnd() % 10) {
    case 0:
        return 0;
    case 1:
        return 200 + rnd() % 70000; /* crosses the 64 KiB staging buffer and bin16 */
    default:
        return rnd() % 40;
    }
}

/* The level write_object writes at (the _raw tests: LMR_SHUFFLE_LEVEL_NONE). */
static int write_level = 1;

/* Write nparts frames of random records into object key; returns the records per frame. */
static void write_object(struct store_fixture *c, const char *key, uint32_t nparts, struct rec **recs, size_t *nrecs,
                         struct lmr_partition_frame *frames, uint64_t *size)
{
    struct lmr_frame_writer *fw;
    struct lmr_err err;
    assert_int_equal(lmr_frame_writer_new(write_level, &fw, &err), LMR_OK);
    struct lmr_store_writer *sw;
    assert_int_equal(lmr_store_open_write(c->store, key, 0, &sw, &err), LMR_OK);
    uint64_t off = 0;
    for (uint32_t p = 0; p < nparts; p++) {
        size_t n = p == 1 ? 0 : 1 + rnd() % 300; /* partition 1 stays empty */
        recs[p] = calloc(n ? n : 1, sizeof **recs);
        nrecs[p] = n;
        lmr_frame_writer_begin(fw, sw, &off);
        for (size_t i = 0; i < n; i++) {
            struct rec *r = &recs[p][i];
            r->klen = rand_len();
            r->vlen = rand_len();
            r->key = rand_bytes(r->klen);
            r->value = rand_bytes(r->vlen);
            assert_int_equal(
                lmr_frame_writer_add(fw, lmr_slice_make(r->key, r->klen), lmr_slice_make(r->value, r->vlen), &err),
                LMR_OK);
        }
        assert_int_equal(lmr_frame_writer_end(fw, &frames[p], &err), LMR_OK);
        assert_int_equal(frames[p].records, n);
    }
    /* A record far larger than every buffer. */
    assert_int_equal(lmr_shuffle_write_index(sw, &off, frames, nparts, &err), LMR_OK);
    assert_int_equal(lmr_store_commit(sw, &err), LMR_OK);
    lmr_frame_writer_destroy(fw);
    *size = off;
}

static void free_recs(struct rec **recs, size_t *nrecs, uint32_t nparts)
{
    for (uint32_t p = 0; p < nparts; p++) {
        for (size_t i = 0; i < nrecs[p]; i++) {
            free(recs[p][i].key);
            free(recs[p][i].value);
        }
        free(recs[p]);
    }
}

static void test_round_trip(void **state)
{
    struct store_fixture *c = *state;
    enum { NP = 5 };
    struct rec *recs[NP];
    size_t nrecs[NP];
    struct lmr_partition_frame frames[NP];
    uint64_t size;
    write_object(c, "obj/a", NP, recs, nrecs, frames, &size);

    struct lmr_err err;
    struct lmr_partition_frame *idx;
    uint32_t np;
    assert_int_equal(lmr_shuffle_read_index(c->store, "obj/a", &idx, &np, &err), LMR_OK);
    assert_int_equal(np, NP);
    assert_memory_equal(idx, frames, sizeof frames);
    assert_int_equal(frames[1].size_bytes, 0);

    struct lmr_frame_reader *fr;
    assert_int_equal(lmr_frame_reader_new(&fr, &err), LMR_OK);
    for (uint32_t p = 0; p < NP; p++) {
        assert_int_equal(lmr_frame_reader_open(fr, c->store, "obj/a", idx[p].offset, idx[p].size_bytes, &err), LMR_OK);
        size_t i = 0;
        uint64_t raw = 0;
        for (;;) {
            bool has;
            struct lmr_slice k, v;
            assert_int_equal(lmr_frame_reader_next(fr, &has, &k, &v, &err), LMR_OK);
            if (!has)
                break;
            assert_true(i < nrecs[p]);
            assert_int_equal(k.len, recs[p][i].klen);
            assert_int_equal(v.len, recs[p][i].vlen);
            if (k.len)
                assert_memory_equal(k.ptr, recs[p][i].key, k.len);
            if (v.len)
                assert_memory_equal(v.ptr, recs[p][i].value, v.len);
            raw += k.len + v.len;
            i++;
        }
        assert_int_equal(i, nrecs[p]);
        assert_true(idx[p].raw_bytes >= raw + 3 * i);
        /* Reading past the end stays at the end. */
        bool has = true;
        struct lmr_slice k, v;
        assert_int_equal(lmr_frame_reader_next(fr, &has, &k, &v, &err), LMR_OK);
        assert_false(has);
    }
    lmr_frame_reader_destroy(fr);
    free(idx);
    free_recs(recs, nrecs, NP);
}

static void test_huge_record(void **state)
{
    struct store_fixture *c = *state;
    struct lmr_err err;
    struct lmr_frame_writer *fw;
    assert_int_equal(lmr_frame_writer_new(3, &fw, &err), LMR_OK);
    struct lmr_store_writer *sw;
    assert_int_equal(lmr_store_open_write(c->store, "big", 0, &sw, &err), LMR_OK);
    size_t klen = 3u << 20, vlen = 1u << 20;
    uint8_t *key = rand_bytes(klen), *val = rand_bytes(vlen);
    uint64_t off = 0;
    struct lmr_partition_frame f;
    lmr_frame_writer_begin(fw, sw, &off);
    assert_int_equal(lmr_frame_writer_add(fw, lmr_slice_make("a", 1), lmr_slice_make("", 0), &err), LMR_OK);
    assert_int_equal(lmr_frame_writer_add(fw, lmr_slice_make(key, klen), lmr_slice_make(val, vlen), &err), LMR_OK);
    assert_int_equal(lmr_frame_writer_add(fw, lmr_slice_make("z", 1), lmr_slice_make("y", 1), &err), LMR_OK);
    assert_int_equal(lmr_frame_writer_end(fw, &f, &err), LMR_OK);
    assert_int_equal(lmr_store_commit(sw, &err), LMR_OK);
    lmr_frame_writer_destroy(fw);

    struct lmr_frame_reader *fr;
    assert_int_equal(lmr_frame_reader_new(&fr, &err), LMR_OK);
    assert_int_equal(lmr_frame_reader_open(fr, c->store, "big", f.offset, f.size_bytes, &err), LMR_OK);
    bool has;
    struct lmr_slice k, v;
    assert_int_equal(lmr_frame_reader_next(fr, &has, &k, &v, &err), LMR_OK);
    assert_true(has && k.len == 1 && v.len == 0);
    assert_int_equal(lmr_frame_reader_next(fr, &has, &k, &v, &err), LMR_OK);
    assert_true(has);
    assert_int_equal(k.len, klen);
    assert_int_equal(v.len, vlen);
    assert_memory_equal(k.ptr, key, klen);
    assert_memory_equal(v.ptr, val, vlen);
    assert_int_equal(lmr_frame_reader_next(fr, &has, &k, &v, &err), LMR_OK);
    assert_true(has && k.len == 1 && k.ptr[0] == 'z');
    assert_int_equal(lmr_frame_reader_next(fr, &has, &k, &v, &err), LMR_OK);
    assert_false(has);
    lmr_frame_reader_destroy(fr);
    free(key);
    free(val);
}

/* Read a whole frame; @return the first error (LMR_OK if it read cleanly to the end). */
static enum lmr_result read_all(struct lmr_store *s, const char *key, uint64_t off, uint64_t size, size_t *n)
{
    struct lmr_err err;
    struct lmr_frame_reader *fr;
    assert_int_equal(lmr_frame_reader_new(&fr, &err), LMR_OK);
    enum lmr_result rc = lmr_frame_reader_open(fr, s, key, off, size, &err);
    *n = 0;
    while (rc == LMR_OK) {
        bool has;
        struct lmr_slice k, v;
        rc = lmr_frame_reader_next(fr, &has, &k, &v, &err);
        if (rc != LMR_OK || !has)
            break;
        ++*n;
    }
    if (rc != LMR_OK)
        assert_true(strlen(err.msg) > 0);
    lmr_frame_reader_destroy(fr);
    return rc;
}

static void test_corrupt_and_truncated(void **state)
{
    struct store_fixture *c = *state;
    enum { NP = 3 };
    struct rec *recs[NP];
    size_t nrecs[NP];
    struct lmr_partition_frame frames[NP];
    uint64_t size;
    write_object(c, "obj/c", NP, recs, nrecs, frames, &size);
    struct lmr_err err;
    struct lmr_buf data;
    lmr_buf_init(&data, 64u << 20);
    assert_int_equal(lmr_store_get(c->store, "obj/c", 0, LMR_STORE_TO_END, &data, &err), LMR_OK);
    assert_int_equal(data.len, size);
    const struct lmr_partition_frame *f = &frames[0];
    size_t n;

    /* Every truncation of the frame fails with a format error. */
    for (uint64_t cut = 1; cut < f->size_bytes; cut += 1 + f->size_bytes / 50)
        assert_int_equal(read_all(c->store, "obj/c", f->offset, f->size_bytes - cut, &n), LMR_ERR_FORMAT);
    /* A range running past the frame: trailing bytes after the frame end. */
    assert_int_equal(read_all(c->store, "obj/c", f->offset, f->size_bytes + 1, &n), LMR_ERR_FORMAT);
    /* The intact frame reads fine. */
    assert_int_equal(read_all(c->store, "obj/c", f->offset, f->size_bytes, &n), LMR_OK);
    assert_int_equal(n, nrecs[0]);

    /* Flip one byte at many positions: checksum or structure errors, never a crash or a clean read. */
    for (uint64_t pos = 0; pos < f->size_bytes; pos += 1 + f->size_bytes / 64) {
        char *copy = malloc(data.len);
        memcpy(copy, data.data, data.len);
        copy[f->offset + pos] ^= (char)(1 + rnd() % 255);
        assert_int_equal(lmr_store_put(c->store, "obj/flip", copy, data.len, 0, &err), LMR_OK);
        free(copy);
        enum lmr_result rc = read_all(c->store, "obj/flip", f->offset, f->size_bytes, &n);
        assert_int_equal(rc, LMR_ERR_FORMAT);
    }

    /* Not zstd at all. */
    assert_int_equal(lmr_store_put(c->store, "obj/garbage", "hello, world, this is not zstd", 30, 0, &err), LMR_OK);
    assert_int_equal(read_all(c->store, "obj/garbage", 0, 30, &n), LMR_ERR_FORMAT);

    /* Footer and index damage. */
    struct lmr_partition_frame *idx;
    uint32_t np;
    assert_int_equal(lmr_store_put(c->store, "obj/short", data.data, data.len - 1, 0, &err), LMR_OK);
    assert_int_equal(lmr_shuffle_read_index(c->store, "obj/short", &idx, &np, &err), LMR_ERR_FORMAT);
    assert_int_equal(lmr_store_put(c->store, "obj/tiny", "x", 1, 0, &err), LMR_OK);
    assert_int_equal(lmr_shuffle_read_index(c->store, "obj/tiny", &idx, &np, &err), LMR_ERR_FORMAT);
    data.data[data.len - LMR_SHUFFLE_FOOTER_BYTES - 3] ^= 0x10; /* inside the index: checksum mismatch */
    assert_int_equal(lmr_store_put(c->store, "obj/badidx", data.data, data.len, 0, &err), LMR_OK);
    assert_int_equal(lmr_shuffle_read_index(c->store, "obj/badidx", &idx, &np, &err), LMR_ERR_FORMAT);

    lmr_buf_clean_up(&data);
    free_recs(recs, nrecs, NP);
}

/* Valid zstd frames whose content is not a sequence of [bin, bin] records. */
static void test_bad_msgpack(void **state)
{
    struct store_fixture *c = *state;
    struct lmr_err err;
    static const struct {
        const char *bytes;
        size_t len;
    } cases[] = {
        {"\x81\xc4\x01k\xc4\x01v", 7},     /* a map, not an array */
        {"\x92\xc0\xc4\x01v", 5},          /* nil key */
        {"\x93\xc4\x01k\xc4\x01v\xc0", 8}, /* three elements */
        {"\x92\xc4\x05"
         "ab",
         5},                               /* frame ends inside the key */
        {"\x92\xc4\x01k", 4},              /* frame ends before the value */
        {"\x92\xc4\x01k\xc4\x01v\x92", 8}, /* a good record, then a cut one */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char z[256];
        size_t zn = ZSTD_compress(z, sizeof z, cases[i].bytes, cases[i].len, 1);
        assert_false(ZSTD_isError(zn));
        assert_int_equal(lmr_store_put(c->store, "obj/bad", z, zn, 0, &err), LMR_OK);
        size_t n;
        assert_int_equal(read_all(c->store, "obj/bad", 0, zn, &n), LMR_ERR_FORMAT);
    }
    /* str types are accepted in place of bin. */
    char z[256];
    size_t zn = ZSTD_compress(z, sizeof z, "\x92\xa1k\xd9\x01v", 6, 1);
    assert_int_equal(lmr_store_put(c->store, "obj/str", z, zn, 0, &err), LMR_OK);
    size_t n;
    assert_int_equal(read_all(c->store, "obj/str", 0, zn, &n), LMR_OK);
    assert_int_equal(n, 1);
}

/*
 * A corrupt frame whose first record claims a 1 GiB key (then 200 KB of zeros) fails as corrupt
 * without the reader allocating what the header claims (fuzz_frame reproduces it with
 * -malloc_limit_mb).
 */
static void test_claimed_size_not_allocated(void **state)
{
    struct store_fixture *c = *state;
    struct lmr_err err;
    size_t len = 6 + 200000;
    uint8_t *content = calloc(1, len);
    memcpy(content, "\x92\xc6\x3f\xff\xff\xf0", 6);
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(cc, ZSTD_c_windowLog, LMR_SHUFFLE_WINDOW_LOG);
    ZSTD_CCtx_setParameter(cc, ZSTD_c_checksumFlag, 1);
    char z[4096];
    size_t zn = ZSTD_compress2(cc, z, sizeof z, content, len);
    ZSTD_freeCCtx(cc);
    free(content);
    assert_false(ZSTD_isError(zn));
    assert_int_equal(lmr_store_put(c->store, "obj/claims", z, zn, 0, &err), LMR_OK);
    struct lmr_frame_reader *fr;
    assert_int_equal(lmr_frame_reader_new(&fr, &err), LMR_OK);
    assert_int_equal(lmr_frame_reader_open(fr, c->store, "obj/claims", 0, zn, &err), LMR_OK);
    bool has;
    struct lmr_slice k, v;
    assert_int_equal(lmr_frame_reader_next(fr, &has, &k, &v, &err), LMR_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "corrupt"));
#if !defined(__SANITIZE_ADDRESS__)
    /* glibc serves big blocks with mmap: the reader (still holding its buffer) holds far less than 1 GiB. */
    struct mallinfo2 mi = mallinfo2();
    assert_true(mi.hblkhd < (64u << 20));
#endif
    lmr_frame_reader_destroy(fr);
}

#define N_LEVEL_RECORDS 6000

/* Records of frame `kind` i: 0 = a 9-byte key and 16 random bytes (compresses < 2:1),
   1 = text that repeats (compresses far better). */
static void level_record(int kind, size_t i, uint8_t key[9], uint8_t value[16])
{
    snprintf((char *)key, 9, "k%07zu", i);
    key[8] = (uint8_t)'.';
    if (kind == 0) {
        uint64_t r[2] = {rnd(), rnd()};
        memcpy(value, r, 16);
    } else {
        memcpy(value, i % 3 ? "abcdefghabcdefgh" : "abcdefgXabcdefgh", 16);
    }
}

/* One frame of 6000 records of kind into writer fw at object `key`; the frame's size. Every record
   reads back. The same records compressed in one shot at level 1 (window, checksum as the writer's)
   give *level1_bytes. */
static uint64_t level_frame(struct store_fixture *c, struct lmr_frame_writer *fw, const char *key, int kind,
                            uint64_t seed, size_t *level1_bytes)
{
    struct lmr_err err;
    struct lmr_store_writer *sw;
    assert_int_equal(lmr_store_open_write(c->store, key, 0, &sw, &err), LMR_OK);
    uint64_t off = 0;
    struct lmr_partition_frame fr;
    uint8_t *raw = malloc(N_LEVEL_RECORDS * 30), k[9], v[16];
    assert_non_null(raw);
    lmr_frame_writer_begin(fw, sw, &off);
    rng_state = seed;
    for (size_t i = 0; i < N_LEVEL_RECORDS; i++) {
        level_record(kind, i, k, v);
        uint8_t *r = raw + i * 30;
        r[0] = 0x92, r[1] = 0xc4, r[2] = 9, r[12] = 0xc4, r[13] = 16;
        memcpy(r + 3, k, 9);
        memcpy(r + 14, v, 16);
        assert_int_equal(lmr_frame_writer_add(fw, lmr_slice_make(k, 9), lmr_slice_make(v, 16), &err), LMR_OK);
    }
    assert_int_equal(lmr_frame_writer_end(fw, &fr, &err), LMR_OK);
    assert_int_equal(fr.raw_bytes, N_LEVEL_RECORDS * 30);
    enum lmr_result rc = lmr_store_commit(sw, &err);
    if (rc != LMR_OK)
        fail_msg("commit: %s", err.msg);

    ZSTD_CCtx *cc = ZSTD_createCCtx();
    size_t cap = ZSTD_compressBound(N_LEVEL_RECORDS * 30);
    uint8_t *dst = malloc(cap);
    assert_non_null(dst);
    ZSTD_CCtx_setParameter(cc, ZSTD_c_compressionLevel, 1);
    ZSTD_CCtx_setParameter(cc, ZSTD_c_windowLog, LMR_SHUFFLE_WINDOW_LOG);
    ZSTD_CCtx_setParameter(cc, ZSTD_c_checksumFlag, 1);
    /* streamed with the size unknown, as the writer streams (a known size picks other parameters) */
    ZSTD_inBuffer in = {raw, N_LEVEL_RECORDS * 30, 0};
    ZSTD_outBuffer o = {dst, cap, 0};
    assert_false(ZSTD_isError(ZSTD_compressStream2(cc, &o, &in, ZSTD_e_continue)));
    assert_int_equal(in.pos, in.size);
    assert_int_equal(ZSTD_compressStream2(cc, &o, &in, ZSTD_e_end), 0);
    *level1_bytes = o.pos;
    ZSTD_freeCCtx(cc);
    free(dst);

    struct lmr_frame_reader *rd;
    assert_int_equal(lmr_frame_reader_new(&rd, &err), LMR_OK);
    assert_int_equal(lmr_frame_reader_open(rd, c->store, key, fr.offset, fr.size_bytes, &err), LMR_OK);
    rng_state = seed;
    for (size_t i = 0;; i++) {
        bool has;
        struct lmr_slice gk, gv;
        assert_int_equal(lmr_frame_reader_next(rd, &has, &gk, &gv, &err), LMR_OK);
        if (!has) {
            assert_int_equal(i, N_LEVEL_RECORDS);
            break;
        }
        level_record(kind, i, k, v);
        assert_int_equal(gk.len, 9);
        assert_memory_equal(gk.ptr, k, 9);
        assert_int_equal(gv.len, 16);
        assert_memory_equal(gv.ptr, v, 16);
    }
    lmr_frame_reader_destroy(rd);
    free(raw);
    return fr.size_bytes;
}

/* The default level: a writer whose first frame compresses less than 2:1 at level 1 writes it and
   every later frame at zstd's fast level; one whose first frame compresses well stays at level 1;
   an explicit level never changes. Every frame reads back. */
static void test_default_level_choice(void **state)
{
    struct store_fixture *c = *state;
    struct lmr_err err;
    struct lmr_frame_writer *fw;
    size_t l1;
    assert_int_equal(lmr_frame_writer_new(1, &fw, &err), LMR_OK);
    assert_int_equal(lmr_frame_writer_level(fw), 1);
    uint64_t fast = level_frame(c, fw, "lv/a", 0, 5, &l1);
    assert_int_equal(lmr_frame_writer_level(fw), -1);
    assert_true(fast * 2 > N_LEVEL_RECORDS * 30); /* the data compresses less than 2:1 */
    level_frame(c, fw, "lv/b", 1, 6, &l1);
    assert_int_equal(lmr_frame_writer_level(fw), -1); /* the choice holds for later frames */
    lmr_frame_writer_destroy(fw);

    assert_int_equal(lmr_frame_writer_new(1, &fw, &err), LMR_OK);
    uint64_t good = level_frame(c, fw, "lv/c", 1, 6, &l1);
    assert_int_equal(lmr_frame_writer_level(fw), 1);
    assert_true(good <= l1 + l1 / 100); /* level 1, as a level-1 stream of the same records */
    level_frame(c, fw, "lv/d", 0, 5, &l1);
    assert_int_equal(lmr_frame_writer_level(fw), 1);
    lmr_frame_writer_destroy(fw);

    assert_int_equal(lmr_frame_writer_new(3, &fw, &err), LMR_OK);
    level_frame(c, fw, "lv/e", 0, 5, &l1);
    assert_int_equal(lmr_frame_writer_level(fw), 3);
    lmr_frame_writer_destroy(fw);
}

/* The round trip and the damage tests again on raw (uncompressed) frames. */
static void test_round_trip_raw(void **state)
{
    write_level = LMR_SHUFFLE_LEVEL_NONE;
    test_round_trip(state);
    write_level = 1;
}

static void test_corrupt_and_truncated_raw(void **state)
{
    write_level = LMR_SHUFFLE_LEVEL_NONE;
    test_corrupt_and_truncated(state);
    write_level = 1;
}

/* A raw frame is a standard zstd frame (zstd's one-shot decoder gives back exactly the records'
   bytes), as long as its records plus 6 header bytes (9 with the content size for a frame of one
   block), 3 per 64 KiB block and the 4-byte checksum;
   the default level is raw on a file store, and a level given is kept. */
static void test_raw_frame_is_zstd(void **state)
{
    struct store_fixture *c = *state;
    struct lmr_err err;
    assert_int_equal(lmr_shuffle_level_for(c->store, 0), LMR_SHUFFLE_LEVEL_NONE);
    assert_int_equal(lmr_shuffle_level_for(c->store, 3), 3);
    assert_int_equal(lmr_shuffle_level_for(c->store, -1), -1);
    struct lmr_frame_writer *fw;
    assert_int_equal(lmr_frame_writer_new(LMR_SHUFFLE_LEVEL_NONE, &fw, &err), LMR_OK);
    assert_int_equal(lmr_frame_writer_level(fw), LMR_SHUFFLE_LEVEL_NONE);
    assert_true(lmr_frame_writer_memory_bytes(LMR_SHUFFLE_LEVEL_NONE) < lmr_frame_writer_memory_bytes(1));
    struct lmr_store_writer *sw;
    assert_int_equal(lmr_store_open_write(c->store, "raw/a", 0, &sw, &err), LMR_OK);
    /* frames of 0 records (nothing written), 1, exactly one 64 KiB block, and many blocks
       (32-byte records: a 10-byte key and a 19-byte value) */
    enum { NF = 4 };
    static const size_t counts[NF] = {0, 1, 65536 / 32, 20000};
    struct lmr_partition_frame f[NF];
    uint8_t *want[NF];
    size_t blocks_of[NF];
    uint64_t off = 0;
    for (int j = 0; j < NF; j++) {
        want[j] = malloc(counts[j] * 32 + 1);
        assert_non_null(want[j]);
        lmr_frame_writer_begin(fw, sw, &off);
        for (size_t i = 0; i < counts[j]; i++) {
            uint8_t *r = want[j] + i * 32;
            r[0] = 0x92, r[1] = 0xc4, r[2] = 10, r[13] = 0xc4, r[14] = 17;
            for (size_t b = 3; b < 13; b++)
                r[b] = (uint8_t)rnd();
            for (size_t b = 15; b < 32; b++)
                r[b] = (uint8_t)rnd();
            assert_int_equal(lmr_frame_writer_add(fw, lmr_slice_make(r + 3, 10), lmr_slice_make(r + 15, 17), &err),
                             LMR_OK);
        }
        assert_int_equal(lmr_frame_writer_end(fw, &f[j], &err), LMR_OK);
        /* a block ends when the next record does not fit (32 bytes: bin 8 headers) */
        size_t raw = counts[j] * 32, blocks = 1, staged = 0;
        for (size_t i = 0; i < counts[j]; i++, staged += 32)
            if (32 > 65536 - staged)
                blocks++, staged = 0;
        blocks_of[j] = blocks;
        assert_int_equal(f[j].raw_bytes, raw);
        /* one block: a 9-byte header stating the content size; more: 6 bytes, no size */
        assert_int_equal(f[j].size_bytes, raw ? raw + (blocks == 1 ? 9 : 6) + 3 * blocks + 4 : 0);
    }
    assert_int_equal(lmr_store_commit(sw, &err), LMR_OK);
    lmr_frame_writer_destroy(fw);
    for (int j = 1; j < NF; j++) {
        size_t raw = counts[j] * 32;
        struct lmr_buf data;
        lmr_buf_init(&data, 1u << 20);
        assert_int_equal(lmr_store_get(c->store, "raw/a", f[j].offset, f[j].size_bytes, &data, &err), LMR_OK);
        uint8_t *got = malloc(raw);
        assert_non_null(got);
        unsigned long long stated = ZSTD_getFrameContentSize(data.data, data.len);
        if (blocks_of[j] == 1)
            assert_int_equal(stated, raw);
        else
            assert_true(stated == ZSTD_CONTENTSIZE_UNKNOWN);
        size_t n = ZSTD_decompress(got, raw, data.data, data.len);
        if (ZSTD_isError(n))
            fail_msg("frame %d: %s", j, ZSTD_getErrorName(n));
        assert_int_equal(n, raw);
        assert_memory_equal(got, want[j], raw);
        free(got);
        lmr_buf_clean_up(&data);
    }
    for (int j = 0; j < NF; j++)
        free(want[j]);
}

/* The default key order (its 8-byte word fast path included) = memcmp, then the shorter key first,
   on keys of 0-20 bytes that share long prefixes, with NUL and 0xff bytes. */
static void test_default_compare(void **unused)
{
    (void)unused;
    static const uint8_t alphabet[] = {0, 1, 'a', 'b', 0x7f, 0x80, 0xff};
    srand(11);
    for (int i = 0; i < 200000; i++) {
        uint8_t x[20], y[20];
        size_t xl = (size_t)(rand() % 21), yl = (size_t)(rand() % 21);
        size_t shared = (size_t)(rand() % 21);
        for (size_t k = 0; k < 20; k++) {
            x[k] = alphabet[rand() % sizeof alphabet];
            y[k] = k < shared ? x[k] : alphabet[rand() % sizeof alphabet];
        }
        /* exact-size copies: a read past a key's end shows under the sanitizer */
        uint8_t *a = malloc(xl ? xl : 1), *b = malloc(yl ? yl : 1);
        assert_non_null(a);
        assert_non_null(b);
        memcpy(a, x, xl);
        memcpy(b, y, yl);
        size_t n = xl < yl ? xl : yl;
        int want = n ? memcmp(a, b, n) : 0;
        if (!want)
            want = (xl > yl) - (xl < yl);
        int got = lmr_shuffle_default_compare((struct lmr_slice){a, xl}, (struct lmr_slice){b, yl});
        if ((got > 0) != (want > 0) || (got < 0) != (want < 0))
            fail_msg("keys of %zu and %zu bytes: %d, memcmp order %d", xl, yl, got, want);
        free(a);
        free(b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_compare),
        cmocka_unit_test_setup_teardown(test_default_level_choice, setup, teardown),
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_round_trip_raw, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_and_truncated_raw, setup, teardown),
        cmocka_unit_test_setup_teardown(test_raw_frame_is_zstd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_huge_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_and_truncated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_msgpack, setup, teardown),
        cmocka_unit_test_setup_teardown(test_claimed_size_not_allocated, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
