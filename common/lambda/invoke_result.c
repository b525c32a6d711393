/* struct lmr_invoke_result: life cycle and the parser of Lambda REPORT lines. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lambda/invoker.h"

void lmr_invoke_result_init(struct lmr_invoke_result *res, size_t max_payload_bytes)
{
    memset(res, 0, sizeof *res);
    lmr_buf_init(&res->payload, max_payload_bytes);
}

void lmr_invoke_result_clean_up(struct lmr_invoke_result *res)
{
    if (res)
        lmr_buf_clean_up(&res->payload);
}

/* The number after "key" within [line, end), or -1. */
static double field(const char *line, const char *end, const char *key)
{
    size_t klen = strlen(key);
    for (const char *p = line; p && p + klen <= end; p++) {
        p = strstr(p, key);
        if (!p || p >= end)
            return -1;
        /* "Duration:" must not match inside "Billed Duration:" or "Init Duration:". */
        if (p == line || p[-1] == '\t' || p[-1] == ' ') {
            if (!strcmp(key, "Duration:") && p >= line + 7 &&
                (!strncmp(p - 7, "Billed ", 7) || (p >= line + 5 && !strncmp(p - 5, "Init ", 5))))
                continue;
            char *after = NULL;
            double v = strtod(p + klen, &after);
            if (after == p + klen)
                return -1;
            return v;
        }
    }
    return -1;
}

bool lmr_invoke_result_parse_report(struct lmr_invoke_result *res, const char *text)
{
    if (!text)
        return false;
    const char *line = strstr(text, "REPORT RequestId:");
    if (!line)
        return false;
    const char *end = strchr(line, '\n');
    if (!end)
        end = line + strlen(line);
    const char *id = line + strlen("REPORT RequestId:");
    while (*id == ' ')
        id++;
    size_t idlen = strcspn(id, " \t\n");
    if (idlen >= sizeof res->request_id)
        idlen = sizeof res->request_id - 1;
    memcpy(res->request_id, id, idlen);
    res->request_id[idlen] = '\0';
    double d = field(line, end, "Duration:");
    if (d < 0)
        return false;
    res->duration_ms = d;
    double b = field(line, end, "Billed Duration:");
    res->billed_duration_ms = b >= 0 ? b : 0;
    double m = field(line, end, "Memory Size:");
    res->memory_size_mb = m >= 0 ? (uint32_t)m : 0;
    double u = field(line, end, "Max Memory Used:");
    res->max_memory_used_mb = u >= 0 ? (uint32_t)u : 0;
    double i = field(line, end, "Init Duration:");
    res->init_duration_ms = i >= 0 ? i : 0;
    return true;
}
