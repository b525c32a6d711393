/*
 * The output lease: one job drives an output at a time. OUTPUT/_lambdamr/lease.json names the
 * job that holds the output, its holder (one coordinator instance), where its work data is, and
 * until when the lease runs. It is a compare-and-swap record:
 *   - created with a create-only put (S3 If-None-Match: *), when the output has none;
 *   - renewed, released and taken over with lmr_store_put_if_match on the ETag last read;
 *   - taken over only when it was released or has expired (or, on this host, when the
 *     process that held it is gone and the job is the same: a resume; LMR_LEASE_IGNORE_PID
 *     turns that shortcut off, for tests of expiry).
 * After a job ends the record stays, released, as the output's account of its last job (the
 * previous job an --overwrite or a resume reads). Format: docs/FORMATS.md.
 */
#ifndef LMR_COORDINATOR_LEASE_H
#define LMR_COORDINATOR_LEASE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "store/store.h"

#define LMR_LEASE_VERSION 1
#define LMR_LEASE_DEFAULT_DURATION_MS 60000u
#define LMR_LEASE_MAX_BYTES (64u * 1024)

struct lmr_lease_options {
    struct lmr_store *store; /* Required: the output's store */
    const char *key;         /* Required: OUTPUT/_lambdamr/lease.json */
    const char *output_uri;  /* Required: for messages */
    const char *job_id;      /* Required */
    const char *fingerprint; /* Required: the job request's fingerprint (same command = same fingerprint) */
    const char *work_root;   /* Required: the job's work location */
    const char *work_key;    /* Required */
    uint64_t duration_ms;    /* Optional: default LMR_LEASE_DEFAULT_DURATION_MS */
    /* Optional: a holder of this same job that hands the lease over (the driver to the coordinator
     * function, a coordinator to its continuation): its unexpired lease may be taken. */
    const char *takeover_holder;
};

struct lmr_lease;

/**
 * Take the output's lease for the job. *previous receives the record found before (new
 * reference; NULL when the output had none), which says what the last job on this output was.
 * @return LMR_ERR_EXISTS when another job holds an unexpired lease (err names the job, its
 *         host and process, when the lease runs out, and what to do).
 */
enum lmr_result lmr_lease_acquire(const struct lmr_lease_options *opts, struct lmr_lease **out, json_t **previous,
                                  struct lmr_err *err);

/** Read the output's lease record without taking it: *record is NULL when there is none (new reference otherwise). */
enum lmr_result lmr_lease_peek(struct lmr_store *store, const char *key, json_t **record, struct lmr_err *err);

/** Extend the lease by its duration. @return LMR_ERR_EXISTS when it was lost (taken over). */
enum lmr_result lmr_lease_renew(struct lmr_lease *l, struct lmr_err *err);

/** Release the lease, recording the job's final status ("succeeded", "failed", "cancelled"). */
enum lmr_result lmr_lease_release(struct lmr_lease *l, const char *status, struct lmr_err *err);

/**
 * Give the output back as it was: write the record found before (previous, from
 * lmr_lease_acquire) over ours, for a job refused before it wrote anything, so the output's
 * account of its last job stays. With previous NULL, release ours as "refused".
 */
enum lmr_result lmr_lease_restore(struct lmr_lease *l, const json_t *previous, struct lmr_err *err);

/** This holder's id (a continuation takes the lease over from it). */
const char *lmr_lease_holder(const struct lmr_lease *l);

/** Milliseconds the lease runs for (the renew interval is a third of this). */
uint64_t lmr_lease_duration_ms(const struct lmr_lease *l);

/** Free the handle (the record in the store stays as it is). NULL-safe. */
void lmr_lease_destroy(struct lmr_lease *l);

/** Is the record (as read from the store) held and unexpired at now_ms? */
bool lmr_lease_record_held(const json_t *record, uint64_t now_ms);

#endif
