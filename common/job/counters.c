#include "job/counters.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct lmr_job_counters_private {
    size_t n;
    char names[LMR_JOB_COUNTERS_MAX][LMR_JOB_COUNTER_NAME_MAX + 1];
    uint64_t values[LMR_JOB_COUNTERS_MAX];
    char error[LMR_JOB_ERROR_MAX_BYTES];
};

static struct lmr_job_counters_private *priv_of(struct lmr_job_counters *c)
{
    if (!c->priv)
        c->priv = calloc(1, sizeof *c->priv);
    return c->priv;
}

static bool valid_name(const char *name)
{
    size_t n = 0;
    for (const char *p = name; *p; p++, n++) {
        char ch = *p;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
              ch == '.' || ch == '-'))
            return false;
    }
    return n >= 1 && n <= LMR_JOB_COUNTER_NAME_MAX;
}

int lmr_job_count(struct lmr_job_counters *counters, const char *name, uint64_t delta)
{
    if (!counters || !name || !valid_name(name))
        return -1;
    struct lmr_job_counters_private *p = priv_of(counters);
    if (!p)
        return -1;
    for (size_t i = 0; i < p->n; i++) {
        if (!strcmp(p->names[i], name)) {
            p->values[i] += delta;
            return 0;
        }
    }
    if (p->n == LMR_JOB_COUNTERS_MAX)
        return -1;
    strcpy(p->names[p->n], name);
    p->values[p->n++] = delta;
    return 0;
}

void lmr_job_error(struct lmr_job_counters *counters, const char *fmt, ...)
{
    struct lmr_job_counters_private *p = counters ? priv_of(counters) : NULL;
    if (!p)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->error, sizeof p->error, fmt, ap);
    va_end(ap);
}

json_t *lmr_job_counters_to_json(const struct lmr_job_counters *c)
{
    json_t *o = json_object();
    if (o && c->priv)
        for (size_t i = 0; i < c->priv->n; i++)
            json_object_set_new(o, c->priv->names[i], json_integer((json_int_t)c->priv->values[i]));
    return o;
}

void lmr_job_counters_sum_json(json_t *acc, const json_t *obj)
{
    const char *k;
    json_t *v;
    if (!json_is_object(obj))
        return;
    json_object_foreach((json_t *)obj, k, v)
    {
        if (!json_is_integer(v))
            continue;
        json_t *cur = json_object_get(acc, k);
        if (!cur && json_object_size(acc) >= LMR_JOB_COUNTERS_MAX)
            continue; /* the same cap as in a task */
        json_int_t have = json_integer_value(cur);
        json_object_set_new(acc, k, json_integer(have + json_integer_value(v)));
    }
}

const char *lmr_job_counters_error(const struct lmr_job_counters *c)
{
    return c->priv && c->priv->error[0] ? c->priv->error : NULL;
}

void lmr_job_counters_clean_up(struct lmr_job_counters *c)
{
    free(c->priv);
    c->priv = NULL;
}
