/*
 * The stream report (OUTPUT/_lambdamr/report.json with "kind": "stream"; docs/FORMATS.md): what
 * a `lambdamr stream` run did, window by window. For every window its start and end and, for
 * every invocation made for it, the invocation's start and end (wall clock), its concurrency
 * slot (the shard lane that made it), cold or warm, Init, billed duration, memory, max memory
 * used, and the function's own store requests and bytes, as the batch report has them; totals
 * and the cost for the whole run.
 *
 * A stream can run for days, so the report is capped: the last LMR_STREAM_REPORT_WINDOWS closed
 * windows are kept in full (each with at most LMR_STREAM_REPORT_INVOCATIONS_PER_WINDOW
 * invocations in full; the rest are counted in the window's figures), the
 * LMR_STREAM_REPORT_SUMMARIES windows before them as one line of figures each, and every window
 * in the run's totals. The report is rebuilt from these figures each time it is written.
 *
 * Thread-safe: the poller's thread adds invocations and windows, the driver writes the report.
 */
#ifndef LMR_REPORT_STREAM_REPORT_H
#define LMR_REPORT_STREAM_REPORT_H

#include <jansson.h>
#include <stdint.h>

#include "report/cost.h"
#include "store/store.h"
#include "stream/poller.h"
#include "util/result.h"

#define LMR_STREAM_REPORT_SCHEMA_VERSION 2
#define LMR_STREAM_REPORT_WINDOWS 20                 /* closed windows kept in full */
#define LMR_STREAM_REPORT_INVOCATIONS_PER_WINDOW 500 /* invocations kept in full per window */
#define LMR_STREAM_REPORT_SUMMARIES 1000             /* earlier windows kept as one line each */
#define LMR_STREAM_REPORT_OPEN_WINDOWS 256           /* windows with invocations but not closed yet */
#define LMR_STREAM_REPORT_SLOTS 4096                 /* distinct shard lanes given a row of their own */
#define LMR_STREAM_REPORT_INTERVAL_MS 30000          /* the driver rewrites the report at most this often */

struct lmr_stream_report;

struct lmr_stream_report_options {
    json_t *params;                    /* Required: the run's parameters (job, args, command, source, output,
                                          window_ms, mapping …), copied into the report's top level. */
    size_t windows_max;                /* Optional: default LMR_STREAM_REPORT_WINDOWS. */
    size_t invocations_per_window_max; /* Optional: default LMR_STREAM_REPORT_INVOCATIONS_PER_WINDOW. */
    size_t summaries_max;              /* Optional: default LMR_STREAM_REPORT_SUMMARIES. */
};

/** A new, empty report (the run starts now). params is copied. */
enum lmr_result lmr_stream_report_new(const struct lmr_stream_report_options *o, struct lmr_stream_report **out,
                                      struct lmr_err *err);
/** Free. NULL-safe. */
void lmr_stream_report_destroy(struct lmr_stream_report *r);

/** Add one invocation (the poller's on_invocation); window_ms is the window length. */
void lmr_stream_report_add_invocation(struct lmr_stream_report *r, const struct lmr_stream_invocation *inv,
                                      uint64_t window_ms);

/** A window was committed (the poller's on_window): records in it, already = an earlier run had. */
void lmr_stream_report_window_closed(struct lmr_stream_report *r, uint64_t window_start_ms, uint64_t window_ms,
                                     uint64_t records, bool already, const char *key);

/** How the run stands when the report is written. */
struct lmr_stream_report_end {
    const char *status;                      /* Required: "running", "stopped", "drained" or "failed". */
    const char *error;                       /* Optional: why it failed. */
    const struct lmr_stream_stats *stats;    /* Required: the poller's figures. */
    const struct lmr_prices *prices;         /* Optional: NULL = no cost. */
    const struct lmr_store_stats *stores[4]; /* Optional: this process's own stores (NULL = none). */
    double shard_hours;                      /* Kinesis shard-hours while the run read a stream (0 otherwise). */
};

/** The report as JSON (a new object; NULL when out of memory). */
json_t *lmr_stream_report_json(struct lmr_stream_report *r, const struct lmr_stream_report_end *e);

/** Write the report to key in store (whole, replacing the previous one). */
enum lmr_result lmr_stream_report_write(struct lmr_stream_report *r, const struct lmr_stream_report_end *e,
                                        struct lmr_store *store, const char *key, struct lmr_err *err);

/**
 * The "store" member the stream function appends as the last member of its response
 * (stream/stream_function.c), parsed from payload[0..len). @return a new object or NULL.
 */
json_t *lmr_stream_report_payload_store(const char *payload, size_t len);

#endif
