/*
 * Shuffle frames and objects (the format is written down in docs/FORMATS.md).
 *
 * A shuffle object (the intermediate object of a map task, a map-side spill run, a reduce-side
 * merge run) holds one zstd frame per partition, then an index and a fixed footer:
 *
 *     frame(0) frame(1) ... frame(R-1) index footer
 *
 * Each frame is one zstd frame (content checksum on, window <= 2^LMR_SHUFFLE_WINDOW_LOG) whose
 * content is a sequence of msgpack records [bin key, bin value], sorted by key. An empty
 * partition has no frame at all (size 0).
 *
 * This file has the streaming pieces everything else builds on: a frame writer (encode +
 * compress into a store writer, contexts reused across frames) and a frame reader (ranged
 * read + streaming decompress + decode, zero-copy record slices, contexts reused across
 * frames), plus reading and writing an object's index and footer.
 */
#ifndef LMR_SHUFFLE_FRAME_H
#define LMR_SHUFFLE_FRAME_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lambdamr/job.h"
#include "store/store.h"
#include "util/result.h"

/* zstd window of the frames we write (and the largest we accept when reading): 64 KiB, ~0.5 MiB per reader. */
#define LMR_SHUFFLE_WINDOW_LOG 16
/* The footer's magic (8 bytes) and size. */
#define LMR_SHUFFLE_MAGIC "LMRSHUF1"
#define LMR_SHUFFLE_FOOTER_BYTES 24
#define LMR_SHUFFLE_INDEX_VERSION 1
/* Largest single record (key + value) a reader accepts: a bigger one is LMR_ERR_TOO_LARGE. */
#define LMR_SHUFFLE_MAX_RECORD_BYTES ((size_t)1 << 30)
/* Largest partition count an index may declare. */
#define LMR_SHUFFLE_MAX_PARTITIONS 1000000u

/* Where one partition's frame lies in its object. */
struct lmr_partition_frame {
    uint64_t offset;     /* byte offset of the frame in the object */
    uint64_t size_bytes; /* compressed size; 0 = empty partition (no frame) */
    uint64_t records;    /* number of [key, value] records */
    uint64_t raw_bytes;  /* uncompressed (msgpack) bytes */
};

/* ---- frame writer ------------------------------------------------------------------------------------------- */

struct lmr_frame_writer;

/* The level of frames written without compression: zstd frames of raw blocks (any zstd reader reads
   them; the content checksum is kept), for stores where bytes cost less than compressing them. */
#define LMR_SHUFFLE_LEVEL_NONE INT_MIN

/**
 * The level to write shuffle data at on store when the options say zstd_level (0: the default):
 * a level given is kept; the default is LMR_SHUFFLE_LEVEL_NONE on a file store (a local disk: the
 * bytes go to the page cache at memory speed, and compressing Query 2's intermediate data to 61%
 * cost more CPU than the map's parsing) and 0 (the adaptive level 1 / fast choice of
 * lmr_frame_writer_new) elsewhere (S3, where every byte costs transfer time).
 */
int lmr_shuffle_level_for(const struct lmr_store *store, int zstd_level);

/**
 * Create a frame writer (one zstd compression context, a staging buffer and an output buffer,
 * reused for every frame it writes). zstd_level <= 0 means 1, the default: then the first 16 KiB or
 * more of records the writer compresses (one batch, before its frame starts) are tried at level 1,
 * and if they compress less than 2:1 this frame and every later one are written at zstd's fast level
 * 1 (level -1: about twice the speed on such data, for a few percent more bytes).
 * LMR_SHUFFLE_LEVEL_NONE writes raw (uncompressed) frames. Any other level is used as given.
 */
enum lmr_result lmr_frame_writer_new(int zstd_level, struct lmr_frame_writer **out, struct lmr_err *err);
/** The zstd level the writer compresses at now (the default's choice: 1 or -1; LMR_SHUFFLE_LEVEL_NONE: raw). */
int lmr_frame_writer_level(const struct lmr_frame_writer *fw);
/** Free the writer. NULL-safe. */
void lmr_frame_writer_destroy(struct lmr_frame_writer *fw);
/** @return the bytes a writer at zstd_level holds (context and buffers), for memory budgets. */
size_t lmr_frame_writer_memory_bytes(int zstd_level);

/**
 * Start a frame on the store writer sw, at object offset *offset (the bytes already written to sw).
 * The writer advances *offset as it writes; the pointer must stay valid until lmr_frame_writer_end.
 */
void lmr_frame_writer_begin(struct lmr_frame_writer *fw, struct lmr_store_writer *sw, uint64_t *offset);
/** Append one record to the current frame. */
enum lmr_result lmr_frame_writer_add(struct lmr_frame_writer *fw, struct lmr_slice key, struct lmr_slice value,
                                     struct lmr_err *err);
/** Finish the current frame and describe it in *frame. A frame without records writes nothing. */
enum lmr_result lmr_frame_writer_end(struct lmr_frame_writer *fw, struct lmr_partition_frame *frame,
                                     struct lmr_err *err);

/**
 * Write the index and the footer of an object whose frames are described by frames[0..n) to sw,
 * at object offset *offset (advanced).
 */
enum lmr_result lmr_shuffle_write_index(struct lmr_store_writer *sw, uint64_t *offset,
                                        const struct lmr_partition_frame *frames, uint32_t n, struct lmr_err *err);

/**
 * Read the index of the shuffle object `key` (footer, then index; both checked).
 * @param frames  receives a malloc'd array of *partitions entries (caller frees).
 * @return LMR_ERR_FORMAT for a missing/corrupt footer or index.
 */
enum lmr_result lmr_shuffle_read_index(struct lmr_store *store, const char *key, struct lmr_partition_frame **frames,
                                       uint32_t *partitions, struct lmr_err *err);

/* ---- frame reader ------------------------------------------------------------------------------------------- */

struct lmr_frame_reader;

/** Create a frame reader (one zstd decompression context and small buffers, reused for every frame). */
enum lmr_result lmr_frame_reader_new(struct lmr_frame_reader **out, struct lmr_err *err);
/** Close any open frame and free the reader. NULL-safe. */
void lmr_frame_reader_destroy(struct lmr_frame_reader *fr);
/** @return the bytes a reader holds while reading a frame of ordinary records, for memory budgets. */
size_t lmr_frame_reader_memory_bytes(void);

/**
 * Open the frame at [offset, offset+size_bytes) of object `key` (a ranged read). size_bytes 0 is an
 * empty frame (nothing is fetched). Any previously open frame is closed first.
 */
enum lmr_result lmr_frame_reader_open(struct lmr_frame_reader *fr, struct lmr_store *store, const char *key,
                                      uint64_t offset, uint64_t size_bytes, struct lmr_err *err);
/**
 * As lmr_frame_reader_open, with the store reader's read options (lmr_store_open_read_with; NULL =
 * the defaults): a merge of many frames caps each reader's bytes in flight with its memory share.
 */
enum lmr_result lmr_frame_reader_open_with(struct lmr_frame_reader *fr, struct lmr_store *store, const char *key,
                                           uint64_t offset, uint64_t size_bytes,
                                           const struct lmr_store_read_options *read_opts, struct lmr_err *err);
/**
 * Open the next frame of `key` on a store reader the caller opened and keeps (sequential reading of
 * an object's consecutive frames with one request): the frame is the next size_bytes bytes of sr.
 * The reader reads exactly those bytes (never past the frame) and does not close sr. key only names
 * the object in messages. size_bytes 0 is an empty frame (nothing is read).
 */
enum lmr_result lmr_frame_reader_open_on(struct lmr_frame_reader *fr, struct lmr_store_reader *sr, const char *key,
                                         uint64_t size_bytes, struct lmr_err *err);
/**
 * Next record of the open frame. *key and *value point into the reader's buffer and stay valid
 * until the next call on this reader. *has_record is false at the end of the frame.
 * @return LMR_ERR_FORMAT for corrupt or truncated data (the reader is then unusable until reopened).
 */
enum lmr_result lmr_frame_reader_next(struct lmr_frame_reader *fr, bool *has_record, struct lmr_slice *key,
                                      struct lmr_slice *value, struct lmr_err *err);
/** Close the open frame (its store reader); the reader can be reopened. */
void lmr_frame_reader_close(struct lmr_frame_reader *fr);
/** Compressed bytes fetched from the store by this reader since it was created. */
uint64_t lmr_frame_reader_bytes_fetched(const struct lmr_frame_reader *fr);

/* ---- key order ---------------------------------------------------------------------------------------------- */

/** The default key order: bytewise (memcmp), then shorter first. */
static inline int lmr_shuffle_default_compare(struct lmr_slice a, struct lmr_slice b)
{
    size_t n = a.len < b.len ? a.len : b.len;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (n >= 8) { /* the first 8 bytes as one big-endian word: no call for keys that differ there */
        uint64_t x, y;
        __builtin_memcpy(&x, a.ptr, 8);
        __builtin_memcpy(&y, b.ptr, 8);
        if (x != y)
            return __builtin_bswap64(x) < __builtin_bswap64(y) ? -1 : 1;
        if (n == 8)
            return (a.len > b.len) - (a.len < b.len);
    }
#endif
    int c = n ? __builtin_memcmp(a.ptr, b.ptr, n) : 0;
    if (c)
        return c;
    return (a.len > b.len) - (a.len < b.len);
}

#endif
