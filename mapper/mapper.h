/* The map task handler (role "mapper"): read shards, map, combine, partition, write, commit. */
#ifndef LMR_MAPPER_MAPPER_H
#define LMR_MAPPER_MAPPER_H

#include "lambda/runtime.h"

/**
 * Handle one map task event (common/job/task.h). The response is a JSON object with the task's
 * figures; the map output is committed with a create-only commit record (first attempt wins).
 */
enum lmr_result lmr_mapper_handle(void *user_data, const struct lmr_runtime_context *ctx, const char *event,
                                  size_t event_len, struct lmr_buf *response, struct lmr_err *err);

#endif
