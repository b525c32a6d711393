#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#include "util/buf.h"
#include "util/misc.h"

static int current_level = -1;

int lmr_log_enabled(enum lmr_log_level level)
{
    if (current_level < 0) {
        const char *s = getenv("LMR_LOG");
        int l = LMR_LOG_WARN;
        if (s) {
            if (!strcmp(s, "error"))
                l = LMR_LOG_ERROR;
            else if (!strcmp(s, "info"))
                l = LMR_LOG_INFO;
            else if (!strcmp(s, "debug"))
                l = LMR_LOG_DEBUG;
        }
        current_level = l;
    }
    return (int)level <= current_level;
}

static pthread_mutex_t capture_lock = PTHREAD_MUTEX_INITIALIZER;
static struct lmr_buf *capture;

void lmr_log_capture_begin(struct lmr_buf *buf)
{
    pthread_mutex_lock(&capture_lock);
    capture = buf;
    pthread_mutex_unlock(&capture_lock);
}

void lmr_log_capture_end(void)
{
    lmr_log_capture_begin(NULL);
}

void lmr_log(enum lmr_log_level level, const char *fmt, ...)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    bool print = lmr_log_enabled(level), keep = capture && level <= LMR_LOG_INFO;
    if (!print && !keep)
        return;
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (print)
        fprintf(stderr, "lambdamr %s: %s\n", names[level], line);
    pthread_mutex_lock(&capture_lock);
    if (capture && capture->len + strlen(line) + 64 < capture->max_bytes)
        lmr_buf_printf(capture, "%llu %s: %s\n", (unsigned long long)lmr_wall_ms(), names[level], line);
    pthread_mutex_unlock(&capture_lock);
}
