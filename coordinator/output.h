/*
 * Job-scoped output: what a job may find in its output location and what it may remove.
 *
 * An output holds the part files of at most one lambdamr job, listed by that job: _SUCCESS
 * (JSON: the job id and its parts) once it finished, its commit records and claims in its work
 * location (job/part_owner.h) while it runs or after it died, and the output lease
 * (lease.h), which names the last job and where its work data is. Before a job starts:
 *   - an output with parts or _SUCCESS is refused unless --overwrite (or it is a resume);
 *   - --overwrite removes exactly what the earlier job listed (its parts, _SUCCESS and the
 *     output's _lambdamr/ folder except the lease) and its work data; it refuses when the output
 *     holds part- keys that no lambdamr job lists, and never deletes through a symbolic link.
 */
#ifndef LMR_COORDINATOR_OUTPUT_H
#define LMR_COORDINATOR_OUTPUT_H

#include <jansson.h>
#include <stdbool.h>

#include "job/task.h"
#include "store/store_set.h"

#define LMR_SUCCESS_MAX_BYTES (16u << 20)

struct lmr_output_check {
    struct lmr_store *store;      /* Required: the output's store */
    const char *prefix;           /* Required: the output prefix ("" or ending in '/') */
    const char *uri;              /* Required: the --output URI, for messages */
    bool overwrite;               /* --overwrite */
    const json_t *previous;       /* Optional: the lease record found (the last job), or NULL */
    const char *job_id;           /* Required: the job about to start (whose lease it is now) */
    struct lmr_store_set *stores; /* Required: to open an earlier job's work store */
};

/* What the check found before it changed anything. */
struct lmr_output_state {
    bool had_parts;   /* part files or _SUCCESS were there */
    bool had_success; /* _SUCCESS was there */
    size_t removed;   /* keys --overwrite removed */
};

/**
 * Check the output before a job starts and, with --overwrite, remove the earlier job's output.
 * @return LMR_ERR_EXISTS when the output holds a job's output and --overwrite was not given,
 *         or it holds part files no job lists; LMR_ERR_INVALID when a key to remove is a
 *         symbolic link (or lies below one).
 */
enum lmr_result lmr_output_prepare(const struct lmr_output_check *c, struct lmr_output_state *st, struct lmr_err *err);

/** The contents of _SUCCESS for a job and its parts (names relative to the output prefix). Caller frees. */
char *lmr_output_success_text(const char *job_id, const char *const *parts, size_t nparts);

#endif
