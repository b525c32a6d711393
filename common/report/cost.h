/*
 * What a job costs on AWS, from one price table (common/report/prices.json, compiled in; a
 * --price-file of the same shape overrides it). Prices are chosen by region and architecture;
 * every report says which prices it used and their date.
 *
 * Billing as AWS bills: each invocation's billed duration is its Init plus its Duration,
 * rounded up to 1 ms (AWS bills Init for ZIP-packaged functions since 2025-08-01, and always
 * did for custom runtimes); GB-seconds are billed duration x configured memory / 1024; every
 * invocation, failed attempts included, is a request. S3: PUT/COPY/POST/LIST at the PUT price,
 * GET/HEAD at the GET price, DELETE free. S3 requests are estimated on every back-end as if the
 * store were S3.
 */
#ifndef LMR_REPORT_COST_H
#define LMR_REPORT_COST_H

#include <jansson.h>
#include <stdint.h>

#include "util/result.h"

struct lmr_prices {
    char region[32];       /* the region whose prices these are */
    char asked_region[32]; /* the region asked for ("" = default) */
    char architecture[16]; /* "x86_64" or "arm64" */
    char date[16];         /* date of the prices, YYYY-MM-DD */
    char source[96];       /* "built-in table" or the --price-file path */
    double lambda_gb_second;
    double lambda_per_million_requests;
    double lambda_ephemeral_gb_second; /* per GB-second of ephemeral storage above 512 MB */
    double s3_per_1000_put;            /* PUT, COPY, POST, LIST */
    double s3_per_1000_get;            /* GET, HEAD, other */
    double kinesis_shard_hour;
    double kinesis_per_million_put_units; /* 25 KB PUT payload units */
};

/**
 * Load the prices of region (NULL or "" = the table's default region) and architecture
 * ("x86_64" or "arm64") from price_file, or from the built-in table when price_file is NULL.
 * A region missing from the table is an error that names the regions the table has and says
 * to give --price-file.
 */
enum lmr_result lmr_prices_load(const char *price_file, const char *region, const char *architecture,
                                struct lmr_prices *out, struct lmr_err *err);

/** The architecture of this build as Lambda names it: "x86_64" or "arm64". */
const char *lmr_build_architecture(void);

/** Billed milliseconds of one invocation: Init + Duration rounded up to 1 ms (at least the reported figure). */
double lmr_billed_ms(double duration_ms, double init_duration_ms, double reported_billed_ms);

/* Store requests by kind, as the reports count them. */
struct lmr_request_counts {
    uint64_t get, put, list, head, del;
};

/* Billing figures summed over invocations (for runs too long to keep every invocation). */
struct lmr_billing_totals {
    uint64_t invocations;
    double billed_ms, init_ms;
    double gb_seconds, init_gb_seconds, ephemeral_gb_seconds;
};

/** Add one invocation: Init + Duration billed (lmr_billed_ms) at memory_mb (and ephemeral_mb, 512 = none). */
void lmr_billing_add(struct lmr_billing_totals *t, double duration_ms, double init_ms, double reported_billed_ms,
                     uint32_t memory_mb, uint32_t ephemeral_mb);

/** The cost of a stream run from its summed billing figures, as lmr_cost_stream gives it. */
json_t *lmr_cost_stream_totals(const struct lmr_prices *p, const struct lmr_billing_totals *t,
                               const struct lmr_request_counts *req, double shard_hours, uint64_t put_payload_units);

/**
 * The cost of a batch job: invocations (a JSON array of objects with duration_ms,
 * init_duration_ms, billed_duration_ms, memory_size_mb and optionally ephemeral_storage_mb)
 * and the store requests. @return a new JSON object (NULL when out of memory) with the totals,
 * the breakdown (Lambda compute with its Init share, Lambda requests, S3 by request kind) and
 * the prices used.
 */
json_t *lmr_cost_batch(const struct lmr_prices *p, const json_t *invocations, const struct lmr_request_counts *req);

/**
 * The cost of a stream run: its invocations and store requests as for a batch job, plus
 * Kinesis shard-hours (shards x hours the run was attached) and PUT payload units (0 when the
 * records were not put through Kinesis by this run).
 */
json_t *lmr_cost_stream(const struct lmr_prices *p, const json_t *invocations, const struct lmr_request_counts *req,
                        double shard_hours, uint64_t put_payload_units);

/** The prices as a JSON object, for reports (and for handing them to the coordinator function). */
json_t *lmr_prices_json(const struct lmr_prices *p);

/** Read prices back from lmr_prices_json's shape. @return LMR_ERR_FORMAT naming a missing figure. */
enum lmr_result lmr_prices_from_json(const json_t *j, struct lmr_prices *out, struct lmr_err *err);

#endif
