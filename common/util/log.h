/*
 * Diagnostics for operators (not user-facing errors, which travel in struct lmr_err).
 * Level from LMR_LOG=error|warn|info|debug (default warn). Lines go to stderr, which in a
 * function process is the function's log.
 */
#ifndef LMR_UTIL_LOG_H
#define LMR_UTIL_LOG_H

enum lmr_log_level { LMR_LOG_ERROR = 0, LMR_LOG_WARN, LMR_LOG_INFO, LMR_LOG_DEBUG };

void lmr_log(enum lmr_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

struct lmr_buf;
/**
 * Also copy every log line (whatever LMR_LOG says, info and above) into buf until
 * lmr_log_capture_end, process-wide: a function process runs one invocation at a time, and its
 * handler stores the lines as the task's log (job/task_log.h). buf's cap bounds it.
 */
void lmr_log_capture_begin(struct lmr_buf *buf);
void lmr_log_capture_end(void);
int lmr_log_enabled(enum lmr_log_level level);

#define LMR_WARN(...) lmr_log(LMR_LOG_WARN, __VA_ARGS__)
#define LMR_INFO(...) lmr_log(LMR_LOG_INFO, __VA_ARGS__)
#define LMR_DEBUG(...) lmr_log(LMR_LOG_DEBUG, __VA_ARGS__)

#endif
