/*
 * Task events (common/job/task.c): the map and reduce task descriptors a function receives.
 * A parsed task written back as JSON must parse again to the same task.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "job/task.h"

static void roundtrip_map(const struct lmr_map_task *t)
{
    json_t *j = lmr_map_task_to_json(t);
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!s)
        abort();
    struct lmr_map_task again;
    struct lmr_err err = {0};
    if (lmr_map_task_from_json(s, strlen(s), &again, &err) != LMR_OK) {
        fprintf(stderr, "a map task written back does not parse: %s\n%s\n", err.msg, s);
        abort();
    }
    if (again.task != t->task || again.attempt != t->attempt || again.nshards != t->nshards ||
        strcmp(again.attempt_id, t->attempt_id) || strcmp(again.job.job_id, t->job.job_id))
        abort();
    for (size_t i = 0; i < t->nshards; i++)
        if (again.shards[i].offset != t->shards[i].offset || again.shards[i].length != t->shards[i].length ||
            strcmp(again.shards[i].object.key, t->shards[i].object.key))
            abort();
    lmr_map_task_clean_up(&again);
    free(s);
}

static void roundtrip_reduce(const struct lmr_reduce_task *t)
{
    json_t *j = lmr_reduce_task_to_json(t);
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!s)
        abort();
    struct lmr_reduce_task again;
    struct lmr_err err = {0};
    if (lmr_reduce_task_from_json(s, strlen(s), &again, &err) != LMR_OK) {
        fprintf(stderr, "a reduce task written back does not parse: %s\n%s\n", err.msg, s);
        abort();
    }
    if (again.task != t->task || again.nframes != t->nframes)
        abort();
    for (size_t i = 0; i < t->nframes; i++)
        if (again.frames[i].offset != t->frames[i].offset || strcmp(again.frames[i].key, t->frames[i].key))
            abort();
    lmr_reduce_task_clean_up(&again);
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct lmr_err err = {0};
    struct lmr_map_task m;
    if (lmr_map_task_from_json((const char *)data, size, &m, &err) == LMR_OK) {
        roundtrip_map(&m);
        lmr_map_task_clean_up(&m);
    }
    struct lmr_reduce_task r;
    if (lmr_reduce_task_from_json((const char *)data, size, &r, &err) == LMR_OK) {
        roundtrip_reduce(&r);
        lmr_reduce_task_clean_up(&r);
    }
    return 0;
}
