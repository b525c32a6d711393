/*
 * Who wrote an output part. Part files keep their plain names (part-r-NNNNN, part-m-NNNNN), so
 * a create-only commit that finds the part already there cannot tell by the name whether its
 * own job wrote it (an earlier attempt of the same task) or something else did (another job,
 * a stray file). Before committing its part, an attempt writes a claim into its job's work
 * location, WORK/<phase>/<task>/<attempt id>.claim; the task's commit record follows the part.
 * A part found already committed is the job's own only when the task's commit record or
 * another attempt's claim exists in the same job's work location; otherwise the attempt fails
 * and never adopts the part. The coordinator removes, for a failed or cancelled job, exactly
 * the parts whose task has a commit record or a claim.
 */
#ifndef LMR_JOB_PART_OWNER_H
#define LMR_JOB_PART_OWNER_H

#include <stdbool.h>

#include "store/store.h"

/**
 * Record that attempt_id of the task whose work folder is task_prefix ("WORK/reduce/r-00003/")
 * is about to commit part_key. Write it before the part's create-only commit.
 */
enum lmr_result lmr_part_claim(struct lmr_store *work, const char *task_prefix, const char *attempt_id,
                               const char *part_key, struct lmr_err *err);

/**
 * After a create-only commit of part_key found the part already there: is it this job's own
 * (the task's commit record, task_prefix + "commit.json", or another attempt's claim under task_prefix)?
 * @return LMR_OK if it is, LMR_ERR_EXISTS (err names the part, the job and what to do) if not.
 */
enum lmr_result lmr_part_check_owned(struct lmr_store *work, const char *task_prefix, const char *attempt_id,
                                     const char *part_key, const char *job_id, struct lmr_err *err);

/** Does task_prefix hold a commit record (commit.json) or any attempt's claim? */
bool lmr_part_task_touched(struct lmr_store *work, const char *task_prefix);

#endif
