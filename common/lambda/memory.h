/*
 * Function memory: Lambda's limits and lambdamr's default, defined once, and the task memory
 * budget derived from a function's memory size in one place.
 *
 * Inside a function the memory size is the Runtime API's AWS_LAMBDA_FUNCTION_MEMORY_SIZE
 * (struct lmr_runtime_context.memory_size_mb); the driver, deploy and the embedded service
 * check a configured size against the same limits.
 */
#ifndef LMR_LAMBDA_MEMORY_H
#define LMR_LAMBDA_MEMORY_H

#include <stdint.h>

#include "util/result.h"

/* Lambda's range of memory sizes (MB) and the size lambdamr configures when none is given. */
#define LMR_MEMORY_MIN_MB 128u
#define LMR_MEMORY_MAX_MB 10240u
#define LMR_MEMORY_DEFAULT_MB 1024u

/*
 * Fractions of a function's memory (percent). The shuffle share is what the map-side
 * combining collector or the reduce-side merge may hold; the read-ahead share caps the input
 * reader's bytes in flight; the rest is left to the process itself, input buffers and codec
 * contexts. One input line may be at most the line share.
 */
#define LMR_TASK_SHUFFLE_PERCENT 55u
#define LMR_TASK_MAX_LINE_PERCENT 20u
/* The input's read-ahead: bytes a mapper's store reader may have requested ahead of its lines
   (ranged GETs in flight and received parts not yet read); in a reducer or a merge task, what
   all its frame or source readers together may have requested (an equal part each). */
#define LMR_TASK_READ_AHEAD_PERCENT 10u

/* What one task may use, all derived from one memory size. */
struct lmr_task_budget {
    uint32_t memory_mb;        /* the function's memory size the budget was derived from */
    uint64_t memory_bytes;     /* memory_mb in bytes */
    uint64_t shuffle_bytes;    /* LMR_TASK_SHUFFLE_PERCENT of memory_bytes */
    uint64_t max_line_bytes;   /* LMR_TASK_MAX_LINE_PERCENT of memory_bytes */
    uint64_t read_ahead_bytes; /* LMR_TASK_READ_AHEAD_PERCENT of memory_bytes */
};

/**
 * The budget of a task in a function of memory_size_mb (the Runtime API's figure). When that
 * is 0 (not told), fallback_mb is used (the memory the job was planned with), and when both are
 * 0, LMR_MEMORY_DEFAULT_MB.
 */
struct lmr_task_budget lmr_task_budget(uint32_t memory_size_mb, uint32_t fallback_mb);

/**
 * Check a memory size against Lambda's range.
 * @param what  names the setting in the error ("--memory", "function NAME").
 * @return LMR_OK, or LMR_ERR_INVALID with a message that gives the range.
 */
enum lmr_result lmr_memory_check_mb(uint64_t memory_mb, const char *what, struct lmr_err *err);

#endif
