#include "job/task_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "util/misc.h"

void lmr_task_log_begin(struct lmr_buf *buf)
{
    lmr_log_capture_begin(buf);
}

void lmr_task_log_end(struct lmr_buf *buf, struct lmr_store *work, const struct lmr_job_common *job, const char *task,
                      const char *attempt_id, double started_ms, enum lmr_result r, const struct lmr_err *err)
{
    lmr_log_capture_end();
    if (!work || !job || !job->work.key || !task || !attempt_id) {
        lmr_buf_clean_up(buf);
        return;
    }
    lmr_buf_printf(buf, "%llu end: task %s attempt %s %s after %.1f ms%s%s\n", (unsigned long long)lmr_wall_ms(), task,
                   attempt_id, r ? "failed" : "ended", lmr_mono_ms() - started_ms, r ? ": " : "",
                   r ? (err && err->msg[0] ? err->msg : lmr_result_str(r)) : "");
    char *key = lmr_work_key(job, "logs/%s/%s.log", task, attempt_id);
    struct lmr_err perr = {0};
    if (key && buf->data && lmr_store_put(work, key, buf->data, buf->len, 0, &perr))
        LMR_WARN("could not store the log of task %s: %s", task, perr.msg);
    free(key);
    lmr_buf_clean_up(buf);
}
