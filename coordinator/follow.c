#include "follow.h"

#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/inotify.h>
#endif

#include "job/task.h"
#include "lease.h"
#include "util/misc.h"

#define RECORD_MAX_BYTES (4u << 20)
#define REPORT_MAX_BYTES (64u << 20)
/* A job whose record says running while its lease has been free this long is driven by nobody. */
#define ORPHAN_GRACE_MS 2000u
/* The first poll comes this soon, and each wait is half again as long up to the poll interval:
 * a short job is seen to end within milliseconds, a long one costs a GET per interval. */
#define FIRST_POLL_MS 2u
/* The longest wait between polls of the job record: on a file store, and on S3. */
#define LOCAL_POLL_MS 10u
#define STORE_POLL_MS 200u
/* ... and on a file store with an inotify watch of the record's folder, which ends a wait as soon
 * as the record changes: the poll is only the fallback (each costs a read and a parse of the
 * record, 0.1-0.3 ms of CPU that the map tasks' cores pay while a job runs). */
#define WATCHED_POLL_MS 100u
/* How often the lease is looked at while the job runs. */
#define LEASE_CHECK_MS 1000u

static enum lmr_result read_json(struct lmr_store *s, const char *key, size_t max, json_t **out, struct lmr_err *err)
{
    struct lmr_buf b;
    lmr_buf_init(&b, max);
    *out = NULL;
    enum lmr_result r = lmr_store_get(s, key, 0, LMR_STORE_TO_END, &b, err);
    json_error_t je;
    if (!r && !(*out = json_loadb(b.data ? b.data : "", b.len, 0, &je)))
        r = lmr_fail(err, LMR_ERR_FORMAT, "%s in %s is not JSON: %s", key, s->root_uri, je.text);
    lmr_buf_clean_up(&b);
    return r;
}

enum lmr_result lmr_job_record_read(struct lmr_store *work, const char *key, json_t **record, struct lmr_err *err)
{
    return read_json(work, key, RECORD_MAX_BYTES, record, err);
}

/*
 * On a file store: an inotify watch on the job record's folder, so that a new record (the
 * coordinator renames it into place) ends the wait at once instead of at the next poll (half the
 * poll interval late on average, the last gap of every local job). -1 when there is none (not
 * Linux, or no watch): then the loop only sleeps. *wd gets the watch's descriptor for unwatch().
 */
static int watch_record(const struct lmr_store *work, const char *key, bool local, int *wd)
{
#ifdef __linux__
    if (!local)
        return -1;
    const char *root = work->root_uri + 7, *slash = strrchr(key, '/');
    size_t rl = strlen(root);
    char dir[PATH_MAX];
    int n = snprintf(dir, sizeof dir, "%s%s%.*s", root, rl && root[rl - 1] == '/' ? "" : "/",
                     slash ? (int)(slash - key) : 0, key);
    if (n < 0 || (size_t)n >= sizeof dir)
        return -1;
    int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd >= 0 && (*wd = inotify_add_watch(fd, dir, IN_MOVED_TO | IN_CLOSE_WRITE)) < 0) {
        close(fd);
        fd = -1;
    }
    return fd;
#else
    (void)work;
    (void)key;
    (void)local;
    (void)wd;
    return -1;
#endif
}

/* Close the watch. The watch goes first: closing an inotify instance that still has one waits for
 * the kernel's fsnotify mark reaper (an SRCU grace period, 5-16 ms here, measured with a test
 * program: close 5.1-15.9 ms against 0.02-0.07 ms after inotify_rm_watch), which was the largest
 * piece of a local job's end (the driver's close of this watch: 15-18 ms in strace -ttt). */
static void unwatch(int watch, int wd)
{
#ifdef __linux__
    inotify_rm_watch(watch, wd);
#else
    (void)wd;
#endif
    close(watch);
}

/* Sleep ms, or less when the watched folder changes first. */
static void wait_for_record(int watch, uint32_t ms)
{
    if (watch < 0) {
        lmr_sleep_ms(ms);
        return;
    }
    struct pollfd p = {.fd = watch, .events = POLLIN};
    if (poll(&p, 1, (int)ms) > 0) {
        char events[4096];
        while (read(watch, events, sizeof events) > 0) /* drain: the record is read next anyway */
            ;
    }
}

static enum lmr_result follow_job(const struct lmr_follow_options *o, int watch, json_t **report, struct lmr_err *err);

enum lmr_result lmr_follow_job(const struct lmr_follow_options *o, json_t **report, struct lmr_err *err)
{
    *report = NULL;
    bool local = !strncmp(o->work_store->root_uri, "file://", 7);
    int wd = -1, watch = watch_record(o->work_store, o->record_key, local, &wd);
    enum lmr_result r = follow_job(o, watch, report, err);
    if (watch >= 0)
        unwatch(watch, wd);
    return r;
}

static enum lmr_result follow_job(const struct lmr_follow_options *o, int watch, json_t **report, struct lmr_err *err)
{
    /* A local file read costs microseconds and nothing; an S3 GET costs a request. */
    bool local = !strncmp(o->work_store->root_uri, "file://", 7);
    uint32_t poll = o->poll_ms ? o->poll_ms : !local ? STORE_POLL_MS : watch >= 0 ? WATCHED_POLL_MS : LOCAL_POLL_MS;
    uint32_t wait_ms = FIRST_POLL_MS < poll ? FIRST_POLL_MS : poll;
    uint64_t free_since = 0, lease_checked = lmr_wall_ms();
    for (;;) {
        json_t *rec = NULL;
        enum lmr_result r = lmr_job_record_read(o->work_store, o->record_key, &rec, NULL);
        const char *status = r ? "" : lmr_json_str(rec, "status", "");
        json_t *p = json_object_get(rec, "progress");
        if (p && o->progress) {
            struct lmr_progress pr = {.phase = lmr_json_str(p, "phase", "?"),
                                      .done = (uint32_t)lmr_json_u64(p, "done", 0),
                                      .total = (uint32_t)lmr_json_u64(p, "total", 0),
                                      .running = (uint32_t)lmr_json_u64(p, "running", 0),
                                      .failed_attempts = (uint32_t)lmr_json_u64(p, "failed_attempts", 0)};
            o->progress(o->progress_user_data, &pr);
        }
        if (!strcmp(status, "succeeded")) {
            json_decref(rec);
            r = read_json(o->output_store, o->report_key, REPORT_MAX_BYTES, report, err);
            return r ? lmr_err_prefix(err, "job %s succeeded, but its report", o->job_id) : LMR_OK;
        }
        if (*status && strcmp(status, "running")) {
            enum lmr_result code = !strcmp(status, "cancelled") ? LMR_ERR_CANCELLED : LMR_ERR_FUNCTION;
            r = lmr_fail(err, code, "%s", lmr_json_str(rec, "error", status));
            json_decref(rec);
            return r;
        }
        json_decref(rec);
        /* Now and then: is anyone still driving the job? */
        if (lmr_wall_ms() - lease_checked >= LEASE_CHECK_MS) {
            lease_checked = lmr_wall_ms();
            json_t *lease = NULL;
            if (lmr_lease_peek(o->output_store, o->lease_key, &lease, NULL) == LMR_OK) {
                bool ours = lease && !strcmp(lmr_json_str(lease, "job_id", ""), o->job_id);
                bool held = ours && lmr_lease_record_held(lease, lmr_wall_ms());
                if (held)
                    free_since = 0;
                else if (!free_since)
                    free_since = lmr_wall_ms();
                else if (lmr_wall_ms() - free_since > ORPHAN_GRACE_MS) {
                    json_decref(lease);
                    return lmr_fail(err, LMR_ERR_TIMEOUT,
                                    "nobody drives job %s any more (its lease %s; the coordinator died or was "
                                    "killed); run the same command again to resume it",
                                    o->job_id, ours ? "expired" : "belongs to another job now");
                }
            }
            json_decref(lease);
        }
        wait_for_record(watch, wait_ms);
        wait_ms = wait_ms + wait_ms / 2 + 1 < poll ? wait_ms + wait_ms / 2 + 1 : poll;
    }
}
