#include "job/part_owner.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CLAIM_SUFFIX ".claim"

enum lmr_result lmr_part_claim(struct lmr_store *work, const char *task_prefix, const char *attempt_id,
                               const char *part_key, struct lmr_err *err)
{
    size_t n = strlen(task_prefix) + strlen(attempt_id) + sizeof CLAIM_SUFFIX;
    char *key = malloc(n);
    if (!key)
        return lmr_fail(err, LMR_ERR_NOMEM, "out of memory claiming part '%s'", part_key);
    snprintf(key, n, "%s%s%s", task_prefix, attempt_id, CLAIM_SUFFIX);
    enum lmr_result r = lmr_store_put(work, key, part_key, strlen(part_key), 0, err);
    free(key);
    return r;
}

struct claim_scan {
    const char *own; /* "<attempt id>.claim" of the asking attempt */
    const char *prefix;
    bool other_claim, commit;
};

static enum lmr_result scan(void *user_data, const struct lmr_store_object *obj)
{
    struct claim_scan *cs = user_data;
    const char *name = obj->key + strlen(cs->prefix);
    size_t n = strlen(name), sn = strlen(CLAIM_SUFFIX);
    if (!strcmp(name, "commit.json"))
        cs->commit = true;
    else if (!strchr(name, '/') && n > sn && !strcmp(name + n - sn, CLAIM_SUFFIX) &&
             (!cs->own || strcmp(name, cs->own)))
        cs->other_claim = true;
    return LMR_OK;
}

static enum lmr_result scan_task(struct lmr_store *work, const char *task_prefix, const char *attempt_id,
                                 struct claim_scan *cs, struct lmr_err *err)
{
    char own[128] = "";
    if (attempt_id)
        snprintf(own, sizeof own, "%s%s", attempt_id, CLAIM_SUFFIX);
    *cs = (struct claim_scan){.own = attempt_id ? own : NULL, .prefix = task_prefix};
    return lmr_store_list(work, task_prefix, scan, cs, err);
}

enum lmr_result lmr_part_check_owned(struct lmr_store *work, const char *task_prefix, const char *attempt_id,
                                     const char *part_key, const char *job_id, struct lmr_err *err)
{
    struct claim_scan cs;
    enum lmr_result r = scan_task(work, task_prefix, attempt_id, &cs, err);
    if (r)
        return lmr_err_prefix(err, "checking who wrote part '%s'", part_key);
    if (cs.commit || cs.other_claim)
        return LMR_OK;
    return lmr_fail(err, LMR_ERR_EXISTS,
                    "output part '%s' already exists and job %s did not write it (another job's output or a stray "
                    "file); lambdamr never adopts it: remove it, or run with another --output",
                    part_key, job_id);
}

bool lmr_part_task_touched(struct lmr_store *work, const char *task_prefix)
{
    struct claim_scan cs;
    return scan_task(work, task_prefix, NULL, &cs, NULL) == LMR_OK && (cs.commit || cs.other_claim);
}
