/*
 * Reads the lines of one shard: a byte range of a store object, streamed with bounded memory.
 * A line belongs to the shard in which it starts: a shard that does not start at 0 skips the
 * partial line at its start, and the last line is read past the range end until its '\n'.
 * Compressed objects (gzip, zstd) are one whole shard, decompressed while streaming.
 * Lines are handed over without their terminator ("\n", or "\r\n").
 */
#ifndef LMR_MAPPER_SHARD_READER_H
#define LMR_MAPPER_SHARD_READER_H

#include <stdint.h>

#include "job/task.h"
#include "lambdamr/job.h"
#include "store/store.h"

/* Called per line with its byte offset in the object (uncompressed objects; 0-based line
 * index otherwise). Return non-OK to stop. */
typedef enum lmr_result (*lmr_line_fn)(void *user_data, struct lmr_slice line, uint64_t offset, struct lmr_err *err);

struct lmr_shard_stats {
    uint64_t bytes_read; /* bytes fetched from the store */
    uint64_t records;    /* lines handed over */
};

/**
 * Stream the lines of `shard` (in `store`) to fn. Memory: one buffer that grows up to
 * max_line_bytes (a longer line is an error that says so).
 */
enum lmr_result lmr_shard_read_lines(struct lmr_store *store, const struct lmr_shard *shard, size_t max_line_bytes,
                                     lmr_line_fn fn, void *user_data, struct lmr_shard_stats *stats,
                                     struct lmr_err *err);

/* Called with a run of whole lines, each with its terminator: `block` ends with '\n' and holds
 * `lines` lines, the first at `offset` (as for lmr_line_fn). Return non-OK to stop. */
typedef enum lmr_result (*lmr_block_fn)(void *user_data, struct lmr_slice block, uint64_t lines, uint64_t offset,
                                        struct lmr_err *err);

/**
 * As lmr_shard_read_lines, but hand over the lines that the buffer holds whole as blocks
 * (block_fn, many lines per call); line_fn still gets the lines that are not handed over in a
 * block (the shard's last line when it runs past the range or has no terminator).
 */
enum lmr_result lmr_shard_read_blocks(struct lmr_store *store, const struct lmr_shard *shard, size_t max_line_bytes,
                                      lmr_block_fn block_fn, lmr_line_fn line_fn, void *user_data,
                                      struct lmr_shard_stats *stats, struct lmr_err *err);

/*
 * Called before each refill of the reader's buffer (about every MiB) with the object offset of the
 * next byte to fetch (pos) and the shard's current end. @return the new end: end to go on, or an
 * offset in [pos, end) to stop the shard there (a cut: the lines that start before it are read,
 * the last one to its end). Compressed shards are never shortened (the result is ignored).
 */
typedef uint64_t (*lmr_shard_cut_fn)(void *user_data, uint64_t pos, uint64_t end);

/* What one shard read may use. */
struct lmr_shard_read_limits {
    size_t max_line_bytes;     /* Required: the longest line (a longer one is an error that says so) */
    uint64_t read_ahead_bytes; /* Optional: most bytes the store reader may request ahead of the lines
                                  handed over (struct lmr_store_read_options); 0 = the store's default */
    lmr_shard_cut_fn cut;      /* Optional: may shorten the shard while it is read (rebalancing) */
    void *cut_user_data;
};

/**
 * The shard's lines as blocks (block_fn, when not NULL) and single lines (fn), as
 * lmr_shard_read_blocks and lmr_shard_read_lines do, with the limits given. The object range
 * is read by one sequential store reader with read-ahead (several ranged GETs in flight on
 * S3, at most limits->read_ahead_bytes requested ahead), which also fetches the first chunk
 * past the shard's end that its last line usually ends in.
 */
enum lmr_result lmr_shard_read(struct lmr_store *store, const struct lmr_shard *shard,
                               const struct lmr_shard_read_limits *limits, lmr_block_fn block_fn, lmr_line_fn fn,
                               void *user_data, struct lmr_shard_stats *stats, struct lmr_err *err);

#endif
