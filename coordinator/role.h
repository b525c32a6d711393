/*
 * The coordinator as a Lambda function (bootstrap's `coordinator` role). Its event names a
 * job's manifest; it takes the output lease over from whoever handed the job to it (the driver,
 * or a coordinator that ran out of time), runs the job from its state in the store (map phase,
 * shuffle plan, reduce phase, commit: lmr_coordinator_run, with tasks invoked through the
 * Lambda Invoke API, AWS_ENDPOINT_URL_LAMBDA), and near the Runtime API's deadline stops
 * starting tasks, re-invokes itself asynchronously (Event) with the lease handed over, and
 * returns. Any instance can pick the job up: committed tasks are never run again.
 *
 * Event (JSON):
 *   {"kind": "coordinate", "manifest": {"root": "...", "key": "WORK/manifest.json"},
 *    "fingerprint": "...", "holder": "lease holder handing over", "lease_duration_ms": 60000,
 *    "functions": {"map": "P-mapper", "reduce": "P-reducer", "coordinator": "P-coordinator"},
 *    "concurrency": 8, "max_attempts": 3, "round": 1, "resume": false,
 *    "speculation": {"enabled": true, "quantile": 0.75, "factor": 3, "min_ms": 3000} (optional; these defaults),
 *    "earlier_requests": {"get": 0, "put": 0, "list": 0, "head": 0, "delete": 0}}
 * Response: {"job_id", "status": "succeeded|failed|cancelled|continued|busy", "error"?}.
 */
#ifndef LMR_COORDINATOR_ROLE_H
#define LMR_COORDINATOR_ROLE_H

#include <jansson.h>

#include "lambda/runtime.h"

/* Before the deadline, the coordinator stops starting tasks this long ahead (or at a quarter of
 * the time it was given, when that is shorter). LMR_COORDINATOR_MARGIN_MS overrides it (tests). */
#define LMR_COORDINATOR_DEADLINE_MARGIN_MS 60000u

/**
 * The coordinator role's Init (before its first GET /next): starts opening libcurl (about 30
 * shared libraries, several milliseconds) on a thread of its own, so that it is loaded while the
 * runtime waits for the event and the handler takes the lease over; the handler's first AWS client
 * (lmr_curl_load) waits for it. Nothing to undo: a failure is reported by that client.
 */
void lmr_coordinator_init(void);

/** The coordinator role's handler (lmr_handler_fn). */
enum lmr_result lmr_coordinator_handle(void *user_data, const struct lmr_runtime_context *ctx, const char *event,
                                       size_t event_len, struct lmr_buf *response, struct lmr_err *err);

#endif
