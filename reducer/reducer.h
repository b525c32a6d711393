/* The reduce task handler (role "reducer"): merge one partition of every map output, reduce, write a part. */
#ifndef LMR_REDUCER_REDUCER_H
#define LMR_REDUCER_REDUCER_H

#include "lambda/runtime.h"

/**
 * Handle one reduce task event (common/job/task.h): fetch this partition's frame from every
 * committed map object, k-way merge them within the memory budget, call the job's reduce per
 * key group and commit part-r-NNNNN (create-only), then the task's commit record.
 */
enum lmr_result lmr_reducer_handle(void *user_data, const struct lmr_runtime_context *ctx, const char *event,
                                   size_t event_len, struct lmr_buf *response, struct lmr_err *err);

/**
 * Handle one merge task event (kind "merge", common/job/task.h) of the multi-stage exchange:
 * merge the outputs of a group of map tasks into one shuffle object with the job's R partitions
 * and commit WORK/merge/g-NNNNN/commit.json create-only. lmr_reducer_handle passes merge events here.
 */
enum lmr_result lmr_merge_handle(const struct lmr_runtime_context *ctx, const char *event, size_t event_len,
                                 struct lmr_buf *response, struct lmr_err *err);

#endif
