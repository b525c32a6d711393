#include "reducer.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "job/counters.h"
#include "lambda/memory.h"
#include "job/part_owner.h"
#include "job/registry.h"
#include "job/task.h"
#include "job/task_log.h"
#include "util/log.h"
#include "job/text_output.h"
#include "shuffle/reduce_input.h"
#include "store/store_set.h"
#include "util/fault.h"
#include "util/misc.h"

enum lmr_result lmr_reducer_handle(void *user_data, const struct lmr_runtime_context *ctx, const char *event,
                                   size_t event_len, struct lmr_buf *response, struct lmr_err *err)
{
    double t0 = lmr_mono_ms();
    char kind[16];
    lmr_task_event_kind(event, event_len, kind, sizeof kind);
    if (!strcmp(kind, "merge"))
        return lmr_merge_handle(ctx, event, event_len, response, err);
    struct lmr_reduce_task t;
    enum lmr_result r = lmr_reduce_task_from_json(event, event_len, &t, err);
    if (r)
        return r;
    const struct lmr_job_ops *ops = NULL;
    void *job_state = NULL;
    struct lmr_store_set stores = {0};
    struct lmr_store *work = NULL, *out_store = NULL;
    struct lmr_reduce_input *ri = NULL;
    struct lmr_frame_ref *refs = NULL;
    struct lmr_text_output text = {0};
    bool text_open = false, already = false;
    char *part_key = NULL, *scratch = NULL, *commit_key = NULL, *task_prefix = NULL;
    uint64_t groups = 0;
    struct lmr_job_counters counters = {0};
    char name[32];
    snprintf(name, sizeof name, "part-r-%05u", t.task);

    struct lmr_buf log;
    lmr_buf_init(&log, LMR_TASK_LOG_MAX_BYTES);
    lmr_task_log_begin(&log);
    if (t.frames_key)
        LMR_INFO("reduce task %u attempt %u (%s) of job %s: frame list in %s", t.task, t.attempt, t.attempt_id,
                 t.job.job_id, t.frames_key);
    else
        LMR_INFO("reduce task %u attempt %u (%s) of job %s: %zu frame%s", t.task, t.attempt, t.attempt_id, t.job.job_id,
                 t.nframes, t.nframes == 1 ? "" : "s");
    if ((r = lmr_job_find(t.job.job_name, &ops, err)))
        goto done;
    {
        char msg[512] = "";
        if (lmr_job_setup(&ops, &job_state, t.job.args, msg, sizeof msg)) {
            r = lmr_fail(err, LMR_ERR_INVALID, "job '%s': %s", ops->name, msg);
            goto done;
        }
    }
    if ((r = lmr_store_set_get(&stores, t.job.work.root, &work, err)) ||
        (r = lmr_store_set_get(&stores, t.job.output.root, &out_store, err)))
        goto done;
    /* A long frame list came through the store (the event would have been too large). */
    if ((r = lmr_reduce_task_load_frames(&t, work, err)))
        goto done;
    refs = calloc(t.nframes ? t.nframes : 1, sizeof *refs);
    part_key = lmr_output_key(&t.job, name);
    scratch = lmr_work_key(&t.job, "reduce/r-%05u/%s-merge-", t.task, t.attempt_id);
    commit_key = lmr_work_key(&t.job, "reduce/r-%05u/commit.json", t.task);
    task_prefix = lmr_work_key(&t.job, "reduce/r-%05u/", t.task);
    if (!refs || !part_key || !scratch || !commit_key || !task_prefix) {
        r = LMR_ERR_NOMEM;
        goto done;
    }
    for (size_t i = 0; i < t.nframes; i++)
        refs[i] = (struct lmr_frame_ref){.store_root = work->root_uri,
                                         .key = t.frames[i].key,
                                         .offset = t.frames[i].offset,
                                         .size_bytes = t.frames[i].size_bytes};
    struct lmr_reduce_input_options ri_opts = {
        .ops = ops,
        .job_state = job_state,
        .store = work,
        .frames = refs,
        .nframes = t.nframes,
        .memory_limit_bytes = (size_t)lmr_task_budget(ctx ? ctx->memory_size_mb : 0, t.job.memory_mb).shuffle_bytes,
        .scratch_prefix = scratch,
    };
    if (lmr_fault("reduce-slow", t.task, t.attempt)) {
        const char *ms = getenv("LMR_FAULT_SLOW_MS");
        lmr_sleep_ms(ms ? strtoull(ms, NULL, 10) : 1000);
    }
    if ((r = lmr_reduce_input_new(&ri_opts, &ri, err)))
        goto done;
    if ((r = lmr_text_output_init(&text, out_store, part_key, err)))
        goto done;
    text_open = true;
    if (ops->start) {
        char task_id[16], msg[LMR_ERR_MSG_BYTES] = "";
        snprintf(task_id, sizeof task_id, "r-%05u", t.task);
        struct lmr_task_info info = {
            .role = "reduce", .task_id = task_id, .attempt = t.attempt, .memory_mb = t.job.memory_mb};
        if (ops->start(job_state, &info, msg, sizeof msg)) {
            r = lmr_fail(err, LMR_ERR_FUNCTION, "job '%s': %s", ops->name, msg[0] ? msg : "start failed");
            goto done;
        }
    }
    for (;;) {
        bool has_group;
        struct lmr_slice key;
        struct lmr_values *values;
        if ((r = lmr_reduce_input_next(ri, &has_group, &key, &values, err)))
            goto done;
        if (!has_group)
            break;
        ops->reduce(job_state, key, values, &text.emitter);
        groups++;
    }
    if (ops->finish && ops->finish(job_state, &text.emitter, &counters)) {
        const char *e = lmr_job_counters_error(&counters);
        r = lmr_fail(err, LMR_ERR_FUNCTION, "job '%s': %s", ops->name,
                     e ? e : "finish failed (the job gave no reason)");
        goto done;
    }
    if (lmr_fault("reduce-kill", t.task, t.attempt))
        raise(SIGKILL);
    /* Another attempt (a speculative backup, or the attempt it backed up) committed the task first:
     * write nothing more (no claim; the part, never committed, is aborted by its clean-up). */
    bool won = false;
    if (lmr_store_head(work, commit_key, NULL, NULL) == LMR_OK) {
        LMR_INFO("reduce task %u attempt %u (%s): another attempt committed the task first; this one stops before "
                 "its commit and leaves no output",
                 t.task, t.attempt, t.attempt_id);
    } else {
        if ((r = lmr_part_claim(work, task_prefix, t.attempt_id, part_key, err)))
            goto done;
        if ((r = lmr_text_output_commit(&text, &already, err)))
            goto done;
        /* A part that was there already counts only if this job wrote it (never adopt another's). */
        if (already && (r = lmr_part_check_owned(work, task_prefix, t.attempt_id, part_key, t.job.job_id, err)))
            goto done;
        /* The part is visible; record the task as committed (a repeated attempt finds it there). */
        char rec[256];
        snprintf(rec, sizeof rec, "{\"attempt_id\":\"%s\",\"part\":\"%s\"}", t.attempt_id, name);
        r = lmr_store_put(work, commit_key, rec, strlen(rec), LMR_PUT_CREATE_ONLY, err);
        won = r == LMR_OK && !already;
        if (r == LMR_ERR_EXISTS) {
            lmr_err_clear(err);
            r = LMR_OK;
        }
        if (r)
            goto done;
    }
    struct lmr_reduce_input_stats st;
    lmr_reduce_input_stats(ri, &st);
    json_t *resp = json_pack(
        "{s:s, s:I, s:s, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:f, s:o}", "kind", "reduce", "task",
        (json_int_t)t.task, "attempt_id", t.attempt_id, "committed", won, "frames", (json_int_t)t.nframes, "bytes_in",
        (json_int_t)st.bytes_fetched, "records_in", (json_int_t)st.records, "groups", (json_int_t)groups, "records_out",
        (json_int_t)text.records, "bytes_out", (json_int_t)text.bytes, "counters", lmr_job_counters_to_json(&counters),
        "task_ms", lmr_mono_ms() - t0, "store", lmr_store_set_stats_json(&stores));
    char *s = resp ? json_dumps(resp, JSON_COMPACT) : NULL;
    json_decref(resp);
    r = s ? lmr_buf_append_str(response, s) : LMR_ERR_NOMEM;
    free(s);
done:
    if (text_open)
        lmr_text_output_clean_up(&text);
    lmr_reduce_input_destroy(ri);
    if (ops && ops->teardown && job_state)
        ops->teardown(job_state);
    lmr_job_counters_clean_up(&counters);
    char task_name[16];
    snprintf(task_name, sizeof task_name, "r-%05u", t.task);
    lmr_task_log_end(&log, work, &t.job, task_name, t.attempt_id, t0, r, err);
    lmr_store_set_clean_up(&stores);
    free(refs);
    free(part_key);
    free(scratch);
    free(commit_key);
    free(task_prefix);
    lmr_reduce_task_clean_up(&t);
    return r;
}
