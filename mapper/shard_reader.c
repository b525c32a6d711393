#define _GNU_SOURCE /* memrchr */
#include "shard_reader.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#define READ_CHUNK_BYTES (1u << 20)
#define TAIL_CHUNK_BYTES (64u << 10)
/* Bytes past a shard's end that its reader fetches with the shard (usually enough for the last line). */
#define TAIL_AHEAD_BYTES (16u << 10)

/*
 * A stream of (possibly decompressed) bytes from one store range. A compressed object must end
 * on a frame boundary: a gzip member without its trailer, a CRC-32 or ISIZE that does not
 * match, a zstd frame cut short or failing its checksum fail the read with the object's name
 * and the byte offset (in the compressed object) where the damage was found.
 */
struct byte_source {
    struct lmr_store *store;
    const char *key;
    struct lmr_store_reader *rd;
    enum lmr_codec codec;
    z_stream z;
    bool z_live; /* inside a gzip member */
    ZSTD_DStream *zd;
    bool zstd_in_frame; /* inside a zstd frame (the last call did not end it) */
    uint8_t *cbuf;      /* compressed input */
    size_t clen, cpos;
    uint64_t cbuf_offset;  /* object offset of cbuf[0] */
    uint64_t frame_offset; /* object offset where the current gzip member or zstd frame began */
    bool raw_eof;
    uint64_t *bytes_read;
    /* Uncompressed: the store reader covers [.., range_end) and hands over bytes only up to
       visible_end; raw_pos is the object offset of its next byte. A shard's reader asks for a
       little more than the shard (the tail chunk that usually finishes its last line) in the
       same read-ahead, so that line rarely needs a request of its own after the range. */
    uint64_t raw_pos, visible_end, range_end;
};

static enum lmr_result raw_read(struct byte_source *s, void *buf, size_t cap, size_t *got, struct lmr_err *err)
{
    if (s->codec == LMR_CODEC_NONE && s->visible_end - s->raw_pos < cap)
        cap = (size_t)(s->visible_end - s->raw_pos);
    *got = 0;
    enum lmr_result r = cap ? lmr_store_read(s->rd, buf, cap, got, err) : LMR_OK;
    if (!r) {
        *s->bytes_read += *got;
        s->raw_pos += *got;
    }
    return r;
}

static enum lmr_result refill_compressed(struct byte_source *s, struct lmr_err *err)
{
    if (s->cpos < s->clen || s->raw_eof)
        return LMR_OK;
    size_t got;
    enum lmr_result r = raw_read(s, s->cbuf, READ_CHUNK_BYTES, &got, err);
    if (r)
        return r;
    s->cbuf_offset += s->clen;
    s->clen = got;
    s->cpos = 0;
    if (got == 0)
        s->raw_eof = true;
    return LMR_OK;
}

static const char *codec_name(enum lmr_codec c)
{
    return c == LMR_CODEC_ZSTD ? "zstd frame" : "gzip member";
}

/* The object ended inside a gzip member or zstd frame. */
static enum lmr_result truncated(const struct byte_source *s, struct lmr_err *err)
{
    return lmr_fail(err, LMR_ERR_FORMAT,
                    "'%s' is truncated: it ends at byte %llu inside the %s that starts at byte %llu; "
                    "the object is incomplete (check how it was written or copied, e.g. with gzip -t or zstd -t)",
                    s->key, (unsigned long long)(s->cbuf_offset + s->clen), codec_name(s->codec),
                    (unsigned long long)s->frame_offset);
}

/* One zstd step over the buffered input (none at the end: that flushes what the frame holds). */
static enum lmr_result zstd_step(struct byte_source *s, uint8_t *buf, size_t cap, size_t *got, struct lmr_err *err)
{
    if (!s->zstd_in_frame)
        s->frame_offset = s->cbuf_offset + s->cpos;
    ZSTD_inBuffer in = {s->cbuf, s->clen, s->cpos};
    ZSTD_outBuffer out = {buf, cap, 0};
    size_t rc = ZSTD_decompressStream(s->zd, &out, &in);
    if (ZSTD_isError(rc))
        return lmr_fail(
            err, LMR_ERR_FORMAT,
            "'%s' is not valid zstd data in the frame that starts at byte %llu (found decoding from byte %llu): %s",
            s->key, (unsigned long long)s->frame_offset, (unsigned long long)(s->cbuf_offset + in.pos),
            ZSTD_getErrorName(rc));
    s->cpos = in.pos;
    *got = out.pos;
    s->zstd_in_frame = rc != 0; /* 0: a frame ended and all of it was flushed */
    return LMR_OK;
}

/* One inflate step over the buffered input; a new gzip member begins where the last ended. */
static enum lmr_result gzip_step(struct byte_source *s, uint8_t *buf, size_t cap, size_t *got, struct lmr_err *err)
{
    if (!s->z_live) { /* a new gzip member (files may concatenate several) */
        memset(&s->z, 0, sizeof s->z);
        if (inflateInit2(&s->z, 16 + MAX_WBITS) != Z_OK)
            return lmr_fail(err, LMR_ERR_NOMEM, "out of memory starting to decompress '%s'", s->key);
        s->z_live = true;
        s->frame_offset = s->cbuf_offset + s->cpos;
    }
    s->z.next_in = s->cbuf + s->cpos;
    s->z.avail_in = (uInt)(s->clen - s->cpos);
    s->z.next_out = buf;
    s->z.avail_out = (uInt)cap;
    int zr = inflate(&s->z, Z_NO_FLUSH);
    s->cpos = s->clen - s->z.avail_in;
    *got = cap - s->z.avail_out;
    if (zr == Z_STREAM_END) {
        inflateEnd(&s->z);
        s->z_live = false;
    } else if (zr != Z_OK && zr != Z_BUF_ERROR) {
        /* a CRC-32 or ISIZE mismatch ("incorrect data check", "incorrect length check") lands here */
        return lmr_fail(err, LMR_ERR_FORMAT,
                        "'%s' is not valid gzip data at byte %llu (in the member that starts at byte %llu): %s", s->key,
                        (unsigned long long)(s->cbuf_offset + s->cpos), (unsigned long long)s->frame_offset,
                        s->z.msg ? s->z.msg : "inflate failed");
    }
    return LMR_OK;
}

/* Up to cap decompressed bytes; *got == 0 only at the end of the stream. */
static enum lmr_result source_read(struct byte_source *s, uint8_t *buf, size_t cap, size_t *got, struct lmr_err *err)
{
    *got = 0;
    if (s->codec == LMR_CODEC_NONE)
        return raw_read(s, buf, cap, got, err);
    while (*got == 0) {
        enum lmr_result r = refill_compressed(s, err);
        if (r)
            return r;
        bool input_done = s->raw_eof && s->cpos >= s->clen;
        bool in_frame = s->codec == LMR_CODEC_ZSTD ? s->zstd_in_frame : s->z_live;
        if (input_done && !in_frame)
            return LMR_OK;
        /* At the end of the input an open frame may still hold output: flush it before judging. */
        r = s->codec == LMR_CODEC_ZSTD ? zstd_step(s, buf, cap, got, err) : gzip_step(s, buf, cap, got, err);
        if (r)
            return r;
        in_frame = s->codec == LMR_CODEC_ZSTD ? s->zstd_in_frame : s->z_live;
        if (input_done && *got == 0 && in_frame)
            return truncated(s, err);
    }
    return LMR_OK;
}

static void source_close(struct byte_source *s)
{
    lmr_store_close_read(s->rd);
    s->rd = NULL;
    if (s->z_live)
        inflateEnd(&s->z);
    s->z_live = false;
    ZSTD_freeDStream(s->zd);
    s->zd = NULL;
    free(s->cbuf);
    s->cbuf = NULL;
}

/* The growable line buffer. */
struct line_buf {
    uint8_t *data;
    size_t len, pos, cap, max_bytes;
};

/* line_offset: where the line being read starts (in the decompressed data when compressed). */
static enum lmr_result line_buf_make_room(struct line_buf *b, const char *key, uint64_t line_offset, bool compressed,
                                          struct lmr_err *err)
{
    if (b->pos > 0) {
        memmove(b->data, b->data + b->pos, b->len - b->pos);
        b->len -= b->pos;
        b->pos = 0;
    }
    if (b->len < b->cap)
        return LMR_OK;
    if (b->cap >= b->max_bytes)
        return lmr_fail(err, LMR_ERR_TOO_LARGE,
                        "the line that starts at byte %llu of '%s'%s is longer than %zu bytes, the most this task's "
                        "memory allows; give the function more memory (--memory)",
                        (unsigned long long)line_offset, key, compressed ? " (decompressed)" : "", b->max_bytes);
    size_t cap = b->cap * 2 > b->max_bytes ? b->max_bytes : b->cap * 2;
    uint8_t *p = realloc(b->data, cap);
    if (!p)
        return LMR_ERR_NOMEM;
    b->data = p;
    b->cap = cap;
    return LMR_OK;
}

static enum lmr_result emit_line(lmr_line_fn fn, void *ud, const uint8_t *p, size_t n, uint64_t offset,
                                 struct lmr_shard_stats *stats, struct lmr_err *err)
{
    if (n > 0 && p[n - 1] == '\r')
        n--;
    stats->records++;
    return fn(ud, (struct lmr_slice){p, n}, offset, err);
}

/* The number of '\n' in [p, p + n). */
static uint64_t count_newlines(const uint8_t *p, size_t n)
{
    uint64_t count = 0;
    size_t i = 0;
#ifdef __SSE2__
    const __m128i nl = _mm_set1_epi8('\n'), zero = _mm_setzero_si128();
    while (i + 16 <= n) {
        /* per-byte counters (0 - (-1) per match), summed before they can wrap */
        __m128i acc = zero;
        for (int k = 0; k < 255 && i + 16 <= n; k++, i += 16)
            acc = _mm_sub_epi8(acc, _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(p + i)), nl));
        __m128i sums = _mm_sad_epu8(acc, zero);
        count += (uint64_t)_mm_cvtsi128_si64(sums) + (uint64_t)_mm_cvtsi128_si64(_mm_unpackhi_epi64(sums, sums));
    }
#endif
    for (; i < n; i++)
        count += p[i] == '\n';
    return count;
}

enum lmr_result lmr_shard_read(struct lmr_store *store, const struct lmr_shard *shard,
                               const struct lmr_shard_read_limits *limits, lmr_block_fn block_fn, lmr_line_fn fn,
                               void *user_data, struct lmr_shard_stats *stats, struct lmr_err *err)
{
    size_t max_line_bytes = limits->max_line_bytes;
    const char *key = shard->object.key;
    bool compressed = shard->codec != LMR_CODEC_NONE;
    uint64_t start = compressed ? 0 : shard->offset;
    uint64_t end = compressed ? UINT64_MAX : shard->offset + shard->length;
    bool skipping = !compressed && start > 0; /* drop the line that began in the previous shard */
    uint64_t read_from = skipping ? start - 1 : start;
    struct byte_source src = {.store = store, .key = key, .codec = shard->codec, .bytes_read = &stats->bytes_read};
    struct line_buf b = {.cap = READ_CHUNK_BYTES,
                         .max_bytes = max_line_bytes < READ_CHUNK_BYTES ? READ_CHUNK_BYTES : max_line_bytes};
    enum lmr_result r = LMR_OK;
    b.data = malloc(b.cap);
    if (!b.data)
        return LMR_ERR_NOMEM;
    if (compressed) {
        src.cbuf = malloc(READ_CHUNK_BYTES);
        if (!src.cbuf || (shard->codec == LMR_CODEC_ZSTD && !(src.zd = ZSTD_createDStream()))) {
            r = LMR_ERR_NOMEM;
            goto done;
        }
    }
    /* One sequential reader for the shard and its tail chunk, read ahead within the task's share. */
    uint64_t range_end = end;
    if (!compressed && shard->object_size > end)
        range_end = shard->object_size - end > TAIL_AHEAD_BYTES ? end + TAIL_AHEAD_BYTES : shard->object_size;
    struct lmr_store_read_options ropts = {.max_in_flight_bytes = limits->read_ahead_bytes, .sequential = true};
    r = lmr_store_open_read_with(store, key, read_from, compressed ? LMR_STORE_TO_END : range_end - read_from, &ropts,
                                 &src.rd, err);
    if (r)
        goto done;
    src.raw_pos = read_from;
    src.visible_end = compressed ? UINT64_MAX : end;
    src.range_end = compressed ? UINT64_MAX : range_end;

    uint64_t base = read_from; /* object offset of b.data[0] (uncompressed) */
    uint64_t line_no = 0;      /* line index (compressed objects report this as the offset) */
    bool in_tail = false;      /* reading past `end`, a chunk at a time, to finish the last line */
    uint64_t tail_pos = end;   /* next object offset to fetch in the tail */
    uint64_t chunk_bytes = 0;  /* bytes the current tail chunk gave (0: the object ended early) */
    for (;;) {
        /* Hand over every complete line in the buffer: as one block when the job takes blocks. */
        if (block_fn && skipping && !in_tail) {
            uint8_t *nl = memchr(b.data + b.pos, '\n', b.len - b.pos);
            if (nl) {
                skipping = false;
                b.pos = (size_t)(nl + 1 - b.data);
            }
        }
        if (block_fn && !skipping && !in_tail && b.pos < b.len) {
            uint8_t *last = memrchr(b.data + b.pos, '\n', b.len - b.pos);
            if (last) {
                size_t n = (size_t)(last + 1 - (b.data + b.pos));
                uint64_t lines = count_newlines(b.data + b.pos, n);
                stats->records += lines;
                if ((r = block_fn(user_data, (struct lmr_slice){b.data + b.pos, n}, lines,
                                  compressed ? line_no : base + b.pos, err)))
                    goto done;
                line_no += lines;
                b.pos += n;
            }
        }
        while (b.pos < b.len) {
            uint8_t *nl = memchr(b.data + b.pos, '\n', b.len - b.pos);
            if (!nl)
                break;
            size_t n = (size_t)(nl - (b.data + b.pos));
            if (skipping) {
                skipping = false;
            } else {
                if ((r = emit_line(fn, user_data, b.data + b.pos, n, compressed ? line_no : base + b.pos, stats, err)))
                    goto done;
                line_no++;
            }
            b.pos += n + 1;
            if (in_tail) /* the line that crossed the end is done */
                goto done;
        }
        if (skipping)
            b.pos = b.len; /* the bytes of a line that began in the previous shard are not kept */
        uint64_t line_start = base + b.pos;
        if (!compressed && !in_tail && !skipping && line_start >= end)
            goto done;                 /* the next line starts in the next shard */
        if (limits->cut && !in_tail) { /* rebalancing: the task may hand the rest of its input to another */
            uint64_t cut_at = limits->cut(limits->cut_user_data, compressed ? 0 : src.raw_pos, end);
            if (!compressed && cut_at < end && cut_at >= src.raw_pos) {
                end = cut_at;
                src.visible_end = cut_at;
                tail_pos = cut_at;
                if (!skipping && line_start >= end)
                    goto done; /* the next line starts after the cut */
            }
        }
        if ((r = line_buf_make_room(&b, key, line_start, compressed, err)))
            goto done;
        base = line_start;
        size_t got;
        if ((r = source_read(&src, b.data + b.len, b.cap - b.len, &got, err)))
            goto done;
        if (got > 0) {
            b.len += got;
            if (in_tail) {
                tail_pos += got;
                chunk_bytes += got;
            }
            continue;
        }
        /* The current range is exhausted. */
        if (skipping || b.len == b.pos)
            goto done; /* no line starts in this shard, or the range ended on a line boundary */
        bool object_end = compressed || (in_tail ? tail_pos : end) >= shard->object_size || (in_tail && !chunk_bytes);
        if (object_end) { /* the object's last line has no terminator */
            r = emit_line(fn, user_data, b.data + b.pos, b.len - b.pos, compressed ? line_no : base + b.pos, stats,
                          err);
            goto done;
        }
        /* A line started in our range and runs past its end: follow it, a chunk at a time (the
           first chunk, or what of it the object has, is already in the shard's reader). */
        if (src.visible_end < src.range_end) {
            src.visible_end = src.range_end - tail_pos > TAIL_CHUNK_BYTES ? tail_pos + TAIL_CHUNK_BYTES : src.range_end;
        } else {
            lmr_store_close_read(src.rd);
            src.rd = NULL;
            if ((r = lmr_store_open_read(store, key, tail_pos, TAIL_CHUNK_BYTES, &src.rd, err)))
                goto done;
            src.raw_pos = tail_pos;
            src.visible_end = src.range_end = tail_pos + TAIL_CHUNK_BYTES;
        }
        in_tail = true;
        chunk_bytes = 0;
    }
done:
    source_close(&src);
    free(b.data);
    return r;
}

enum lmr_result lmr_shard_read_lines(struct lmr_store *store, const struct lmr_shard *shard, size_t max_line_bytes,
                                     lmr_line_fn fn, void *user_data, struct lmr_shard_stats *stats,
                                     struct lmr_err *err)
{
    struct lmr_shard_read_limits limits = {.max_line_bytes = max_line_bytes};
    return lmr_shard_read(store, shard, &limits, NULL, fn, user_data, stats, err);
}

enum lmr_result lmr_shard_read_blocks(struct lmr_store *store, const struct lmr_shard *shard, size_t max_line_bytes,
                                      lmr_block_fn block_fn, lmr_line_fn line_fn, void *user_data,
                                      struct lmr_shard_stats *stats, struct lmr_err *err)
{
    struct lmr_shard_read_limits limits = {.max_line_bytes = max_line_bytes};
    return lmr_shard_read(store, shard, &limits, block_fn, line_fn, user_data, stats, err);
}
