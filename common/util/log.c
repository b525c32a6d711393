#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

void lmr_log(enum lmr_log_level level, const char *fmt, ...)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    if (!lmr_log_enabled(level))
        return;
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "lambdamr %s: %s\n", names[level], line);
}
