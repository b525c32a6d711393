/*
 * The contract between a Kinesis event source mapping with tumbling windows and the function
 * it invokes, exactly as AWS Lambda shapes it:
 *
 *   event    {"Records": [{"kinesis": {"kinesisSchemaVersion", "partitionKey", "sequenceNumber",
 *                                      "data" (base64), "approximateArrivalTimestamp" (epoch s)},
 *                          "eventSource": "aws:kinesis", "eventVersion": "1.0",
 *                          "eventID": "<shardId>:<sequenceNumber>", "eventName": "aws:kinesis:record",
 *                          "invokeIdentityArn", "awsRegion", "eventSourceARN"}, ...],
 *             "window": {"start": ISO-8601, "end": ISO-8601}, "state": {string: string},
 *             "shardId", "eventSourceARN", "isFinalInvokeForWindow", "isWindowTerminatedEarly"}
 *   response {"state": {string: string}, "batchItemFailures": [{"itemIdentifier": "<sequenceNumber>"}]}
 *
 * For lambdamr's local sources the records are KPL aggregated records (stream/kpl.h), each holding
 * many lines. Building is done by hand (the poller's hot path); parsing uses the in-place
 * scanner (json_scan.h). Window math lives
 * here too: windows are aligned to multiples of their length since the epoch, as on AWS.
 */
#ifndef LMR_STREAM_EVENT_H
#define LMR_STREAM_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/base64.h" /* the record data is base64 in events (and lmr_base64_* used to live here) */
#include "util/buf.h"
#include "util/result.h"

/* AWS limits this module enforces. */
#define LMR_STREAM_STATE_MAX_BYTES (1024u * 1024u)             /* window state per shard */
#define LMR_STREAM_RECORD_MAX_BYTES (1024u * 1024u)            /* one Kinesis record's data */
#define LMR_STREAM_SYNC_PAYLOAD_MAX_BYTES (6u * 1024u * 1024u) /* RequestResponse payload */
#define LMR_STREAM_SEQ_MAX 128                                 /* sequence numbers are <= 128 digits */
#define LMR_STREAM_EPOCH_MAX_S 253402300799ull                 /* 9999-12-31T23:59:59Z: latest time taken */

/* One record as the poller hands it to the event builder (nothing owned). */
struct lmr_stream_record {
    const char *data; /* record bytes (not base64) */
    size_t len;
    const char *partition_key; /* printable, <= 256 characters */
    const char *sequence_number;
    uint64_t arrival_ms; /* approximateArrivalTimestamp in epoch milliseconds */
};

/* Everything in an event besides the records. */
struct lmr_stream_event_info {
    const char *shard_id;         /* "shardId-000000000000" */
    const char *event_source_arn; /* "arn:aws:kinesis:us-east-1:123456789012:stream/NAME" */
    const char *region;           /* "us-east-1" */
    const char *invoke_identity_arn;
    uint64_t window_start_ms;
    uint64_t window_end_ms;
    const char *state_json;  /* the state object as JSON text; NULL or "" = {} */
    const char *state_extra; /* Optional: members written into the state object after state_json's own
                                (for example "\"byref\":\"1\""), NULL = none */
    bool is_final_invoke;
    bool is_terminated_early;
    /* Optional: pack consecutive records into KPL aggregated records (stream/kpl.h; lambdamr's local
       sources), grouped by lmr_stream_agg_place. Each carries its first record's partition key,
       sequence number and arrival time. */
    bool aggregate;
    size_t agg_records_max; /* with aggregate: at most this many records in one (0 = as many as fit 1 MiB) */
};

/* How records are grouped into aggregated records (the builder and the poller's sizing agree through it). */
enum lmr_stream_agg_place {
    LMR_STREAM_AGG_JOIN,  /* joins the open aggregated record */
    LMR_STREAM_AGG_START, /* starts a new one (closing the open one) */
    LMR_STREAM_AGG_ALONE, /* too long for one (data near 1 MiB): a plain record of its own */
};
struct lmr_stream_agg_cursor {
    size_t bytes;  /* data bytes of the open aggregated record (magic, protobuf, MD5) */
    size_t n;      /* records in it; 0 = none open */
    size_t pk_len; /* its partition key's length (data + key <= 1 MiB, Kinesis's record limit) */
};
/** Where record r goes, given the records placed before it (c starts zeroed). */
enum lmr_stream_agg_place lmr_stream_agg_place(struct lmr_stream_agg_cursor *c, size_t agg_records_max,
                                               const struct lmr_stream_record *r);
/**
 * Bytes r adds to an aggregated event where it was placed (an upper bound: base64 rounding), given
 * lmr_stream_event_record_overhead: a record that starts an aggregated record pays for its JSON.
 */
size_t lmr_stream_event_agg_bytes(size_t overhead, enum lmr_stream_agg_place place, const struct lmr_stream_record *r);

/**
 * Append the JSON event for records[0..n) to out (out's max_bytes caps it: LMR_ERR_TOO_LARGE).
 */
enum lmr_result lmr_stream_event_build(struct lmr_buf *out, const struct lmr_stream_event_info *info,
                                       const struct lmr_stream_record *records, size_t n, struct lmr_err *err);

/** Bytes one record adds to an event (exact): for payload-size budgeting. */
size_t lmr_stream_event_record_bytes(const struct lmr_stream_event_info *info, const struct lmr_stream_record *r);
/** The part of lmr_stream_event_record_bytes that is the same for every record of an event. */
size_t lmr_stream_event_record_overhead(const struct lmr_stream_event_info *info);
/** lmr_stream_event_record_bytes given lmr_stream_event_record_overhead (a batch's loop computes that once). */
size_t lmr_stream_event_record_bytes_after(size_t overhead, const struct lmr_stream_record *r);

/* A parsed event. Record data is decoded into one buffer owned by the event. */
struct lmr_stream_parsed_record {
    const uint8_t *data;
    size_t len;
    const char *sequence_number;
    const char *partition_key;
    uint64_t arrival_ms;
};

struct lmr_stream_event {
    struct lmr_stream_parsed_record *records;
    size_t n_records;
    const char *shard_id;         /* NULL if absent */
    const char *event_source_arn; /* NULL if absent */
    uint64_t window_start_ms;
    uint64_t window_end_ms;
    bool has_window;
    bool is_final_invoke;
    bool is_terminated_early;
    const char *state_text; /* the "state" object's JSON text, inside the parsed input (NULL if absent) */
    size_t state_len;
    char *arena; /* decoded data and strings */
};

/**
 * Parse an event. The input must outlive ev (state_text points into it). Free with
 * lmr_stream_event_clean_up (also after a failure).
 */
enum lmr_result lmr_stream_event_parse(const char *json, size_t len, struct lmr_stream_event *ev, struct lmr_err *err);
void lmr_stream_event_clean_up(struct lmr_stream_event *ev);

/** Append {"state": <state_json>, "batchItemFailures": [{"itemIdentifier": id}...]} to out. */
enum lmr_result lmr_stream_response_build(struct lmr_buf *out, const char *state_json, const char *const *failed_ids,
                                          size_t n_failed, struct lmr_err *err);

/* A parsed response. */
struct lmr_stream_response {
    char *state_json;  /* compact JSON text of the state object (malloc'd) */
    bool state_full;   /* the state carries the "full" marker: terminate the window early */
    bool state_has_kv; /* the state carries its entries ("kv"), not only a reference to them */
    bool state_lost;   /* the "lost" marker: the function does not hold the state the event named by reference */
    char **failed_ids; /* itemIdentifier values */
    size_t n_failed;
};

/**
 * Parse a response. As on AWS, a response without a "state" object is a failed invocation
 * (LMR_ERR_FORMAT).
 */
enum lmr_result lmr_stream_response_parse(const char *json, size_t len, struct lmr_stream_response *resp,
                                          struct lmr_err *err);
void lmr_stream_response_clean_up(struct lmr_stream_response *resp);

/* --- Time and windows ---------------------------------------------------------------------- */

/** Format epoch milliseconds as "2020-12-09T07:04:00Z" (".123" inserted when ms != 0) into out (>= 32 bytes). */
const char *lmr_stream_iso8601(uint64_t epoch_ms, char *out, size_t cap);
/** Parse "YYYY-MM-DDTHH:MM:SS[.fff](Z|±HH:MM)" (or an integer epoch seconds value) into epoch ms. */
enum lmr_result lmr_stream_parse_time(const char *s, uint64_t *epoch_ms);
/**
 * Epoch seconds (a JSON number such as approximateArrivalTimestamp) to milliseconds, rounded.
 * @return false when s is not in 0..LMR_STREAM_EPOCH_MAX_S (a cast would be undefined).
 */
bool lmr_stream_epoch_s_to_ms(double s, uint64_t *ms);
/** Start of the tumbling window of length window_ms holding t_ms (aligned to the epoch). */
static inline uint64_t lmr_stream_window_start(uint64_t t_ms, uint64_t window_ms)
{
    return t_ms - t_ms % window_ms;
}

#endif
