/*
 * A producer's aggregation, as the Kinesis Producer Library does it: user records (each with its
 * own partition key) are packed into KPL aggregated records (stream/kpl.h), one open aggregated
 * record per shard. Each user record goes to the aggregated record of the shard its partition key
 * maps to (MD5 of the key as a 128-bit integer, inside the shard's HashKeyRange from ListShards),
 * and the aggregated record is put with the partition key of its first user record, so Kinesis
 * places it on that same shard: every user record lands where it would have landed alone, and the
 * records of one key stay on one shard, in order. Inside, the partition key table holds each
 * distinct key once and every user record points at its own key, as the KPL writes it (no
 * explicit hash key table: `lambdamr put` takes no explicit hash keys, and the KPL writes that
 * table only for user records that carry one).
 *
 * An aggregated record is emitted when the next user record would take it past record_max_bytes
 * (data plus partition key, Kinesis's limit for one record), when the records held for all shards
 * pass buffered_max_bytes (the fullest is emitted), and on lmr_kpl_aggregator_flush. An
 * aggregated record of one user record is emitted as that user record, plain (as the KPL does);
 * so is a user record too large to be aggregated, after the aggregated record open for its shard.
 */
#ifndef LMR_STREAM_KPL_AGGREGATOR_H
#define LMR_STREAM_KPL_AGGREGATOR_H

#include <stddef.h>

#include "aws/kinesis.h"
#include "util/result.h"

/* One Kinesis record to put, as the aggregator emits it. */
struct lmr_kpl_out_record {
    char *data; /* malloc'd; the emit callback owns it */
    size_t len;
    const char *partition_key; /* valid during the callback */
    size_t shard;              /* the shard it is meant for (index, see lmr_kpl_aggregator_shard_id) */
    size_t user_records;       /* 1 for a plain record */
};

/* Receives each complete Kinesis record; a result other than LMR_OK stops the aggregator's call. */
typedef enum lmr_result (*lmr_kpl_emit_fn)(void *ctx, struct lmr_kpl_out_record *rec, struct lmr_err *err);

struct lmr_kpl_aggregator_options {
    /* Optional: the most bytes of one aggregated record, data plus partition key (default and
       maximum LMR_STREAM_RECORD_MAX_BYTES, Kinesis's record limit; at least 64). */
    size_t record_max_bytes;
    /* Optional: the most bytes held over all shards before the fullest aggregated record is
       emitted (default LMR_KINESIS_PUT_BYTES_MAX, one PutRecords call). */
    size_t buffered_max_bytes;
};

struct lmr_kpl_aggregator;

/**
 * An aggregator for the open shards among shards[0..n) (those without an ending sequence number;
 * their hash key ranges must cover 0 .. 2^128 - 1). LMR_ERR_INVALID when no open shard is listed
 * or a range does not parse.
 */
enum lmr_result lmr_kpl_aggregator_new(const struct lmr_kpl_aggregator_options *opts,
                                       const struct lmr_kinesis_shard *shards, size_t n,
                                       struct lmr_kpl_aggregator **out, struct lmr_err *err);
/** Free the aggregator and every user record still held. NULL-safe. */
void lmr_kpl_aggregator_destroy(struct lmr_kpl_aggregator *a);

/**
 * Add one user record (data, len bytes; partition_key of 1-256 bytes). Records that become complete
 * go to emit. LMR_ERR_TOO_LARGE when len plus the key's length passes Kinesis's record limit.
 */
enum lmr_result lmr_kpl_aggregator_add(struct lmr_kpl_aggregator *a, const void *data, size_t len,
                                       const char *partition_key, lmr_kpl_emit_fn emit, void *ctx, struct lmr_err *err);
/** Emit every aggregated record still open, shard by shard. */
enum lmr_result lmr_kpl_aggregator_flush(struct lmr_kpl_aggregator *a, lmr_kpl_emit_fn emit, void *ctx,
                                         struct lmr_err *err);
/** Bytes of user records (and their keys) held, not yet emitted. */
size_t lmr_kpl_aggregator_held_bytes(const struct lmr_kpl_aggregator *a);
/** The shard id of index shard (as in lmr_kpl_out_record). */
const char *lmr_kpl_aggregator_shard_id(const struct lmr_kpl_aggregator *a, size_t shard);

#endif
