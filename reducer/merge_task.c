/*
 * The merge task of the multi-stage exchange (event kind "merge", played by the reducer role so
 * that no deployable function is added): read the commit records of map tasks [first, first+G),
 * merge their objects into one shuffle object with R frames (shuffle/merge_stage.h) and commit
 * it create-only as WORK/merge/g-NNNNN/commit.json, a record of the same format as a map task's.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "job/registry.h"
#include "job/task.h"
#include "job/task_log.h"
#include "reducer.h"
#include "shuffle/merge_inputs.h"
#include "shuffle/merge_stage.h"
#include "store/store_set.h"
#include "util/fault.h"
#include "util/log.h"
#include "util/misc.h"

/* The commit records of the group's map tasks: their objects and frames. */
static enum lmr_result read_sources(const struct lmr_merge_task *t, struct lmr_store *work,
                                    struct lmr_shuffle_commit *commits, struct lmr_err *err)
{
    char **keys = calloc(t->maps, sizeof *keys);
    enum lmr_result r = keys ? LMR_OK : LMR_ERR_NOMEM;
    for (uint32_t i = 0; !r && i < t->maps; i++)
        if (!(keys[i] = lmr_work_key(&t->job, "map/m-%05u/commit.json", t->first_map + i)))
            r = LMR_ERR_NOMEM;
    if (!r)
        r = lmr_shuffle_read_commits(work, (const char *const *)keys, t->maps, t->job.reducers, 0, commits, err);
    if (r == LMR_ERR_NOT_FOUND)
        lmr_err_prefix(err, "merge task %u: a map task of its group has not committed", t->task);
    for (uint32_t i = 0; keys && i < t->maps; i++)
        free(keys[i]);
    free(keys);
    return r;
}

enum lmr_result lmr_merge_handle(const struct lmr_runtime_context *ctx, const char *event, size_t event_len,
                                 struct lmr_buf *response, struct lmr_err *err)
{
    (void)ctx;
    double t0 = lmr_mono_ms();
    struct lmr_merge_task t;
    enum lmr_result r = lmr_merge_task_from_json(event, event_len, &t, err);
    if (r)
        return r;
    const struct lmr_job_ops *ops = NULL;
    void *job_state = NULL;
    struct lmr_store_set stores = {0};
    struct lmr_store *work = NULL;
    struct lmr_shuffle_commit *commits = NULL;
    struct lmr_merge_stage_source *sources = NULL;
    struct lmr_partition_frame *frames = NULL;
    char *object_key = NULL, *commit_key = NULL, *text = NULL;
    json_t *record = NULL;
    bool won = false;
    char task_name[16];
    snprintf(task_name, sizeof task_name, "g-%05u", t.task);
    struct lmr_buf log;
    lmr_buf_init(&log, LMR_TASK_LOG_MAX_BYTES);
    lmr_task_log_begin(&log);
    LMR_INFO("merge task %u attempt %u (%s) of job %s: map tasks %u-%u, %u partitions", t.task, t.attempt, t.attempt_id,
             t.job.job_id, t.first_map, t.first_map + t.maps - 1, t.job.reducers);
    if (!t.job.reducers) {
        r = lmr_fail(err, LMR_ERR_INVALID, "merge task %u: job %s is map-only, it has nothing to merge", t.task,
                     t.job.job_id);
        goto done;
    }
    if (t.maps > LMR_MERGE_FAN_IN_MAX) {
        r = lmr_fail(err, LMR_ERR_INVALID, "merge task %u: %u map outputs is over the fan-in limit of %u", t.task,
                     t.maps, LMR_MERGE_FAN_IN_MAX);
        goto done;
    }
    if ((r = lmr_job_find(t.job.job_name, &ops, err)))
        goto done;
    {
        char msg[512] = "";
        if (lmr_job_setup(&ops, &job_state, t.job.args, msg, sizeof msg)) {
            r = lmr_fail(err, LMR_ERR_INVALID, "job '%s': %s", ops->name, msg);
            goto done;
        }
    }
    if ((r = lmr_store_set_get(&stores, t.job.work.root, &work, err)))
        goto done;
    commits = calloc(t.maps, sizeof *commits);
    sources = calloc(t.maps, sizeof *sources);
    frames = calloc(t.job.reducers, sizeof *frames);
    object_key = lmr_work_key(&t.job, "merge/g-%05u/%s.lmr", t.task, t.attempt_id);
    commit_key = lmr_work_key(&t.job, "merge/g-%05u/commit.json", t.task);
    if (!commits || !sources || !frames || !object_key || !commit_key) {
        r = lmr_fail(err, LMR_ERR_NOMEM, "out of memory starting merge task %u", t.task);
        goto done;
    }
    if ((r = read_sources(&t, work, commits, err)))
        goto done;
    for (uint32_t i = 0; i < t.maps; i++)
        sources[i] = (struct lmr_merge_stage_source){commits[i].object, commits[i].frames};
    struct lmr_merge_stage_options mo = {.ops = ops,
                                         .job_state = job_state,
                                         .store = work,
                                         .sources = sources,
                                         .nsources = t.maps,
                                         .partitions = t.job.reducers,
                                         .output_key = object_key};
    if (lmr_fault("merge-slow", t.task, t.attempt)) {
        const char *ms = getenv("LMR_FAULT_SLOW_MS");
        lmr_sleep_ms(ms ? strtoull(ms, NULL, 10) : 1000);
    }
    struct lmr_merge_stage_stats st;
    if ((r = lmr_merge_stage_run(&mo, frames, &st, err)))
        goto done;
    if (lmr_fault("merge-kill", t.task, t.attempt))
        raise(SIGKILL);
    record = json_pack("{s:s, s:s, s:o}", "attempt_id", t.attempt_id, "object", object_key, "frames",
                       lmr_shuffle_frames_json(frames, t.job.reducers));
    text = record ? json_dumps(record, JSON_COMPACT) : NULL;
    if (!text) {
        r = lmr_fail(err, LMR_ERR_NOMEM, "out of memory committing merge task %u", t.task);
        goto done;
    }
    r = lmr_store_put(work, commit_key, text, strlen(text), LMR_PUT_CREATE_ONLY, err);
    won = r == LMR_OK;
    if (r == LMR_ERR_EXISTS) { /* another attempt committed first: its object is the one reducers read */
        lmr_err_clear(err);
        r = LMR_OK;
        lmr_store_delete(work, (const char *const *)&object_key, 1, NULL);
    }
    if (r)
        goto done;
    json_t *resp =
        json_pack("{s:s, s:I, s:s, s:b, s:I, s:I, s:I, s:I, s:I, s:f, s:o}", "kind", "merge", "task",
                  (json_int_t)t.task, "attempt_id", t.attempt_id, "committed", won, "sources", (json_int_t)t.maps,
                  "records_in", (json_int_t)st.records_in, "records_out", (json_int_t)st.records_out, "bytes_in",
                  (json_int_t)st.bytes_in, "bytes_out", (json_int_t)st.bytes_out, "task_ms", lmr_mono_ms() - t0,
                  "store", lmr_store_set_stats_json(&stores));
    char *s = resp ? json_dumps(resp, JSON_COMPACT) : NULL;
    json_decref(resp);
    r = s ? lmr_buf_append_str(response, s) : LMR_ERR_NOMEM;
    free(s);
done:
    if (ops && ops->teardown && job_state)
        ops->teardown(job_state);
    lmr_task_log_end(&log, work, &t.job, task_name, t.attempt_id, t0, r, err);
    if (commits)
        lmr_shuffle_commits_free(commits, t.maps);
    free(commits);
    free(sources);
    free(frames);
    free(object_key);
    free(commit_key);
    free(text);
    json_decref(record);
    lmr_store_set_clean_up(&stores);
    lmr_merge_task_clean_up(&t);
    return r;
}
