/*
 * Kinesis record aggregation in the Kinesis Producer Library's format (amazon-kinesis-producer's
 * aggregation-format.md), which the KCL and the kinesis-aggregation libraries deaggregate:
 *
 *   0xF3 0x89 0x9A 0xC2 | protobuf AggregatedRecord | MD5 of the protobuf bytes (16)
 *
 *   message AggregatedRecord { repeated string partition_key_table = 1;
 *                              repeated string explicit_hash_key_table = 2;
 *                              repeated Record records = 3; }
 *   message Record { required uint64 partition_key_index = 1; optional uint64 explicit_hash_key_index = 2;
 *                    required bytes data = 3; repeated Tag tags = 4; }
 *   message Tag { required string key = 1; optional string value = 2; }   (proto2)
 *
 * lambdamr's poller packs the lines of a batch from a local source into such records (one
 * partition key, every user record pointing at it), so that an event of 10,000 lines carries a
 * few base64 blobs instead of 10,000 JSON records; the stream function deaggregates every
 * record that is aggregated, from lambdamr's poller or from a KPL producer on AWS.
 *
 * The reader is hand-written, zero-copy (user records point into the record's data) and
 * allocation-free: it is the stream function's hot path, where protobuf-c would unpack every
 * user record into its own allocation. As the deaggregation libraries do, data that is not a
 * well-formed aggregated record (no magic, 16 bytes or fewer after it, a wrong MD5, a protobuf
 * that does not parse, a required field missing, a key index outside its table) is a plain
 * record. Stricter than protobuf in two places, both documented in docs/STREAMING.md: groups
 * (wire types 3 and 4) are malformed, and counts are capped (LMR_KPL_*_MAX).
 */
#ifndef LMR_STREAM_KPL_H
#define LMR_STREAM_KPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/result.h"
#include "util/varint.h"

#define LMR_KPL_MAGIC "\xF3\x89\x9A\xC2"
#define LMR_KPL_MAGIC_BYTES 4
#define LMR_KPL_DIGEST_BYTES 16
#define LMR_KPL_USER_RECORDS_MAX (1u << 20) /* user records in one aggregated record */
#define LMR_KPL_KEYS_MAX (1u << 20)         /* entries in each key table */
#define LMR_KPL_TAGS_MAX 1024               /* tags on one user record */

/* --- Reading --------------------------------------------------------------------------------- */

/* An aggregated record being read (points into the data given to lmr_kpl_open). */
struct lmr_kpl_reader {
    const uint8_t *msg, *msg_end; /* the protobuf message */
    const uint8_t *p;             /* where lmr_kpl_next goes on */
    size_t n_records;             /* user records */
    size_t n_partition_keys, n_explicit_hash_keys;
};

/* One user record. */
struct lmr_kpl_user_record {
    const uint8_t *data; /* inside the aggregated record's data */
    size_t len;
    uint64_t partition_key_index;     /* < n_partition_keys */
    bool has_explicit_hash_key_index; /* then explicit_hash_key_index < n_explicit_hash_keys */
    uint64_t explicit_hash_key_index;
};

/**
 * Is data (one Kinesis record's data, len bytes) a well-formed aggregated record? Checks the
 * magic, the MD5 and the whole protobuf (structure, required fields, key indexes, caps).
 * @return true and *rd set to iterate its user records; false for a plain record.
 */
bool lmr_kpl_open(const uint8_t *data, size_t len, struct lmr_kpl_reader *rd);

/**
 * MD5 digests of n messages (msg[i], len[i] bytes) into out[i]: 8 at a time with AVX2 when the CPU
 * has it (LMR_KPL_MD5_SERIAL=1: one at a time, OpenSSL's). @return false if OpenSSL failed.
 */
bool lmr_kpl_md5_many(const uint8_t *const *msg, const size_t *len, size_t n, uint8_t (*out)[LMR_KPL_DIGEST_BYTES]);

/**
 * Which of n Kinesis records' data (data[i], len[i] bytes) have the magic and a right MD5 (their
 * digests computed together, see lmr_kpl_md5_many): intact[i]. Such a record is opened with
 * lmr_kpl_open_checked; any other with lmr_kpl_open (a plain record).
 */
void lmr_kpl_check_many(const uint8_t *const *data, const size_t *len, size_t n, bool *intact);
/** lmr_kpl_open of a record lmr_kpl_check_many found intact (the protobuf is still checked whole). */
bool lmr_kpl_open_checked(const uint8_t *data, size_t len, struct lmr_kpl_reader *rd);

/** lmr_kpl_open for a protobuf message already known to be intact (no magic, no MD5 check). */
bool lmr_kpl_open_message(const uint8_t *msg, size_t len, struct lmr_kpl_reader *rd);

/** The next user record, in order. @return false after the last. */
bool lmr_kpl_next(struct lmr_kpl_reader *rd, struct lmr_kpl_user_record *out);

/**
 * Entry `index` of a key table (1 = partition_key_table, 2 = explicit_hash_key_table), found by
 * a scan of the message (for tests and tools, not the hot path). @return false if out of range.
 */
bool lmr_kpl_key(const struct lmr_kpl_reader *rd, int table, uint64_t index, const char **key, size_t *len);

/* --- Writing --------------------------------------------------------------------------------- */

/** Bytes one key table entry (a partition or explicit hash key) of len bytes adds to an aggregated record. */
static inline size_t lmr_kpl_key_bytes(size_t len)
{
    return 1 + lmr_varint_bytes(len) + len;
}

/** Bytes one user record of len data bytes adds, pointing at partition key pk_index (no explicit hash key, no tags). */
static inline size_t lmr_kpl_indexed_record_bytes(size_t len, uint64_t pk_index)
{
    size_t inner = 1 + lmr_varint_bytes(pk_index) + 1 + lmr_varint_bytes(len) + len; /* field 1; field 3 = data */
    return 1 + lmr_varint_bytes(inner) + inner;
}

/** Bytes one user record of len data bytes adds to an aggregated record (partition key index 0, no tags). */
static inline size_t lmr_kpl_user_record_bytes(size_t len)
{
    return lmr_kpl_indexed_record_bytes(len, 0);
}

/** Bytes of an aggregated record besides its user records: magic, the one partition key, MD5. */
static inline size_t lmr_kpl_fixed_bytes(size_t partition_key_len)
{
    return LMR_KPL_MAGIC_BYTES + lmr_kpl_key_bytes(partition_key_len) + LMR_KPL_DIGEST_BYTES;
}

/*
 * Two ways to write. One partition key (the poller's batches): lmr_kpl_begin, lmr_kpl_add for each
 * user record, lmr_kpl_finish. Several (`lambdamr put`, which keeps each line's key as the KPL
 * does): lmr_kpl_start, the key table written with lmr_kpl_add_key, the user records with
 * lmr_kpl_add_indexed, lmr_kpl_finish; the caller writes the tables before the records, so that
 * the bytes are those protobuf writes (fields in number order).
 */

/**
 * Start an aggregated record at the end of out: the magic and a partition key table of one entry
 * (partition_key, which every user record added after it points at). *start receives where it
 * begins, for lmr_kpl_finish. The bytes are those protobuf writes (fields in number order).
 */
enum lmr_result lmr_kpl_begin(struct lmr_buf *out, const char *partition_key, size_t *start);
/** Append one user record (exactly lmr_kpl_user_record_bytes(len) bytes). */
enum lmr_result lmr_kpl_add(struct lmr_buf *out, const void *data, size_t len);
/** Start an aggregated record at the end of out with the magic alone; *start as for lmr_kpl_begin. */
enum lmr_result lmr_kpl_start(struct lmr_buf *out, size_t *start);
/**
 * Append one key table entry (exactly lmr_kpl_key_bytes(len) bytes): table 1 is the partition key
 * table, 2 the explicit hash key table; entries are numbered from 0 in the order written.
 */
enum lmr_result lmr_kpl_add_key(struct lmr_buf *out, int table, const void *key, size_t len);
/** Append one user record pointing at partition key pk_index (lmr_kpl_indexed_record_bytes bytes). */
enum lmr_result lmr_kpl_add_indexed(struct lmr_buf *out, const void *data, size_t len, uint64_t pk_index);
/** End the aggregated record that begins at start: append the MD5 of its protobuf bytes. */
enum lmr_result lmr_kpl_finish(struct lmr_buf *out, size_t start);
/** lmr_kpl_finish with the digest left zero, for the caller to write (several at once: lmr_kpl_md5_many). */
enum lmr_result lmr_kpl_finish_later(struct lmr_buf *out);

#endif
