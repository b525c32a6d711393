/*
 * k-way merge of sorted shuffle frames: a binary heap of frame readers ordered by the job's key
 * order (ties broken by source position, so equal keys come out in source order). Records are
 * zero-copy: a returned slice stays valid until the next call that advances the merger.
 *
 * Opening a source waits for its first bytes (on S3 a first-byte latency of 20-50 ms), so a
 * merger can open its sources several at once (struct lmr_merger_reading: a count cap, and a
 * byte cap that every source's store reader gets its share of); the merge itself then runs on
 * the caller's thread.
 */
#ifndef LMR_SHUFFLE_MERGE_H
#define LMR_SHUFFLE_MERGE_H

#include "shuffle/frame.h"

/* One sorted input: a frame of a shuffle object. */
struct lmr_merge_source {
    const char *key; /* object key in the store */
    uint64_t offset, size_bytes;
};

struct lmr_merger;

/* Sources a merger opens at once by default (lmr_merger_reading.opens_in_flight), and the most. */
#define LMR_MERGE_OPENS_IN_FLIGHT 32u
#define LMR_MERGE_OPENS_IN_FLIGHT_MAX 64u
/* The least read-ahead one source's store reader is given however many sources share the cap. */
#define LMR_MERGE_READER_MIN_IN_FLIGHT_BYTES ((uint64_t)64 << 10)

/* How a merger reads its sources; all-zero = one open after another, the store's read-ahead defaults. */
struct lmr_merger_reading {
    /* Optional: sources opened at once (each open waits for the source's first bytes and reads its
       first record), at most LMR_MERGE_OPENS_IN_FLIGHT_MAX; 0 or 1 = one after another. */
    unsigned opens_in_flight;
    /* Optional: the bytes all sources' store readers together may have requested ahead of the merge
       (lmr_store_read_options.max_in_flight_bytes); each open source gets an equal share, at least
       LMR_MERGE_READER_MIN_IN_FLIGHT_BYTES, and requests all of it at open (sequential). 0 = no
       cap (the store's defaults: a slow start). */
    uint64_t in_flight_bytes;
};

/** Create a merger that can merge up to max_sources frames at once (one frame reader each). */
enum lmr_result lmr_merger_new(const struct lmr_job_ops *ops, size_t max_sources, struct lmr_merger **out,
                               struct lmr_err *err);
/** Close and free. NULL-safe. */
void lmr_merger_destroy(struct lmr_merger *m);
/** Set how the next opens read their sources (copied; NULL = the all-zero defaults). */
void lmr_merger_set_reading(struct lmr_merger *m, const struct lmr_merger_reading *reading);
/**
 * The read-ahead cap of each of n sources sharing in_flight_bytes: in_flight_bytes / n, at least
 * LMR_MERGE_READER_MIN_IN_FLIGHT_BYTES; 0 when in_flight_bytes is 0 (no cap).
 */
uint64_t lmr_merge_reader_share_bytes(uint64_t in_flight_bytes, size_t n);

/**
 * Open sources[0..n) (n <= max_sources; the array is not kept) and read each one's first record,
 * up to the reading's opens_in_flight at once. On failure err names the lowest failing source.
 */
enum lmr_result lmr_merger_open(struct lmr_merger *m, struct lmr_store *store, const struct lmr_merge_source *sources,
                                size_t n, struct lmr_err *err);
/* One sorted input read from a store reader the caller keeps open: the reader's next size_bytes bytes. */
struct lmr_merge_stream {
    struct lmr_store_reader *reader;
    const char *key; /* names the object in messages */
    uint64_t size_bytes;
};

/**
 * Open streams[0..n) (n <= max_sources) like lmr_merger_open, each frame being the next bytes of
 * its stream's reader (lmr_frame_reader_open_on): consecutive frames of one object are read with
 * one request (the caller opened those readers, the merge stage several at once). The streams'
 * first records are read up to opens_in_flight at once. After a drain every stream is
 * positioned after its frame.
 */
enum lmr_result lmr_merger_open_streams(struct lmr_merger *m, const struct lmr_merge_stream *streams, size_t n,
                                        struct lmr_err *err);
/** Close every open source (also done by the next open). */
void lmr_merger_close(struct lmr_merger *m);

/** The smallest remaining record; *has_record false at the end. Slices valid until the next advancing call. */
enum lmr_result lmr_merger_next(struct lmr_merger *m, bool *has_record, struct lmr_slice *key, struct lmr_slice *value,
                                struct lmr_err *err);
/**
 * The next record if its key equals `key` (which must not point into the merger's buffers: copy it).
 * *has_record false when the next key differs or at the end.
 */
enum lmr_result lmr_merger_next_if_equal(struct lmr_merger *m, struct lmr_slice key, bool *has_record,
                                         struct lmr_slice *value, struct lmr_err *err);

/** Compressed bytes fetched by all of the merger's readers so far. */
uint64_t lmr_merger_bytes_fetched(const struct lmr_merger *m);

/**
 * Merge everything open in m into the frame writer fw (which has a frame begun), combining equal
 * keys with ops->combine for combining jobs. *records_in receives the records read.
 */
enum lmr_result lmr_merger_drain(struct lmr_merger *m, const struct lmr_job_ops *ops, void *job_state,
                                 struct lmr_frame_writer *fw, uint64_t *records_in, struct lmr_err *err);

/**
 * Copy key into the growable buffer *buf of *cap bytes (doubled from 64 as needed). what names the
 * key in the out-of-memory message ("a <n>-byte <what>"). @return LMR_ERR_NOMEM (buffer unchanged).
 */
enum lmr_result lmr_shuffle_copy_key(uint8_t **buf, size_t *cap, struct lmr_slice key, const char *what,
                                     struct lmr_err *err);

/** Compare two keys with the job's order (ops->compare or the default). */
static inline int lmr_shuffle_compare(const struct lmr_job_ops *ops, struct lmr_slice a, struct lmr_slice b)
{
    return ops->compare ? ops->compare(a, b) : lmr_shuffle_default_compare(a, b);
}

#endif
