#include "lambda/memory.h"

#define MiB (1024ull * 1024ull)

struct lmr_task_budget lmr_task_budget(uint32_t memory_size_mb, uint32_t fallback_mb)
{
    uint32_t mb = memory_size_mb ? memory_size_mb : fallback_mb ? fallback_mb : LMR_MEMORY_DEFAULT_MB;
    uint64_t bytes = (uint64_t)mb * MiB;
    return (struct lmr_task_budget){.memory_mb = mb,
                                    .memory_bytes = bytes,
                                    .shuffle_bytes = bytes * LMR_TASK_SHUFFLE_PERCENT / 100,
                                    .max_line_bytes = bytes * LMR_TASK_MAX_LINE_PERCENT / 100,
                                    .read_ahead_bytes = bytes * LMR_TASK_READ_AHEAD_PERCENT / 100};
}

enum lmr_result lmr_memory_check_mb(uint64_t memory_mb, const char *what, struct lmr_err *err)
{
    if (memory_mb < LMR_MEMORY_MIN_MB || memory_mb > LMR_MEMORY_MAX_MB)
        return lmr_fail(err, LMR_ERR_INVALID, "%s: memory %llu MB is out of range; use %u to %u MB", what,
                        (unsigned long long)memory_mb, LMR_MEMORY_MIN_MB, LMR_MEMORY_MAX_MB);
    return LMR_OK;
}
