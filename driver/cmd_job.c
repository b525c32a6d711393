/*
 * Lifecycle commands on the job an output holds, all read from the store (the output's lease
 * names the job and its work location; WORK/job.json is its record), so they work the same
 * for every back-end and from any machine that can read the store:
 *   lambdamr status OUTPUT [--json] [--watch]   phase, tasks, attempts, elapsed, bytes, cost so far
 *   lambdamr wait OUTPUT                        until it ends; exit 0 succeeded, 1 failed, 3 cancelled, 4 abandoned
 *   lambdamr cancel OUTPUT                      ask the coordinator to stop (WORK/cancel)
 *   lambdamr cleanup OUTPUT                     remove work data of failed or abandoned jobs
 *   lambdamr logs OUTPUT [--task m-00003]       the log lines the job's functions stored (WORK/logs/)
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "follow.h"
#include "job/part_owner.h"
#include "job/task.h"
#include "job/task_log.h"
#include "lease.h"
#include "store/store_set.h"
#include "util/misc.h"

struct job_ref {
    struct lmr_store_set stores;
    struct lmr_store *out, *work;
    char *out_prefix, *lease_key, *record_key, *work_key;
    json_t *lease;
    const char *job_id;
};

static void job_ref_clean_up(struct job_ref *j)
{
    json_decref(j->lease);
    free(j->out_prefix);
    free(j->lease_key);
    free(j->record_key);
    free(j->work_key);
    lmr_store_set_clean_up(&j->stores);
}

static char *cat(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s%s%s", a, *a && a[strlen(a) - 1] != '/' && *b ? "/" : "", b);
    return s;
}

/* The job that output holds (or last held), from its lease record. */
static enum lmr_result find_job(const char *uri, struct job_ref *j, struct lmr_err *err)
{
    memset(j, 0, sizeof *j);
    char *prefix = NULL;
    enum lmr_result r = lmr_store_open(uri, &j->out, &prefix, err);
    if (r)
        return lmr_err_prefix(err, "output '%s'", uri);
    if ((r = lmr_store_set_adopt(&j->stores, &j->out, err))) {
        free(prefix);
        return r;
    }
    j->out_prefix = cat(prefix, "");
    j->lease_key = cat(prefix, "_lambdamr/lease.json");
    free(prefix);
    if (!j->out_prefix || !j->lease_key)
        return LMR_ERR_NOMEM;
    if ((r = lmr_lease_peek(j->out, j->lease_key, &j->lease, err)))
        return r;
    if (!j->lease)
        return lmr_fail(err, LMR_ERR_NOT_FOUND, "no lambdamr job has run on output '%s' (it has no %s)", uri,
                        j->lease_key);
    json_t *w = json_object_get(j->lease, "work");
    const char *root = lmr_json_str(w, "root", NULL), *key = lmr_json_str(w, "key", NULL);
    j->job_id = lmr_json_str(j->lease, "job_id", "?");
    if (!root || !key)
        return lmr_fail(err, LMR_ERR_FORMAT, "the lease of output '%s' names no work location", uri);
    if ((r = lmr_store_set_get(&j->stores, root, &j->work, err)))
        return r;
    j->work_key = strdup(key);
    j->record_key = cat(key, "job.json");
    return j->work_key && j->record_key ? LMR_OK : LMR_ERR_NOMEM;
}

static int die(const char *cmd, enum lmr_result r, const struct lmr_err *err)
{
    fprintf(stderr, "lambdamr %s: %s\n", cmd, err->msg[0] ? err->msg : lmr_result_str(r));
    return 1;
}

/* The record with what the lease adds: is anyone driving it, and elapsed time. */
static json_t *status_json(struct job_ref *j)
{
    json_t *rec = NULL;
    lmr_job_record_read(j->work, j->record_key, &rec, NULL);
    if (!rec)
        rec = json_pack("{s:s, s:s, s:s}", "job_id", j->job_id, "status", lmr_json_str(j->lease, "status", "unknown"),
                        "phase", "plan");
    bool held = lmr_lease_record_held(j->lease, lmr_wall_ms());
    /* Decided before "status" is replaced: the replacement frees the string the record held. */
    bool running = !strcmp(lmr_json_str(rec, "status", ""), "running");
    if (running && !held)
        json_object_set_new(rec, "status", json_string("abandoned"));
    uint64_t start = lmr_json_u64(rec, "started_ms", 0),
             end = running ? lmr_wall_ms() : lmr_json_u64(rec, "updated_ms", 0);
    json_object_set_new(rec, "elapsed_ms", json_integer(start && end > start ? (json_int_t)(end - start) : 0));
    json_object_set_new(rec, "lease", json_deep_copy(j->lease));
    return rec;
}

static void print_status(FILE *f, const json_t *s)
{
    json_t *p = json_object_get(s, "progress");
    fprintf(f, "job %s: %s", lmr_json_str(s, "job_id", "?"), lmr_json_str(s, "status", "?"));
    if (!strcmp(lmr_json_str(s, "status", ""), "running"))
        fprintf(f, ", %s phase", lmr_json_str(s, "phase", "?"));
    fprintf(f, ", %.1f s\n", (double)lmr_json_u64(s, "elapsed_ms", 0) / 1000.0);
    fprintf(f, "  output   %s\n  tasks    %llu map, %llu reduce\n", lmr_json_str(s, "output", "?"),
            (unsigned long long)lmr_json_u64(s, "map_tasks", 0),
            (unsigned long long)lmr_json_u64(s, "reduce_tasks", 0));
    if (p)
        fprintf(f, "  %-8s %llu/%llu done, %llu running, %llu failed attempts\n", lmr_json_str(p, "phase", "?"),
                (unsigned long long)lmr_json_u64(p, "done", 0), (unsigned long long)lmr_json_u64(p, "total", 0),
                (unsigned long long)lmr_json_u64(p, "running", 0),
                (unsigned long long)lmr_json_u64(p, "failed_attempts", 0));
    json_t *sf = json_object_get(s, "so_far");
    if (sf) {
        char rd[32], wr[32];
        bool running = !strcmp(lmr_json_str(s, "status", ""), "running");
        fprintf(f, "  data     %s read, %s written\n",
                lmr_format_bytes((double)lmr_json_u64(sf, "bytes_read", 0), rd, sizeof rd),
                lmr_format_bytes((double)lmr_json_u64(sf, "bytes_written", 0), wr, sizeof wr));
        fprintf(f, "  cost     $%.7f%s (%llu invocations, %.3f GB-s; S3 requests priced as on S3)\n",
                lmr_json_double(sf, "cost_usd", 0), running ? " so far" : "",
                (unsigned long long)lmr_json_u64(sf, "invocations", 0), lmr_json_double(sf, "gb_seconds", 0));
    }
    if (lmr_json_str(s, "error", NULL))
        fprintf(f, "  error    %s\n", lmr_json_str(s, "error", ""));
    if (!strcmp(lmr_json_str(s, "status", ""), "abandoned"))
        fprintf(f,
                "  nobody drives it (its lease expired): run the same command again to resume it, or "
                "'lambdamr cleanup %s'\n",
                lmr_json_str(s, "output", "OUTPUT"));
}

static int usage(const char *cmd, const char *opts)
{
    fprintf(stderr, "usage: lambdamr %s OUTPUT%s\n", cmd, opts);
    return 2;
}

int lmr_cmd_status(int argc, char **argv)
{
    bool json = false, watch = false;
    const char *out = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json"))
            json = true;
        else if (!strcmp(argv[i], "--watch"))
            watch = true;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: lambdamr status OUTPUT [--json] [--watch]\n\nThe job an output holds: status, phase, "
                   "tasks done/running, failed attempts, elapsed time, bytes read and written and the estimated "
                   "cost so far (every invocation, the coordinator's included, and the store requests priced as "
                   "on S3).\n");
            return 0;
        } else if (argv[i][0] == '-' || out)
            return usage("status", " [--json] [--watch]");
        else
            out = argv[i];
    }
    if (!out)
        return usage("status", " [--json] [--watch]");
    for (;;) {
        struct job_ref j;
        struct lmr_err err = {0};
        enum lmr_result r = find_job(out, &j, &err);
        if (r) {
            job_ref_clean_up(&j);
            return die("status", r, &err);
        }
        json_t *s = status_json(&j);
        bool running = !strcmp(lmr_json_str(s, "status", ""), "running");
        if (json) {
            char *t = json_dumps(s, JSON_INDENT(2));
            printf("%s\n", t ? t : "{}");
            free(t);
        } else {
            print_status(stdout, s);
        }
        fflush(stdout);
        json_decref(s);
        job_ref_clean_up(&j);
        if (!watch || !running)
            return 0;
        lmr_sleep_ms(1000);
    }
}

int lmr_cmd_wait(int argc, char **argv)
{
    if (argc != 2 || argv[1][0] == '-')
        return usage("wait", "\n\nWait for the job an output holds; exit 0 if it succeeded, 1 failed, 3 cancelled, "
                             "4 abandoned");
    struct job_ref j;
    struct lmr_err err = {0};
    enum lmr_result r = find_job(argv[1], &j, &err);
    json_t *report = NULL;
    char *report_key = r ? NULL : cat(j.out_prefix, "_lambdamr/report.json");
    if (!r) {
        struct lmr_follow_options fo = {.work_store = j.work,
                                        .record_key = j.record_key,
                                        .output_store = j.out,
                                        .lease_key = j.lease_key,
                                        .report_key = report_key,
                                        .job_id = j.job_id};
        r = lmr_follow_job(&fo, &report, &err);
    }
    int rc = !r ? 0 : r == LMR_ERR_CANCELLED ? 3 : r == LMR_ERR_TIMEOUT ? 4 : 1;
    if (!r)
        printf("job %s succeeded\n", j.job_id);
    else
        fprintf(stderr, "lambdamr wait: %s\n", err.msg[0] ? err.msg : lmr_result_str(r));
    json_decref(report);
    free(report_key);
    job_ref_clean_up(&j);
    return rc;
}

int lmr_cmd_cancel(int argc, char **argv)
{
    if (argc != 2 || argv[1][0] == '-')
        return usage("cancel", "\n\nAsk the coordinator of the job an output holds to stop it; the job removes its "
                               "own parts and ends as cancelled");
    struct job_ref j;
    struct lmr_err err = {0};
    enum lmr_result r = find_job(argv[1], &j, &err);
    json_t *s = r ? NULL : status_json(&j);
    const char *st = lmr_json_str(s, "status", "");
    if (!r && strcmp(st, "running"))
        r = lmr_fail(&err, LMR_ERR_INVALID, "job %s on '%s' is not running (it is %s); nothing to cancel%s", j.job_id,
                     argv[1], st, !strcmp(st, "abandoned") ? " (use 'lambdamr cleanup' to remove its data)" : "");
    char *key = r ? NULL : cat(j.work_key, "cancel");
    if (!r)
        r = key ? lmr_store_put(j.work, key, "cancel\n", 7, 0, &err) : LMR_ERR_NOMEM;
    free(key);
    json_decref(s);
    if (!r)
        printf("asked job %s to stop; 'lambdamr wait %s' waits until it has\n", j.job_id, argv[1]);
    job_ref_clean_up(&j);
    return r ? die("cancel", r, &err) : 0;
}

/* ---- cleanup ---------------------------------------------------------------------------------------------- */

/* The job folders (WORK_BASE/<id>/) below base, by id. */
static enum lmr_result job_folders(struct lmr_store *s, const char *base, struct lmr_store_keys *ids,
                                   struct lmr_err *err)
{
    struct lmr_store_keys all = {0};
    enum lmr_result r = lmr_store_list(s, base, lmr_store_keys_add, &all, err);
    for (size_t i = 0; !r && i < all.n; i++) {
        const char *rel = all.v[i] + strlen(base), *slash = strchr(rel, '/');
        if (!slash)
            continue;
        char id[128];
        snprintf(id, sizeof id, "%.*s", (int)(slash - rel), rel);
        bool seen = false;
        for (size_t k = 0; k < ids->n && !seen; k++)
            seen = !strcmp(ids->v[k], id);
        if (!seen) {
            struct lmr_store_object o = {.key = id};
            r = lmr_store_keys_add(ids, &o);
        }
    }
    lmr_store_keys_free(&all);
    return r;
}

int lmr_cmd_cleanup(int argc, char **argv)
{
    if (argc != 2 || argv[1][0] == '-')
        return usage("cleanup", "\n\nRemove the work data of failed, cancelled or abandoned jobs on an output (and the "
                                "parts an abandoned job wrote); a running job's data is never touched");
    struct job_ref j;
    struct lmr_err err = {0};
    enum lmr_result r = find_job(argv[1], &j, &err);
    struct lmr_store_keys ids = {0};
    size_t removed = 0, jobs = 0;
    json_t *s = r ? NULL : status_json(&j);
    const char *cur = lmr_json_str(s, "status", "");
    if (!r && !strcmp(cur, "running"))
        r = lmr_fail(&err, LMR_ERR_INVALID,
                     "job %s on '%s' is running; cleanup never touches a running job (cancel it first)", j.job_id,
                     argv[1]);
    /* Work folders: the default location holds every job's; a --work location, the last job's. */
    char *base = r ? NULL : cat(j.out_prefix, "_lambdamr/work/");
    if (!r)
        r = base ? job_folders(j.out, base, &ids, &err) : LMR_ERR_NOMEM;
    for (size_t i = 0; !r && i < ids.n; i++) {
        bool current = !strcmp(ids.v[i], j.job_id);
        if (current && !strcmp(cur, "succeeded"))
            continue; /* the output's own record */
        char *folder = cat(base, ids.v[i]);
        char *prefix = folder ? cat(folder, "") : NULL;
        struct lmr_store_keys k = {0};
        if (current && !strcmp(cur, "abandoned")) {
            /* Its parts: those its tasks claimed (never a part another job or a user wrote). */
            json_t *rec = NULL;
            lmr_job_record_read(j.work, j.record_key, &rec, NULL);
            uint64_t red = lmr_json_u64(rec, "reduce_tasks", 0), n = red ? red : lmr_json_u64(rec, "map_tasks", 0);
            for (uint64_t t = 0; t < n; t++) {
                char tp[64], part[32];
                snprintf(tp, sizeof tp, "%s/%s-%05llu/", red ? "reduce" : "map", red ? "r" : "m",
                         (unsigned long long)t);
                snprintf(part, sizeof part, "part-%c-%05llu", red ? 'r' : 'm', (unsigned long long)t);
                char *task_prefix = cat(j.work_key, tp), *pk = cat(j.out_prefix, part);
                if (task_prefix && pk && lmr_part_task_touched(j.work, task_prefix) &&
                    lmr_store_delete(j.out, (const char *const *)&pk, 1, NULL) == LMR_OK)
                    removed++;
                free(task_prefix);
                free(pk);
            }
            json_decref(rec);
        }
        if (prefix && (r = lmr_store_list(j.out, prefix, lmr_store_keys_add, &k, &err)) == LMR_OK && k.n &&
            (r = lmr_store_delete(j.out, (const char *const *)k.v, k.n, &err)) == LMR_OK) {
            removed += k.n;
            jobs++;
        }
        lmr_store_keys_free(&k);
        free(folder);
        free(prefix);
    }
    free(base);
    json_decref(s);
    if (!r)
        printf("removed %zu objects of %zu job%s from %s\n", removed, jobs, jobs == 1 ? "" : "s", argv[1]);
    lmr_store_keys_free(&ids);
    job_ref_clean_up(&j);
    return r ? die("cleanup", r, &err) : 0;
}

/* ---- logs ------------------------------------------------------------------------------------------------- */

int lmr_cmd_logs(int argc, char **argv)
{
    const char *out = NULL, *task = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--task") && i + 1 < argc)
            task = argv[++i];
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: lambdamr logs OUTPUT [--task m-00003|r-00001|coordinator]\n\nThe log lines every "
                   "function of the job an output holds wrote into its work location (WORK/logs/), each attempt "
                   "under a header.\n");
            return 0;
        } else if (argv[i][0] == '-' || out)
            return usage("logs", " [--task m-00003|r-00001|coordinator]");
        else
            out = argv[i];
    }
    if (!out)
        return usage("logs", " [--task m-00003|r-00001|coordinator]");
    if (task && (!*task || strchr(task, '/') || strstr(task, "..")))
        return usage("logs", " [--task NAME]: NAME is a task such as m-00003, r-00001 or coordinator");
    struct job_ref j;
    struct lmr_err err = {0};
    enum lmr_result r = find_job(out, &j, &err);
    struct lmr_store_keys k = {0};
    char *prefix = NULL;
    if (!r) {
        char tail[160];
        snprintf(tail, sizeof tail, "logs/%s%s", task ? task : "", task ? "/" : "");
        prefix = cat(j.work_key, tail);
        r = prefix ? lmr_store_list(j.work, prefix, lmr_store_keys_add, &k, &err) : LMR_ERR_NOMEM;
    }
    if (!r && k.n == 0)
        r = lmr_fail(&err, LMR_ERR_NOT_FOUND, "job %s has no logs%s%s in %s/%s (tasks write them when they end)",
                     j.job_id, task ? " for task " : "", task ? task : "", j.work->root_uri, prefix);
    for (size_t i = 0; !r && i < k.n; i++) {
        struct lmr_buf b;
        lmr_buf_init(&b, LMR_TASK_LOG_MAX_BYTES);
        const char *rel = k.v[i] + strlen(j.work_key) + strlen("logs/");
        printf("== %s\n", rel);
        if (lmr_store_get(j.work, k.v[i], 0, LMR_STORE_TO_END, &b, &err) == LMR_OK && b.data)
            fwrite(b.data, 1, b.len, stdout);
        lmr_err_clear(&err);
        lmr_buf_clean_up(&b);
    }
    free(prefix);
    lmr_store_keys_free(&k);
    job_ref_clean_up(&j);
    return r ? die("logs", r, &err) : 0;
}
