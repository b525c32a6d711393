/*
 * Kinesis Data Streams over the AWS HTTP client (JSON 1.1, X-Amz-Target Kinesis_20131202.*,
 * SigV4 service "kinesis", endpoint from AWS_ENDPOINT_URL_KINESIS / AWS_ENDPOINT_URL).
 * The stream source (lmr_stream_kinesis_source_new in source.h) is built on it: ListShards with
 * pagination, GetShardIterator (all five types), GetRecords at most 5 calls/s per shard,
 * backing off on ProvisionedThroughputExceededException, renewing expired iterators after the
 * last record read.
 */
#ifndef LMR_STREAM_KINESIS_H
#define LMR_STREAM_KINESIS_H

#include <jansson.h>

#include "util/result.h"

/* Kinesis limits. */
#define LMR_KINESIS_PUT_RECORDS_MAX 500                /* records per PutRecords */
#define LMR_KINESIS_PUT_BYTES_MAX (5u * 1024u * 1024u) /* bytes per PutRecords (data + keys) */
#define LMR_KINESIS_GET_RECORDS_MAX 10000              /* Limit of GetRecords */
#define LMR_KINESIS_GET_RECORDS_INTERVAL_MS 200        /* 5 GetRecords calls per second per shard */
#define LMR_KINESIS_PARTITION_KEY_MAX 256

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

#endif
