/*
 * Frame writer and reader: msgpack [bin key, bin value] records inside zstd frames.
 *
 * Records are encoded and decoded by hand: the record shape is fixed (a 2-array of two byte
 * strings), so a general msgpack unpacker would only add copies and allocations on the hot path.
 * The reader accepts bin8/16/32 and the str types for both fields; anything else is
 * LMR_ERR_FORMAT. zstd's content checksum catches corrupted frames; truncation shows up as a
 * frame that never ends or a record cut in half, both LMR_ERR_FORMAT.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define XXH_STATIC_LINKING_ONLY /* XXH64_state_t's size */
#include <xxhash.h>
#define ZSTD_STATIC_LINKING_ONLY /* memory estimates */
#include <zstd.h>

#include "shuffle/frame.h"

#define STAGE_BYTES ((size_t)64 * 1024)    /* writer: records gathered before each compress call */
#define READ_IN_BYTES ((size_t)64 * 1024)  /* reader: compressed bytes per store read */
#define READ_OUT_BYTES ((size_t)64 * 1024) /* reader: initial decoded buffer (grows for huge records) */

/* ---- little helpers ----------------------------------------------------------------------------------------- */

static void put_u32le(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64le(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32le(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64le(const uint8_t *p)
{
    return (uint64_t)get_u32le(p) | (uint64_t)get_u32le(p + 4) << 32;
}

/* msgpack bin header for len bytes into p; @return its size (2, 3 or 5). */
static size_t put_bin_header(uint8_t *p, size_t len)
{
    if (len <= 0xff) {
        p[0] = 0xc4;
        p[1] = (uint8_t)len;
        return 2;
    }
    if (len <= 0xffff) {
        p[0] = 0xc5;
        p[1] = (uint8_t)(len >> 8);
        p[2] = (uint8_t)len;
        return 3;
    }
    p[0] = 0xc6;
    p[1] = (uint8_t)(len >> 24);
    p[2] = (uint8_t)(len >> 16);
    p[3] = (uint8_t)(len >> 8);
    p[4] = (uint8_t)len;
    return 5;
}

/* n bytes from src to dst; up to 16 (Query 2's keys and sums) as two overlapping words, no call. */
static inline void copy_bytes(uint8_t *dst, const uint8_t *src, size_t n)
{
    uint64_t a, b;
    uint32_t c, d;
    if (n >= 8 && n <= 16) {
        memcpy(&a, src, 8);
        memcpy(&b, src + n - 8, 8);
        memcpy(dst, &a, 8);
        memcpy(dst + n - 8, &b, 8);
    } else if (n >= 4 && n < 8) {
        memcpy(&c, src, 4);
        memcpy(&d, src + n - 4, 4);
        memcpy(dst, &c, 4);
        memcpy(dst + n - 4, &d, 4);
    } else if (n) {
        memcpy(dst, src, n);
    }
}

/* ---- frame writer ------------------------------------------------------------------------------------------- */

struct lmr_frame_writer {
    ZSTD_CCtx *cctx;    /* NULL when raw */
    XXH64_state_t *xxh; /* raw: the content checksum of the current frame */
    uint8_t *stage_mem; /* the staging buffer with RAW_HEAD bytes before it and RAW_TAIL after */
    uint8_t *stage;
    size_t stage_len;
    uint8_t *out;
    size_t out_cap, out_len;
    struct lmr_store_writer *sw;
    uint64_t *offset;
    uint64_t start_offset, records, raw_bytes;
    bool started;
    bool in_frame; /* the current frame has had a compress call (its parameters are fixed) */
    bool probing;  /* default level: the first sizeable batch of records decides between level 1 and fast */
    bool raw;      /* LMR_SHUFFLE_LEVEL_NONE: zstd frames of raw blocks, written here, no compressor */
    int level;
};

/* Raw frames (RFC 8878): a frame header (magic, a descriptor with only the content checksum flag, a
   window descriptor; for a frame of one block: single segment and its content size, so readers
   decode it whole) before the first block, a 3-byte block header before each staged batch (one
   raw block: at most STAGE_BYTES, the window size and so the largest block allowed), and the
   checksum (the low 4 bytes of XXH64 of the content) after the last one; the staging buffer's head
   and tail room take them, so each block is one store write. */
#define RAW_FRAME_HEADER_BYTES 6
/* A frame of one block: single segment, its 4-byte content size, no window descriptor. */
#define RAW_SMALL_HEADER_BYTES 9
#define RAW_SMALL_DESCRIPTOR 0xA4 /* 4-byte content size, single segment, content checksum */
#define RAW_BLOCK_HEADER_BYTES 3
#define RAW_HEAD 16
#define RAW_TAIL 8
#define ZSTD_FRAME_MAGIC 0xFD2FB528u
#define RAW_DESCRIPTOR 0x04                                        /* content checksum; no size, no dictionary */
#define RAW_WINDOW_DESCRIPTOR ((LMR_SHUFFLE_WINDOW_LOG - 10) << 3) /* 2^WINDOW_LOG, mantissa 0 */

/* The default level's choice (see lmr_frame_writer_new): records that compress less than 2:1 at level 1
   (random doubles next to short keys: Query 2's sums) are written at zstd's fast level 1 instead,
   about twice the speed for about 6% more bytes there; word count's sorted words (2.4:1) stay at level 1. */
#define PROBE_MIN_BYTES ((size_t)16 * 1024)
#define FAST_LEVEL (-1)
#define FAST_BELOW_RATIO 2.0

static int clamp_level(int level)
{
    if (level <= 0)
        return 1;
    return level > ZSTD_maxCLevel() ? ZSTD_maxCLevel() : level;
}

size_t lmr_frame_writer_memory_bytes(int zstd_level)
{
    if (zstd_level == LMR_SHUFFLE_LEVEL_NONE)
        return STAGE_BYTES + RAW_HEAD + RAW_TAIL + sizeof(XXH64_state_t) + sizeof(struct lmr_frame_writer);
    ZSTD_compressionParameters cp = ZSTD_getCParams(clamp_level(zstd_level), 0, 0);
    cp.windowLog = LMR_SHUFFLE_WINDOW_LOG;
    return ZSTD_estimateCStreamSize_usingCParams(cp) + STAGE_BYTES + ZSTD_CStreamOutSize() +
           sizeof(struct lmr_frame_writer);
}

enum lmr_result lmr_frame_writer_new(int zstd_level, struct lmr_frame_writer **out, struct lmr_err *err)
{
    struct lmr_frame_writer *fw = calloc(1, sizeof *fw);
    if (!fw)
        return lmr_fail(err, LMR_ERR_NOMEM, "Out of memory creating a shuffle frame writer.");
    fw->stage_mem = malloc(STAGE_BYTES + RAW_HEAD + RAW_TAIL);
    fw->stage = fw->stage_mem ? fw->stage_mem + RAW_HEAD : NULL;
    if (zstd_level == LMR_SHUFFLE_LEVEL_NONE) {
        fw->raw = true;
        fw->level = LMR_SHUFFLE_LEVEL_NONE;
        fw->xxh = XXH64_createState();
        if (!fw->stage || !fw->xxh) {
            lmr_frame_writer_destroy(fw);
            return lmr_fail(err, LMR_ERR_NOMEM, "Out of memory creating a shuffle frame writer.");
        }
        *out = fw;
        return LMR_OK;
    }
    fw->cctx = ZSTD_createCCtx();
    fw->out_cap = ZSTD_CStreamOutSize();
    fw->out = malloc(fw->out_cap);
    if (!fw->cctx || !fw->stage || !fw->out) {
        lmr_frame_writer_destroy(fw);
        return lmr_fail(err, LMR_ERR_NOMEM, "Out of memory creating a shuffle frame writer.");
    }
    int level = clamp_level(zstd_level);
    fw->probing = zstd_level <= 1;
    fw->level = level;
    if (ZSTD_isError(ZSTD_CCtx_setParameter(fw->cctx, ZSTD_c_compressionLevel, level)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(fw->cctx, ZSTD_c_windowLog, LMR_SHUFFLE_WINDOW_LOG)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(fw->cctx, ZSTD_c_checksumFlag, 1))) {
        lmr_frame_writer_destroy(fw);
        return lmr_fail(err, LMR_ERR_INTERNAL, "Could not configure the zstd compressor (level %d).", level);
    }
    *out = fw;
    return LMR_OK;
}

void lmr_frame_writer_destroy(struct lmr_frame_writer *fw)
{
    if (!fw)
        return;
    ZSTD_freeCCtx(fw->cctx);
    XXH64_freeState(fw->xxh);
    free(fw->stage_mem);
    free(fw->out);
    free(fw);
}

void lmr_frame_writer_begin(struct lmr_frame_writer *fw, struct lmr_store_writer *sw, uint64_t *offset)
{
    fw->sw = sw;
    fw->offset = offset;
    fw->start_offset = *offset;
    fw->records = fw->raw_bytes = 0;
    fw->stage_len = fw->out_len = 0;
    fw->started = false;
}

static enum lmr_result flush_out(struct lmr_frame_writer *fw, struct lmr_err *err)
{
    if (!fw->out_len)
        return LMR_OK;
    enum lmr_result rc = lmr_store_write(fw->sw, fw->out, fw->out_len, err);
    if (rc != LMR_OK)
        return rc;
    *fw->offset += fw->out_len;
    fw->out_len = 0;
    return LMR_OK;
}

/* Before a frame's first compress call: try level 1 on this batch (into the empty output buffer) and
   keep it, or switch the writer to the fast level for good. */
static void choose_level(struct lmr_frame_writer *fw, const void *src, size_t len)
{
    if (len < PROBE_MIN_BYTES || fw->out_len || ZSTD_compressBound(len) > fw->out_cap)
        return; /* too little to judge (or no room): the next frame's first batch decides */
    fw->probing = false;
    size_t c = ZSTD_compress2(fw->cctx, fw->out, fw->out_cap, src, len);
    ZSTD_CCtx_reset(fw->cctx, ZSTD_reset_session_only);
    if (!ZSTD_isError(c) && (double)len < FAST_BELOW_RATIO * (double)c &&
        !ZSTD_isError(ZSTD_CCtx_setParameter(fw->cctx, ZSTD_c_compressionLevel, FAST_LEVEL)))
        fw->level = FAST_LEVEL; /* on failure level 1 stays */
}

int lmr_frame_writer_level(const struct lmr_frame_writer *fw)
{
    return fw->level;
}

int lmr_shuffle_level_for(const struct lmr_store *store, int zstd_level)
{
    if (zstd_level)
        return zstd_level;
    return store && store->vtable && !strcmp(store->vtable->scheme, "file") ? LMR_SHUFFLE_LEVEL_NONE : 0;
}

static enum lmr_result compress(struct lmr_frame_writer *fw, const void *src, size_t len, ZSTD_EndDirective mode,
                                struct lmr_err *err)
{
    if (!fw->in_frame) {
        if (fw->probing)
            choose_level(fw, src, len);
        fw->in_frame = true;
    }
    ZSTD_inBuffer in = {src, len, 0};
    for (;;) {
        ZSTD_outBuffer o = {fw->out, fw->out_cap, fw->out_len};
        size_t rem = ZSTD_compressStream2(fw->cctx, &o, &in, mode);
        if (ZSTD_isError(rem))
            return lmr_fail(err, LMR_ERR_INTERNAL, "zstd compression failed: %s.", ZSTD_getErrorName(rem));
        fw->out_len = o.pos;
        if (fw->out_len == fw->out_cap || (mode == ZSTD_e_end && rem == 0)) {
            enum lmr_result rc = flush_out(fw, err);
            if (rc != LMR_OK)
                return rc;
        }
        if (mode == ZSTD_e_end ? rem == 0 : in.pos == in.size)
            return LMR_OK;
    }
}

/* Raw: the staged bytes as one raw block (the frame header before the frame's first, the checksum
   after its last), in one store write. */
static enum lmr_result raw_block(struct lmr_frame_writer *fw, bool last, struct lmr_err *err)
{
    size_t n = fw->stage_len;
    uint8_t *p = fw->stage - RAW_BLOCK_HEADER_BYTES, *e = fw->stage + n;
    XXH64_update(fw->xxh, fw->stage, n);
    uint32_t h = (uint32_t)last | (uint32_t)n << 3; /* block type 0: raw */
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
    p[2] = (uint8_t)(h >> 16);
    if (!fw->in_frame && last) { /* the whole frame in one block: its size stated (readers decode it whole) */
        p -= RAW_SMALL_HEADER_BYTES;
        put_u32le(p, ZSTD_FRAME_MAGIC);
        p[4] = RAW_SMALL_DESCRIPTOR;
        put_u32le(p + 5, (uint32_t)n);
        fw->in_frame = true;
    } else if (!fw->in_frame) {
        p -= RAW_FRAME_HEADER_BYTES;
        put_u32le(p, ZSTD_FRAME_MAGIC);
        p[4] = RAW_DESCRIPTOR;
        p[5] = RAW_WINDOW_DESCRIPTOR;
        fw->in_frame = true;
    }
    if (last) {
        put_u32le(e, (uint32_t)XXH64_digest(fw->xxh));
        e += 4;
    }
    fw->stage_len = 0;
    enum lmr_result rc = lmr_store_write(fw->sw, p, (size_t)(e - p), err);
    if (rc == LMR_OK)
        *fw->offset += (uint64_t)(e - p);
    return rc;
}

static enum lmr_result flush_stage(struct lmr_frame_writer *fw, struct lmr_err *err)
{
    if (!fw->stage_len)
        return LMR_OK;
    if (fw->raw)
        return raw_block(fw, false, err);
    enum lmr_result rc = compress(fw, fw->stage, fw->stage_len, ZSTD_e_continue, err);
    fw->stage_len = 0;
    return rc;
}

static enum lmr_result feed(struct lmr_frame_writer *fw, const void *p, size_t len, struct lmr_err *err)
{
    if (fw->raw) { /* through the stage, a block at a time */
        const uint8_t *q = p;
        while (len) {
            enum lmr_result rc = fw->stage_len == STAGE_BYTES ? flush_stage(fw, err) : LMR_OK;
            if (rc != LMR_OK)
                return rc;
            size_t k = STAGE_BYTES - fw->stage_len < len ? STAGE_BYTES - fw->stage_len : len;
            memcpy(fw->stage + fw->stage_len, q, k);
            fw->stage_len += k;
            q += k;
            len -= k;
        }
        return LMR_OK;
    }
    if (len <= STAGE_BYTES - fw->stage_len) {
        if (len)
            memcpy(fw->stage + fw->stage_len, p, len);
        fw->stage_len += len;
        return LMR_OK;
    }
    enum lmr_result rc = flush_stage(fw, err);
    if (rc != LMR_OK)
        return rc;
    if (len >= STAGE_BYTES)
        return compress(fw, p, len, ZSTD_e_continue, err);
    memcpy(fw->stage, p, len);
    fw->stage_len = len;
    return LMR_OK;
}

enum lmr_result lmr_frame_writer_add(struct lmr_frame_writer *fw, struct lmr_slice key, struct lmr_slice value,
                                     struct lmr_err *err)
{
    /* Fast path: a frame under way, key and value of at most 255 bytes (bin 8 headers), room staged. */
    size_t small = 5 + key.len + value.len;
    if (fw->started && key.len <= 0xff && value.len <= 0xff && small <= STAGE_BYTES - fw->stage_len) {
        uint8_t *p = fw->stage + fw->stage_len;
        p[0] = 0x92;
        p[1] = 0xc4;
        p[2] = (uint8_t)key.len;
        copy_bytes(p + 3, key.ptr, key.len);
        p += 3 + key.len;
        p[0] = 0xc4;
        p[1] = (uint8_t)value.len;
        copy_bytes(p + 2, value.ptr, value.len);
        fw->stage_len += small;
        fw->raw_bytes += small;
        fw->records++;
        return LMR_OK;
    }
    if (key.len > UINT32_MAX || value.len > UINT32_MAX)
        return lmr_fail(err, LMR_ERR_TOO_LARGE,
                        "A shuffle record is larger than 4 GiB; keys and values must be smaller.");
    if (!fw->started) {
        if (fw->raw)
            XXH64_reset(fw->xxh, 0);
        else
            ZSTD_CCtx_reset(fw->cctx, ZSTD_reset_session_only);
        fw->started = true;
        fw->in_frame = false;
    }
    /* Fast path: the whole record fits in the staging buffer. */
    size_t need = 11 + key.len + value.len;
    enum lmr_result rc;
    if (need > STAGE_BYTES - fw->stage_len) {
        rc = flush_stage(fw, err);
        if (rc != LMR_OK)
            return rc;
    }
    size_t before = fw->stage_len;
    if (need <= STAGE_BYTES - fw->stage_len) {
        uint8_t *p = fw->stage + fw->stage_len;
        *p++ = 0x92;
        p += put_bin_header(p, key.len);
        copy_bytes(p, key.ptr, key.len);
        p += key.len;
        p += put_bin_header(p, value.len);
        copy_bytes(p, value.ptr, value.len);
        p += value.len;
        fw->stage_len = (size_t)(p - fw->stage);
        fw->raw_bytes += fw->stage_len - before;
    } else {
        uint8_t hdr[6];
        hdr[0] = 0x92;
        size_t h = 1 + put_bin_header(hdr + 1, key.len);
        if ((rc = feed(fw, hdr, h, err)) != LMR_OK || (rc = feed(fw, key.ptr, key.len, err)) != LMR_OK)
            return rc;
        size_t h2 = put_bin_header(hdr, value.len);
        if ((rc = feed(fw, hdr, h2, err)) != LMR_OK || (rc = feed(fw, value.ptr, value.len, err)) != LMR_OK)
            return rc;
        fw->raw_bytes += h + key.len + h2 + value.len;
    }
    fw->records++;
    return LMR_OK;
}

enum lmr_result lmr_frame_writer_end(struct lmr_frame_writer *fw, struct lmr_partition_frame *frame,
                                     struct lmr_err *err)
{
    frame->offset = fw->start_offset;
    frame->records = fw->records;
    frame->raw_bytes = fw->raw_bytes;
    frame->size_bytes = 0;
    if (!fw->started)
        return LMR_OK;
    enum lmr_result rc = fw->raw ? raw_block(fw, true, err) : compress(fw, fw->stage, fw->stage_len, ZSTD_e_end, err);
    fw->stage_len = 0;
    fw->started = false;
    if (rc != LMR_OK)
        return rc;
    frame->size_bytes = *fw->offset - fw->start_offset;
    return LMR_OK;
}

/* ---- index and footer --------------------------------------------------------------------------------------- */

enum lmr_result lmr_shuffle_write_index(struct lmr_store_writer *sw, uint64_t *offset,
                                        const struct lmr_partition_frame *frames, uint32_t n, struct lmr_err *err)
{
    size_t len = 8 + (size_t)n * 32;
    uint8_t *buf = malloc(len + LMR_SHUFFLE_FOOTER_BYTES);
    if (!buf)
        return lmr_fail(err, LMR_ERR_NOMEM, "Out of memory writing a shuffle index of %u partitions.", n);
    put_u32le(buf, LMR_SHUFFLE_INDEX_VERSION);
    put_u32le(buf + 4, n);
    for (uint32_t i = 0; i < n; i++) {
        uint8_t *p = buf + 8 + (size_t)i * 32;
        put_u64le(p, frames[i].offset);
        put_u64le(p + 8, frames[i].size_bytes);
        put_u64le(p + 16, frames[i].records);
        put_u64le(p + 24, frames[i].raw_bytes);
    }
    uint8_t *f = buf + len;
    put_u64le(f, *offset);
    put_u32le(f + 8, (uint32_t)len);
    put_u32le(f + 12, XXH32(buf, len, 0));
    memcpy(f + 16, LMR_SHUFFLE_MAGIC, 8);
    enum lmr_result rc = lmr_store_write(sw, buf, len + LMR_SHUFFLE_FOOTER_BYTES, err);
    if (rc == LMR_OK)
        *offset += len + LMR_SHUFFLE_FOOTER_BYTES;
    free(buf);
    return rc;
}

enum lmr_result lmr_shuffle_read_index(struct lmr_store *store, const char *key, struct lmr_partition_frame **frames,
                                       uint32_t *partitions, struct lmr_err *err)
{
    uint64_t size;
    enum lmr_result rc = lmr_store_head(store, key, &size, err);
    if (rc != LMR_OK)
        return rc;
    if (size < LMR_SHUFFLE_FOOTER_BYTES + 8)
        return lmr_fail(err, LMR_ERR_FORMAT,
                        "Shuffle object %s is too short (%llu bytes) to hold a footer; it is truncated or not a "
                        "lambdamr shuffle object.",
                        key, (unsigned long long)size);
    struct lmr_buf b;
    lmr_buf_init(&b, (size_t)8 + (size_t)LMR_SHUFFLE_MAX_PARTITIONS * 32);
    rc = lmr_store_get(store, key, size - LMR_SHUFFLE_FOOTER_BYTES, LMR_SHUFFLE_FOOTER_BYTES, &b, err);
    if (rc != LMR_OK)
        goto out;
    if (b.len != LMR_SHUFFLE_FOOTER_BYTES || memcmp(b.data + 16, LMR_SHUFFLE_MAGIC, 8) != 0) {
        rc = lmr_fail(err, LMR_ERR_FORMAT,
                      "Shuffle object %s has no valid footer (bad magic); it is truncated or not a lambdamr shuffle "
                      "object.",
                      key);
        goto out;
    }
    const uint8_t *f = (const uint8_t *)b.data;
    uint64_t index_offset = get_u64le(f);
    uint32_t index_len = get_u32le(f + 8), sum = get_u32le(f + 12);
    if (index_len < 8 || index_offset > size || index_offset + index_len + LMR_SHUFFLE_FOOTER_BYTES != size) {
        rc = lmr_fail(err, LMR_ERR_FORMAT, "Shuffle object %s has an inconsistent footer (index at %llu, %u bytes).",
                      key, (unsigned long long)index_offset, index_len);
        goto out;
    }
    lmr_buf_reset(&b);
    rc = lmr_store_get(store, key, index_offset, index_len, &b, err);
    if (rc != LMR_OK)
        goto out;
    const uint8_t *p = (const uint8_t *)b.data;
    uint32_t n = b.len >= 8 ? get_u32le(p + 4) : 0;
    if (b.len != index_len || XXH32(p, b.len, 0) != sum || get_u32le(p) != LMR_SHUFFLE_INDEX_VERSION ||
        n > LMR_SHUFFLE_MAX_PARTITIONS || index_len != 8 + (size_t)n * 32) {
        rc = lmr_fail(err, LMR_ERR_FORMAT,
                      "Shuffle object %s has a corrupt index (checksum, version or length mismatch).", key);
        goto out;
    }
    struct lmr_partition_frame *fr = calloc(n ? n : 1, sizeof *fr);
    if (!fr) {
        rc = lmr_fail(err, LMR_ERR_NOMEM, "Out of memory reading the index of %s.", key);
        goto out;
    }
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *q = p + 8 + (size_t)i * 32;
        fr[i] = (struct lmr_partition_frame){get_u64le(q), get_u64le(q + 8), get_u64le(q + 16), get_u64le(q + 24)};
        if (fr[i].offset > index_offset || fr[i].size_bytes > index_offset - fr[i].offset) {
            free(fr);
            rc = lmr_fail(err, LMR_ERR_FORMAT,
                          "Shuffle object %s: the index entry of partition %u points outside "
                          "the object's data.",
                          key, i);
            goto out;
        }
    }
    *frames = fr;
    *partitions = n;
out:
    lmr_buf_clean_up(&b);
    return rc;
}

/* ---- frame reader ------------------------------------------------------------------------------------------- */

struct lmr_frame_reader {
    ZSTD_DCtx *dctx;
    struct lmr_store_reader *sr;
    uint8_t *in;
    ZSTD_inBuffer zin;
    uint8_t *buf; /* decoded bytes [start, end) not yet returned */
    size_t cap, start, end;
    bool open, src_eof, frame_done, finished;
    bool shared;        /* sr belongs to the caller (lmr_frame_reader_open_on): read only this frame's bytes */
    uint64_t remaining; /* shared: bytes of this frame not yet read from sr */
    uint64_t fetched;
    char key[256]; /* for messages (truncated) */
};

static size_t dctx_estimate(void)
{
    static size_t cached;
    if (!cached)
        cached = ZSTD_estimateDStreamSize((size_t)1 << LMR_SHUFFLE_WINDOW_LOG);
    return cached;
}

size_t lmr_frame_reader_memory_bytes(void)
{
    return dctx_estimate() + READ_IN_BYTES + READ_OUT_BYTES + sizeof(struct lmr_frame_reader);
}

enum lmr_result lmr_frame_reader_new(struct lmr_frame_reader **out, struct lmr_err *err)
{
    struct lmr_frame_reader *fr = calloc(1, sizeof *fr);
    if (!fr)
        return lmr_fail(err, LMR_ERR_NOMEM, "Out of memory creating a shuffle frame reader.");
    fr->in = malloc(READ_IN_BYTES);
    fr->cap = READ_OUT_BYTES;
    fr->buf = malloc(fr->cap);
    if (!fr->in || !fr->buf) {
        lmr_frame_reader_destroy(fr);
        return lmr_fail(err, LMR_ERR_NOMEM, "Out of memory creating a shuffle frame reader.");
    }
    *out = fr; /* its streaming context is created when a frame needs one (need_dctx) */
    return LMR_OK;
}

void lmr_frame_reader_close(struct lmr_frame_reader *fr)
{
    if (fr->sr && !fr->shared)
        lmr_store_close_read(fr->sr);
    fr->shared = false;
    fr->sr = NULL;
    fr->open = false;
}

void lmr_frame_reader_destroy(struct lmr_frame_reader *fr)
{
    if (!fr)
        return;
    lmr_frame_reader_close(fr);
    ZSTD_freeDCtx(fr->dctx);
    free(fr->in);
    free(fr->buf);
    free(fr);
}

uint64_t lmr_frame_reader_bytes_fetched(const struct lmr_frame_reader *fr)
{
    return fr->fetched;
}

/* Reset the reader for a new frame of `key` (after closing the last one). */
static void reset_for(struct lmr_frame_reader *fr, const char *key)
{
    lmr_frame_reader_close(fr);
    if (fr->cap > 4 * READ_OUT_BYTES) { /* give back what a huge record of the last frame took */
        uint8_t *nb = realloc(fr->buf, READ_OUT_BYTES);
        if (nb) {
            fr->buf = nb;
            fr->cap = READ_OUT_BYTES;
        }
    }
    snprintf(fr->key, sizeof fr->key, "%s", key);
    fr->zin = (ZSTD_inBuffer){fr->in, 0, 0};
    fr->start = fr->end = 0;
    fr->src_eof = fr->frame_done = fr->finished = false;
    fr->remaining = 0;
}

/* The reader's streaming decompression context, created on first use and reset for a new frame. */
static enum lmr_result need_dctx(struct lmr_frame_reader *fr, struct lmr_err *err)
{
    if (!fr->dctx) {
        if (!(fr->dctx = ZSTD_createDCtx()))
            return lmr_fail(err, LMR_ERR_NOMEM, "Out of memory creating a shuffle frame reader.");
        ZSTD_DCtx_setParameter(fr->dctx, ZSTD_d_windowLogMax, LMR_SHUFFLE_WINDOW_LOG);
    }
    ZSTD_DCtx_reset(fr->dctx, ZSTD_reset_session_only);
    return LMR_OK;
}

/*
 * Small frames are decoded whole, with one decompression context the process shares (a reducer
 * that merges thousands of small frames then creates no context per frame reader: creating them
 * was an eighth of a 2,000-frame reducer's time). A frame qualifies when its compressed bytes fit
 * the input buffer and its header states a content size of at most SMALL_FRAME_MAX_CONTENT; any
 * doubt (no content size, a truncated or damaged frame) takes the streaming path, which reports
 * damage as it always has. A thread that finds the context busy waits for it (one small frame's
 * decode): a merger opens its frames on several threads at once (merge.c), and giving each of
 * them a context of its own would cost what the shared one saves.
 */
#define SMALL_FRAME_MAX_CONTENT (4 * READ_OUT_BYTES)
static pthread_mutex_t small_lock = PTHREAD_MUTEX_INITIALIZER;
static ZSTD_DCtx *small_dctx; /* guarded by small_lock; kept for the process's life */

static bool decode_whole(struct lmr_frame_reader *fr, size_t n)
{
    unsigned long long content = ZSTD_getFrameContentSize(fr->in, n);
    size_t whole = ZSTD_findFrameCompressedSize(fr->in, n);
    if (ZSTD_isError(whole) || whole != n || content == ZSTD_CONTENTSIZE_UNKNOWN || content == ZSTD_CONTENTSIZE_ERROR ||
        content > SMALL_FRAME_MAX_CONTENT)
        return false;
    if (fr->cap < content) {
        uint8_t *nb = realloc(fr->buf, (size_t)content);
        if (!nb)
            return false;
        fr->buf = nb;
        fr->cap = (size_t)content;
    }
    pthread_mutex_lock(&small_lock);
    if (!small_dctx && (small_dctx = ZSTD_createDCtx()))
        ZSTD_DCtx_setParameter(small_dctx, ZSTD_d_windowLogMax, LMR_SHUFFLE_WINDOW_LOG);
    size_t got = small_dctx ? ZSTD_decompressDCtx(small_dctx, fr->buf, fr->cap, fr->in, n) : 0;
    bool ok = small_dctx && !ZSTD_isError(got) && got == content;
    pthread_mutex_unlock(&small_lock);
    if (!ok)
        return false;
    fr->start = 0;
    fr->end = (size_t)content;
    fr->frame_done = fr->src_eof = true;
    fr->zin = (ZSTD_inBuffer){fr->in, 0, 0};
    return true;
}

enum lmr_result lmr_frame_reader_open(struct lmr_frame_reader *fr, struct lmr_store *store, const char *key,
                                      uint64_t offset, uint64_t size_bytes, struct lmr_err *err)
{
    return lmr_frame_reader_open_with(fr, store, key, offset, size_bytes, NULL, err);
}

enum lmr_result lmr_frame_reader_open_with(struct lmr_frame_reader *fr, struct lmr_store *store, const char *key,
                                           uint64_t offset, uint64_t size_bytes,
                                           const struct lmr_store_read_options *read_opts, struct lmr_err *err)
{
    reset_for(fr, key);
    if (size_bytes == 0) {
        fr->src_eof = fr->frame_done = true;
        fr->open = true;
        return LMR_OK;
    }
    enum lmr_result rc = lmr_store_open_read_with(store, key, offset, size_bytes, read_opts, &fr->sr, err);
    if (rc != LMR_OK) {
        fr->sr = NULL;
        return rc;
    }
    fr->open = true;
    if (size_bytes <= READ_IN_BYTES) { /* read it whole: decoded at once when small, else streamed */
        size_t n = 0, got = 1;
        while (n < size_bytes && got) {
            if ((rc = lmr_store_read(fr->sr, fr->in + n, (size_t)size_bytes - n, &got, err)) != LMR_OK)
                return rc;
            n += got;
        }
        fr->fetched += n;
        if (n == size_bytes && decode_whole(fr, n)) {
            lmr_store_close_read(fr->sr);
            fr->sr = NULL;
            return LMR_OK;
        }
        fr->zin = (ZSTD_inBuffer){fr->in, n, 0};
        if (n < size_bytes)
            fr->src_eof = true; /* the object ended early: the stream reports the truncation */
    }
    return need_dctx(fr, err);
}

enum lmr_result lmr_frame_reader_open_on(struct lmr_frame_reader *fr, struct lmr_store_reader *sr, const char *key,
                                         uint64_t size_bytes, struct lmr_err *err)
{
    reset_for(fr, key);
    fr->open = true;
    if (size_bytes == 0) {
        fr->src_eof = fr->frame_done = true;
        return LMR_OK;
    }
    enum lmr_result rc = need_dctx(fr, err);
    if (rc != LMR_OK)
        return rc;
    fr->sr = sr;
    fr->shared = true;
    fr->remaining = size_bytes;
    return LMR_OK;
}

static enum lmr_result format_error(struct lmr_frame_reader *fr, struct lmr_err *err, const char *what)
{
    lmr_frame_reader_close(fr);
    return lmr_fail(err, LMR_ERR_FORMAT,
                    "Shuffle frame in %s is corrupt (%s); the intermediate object was damaged or truncated: rerun the "
                    "map task that wrote it.",
                    fr->key, what);
}

/* Refill compressed input. */
static enum lmr_result read_in(struct lmr_frame_reader *fr, struct lmr_err *err)
{
    size_t got = 0, want = READ_IN_BYTES;
    if (fr->shared) { /* never past this frame: the next one belongs to the next open */
        if (fr->remaining < want)
            want = (size_t)fr->remaining;
        if (!want) {
            fr->zin = (ZSTD_inBuffer){fr->in, 0, 0};
            fr->src_eof = true;
            return LMR_OK;
        }
    }
    enum lmr_result rc = lmr_store_read(fr->sr, fr->in, want, &got, err);
    if (rc != LMR_OK)
        return rc;
    if (fr->shared)
        fr->remaining -= got;
    fr->fetched += got;
    fr->zin = (ZSTD_inBuffer){fr->in, got, 0};
    if (!got)
        fr->src_eof = true;
    return LMR_OK;
}

/* Decode more bytes into buf[end, cap). On return either some bytes were added or frame_done is set. */
static enum lmr_result fill(struct lmr_frame_reader *fr, struct lmr_err *err)
{
    for (;;) {
        if (fr->zin.pos == fr->zin.size) {
            if (!fr->src_eof) {
                enum lmr_result rc = read_in(fr, err);
                if (rc != LMR_OK)
                    return rc;
            }
            if (fr->src_eof)
                return format_error(fr, err, "the zstd frame is truncated");
        }
        ZSTD_outBuffer o = {fr->buf, fr->cap, fr->end};
        size_t ret = ZSTD_decompressStream(fr->dctx, &o, &fr->zin);
        if (ZSTD_isError(ret))
            return format_error(fr, err, ZSTD_getErrorName(ret));
        size_t produced = o.pos - fr->end;
        fr->end = o.pos;
        if (ret == 0) {
            fr->frame_done = true;
            return LMR_OK;
        }
        if (produced)
            return LMR_OK;
    }
}

/* After the frame's end: the range must hold nothing more. */
static enum lmr_result check_trailing(struct lmr_frame_reader *fr, struct lmr_err *err)
{
    if (fr->zin.pos < fr->zin.size)
        return format_error(fr, err, "bytes follow the end of the zstd frame");
    while (fr->sr && !fr->src_eof) {
        enum lmr_result rc = read_in(fr, err);
        if (rc != LMR_OK)
            return rc;
        if (fr->zin.size)
            return format_error(fr, err, "bytes follow the end of the zstd frame");
    }
    return LMR_OK;
}

/* Parse a msgpack byte-string header at p (avail bytes). @return header size, 0 if incomplete, -1 if invalid. */
static int parse_str_header(const uint8_t *p, size_t avail, size_t *len)
{
    if (!avail)
        return 0;
    uint8_t t = p[0];
    if ((t & 0xe0) == 0xa0) {
        *len = t & 0x1f;
        return 1;
    }
    int n;
    switch (t) {
    case 0xc4:
    case 0xd9:
        n = 1;
        break;
    case 0xc5:
    case 0xda:
        n = 2;
        break;
    case 0xc6:
    case 0xdb:
        n = 4;
        break;
    default:
        return -1;
    }
    if (avail < (size_t)n + 1)
        return 0;
    size_t v = 0;
    for (int i = 1; i <= n; i++)
        v = v << 8 | p[i];
    *len = v;
    return n + 1;
}

/*
 * Try to parse one record at buf[start, end). @return 1 parsed, 0 need more (*need = total bytes
 * needed if known, else 0), -1 invalid.
 */
static int parse_record(struct lmr_frame_reader *fr, struct lmr_slice *key, struct lmr_slice *value, size_t *need)
{
    const uint8_t *p = fr->buf + fr->start;
    size_t avail = fr->end - fr->start;
    *need = 0;
    /* The common record, a bin 8 key and a bin 8 value wholly buffered, without the general
       header parsing below (which reads the same bytes the same way). */
    if (avail >= 5 && p[0] == 0x92 && p[1] == 0xc4) {
        size_t kl = p[2];
        if (avail >= 5 + kl && p[3 + kl] == 0xc4) {
            size_t total = 5 + kl + p[4 + kl];
            if (avail >= total) {
                *key = (struct lmr_slice){p + 3, kl};
                *value = (struct lmr_slice){p + 5 + kl, total - 5 - kl};
                fr->start += total;
                return 1;
            }
        }
    }
    if (!avail)
        return 0;
    if (p[0] != 0x92)
        return -1;
    size_t klen, vlen;
    int h1 = parse_str_header(p + 1, avail - 1, &klen);
    if (h1 <= 0)
        return h1;
    size_t pos = 1 + (size_t)h1;
    if (klen > LMR_SHUFFLE_MAX_RECORD_BYTES)
        return -2;
    if (avail < pos + klen) {
        *need = pos + klen + 1;
        return 0;
    }
    int h2 = parse_str_header(p + pos + klen, avail - pos - klen, &vlen);
    if (h2 <= 0) {
        *need = h2 == 0 ? pos + klen + 5 : 0;
        return h2;
    }
    if (vlen > LMR_SHUFFLE_MAX_RECORD_BYTES || klen + vlen > LMR_SHUFFLE_MAX_RECORD_BYTES)
        return -2;
    size_t total = pos + klen + (size_t)h2 + vlen;
    if (avail < total) {
        *need = total;
        return 0;
    }
    *key = (struct lmr_slice){p + pos, klen};
    *value = (struct lmr_slice){p + pos + klen + h2, vlen};
    fr->start += total;
    return 1;
}

enum lmr_result lmr_frame_reader_next(struct lmr_frame_reader *fr, bool *has_record, struct lmr_slice *key,
                                      struct lmr_slice *value, struct lmr_err *err)
{
    *has_record = false;
    if (!fr->open)
        return fr->finished ? LMR_OK
                            : lmr_fail(err, LMR_ERR_INVALID, "Shuffle frame reader used after an error or close.");
    for (;;) {
        size_t need;
        int r = parse_record(fr, key, value, &need);
        if (r == 1) {
            *has_record = true;
            return LMR_OK;
        }
        if (r == -1)
            return format_error(fr, err, "a record is not a msgpack [bin, bin] array");
        if (r == -2)
            return format_error(fr, err, "a record is larger than the 1 GiB limit");
        if (fr->frame_done) {
            if (fr->start != fr->end)
                return format_error(fr, err, "the frame ends inside a record");
            enum lmr_result rc = check_trailing(fr, err);
            if (rc != LMR_OK)
                return rc;
            lmr_frame_reader_close(fr);
            fr->finished = true;
            return LMR_OK;
        }
        /* Make room: move the partial record to the front, grow for records larger than the buffer.
         * Grow only when the buffer is full of decoded bytes, never to the size a record header
         * claims: a corrupt 40-byte frame claiming a 1 GiB key must not get 1 GiB (reproducer:
         * fuzz/corpus/fuzz_frame/regress-claimed-1gib-key). */
        if (fr->start > 0) {
            memmove(fr->buf, fr->buf + fr->start, fr->end - fr->start);
            fr->end -= fr->start;
            fr->start = 0;
        }
        (void)need;
        if (fr->end == fr->cap) {
            size_t ncap = fr->cap * 2;
            uint8_t *nb = realloc(fr->buf, ncap);
            if (!nb)
                return lmr_fail(err, LMR_ERR_NOMEM, "Out of memory decoding a %zu-byte shuffle record from %s.", need,
                                fr->key);
            fr->buf = nb;
            fr->cap = ncap;
        }
        enum lmr_result rc = fill(fr, err);
        if (rc != LMR_OK)
            return rc;
    }
}
