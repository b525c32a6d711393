#include "util/fault.h"

#include <unistd.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool field_matches(const char *spec, size_t len, unsigned value)
{
    if (len == 1 && spec[0] == '*')
        return true;
    char buf[16];
    if (len == 0 || len >= sizeof buf)
        return false;
    memcpy(buf, spec, len);
    buf[len] = '\0';
    char *end;
    unsigned long v = strtoul(buf, &end, 10);
    return *end == '\0' && v == value;
}

bool lmr_fault(const char *point, unsigned task, unsigned attempt)
{
    const char *spec = getenv("LMR_FAULT");
    if (!spec || !*spec)
        return false;
    size_t plen = strlen(point);
    for (const char *p = spec; *p;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        const char *c1 = memchr(p, ':', n);
        const char *c2 = c1 ? memchr(c1 + 1, ':', n - (size_t)(c1 + 1 - p)) : NULL;
        if (c1 && c2 && (size_t)(c1 - p) == plen && !memcmp(p, point, plen) &&
            field_matches(c1 + 1, (size_t)(c2 - c1 - 1), task) &&
            field_matches(c2 + 1, n - (size_t)(c2 + 1 - p), attempt))
            return true;
        p += n + (end ? 1 : 0);
    }
    return false;
}

void lmr_fault_misbehave(const char *role, unsigned task, unsigned attempt)
{
    char point[32];
    snprintf(point, sizeof point, "%s-oom", role);
    if (lmr_fault(point, task, attempt)) {
        for (;;) { /* 64 MiB at a time, touched, never freed: the service's memory limit ends it */
            char *p = malloc(64u << 20);
            if (!p)
                abort();
            memset(p, 1, 64u << 20);
            usleep(1000);
        }
    }
    snprintf(point, sizeof point, "%s-hang", role);
    if (lmr_fault(point, task, attempt))
        for (;;)
            sleep(60);
}
