/*
 * `lambdamr run --detach` on the embedded default. The embedded service lives in the driver's
 * process, so a detached job goes to this user's background `lambdamr serve` instead
 * (background.h), and runs there as a `--backend aws` job runs against serve: the driver
 * creates the job's functions through Lambda's control plane (CreateFunction with a zip whose
 * `bootstrap` execs this build's function binary, beside the job's plugins/ and files/), then
 * invokes NAME-coordinator (Event), which invokes NAME-mapper and NAME-reducer through the
 * serve's Invoke API.
 *
 * The functions are named lambdamr-HASH-ROLE, HASH a digest of what makes them differ (the
 * zip, memory, timeout, concurrency and environment), so jobs with the same settings share
 * them and a job never changes another job's functions. Their environment is this driver's
 * LMR_* and AWS_ENDPOINT_URL* variables (as the in-process service would pass them), plus
 * AWS_ENDPOINT_URL_LAMBDA naming the serve; Lambda's reserved variables (credentials, region)
 * are the serve's, from the environment of the driver that started it: a job on S3 whose
 * environment has other AWS credentials or another region than the serve's is refused (stop the
 * serve and run the command again).
 */
#ifndef LMR_DRIVER_DETACH_LOCAL_H
#define LMR_DRIVER_DETACH_LOCAL_H

#include <stdbool.h>
#include <stdint.h>

#include "background.h"
#include "lambda/invoker.h"
#include "util/result.h"

struct lmr_detach_local_options {
    const char *bootstrap; /* Required: the function binary (absolute path) */
    const char *task_root; /* Optional: a folder with plugins/ and files/ to ship with the functions */
    uint32_t memory_mb;    /* Required */
    uint32_t timeout_s;    /* Required: the tasks' timeout (the coordinator gets Lambda's longest) */
    uint32_t concurrency;  /* Required: the tasks' functions' reserved concurrency */
    bool uses_s3;          /* the job reads or writes s3:// locations (it needs this environment's credentials) */
};

struct lmr_detach_local {
    int lock_fd; /* the background serve's lock, held until the coordinator has the job */
    struct lmr_background_state serve;
    char dir[LMR_BACKGROUND_DIR_MAX];
    char prefix[64]; /* lambdamr-HASH: PREFIX-mapper, PREFIX-reducer, PREFIX-coordinator */
};

/**
 * Find or start the background serve (taking its lock), create the job's functions there if
 * they are missing and make *inv, an `aws` invoker at the serve. On error the lock is released.
 */
enum lmr_result lmr_detach_local_prepare(const struct lmr_detach_local_options *o, struct lmr_detach_local *d,
                                         struct lmr_invoker **inv, struct lmr_err *err);

/**
 * Before anything is written: can a job (on S3 or not) run in the background serve that runs now,
 * if any? @return LMR_ERR_INVALID when the job uses S3 and the serve has other AWS credentials
 * or region than this environment (the message says to stop it).
 */
enum lmr_result lmr_detach_local_check(const char *dir, bool uses_s3, struct lmr_err *err);

/** Release the lock (once the coordinator has the job, or on failure). Idempotent. */
void lmr_detach_local_release(struct lmr_detach_local *d);

#endif
