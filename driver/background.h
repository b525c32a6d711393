/*
 * This user's background `lambdamr serve`: the Lambda service a detached job runs in on the
 * embedded default (`lambdamr run --detach` without --backend aws), so the job outlives the
 * driver as it would on AWS.
 *
 * Where: $XDG_RUNTIME_DIR/lambdamr/ when XDG_RUNTIME_DIR is set, else ~/.cache/lambdamr/ (the
 * folder is made 0700 and refused when another user owns it or others may write to it):
 *   serve.json       the state file (0600): pid, port, the process's start time (clock ticks
 *                    since boot, /proc/PID/stat field 22, so a reused pid is not taken for it),
 *                    started_ms, aws_env (lmr_background_aws_env_digest of its environment);
 *                    written by the serve once it listens, removed when it stops
 *   serve.lock       flock(2): held by a driver while it finds or starts the serve and hands
 *                    its job over, and by the serve when it stops for idleness, so two drivers
 *                    never start two and a serve never stops under a driver that picked it
 *   serve.log        the serve's own output (appended; moved to serve.log.1 past 4 MiB)
 *   function-logs/   the functions' logs (one file per function), the running serve's only
 * A state file whose pid is gone, whose start time differs or whose port does not answer is
 * stale and is replaced.
 */
#ifndef LMR_DRIVER_BACKGROUND_H
#define LMR_DRIVER_BACKGROUND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/result.h"

#define LMR_BACKGROUND_DIR_MAX 3072
/* How long an auto-started serve waits with no invocation in flight before it exits
 * (LMR_SERVE_IDLE_EXIT_S changes it for the serve a driver starts). */
#define LMR_BACKGROUND_IDLE_EXIT_DEFAULT_S 300u

struct lmr_background_state {
    int pid;
    uint16_t port;
    uint64_t start_ticks; /* the process's start time, /proc/PID/stat field 22 */
    uint64_t started_ms;  /* wall clock, for people */
    char aws_env[17];     /* lmr_background_aws_env_digest of the serve's environment ("" if not recorded) */
};

/** The folder (made 0700 if missing) into out. @return LMR_ERR_INVALID when it is not safe to use. */
enum lmr_result lmr_background_dir(char *out, size_t cap, struct lmr_err *err);

/** Open dir/serve.lock (0600) and take its exclusive flock, waiting up to wait_ms. @return the fd, or -1 (err set). */
int lmr_background_lock(const char *dir, uint32_t wait_ms, struct lmr_err *err);
/** Release and close a lock from lmr_background_lock. Ignores -1. */
void lmr_background_unlock(int fd);

/**
 * The running serve described by dir/serve.json, if it is alive (pid with that start time,
 * port accepting connections). @return LMR_OK, or LMR_ERR_NOT_FOUND when none runs (a stale
 * state file is left for the caller to replace).
 */
enum lmr_result lmr_background_find(const char *dir, struct lmr_background_state *st, struct lmr_err *err);

/**
 * With the lock held: the running serve, or a new one started in the background (detached from
 * this process and its terminal; `lambdamr serve --background --idle-exit S`), waited for until
 * it listens (10 s). self is the lambdamr executable.
 */
enum lmr_result lmr_background_ensure(const char *dir, const char *self, struct lmr_background_state *st,
                                      struct lmr_err *err);

/** The serve's side: write dir/serve.json for this process listening on port (atomically, 0600). */
enum lmr_result lmr_background_write_state(const char *dir, uint16_t port, struct lmr_err *err);
/** The serve's side: remove dir/serve.json if it names this process. */
void lmr_background_remove_state(const char *dir);

/**
 * A digest (16 hex digits) of the AWS settings Lambda reserves, which a function therefore takes
 * from the serve's environment and never from its configuration: AWS_ACCESS_KEY_ID,
 * AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_PROFILE, AWS_REGION, AWS_DEFAULT_REGION, with the
 * placeholder credentials a serve is given when there are none. Equal digests: a job of this
 * environment sees in the serve the credentials and region it has here.
 */
void lmr_background_aws_env_digest(char out[17]);

/** The start time of process pid (clock ticks since boot), 0 when it does not exist. */
uint64_t lmr_background_start_ticks(int pid);

#endif
