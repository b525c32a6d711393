/*
 * Kinesis Data Streams over the AWS HTTP client (JSON 1.1, X-Amz-Target Kinesis_20131202.*,
 * SigV4 service "kinesis", endpoint from AWS_ENDPOINT_URL_KINESIS / AWS_ENDPOINT_URL).
 * The stream source (common/stream/source_kinesis.c) and `lambdamr put` are built on it; so is
 * the stream function's check of which shards a window has (ListShards).
 */
#ifndef LMR_AWS_KINESIS_H
#define LMR_AWS_KINESIS_H

#include <jansson.h>
#include <stdint.h>

#include "util/result.h"

/* Kinesis limits. */
#define LMR_KINESIS_PUT_RECORDS_MAX 500                /* records per PutRecords */
#define LMR_KINESIS_PUT_BYTES_MAX (5u * 1024u * 1024u) /* bytes per PutRecords (data + keys) */
#define LMR_KINESIS_GET_RECORDS_MAX 10000              /* Limit of GetRecords */
#define LMR_KINESIS_GET_RECORDS_INTERVAL_MS 200        /* 5 GetRecords calls per second per shard */
#define LMR_KINESIS_PARTITION_KEY_MAX 256
#define LMR_KINESIS_SHARDS_MAX 100000 /* a cap on what ListShards may return (Kinesis allows far fewer by default) */
#define LMR_KINESIS_SHARD_ID_MAX 128
#define LMR_KINESIS_SEQ_MAX 128     /* sequence numbers are decimal strings of <= 128 digits */
#define LMR_KINESIS_HASH_KEY_MAX 39 /* hash keys are decimal 128-bit integers */

/* One shard as ListShards describes it. */
struct lmr_kinesis_shard {
    char id[LMR_KINESIS_SHARD_ID_MAX];
    char parent_id[LMR_KINESIS_SHARD_ID_MAX];          /* "" if none */
    char adjacent_parent_id[LMR_KINESIS_SHARD_ID_MAX]; /* "" if none (set by a merge) */
    char starting_seq[LMR_KINESIS_SEQ_MAX + 1];
    char ending_seq[LMR_KINESIS_SEQ_MAX + 1];             /* "" while the shard is open */
    char starting_hash_key[LMR_KINESIS_HASH_KEY_MAX + 1]; /* HashKeyRange, decimal 0 .. 2^128 - 1 */
    char ending_hash_key[LMR_KINESIS_HASH_KEY_MAX + 1];
};

struct lmr_kinesis;

/** A client for stream `stream` (a name). Checks the stream exists (DescribeStreamSummary). */
enum lmr_result lmr_kinesis_new(const char *stream, struct lmr_kinesis **out, struct lmr_err *err);
void lmr_kinesis_destroy(struct lmr_kinesis *k);
const char *lmr_kinesis_stream_name(const struct lmr_kinesis *k);
const char *lmr_kinesis_stream_arn(const struct lmr_kinesis *k);
const char *lmr_kinesis_region(const struct lmr_kinesis *k);

/**
 * Call Kinesis_20131202.<action> with body (a JSON object; the reference is stolen). *out
 * (optional) gets the parsed response. On failure err names the action, the stream and the
 * AWS error code; aws_code (optional, >= 128 bytes) receives that code.
 */
enum lmr_result lmr_kinesis_call(struct lmr_kinesis *k, const char *action, json_t *body, json_t **out, char *aws_code,
                                 struct lmr_err *err);

/**
 * The shards of the stream (ListShards with pagination), parents before children as Kinesis
 * lists them: every shard, open and closed, when at_timestamp_ms is 0, else those open at that
 * time (ShardFilter AT_TIMESTAMP; a service that ignores the filter returns every shard).
 * *out is malloc'd (free it); LMR_ERR_TOO_LARGE past LMR_KINESIS_SHARDS_MAX.
 */
enum lmr_result lmr_kinesis_list_shards(struct lmr_kinesis *k, uint64_t at_timestamp_ms, struct lmr_kinesis_shard **out,
                                        size_t *n, struct lmr_err *err);

#endif
