/*
 * Stream sources behind one small interface (aws-c-common's { vtable, impl } shape): list the
 * shards, read a shard from a position, and say where a record is so that the poller can
 * checkpoint it. Back-ends: "kinesis" (source_kinesis.c, on aws/kinesis.h), "stdin" and "file"
 * (source_local.c).
 *
 * Records come out as heap items (struct lmr_stream_item) chained in read order; the poller
 * owns them afterwards and frees them with lmr_stream_item_free.
 */
#ifndef LMR_STREAM_SOURCE_H
#define LMR_STREAM_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stream/event.h"
#include "util/result.h"

#define LMR_STREAM_SHARD_ID_MAX 128

enum lmr_stream_position_type {
    LMR_STREAM_TRIM_HORIZON,          /* oldest record kept */
    LMR_STREAM_LATEST,                /* only records that arrive from now on */
    LMR_STREAM_AT_TIMESTAMP,          /* first record at or after timestamp_ms */
    LMR_STREAM_AT_SEQUENCE_NUMBER,    /* the record with sequence_number */
    LMR_STREAM_AFTER_SEQUENCE_NUMBER, /* the record after sequence_number (resume from a checkpoint) */
};

struct lmr_stream_position {
    enum lmr_stream_position_type type;
    uint64_t timestamp_ms;                        /* AT_TIMESTAMP */
    char sequence_number[LMR_STREAM_SEQ_MAX + 1]; /* AT_/AFTER_SEQUENCE_NUMBER */
};

/**
 * Parse a starting position: "trim-horizon", "latest", "at-timestamp=ISO-8601" or AWS's
 * spellings (TRIM_HORIZON, LATEST, AT_TIMESTAMP=…).
 */
enum lmr_result lmr_stream_position_parse(const char *s, struct lmr_stream_position *out, struct lmr_err *err);
/** "TRIM_HORIZON", "LATEST", … */
const char *lmr_stream_position_type_name(enum lmr_stream_position_type t);

struct lmr_stream_shard_info {
    char id[LMR_STREAM_SHARD_ID_MAX];
    char parent_id[LMR_STREAM_SHARD_ID_MAX];          /* "" if none */
    char adjacent_parent_id[LMR_STREAM_SHARD_ID_MAX]; /* "" if none (set by a merge) */
    bool closed;                                      /* has an ending sequence number */
};

struct lmr_stream_item_block;

/* One record read from a shard, with everything the event needs. */
struct lmr_stream_item {
    struct lmr_stream_item *next;
    struct lmr_stream_item_block *block; /* where it was carved from (source.c), NULL = a malloc of its own */
    struct lmr_stream_record rec;        /* points into this allocation */
    uint64_t window_start_ms;            /* set by the poller */
    uint32_t lane;                       /* set by the poller */
    uint32_t event_bytes;                /* the poller's: bytes it adds to an event (0 = not known yet) */
    char mem[];
};

/** Allocate an item holding copies of data, sequence number and partition key. */
struct lmr_stream_item *lmr_stream_item_new(const void *data, size_t len, const char *sequence_number,
                                            const char *partition_key, uint64_t arrival_ms);
/** Free a chain of items (any thread may free items another made). */
void lmr_stream_item_free(struct lmr_stream_item *items);

/* Freeing items one at a time, in runs from the same block (one atomic update per run): release each, then flush. */
struct lmr_stream_item_releaser {
    struct lmr_stream_item_block *block;
    size_t n;
};
/** Free one item (its `next` is not followed); what the releaser holds is freed by the flush. */
void lmr_stream_item_release(struct lmr_stream_item_releaser *r, struct lmr_stream_item *it);
/** Free what the releaser holds back. */
void lmr_stream_item_releaser_flush(struct lmr_stream_item_releaser *r);

/* What one read returned. */
struct lmr_stream_read_result {
    struct lmr_stream_item *head, *tail; /* records in order (appended) */
    size_t count;
    bool shard_ended;       /* no more records will ever come from this shard */
    bool caught_up;         /* the reader is at the tip of the shard right now */
    uint64_t millis_behind; /* iterator age (MillisBehindLatest), 0 when caught up */
};

struct lmr_stream_source;
struct lmr_stream_shard_reader {
    struct lmr_stream_source *source;
};

struct lmr_stream_source_vtable {
    const char *name; /* "kinesis", "stdin", "file" */
    /* All shards, open and closed (still readable), parents before children. *out is malloc'd. */
    enum lmr_result (*list_shards)(struct lmr_stream_source *src, struct lmr_stream_shard_info **out, size_t *n,
                                   struct lmr_err *err);
    enum lmr_result (*open_shard)(struct lmr_stream_source *src, const char *shard_id,
                                  const struct lmr_stream_position *pos, struct lmr_stream_shard_reader **out,
                                  struct lmr_err *err);
    /*
     * Append up to max_records records to res. Waits at most wait_ms for a first record; may
     * return none. A source-specific rate limit (5 GetRecords/s per Kinesis shard) is kept here.
     */
    enum lmr_result (*read)(struct lmr_stream_shard_reader *r, size_t max_records, uint64_t wait_ms,
                            struct lmr_stream_read_result *res, struct lmr_err *err);
    void (*close_shard)(struct lmr_stream_shard_reader *r);
    void (*destroy)(struct lmr_stream_source *src);
};

struct lmr_stream_source {
    const struct lmr_stream_source_vtable *vtable;
    void *impl;
    char *name;                /* stream name for ARNs: "stdin", the file's name, the Kinesis stream */
    char *arn;                 /* eventSourceARN */
    bool replayable;           /* positions can be read again (false for stdin) */
    bool arrival_is_read_time; /* approximateArrivalTimestamp is the time the source read the record */
};

/** Open the source named by uri: "-", "file://PATH", "kinesis://NAME" (or a Kinesis stream ARN). */
enum lmr_result lmr_stream_source_open(const char *uri, struct lmr_stream_source **out, struct lmr_err *err);
void lmr_stream_source_destroy(struct lmr_stream_source *src);

/* Back-end constructors. */
enum lmr_result lmr_stream_stdin_source_new(int fd, struct lmr_stream_source **out, struct lmr_err *err);
enum lmr_result lmr_stream_file_source_new(const char *path, struct lmr_stream_source **out, struct lmr_err *err);
enum lmr_result lmr_stream_kinesis_source_new(const char *stream, struct lmr_stream_source **out, struct lmr_err *err);

static inline void lmr_stream_read_result_push(struct lmr_stream_read_result *res, struct lmr_stream_item *it)
{
    it->next = NULL;
    if (res->tail)
        res->tail->next = it;
    else
        res->head = it;
    res->tail = it;
    res->count++;
}

#endif
