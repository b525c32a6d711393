/*
 * lambdamr stream: a stream job in tumbling windows. The poller (common/stream/poller.c) reads
 * the source, invokes the stream function (the bootstrap binary, role "stream") through the
 * embedded Lambda service's local invoker, and commits one output per closed window.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "job/args.h"
#include "job/task.h"
#include "job/registry.h"
#include "lambda/service.h"
#include "report/stream_report.h"
#include "store/store.h"
#include "stream_function.h"
#include "stream_inproc.h"
#include "stream/poller.h"
#include "stream/window_output.h"
#include "util/misc.h"

#define FUNCTION_NAME "lambdamr-stream"

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    stop_flag = 1;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: lambdamr stream JOB --source SOURCE --window SECONDS --output URI [OPTIONS] [JOB ARGS]\n"
            "       lambdamr stream merge OUTPUT   (finish windows whose parts were not merged)\n\n"
            "Process a stream in tumbling windows: every record (one line) goes through the job's map and\n"
            "combiner in the stream function; when a window has closed on every shard its states are reduced\n"
            "and written once to OUTPUT/window=<start ISO-8601>/part-00000 (key<TAB>value lines). The run's\n"
            "report, window by window, goes to OUTPUT/_lambdamr/report.json ('lambdamr report OUTPUT --html FILE').\n\n"
            "  JOB                        a built-in job or a plugin (.so) with a combiner; built-ins:\n");
    lmr_job_list(f);
    fprintf(f, "\nsource and output:\n"
               "  --source SOURCE            kinesis://STREAM, - (standard input, one record per line) or\n"
               "                             file://PATH (follows a growing file like tail -F, survives rotation)\n"
               "  --window SECONDS           tumbling window length, 1-900 (TumblingWindowInSeconds)\n"
               "  --output URI               directory, file:///dir or s3://bucket/prefix\n"
               "  --checkpoint URI           where per-shard checkpoints live (default OUTPUT/_checkpoint)\n"
               "event source mapping (Lambda's names and ranges):\n"
               "  --batch-size N             records per invocation, 1-10000 (default 100; 10000 for - and file://)\n"
               "  --batch-window SECONDS     wait up to this long to fill a batch, 0-300 (default 0)\n"
               "  --parallelization N        concurrent batches per shard, 1-10 (default 1); order per key kept\n"
               "  --starting-position P      trim-horizon | latest | at-timestamp=ISO-8601 (TRIM_HORIZON… too);\n"
               "                             only for shards without a checkpoint (default trim-horizon)\n"
               "  --bisect-on-error          split a failing batch in two and retry each half\n"
               "  --max-retries N            -1 (until the record expires, default) or 0-10000\n"
               "  --max-record-age SECONDS   -1 (no limit, default) or 60-604800\n"
               "  --on-failure               write failed batch descriptors to CHECKPOINT/failures/\n"
               "running:\n"
               "  --invoker local|inproc     local: the bootstrap function in the embedded Lambda service\n"
               "                             (default); inproc: the handler in this process (fastest)\n"
               "  --function-timeout SECONDS timeout of the stream function (default 60)\n"
               "  --shard-refresh SECONDS    how often to look for new shards after a reshard (default 10)\n"
               "  --close-grace-ms MS        wait for late records after a window ends (default 0; Kinesis 2000)\n"
               "  --exit-when-drained        stop once every shard has ended and every window is committed\n"
               "                             (the default for standard input)\n"
               "  --quiet                    no live figures\n"
               "job arguments: any other --NAME VALUE pair (for example --delimiter , --key 3 --op count)\n");
}

struct ui {
    bool tty;
    bool quiet;
    uint64_t last_records;
    double last_s;
    /* The stream report (OUTPUT/_lambdamr/report.json), rewritten at most every LMR_STREAM_REPORT_INTERVAL_MS
       after a window commit and once at the end. */
    struct lmr_stream_report *report;
    uint64_t window_ms;
    struct lmr_store *out, *ckpt;
    struct lmr_store *inproc_store; /* --invoker inproc: the handler's own output store (its requests) */
    char *report_key;
    const struct lmr_prices *prices;
    bool kinesis;
    double report_written_mono_ms;
    double report_interval_ms; /* LMR_STREAM_REPORT_INTERVAL_MS, or that variable (tests) */
    bool window_closed;        /* since the report was last written */
};

/* Write the stream report now, as the run stands (status "running" while it goes on). */
static void write_report(struct ui *ui, const struct lmr_stream_stats *stats, const char *status, const char *error)
{
    if (!ui->report || !stats)
        return;
    struct lmr_stream_report_end e = {
        .status = status,
        .error = error,
        .stats = stats,
        .prices = ui->prices,
        .stores = {&ui->out->stats, ui->ckpt && ui->ckpt != ui->out ? &ui->ckpt->stats : NULL,
                   ui->inproc_store ? &ui->inproc_store->stats : NULL},
        .shard_hours = ui->kinesis ? (double)stats->n_shards * stats->elapsed_s / 3600.0 : 0};
    struct lmr_err err = {0};
    if (lmr_stream_report_write(ui->report, &e, ui->out, ui->report_key, &err))
        fprintf(stderr, "lambdamr stream: %s\n", err.msg);
    ui->report_written_mono_ms = lmr_mono_ms();
    ui->window_closed = false;
}

static void on_invocation(void *user, const struct lmr_stream_invocation *inv)
{
    struct ui *ui = user;
    lmr_stream_report_add_invocation(ui->report, inv, ui->window_ms);
}

static void on_progress(void *user, const struct lmr_stream_stats *s)
{
    struct ui *ui = user;
    if (ui->window_closed && lmr_mono_ms() - ui->report_written_mono_ms >= ui->report_interval_ms)
        write_report(ui, s, "running", NULL);
    if (ui->quiet || !ui->tty)
        return;
    double dt = s->elapsed_s - ui->last_s;
    double rate = dt > 0 ? (double)(s->records_read - ui->last_records) / dt : 0;
    ui->last_records = s->records_read;
    ui->last_s = s->elapsed_s;
    fprintf(stderr, "\r\033[K%.0f records/s  %" PRIu64 " read  %" PRIu64 " windows closed  %" PRIu64 " failed", rate,
            s->records_read, s->windows_committed + s->windows_already_committed, s->records_failed);
    fprintf(stderr, "  iterator age:");
    for (size_t i = 0; i < s->n_shards && i < 8; i++) {
        const char *id = s->shards[i].id;
        size_t n = strlen(id);
        if (s->shards[i].ended)
            fprintf(stderr, " %s=ended", n > 4 ? id + n - 4 : id);
        else
            fprintf(stderr, " %s=%" PRIu64 "ms", n > 4 ? id + n - 4 : id, s->shards[i].millis_behind);
    }
    if (s->n_shards > 8)
        fprintf(stderr, "  (+%zu shards)", s->n_shards - 8);
}

static void on_window(void *user, uint64_t start_ms, uint64_t records, bool already, const char *key)
{
    struct ui *ui = user;
    lmr_stream_report_window_closed(ui->report, start_ms, ui->window_ms, records, already, key);
    ui->window_closed = true;
    if (ui->quiet)
        return;
    if (ui->tty)
        fprintf(stderr, "\r\033[K");
    fprintf(stderr, "lambdamr stream: window %s: %" PRIu64 " records%s\n", key, records,
            already ? " (already committed by an earlier run)" : "");
}

static int bad(const char *fmt, const char *a)
{
    fprintf(stderr, "lambdamr stream: ");
    fprintf(stderr, fmt, a);
    fprintf(stderr, "\n");
    return 2;
}

static bool parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return false;
    *out = v;
    return true;
}

/* lambdamr stream merge OUTPUT: finish every window whose parts were written but not merged. */
static int cmd_merge(int argc, char **argv)
{
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: lambdamr stream merge OUTPUT\n\n"
               "Merge the per-shard parts of every window under OUTPUT that has no output yet into\n"
               "OUTPUT/window=<start>/part-00000 (create-only), and delete the parts of windows already\n"
               "merged. For windows whose shards have all made their final invoke (a shard that had no\n"
               "final invoke, for example one idle for the whole window, leaves its window unmerged).\n");
        return 0;
    }
    if (argc != 2)
        return bad("%s", "usage: lambdamr stream merge OUTPUT (a directory, file:///dir or s3://bucket/prefix)");
    struct lmr_err err = {0};
    struct lmr_store *out = NULL;
    char *prefix = NULL;
    uint64_t *windows = NULL;
    size_t n = 0, merged = 0, already = 0;
    int rc = 1;
    if (lmr_store_open(argv[1], &out, &prefix, &err) || lmr_stream_window_list(out, prefix, &windows, &n, &err))
        goto done;
    for (size_t i = 0; i < n; i++) {
        char *job_name = NULL;
        json_t *aj = NULL;
        struct lmr_job_args *args = NULL;
        struct lmr_stream_handler_config cfg = {0};
        const struct lmr_job_ops *job;
        struct lmr_stream_merge_result mr = {0};
        enum lmr_result r = lmr_stream_window_job(out, prefix, windows[i], &job_name, &aj, &err);
        if (r == LMR_ERR_NOT_FOUND) {
            lmr_err_clear(&err);
            continue; /* merged meanwhile */
        }
        if (!r)
            r = lmr_job_find(job_name, &job, &err);
        if (!r)
            r = lmr_job_args_from_json(aj, &args, &err);
        if (!r)
            r = lmr_stream_handler_config_init(&cfg, job, args, &err);
        if (!r)
            r = lmr_stream_window_merge(out, prefix, windows[i], "", job, cfg.job_state, &mr, &err);
        char iso[40];
        if (!r && mr.no_parts && mr.other_runs)
            fprintf(stderr,
                    "lambdamr stream merge: window %s: %" PRIu64 " part(s) of an interrupted local run, not merged "
                    "(its records were read again by the next run)\n",
                    lmr_stream_iso8601(windows[i], iso, sizeof iso), mr.other_runs);
        if (!r && !mr.no_parts)
            fprintf(stderr, "lambdamr stream merge: window %s: %s (%" PRIu64 " parts, %" PRIu64 " keys)\n",
                    lmr_stream_iso8601(windows[i], iso, sizeof iso), mr.already ? "already merged" : "merged", mr.parts,
                    mr.keys);
        if (!r && !mr.no_parts)
            *(mr.already ? &already : &merged) += 1;
        lmr_stream_handler_config_clean_up(&cfg);
        lmr_job_args_destroy(args);
        json_decref(aj);
        free(job_name);
        if (r) {
            lmr_err_prefix(&err, "window %s: ", lmr_stream_iso8601(windows[i], iso, sizeof iso));
            goto done;
        }
    }
    printf("%zu window(s) merged, %zu already merged\n", merged, already);
    rc = 0;
done:
    if (rc)
        fprintf(stderr, "lambdamr stream merge: %s\n", err.msg[0] ? err.msg : "out of memory");
    free(windows);
    free(prefix);
    lmr_store_destroy(out);
    return rc;
}

/* What the run cost on AWS (from the stream report's cost: its invocations, Init included, Kinesis
 * shard-hours while it read a stream, and the store requests of this process and of the function as
 * if the store were S3). */
static void print_stream_cost(const struct lmr_stream_stats *stats, const struct lmr_prices *prices, const json_t *c,
                              bool kinesis)
{
    if (!c)
        return;
    fprintf(stderr,
            "lambdamr stream: billing %" PRIu64 " invocations, %.3f GB-s (Init included) -> est. $%.7f (Lambda $%.7f"
            "%s%.7f, S3 requests $%.7f) at %s %s prices of %s\n",
            stats->billing.invocations, stats->billing.gb_seconds, lmr_json_double(c, "total_usd", 0),
            lmr_json_double(c, "lambda_usd", 0), kinesis ? " + Kinesis shard-hours $" : " + Kinesis $",
            lmr_json_double(c, "kinesis_usd", 0), lmr_json_double(c, "s3_usd", 0), prices->region, prices->architecture,
            prices->date);
}

/* The run's parameters as the report gives them. */
static json_t *report_params(int argc, char **argv, const char *job_name, const struct lmr_job_args *args,
                             const char *source_uri, const char *output_uri, const char *invoker_name,
                             const struct lmr_stream_poller_options *o, uint64_t window_s, int64_t timeout_s)
{
    char *command = lmr_shell_join("lambdamr", argc, argv);
    json_t *p =
        json_pack("{s:s, s:o, s:s?, s:s, s:s, s:I, s:s, s:I, s:I, s:{s:I, s:I, s:I, s:b, s:I, s:I, s:b, s:I}}", "job",
                  job_name, "args", lmr_job_args_to_json(args), "command", command, "source", source_uri, "output",
                  output_uri, "window_ms", (json_int_t)(window_s * 1000), "invoker", invoker_name, "memory_mb",
                  (json_int_t)LMR_MEMORY_DEFAULT_MB, "function_timeout_s", (json_int_t)timeout_s, "mapping",
                  "batch_size", (json_int_t)(o->batch_size ? o->batch_size : 100), "batch_window_ms",
                  (json_int_t)o->batch_window_ms, "parallelization",
                  (json_int_t)(o->parallelization ? o->parallelization : 1), "bisect_on_error", o->bisect_on_error,
                  "max_retries", (json_int_t)o->max_retries, "max_record_age_ms", (json_int_t)o->max_record_age_ms,
                  "on_failure_destination", o->on_failure_destination, "close_grace_ms", (json_int_t)o->close_grace_ms);
    free(command);
    return p;
}

static int stream_main(int argc, char **argv, struct lmr_job_args *args)
{
    const char *job_name = NULL, *source_uri = NULL, *output_uri = NULL, *ckpt_uri = NULL;
    const char *invoker_name = "local";
    struct lmr_stream_poller_options o = {.function_name = FUNCTION_NAME, .max_retries = -1, .max_record_age_ms = -1};
    int64_t window_s = 0, v;
    int64_t timeout_s = 60;
    int64_t grace_ms = -1;
    bool exit_when_drained = false;
    struct ui ui = {.tty = isatty(2)};
    lmr_stream_position_parse("trim-horizon", &o.starting_position, NULL);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (a[0] != '-' || a[1] != '-') {
            if (job_name)
                return bad("unexpected argument '%s'; run 'lambdamr stream --help'", a);
            job_name = a;
            continue;
        }
        if (!strcmp(a, "--bisect-on-error")) {
            o.bisect_on_error = true;
            continue;
        }
        if (!strcmp(a, "--on-failure")) {
            o.on_failure_destination = true;
            continue;
        }
        if (!strcmp(a, "--exit-when-drained")) {
            exit_when_drained = true;
            continue;
        }
        if (!strcmp(a, "--quiet")) {
            ui.quiet = true;
            continue;
        }
        if (!val)
            return bad("%s needs a value; run 'lambdamr stream --help'", a);
        i++;
        if (!strcmp(a, "--source")) {
            source_uri = val;
        } else if (!strcmp(a, "--output")) {
            output_uri = val;
        } else if (!strcmp(a, "--checkpoint")) {
            ckpt_uri = val;
        } else if (!strcmp(a, "--window")) {
            if (!parse_i64(val, 1, LMR_STREAM_WINDOW_MAX_S, &window_s))
                return bad("--window must be a whole number of seconds from 1 to 900, not '%s'", val);
        } else if (!strcmp(a, "--batch-size")) {
            if (!parse_i64(val, 1, LMR_STREAM_BATCH_SIZE_MAX, &v))
                return bad("--batch-size must be from 1 to 10000, not '%s'", val);
            o.batch_size = (uint32_t)v;
        } else if (!strcmp(a, "--batch-window")) {
            if (!parse_i64(val, 0, LMR_STREAM_BATCH_WINDOW_MAX_S, &v))
                return bad("--batch-window must be from 0 to 300 seconds, not '%s'", val);
            o.batch_window_ms = (uint64_t)v * 1000;
        } else if (!strcmp(a, "--parallelization")) {
            if (!parse_i64(val, 1, LMR_STREAM_PARALLELIZATION_MAX, &v))
                return bad("--parallelization must be from 1 to 10, not '%s'", val);
            o.parallelization = (uint32_t)v;
        } else if (!strcmp(a, "--starting-position")) {
            struct lmr_err err;
            if (lmr_stream_position_parse(val, &o.starting_position, &err))
                return bad("%s", err.msg);
        } else if (!strcmp(a, "--max-retries")) {
            if (!parse_i64(val, -1, LMR_STREAM_MAX_RETRIES_MAX, &v))
                return bad("--max-retries must be -1 or from 0 to 10000, not '%s'", val);
            o.max_retries = v;
        } else if (!strcmp(a, "--max-record-age")) {
            if (!parse_i64(val, -1, LMR_STREAM_MAX_RECORD_AGE_MAX_S, &v) ||
                (v != -1 && v < LMR_STREAM_MAX_RECORD_AGE_MIN_S))
                return bad("--max-record-age must be -1 or from 60 to 604800 seconds, not '%s'", val);
            o.max_record_age_ms = v < 0 ? -1 : v * 1000;
        } else if (!strcmp(a, "--invoker")) {
            if (strcmp(val, "local") && strcmp(val, "inproc"))
                return bad("--invoker must be local or inproc, not '%s'", val);
            invoker_name = val;
        } else if (!strcmp(a, "--function-timeout")) {
            if (!parse_i64(val, 1, 900, &timeout_s))
                return bad("--function-timeout must be from 1 to 900 seconds, not '%s'", val);
        } else if (!strcmp(a, "--close-grace-ms")) {
            if (!parse_i64(val, 0, 600000, &grace_ms))
                return bad("--close-grace-ms must be from 0 to 600000, not '%s'", val);
        } else if (!strcmp(a, "--shard-refresh")) {
            if (!parse_i64(val, 1, 3600, &v))
                return bad("--shard-refresh must be from 1 to 3600 seconds, not '%s'", val);
            o.relist_interval_ms = (uint64_t)v * 1000;
        } else if (!strcmp(a, "--region")) {
            o.region = val;
        } else {
            /* A job argument. */
            if (lmr_job_args_set(args, a + 2, val))
                return bad("job option '%s': its name must be UTF-8 text and its value at most 64 KiB", a);
        }
    }
    if (!job_name)
        return bad("%s", "which job? for example: lambdamr stream wordcount --source - --window 10 --output ./out");
    if (!source_uri)
        return bad("%s", "--source is required: kinesis://STREAM, - or file://PATH");
    if (!window_s)
        return bad("%s", "--window SECONDS is required (1-900)");
    if (!output_uri)
        return bad("%s", "--output URI is required (a directory, file:///dir or s3://bucket/prefix)");

    int rc = 1;
    struct lmr_err err = {0};
    struct lmr_store *out = NULL, *ckpt = NULL;
    char *out_prefix = NULL, *ckpt_prefix = NULL;
    struct lmr_stream_source *src = NULL;
    struct lmr_stream_handler_config cfg = {0};
    struct lmr_lambda_service *svc = NULL;
    struct lmr_invoker *inv = NULL;
    char *args_json = NULL, *out_uri_full = NULL, *log_dir = NULL;
    bool remove_logs = false;
    const struct lmr_job_ops *job;
    if (lmr_job_find(job_name, &job, &err) || lmr_stream_handler_config_init(&cfg, job, args, &err))
        goto fail;
    if (lmr_store_open(output_uri, &out, &out_prefix, &err))
        goto fail;
    if (ckpt_uri && lmr_store_open(ckpt_uri, &ckpt, &ckpt_prefix, &err))
        goto fail;
    if (lmr_stream_source_open(source_uri, &src, &err))
        goto fail;
    /* The stream function commits windows itself: it gets the output as a canonical URI. */
    if (asprintf(&out_uri_full, "%s%s%s", out->root_uri, *out_prefix ? "/" : "", out_prefix) < 0) {
        out_uri_full = NULL;
        goto fail;
    }
    json_t *aj = lmr_job_args_to_json(args);
    args_json = aj ? json_dumps(aj, JSON_COMPACT) : NULL;
    json_decref(aj);
    if (!strcmp(invoker_name, "inproc")) {
        const char *fm = getenv("LMR_STREAM_FAIL_MATCH");
        if (fm && *fm)
            cfg.fail_match = strdup(fm);
        if (lmr_stream_handler_config_set_output(&cfg, out_uri_full, &err) ||
            lmr_stream_inproc_invoker_new(&cfg, &inv, &err))
            goto fail;
    } else {
        char *dir = lmr_self_dir();
        char *path = NULL, *e_job = NULL, *e_args = NULL, *e_fail = NULL, *e_max = NULL, *e_log = NULL, *e_out = NULL;
        if (!dir || asprintf(&path, "%s/bootstrap", dir) < 0 || asprintf(&e_job, "LMR_STREAM_JOB=%s", job_name) < 0 ||
            asprintf(&e_args, "LMR_STREAM_ARGS=%s", args_json ? args_json : "{}") < 0 ||
            asprintf(&e_out, "LMR_STREAM_OUTPUT=%s", out_uri_full) < 0) {
            free(dir);
            free(path);
            free(e_job);
            free(e_args);
            goto fail;
        }
        free(dir);
        const char *envv[8] = {e_job, e_args, e_out};
        size_t ne = 3;
        if (getenv("LMR_STREAM_FAIL_MATCH") &&
            asprintf(&e_fail, "LMR_STREAM_FAIL_MATCH=%s", getenv("LMR_STREAM_FAIL_MATCH")) >= 0)
            envv[ne++] = e_fail;
        if (getenv("LMR_STREAM_STATE_MAX") &&
            asprintf(&e_max, "LMR_STREAM_STATE_MAX=%s", getenv("LMR_STREAM_STATE_MAX")) >= 0)
            envv[ne++] = e_max;
        if (getenv("LMR_LOG") && asprintf(&e_log, "LMR_LOG=%s", getenv("LMR_LOG")) >= 0)
            envv[ne++] = e_log;
        envv[ne] = NULL;
        struct lmr_function_config fc = {.name = FUNCTION_NAME,
                                         .path = path,
                                         .handler = "stream",
                                         .memory_mb = LMR_MEMORY_DEFAULT_MB,
                                         .timeout_s = (double)timeout_s,
                                         .concurrency = 10 * LMR_STREAM_PARALLELIZATION_MAX,
                                         .env = envv};
        /* The function logs live with the run's checkpoints when those are a local directory (one
           folder, reused by every run), else in a temporary folder; removed when the run ends well. */
        struct lmr_store *cs = ckpt ? ckpt : out;
        const char *cp = ckpt ? ckpt_prefix : out_prefix;
        if (!strncmp(cs->root_uri, "file://", 7)) {
            if (asprintf(&log_dir, "%s/%s%s%slogs", cs->root_uri + 7, cp, *cp ? "/" : "", ckpt ? "" : "_checkpoint/") <
                0)
                log_dir = NULL;
        } else {
            const char *tmp = getenv("TMPDIR");
            char tmpl[4096];
            snprintf(tmpl, sizeof tmpl, "%s/lambdamr-stream-logs-XXXXXX", tmp && *tmp ? tmp : "/tmp");
            log_dir = mkdtemp(tmpl) ? strdup(tmpl) : NULL;
        }
        remove_logs = log_dir != NULL;
        struct lmr_lambda_service_options so = {.log_dir = log_dir};
        enum lmr_result r = lmr_lambda_service_new(&so, &svc, &err);
        if (!r)
            r = lmr_lambda_service_add_function(svc, &fc, &err);
        if (!r)
            r = lmr_local_invoker_new(svc, &inv, &err);
        free(path);
        free(e_job);
        free(e_args);
        free(e_fail);
        free(e_max);
        free(e_log);
        free(e_out);
        if (r)
            goto fail;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    o.source = src;
    o.invoker = inv;
    o.job = job;
    o.job_state = cfg.job_state;
    o.output = out;
    o.output_prefix = out_prefix;
    o.checkpoint = ckpt;
    o.checkpoint_prefix = ckpt ? ckpt_prefix : NULL;
    o.window_ms = (uint64_t)window_s * 1000;
    if (!o.region)
        o.region = getenv("AWS_REGION") ? getenv("AWS_REGION") : getenv("AWS_DEFAULT_REGION");
    o.close_grace_ms = grace_ms >= 0 ? (uint64_t)grace_ms : (!strcmp(src->vtable->name, "kinesis") ? 2000 : 0);
    o.stop = &stop_flag;
    o.exit_when_drained = exit_when_drained || !strcmp(src->vtable->name, "stdin");
    o.on_progress = on_progress;
    o.on_window = on_window;
    o.user = &ui;
    /* The stream report, and the prices it is costed at. */
    struct lmr_prices prices;
    struct lmr_err perr = {0};
    bool have_prices = !lmr_prices_load(NULL, o.region, NULL, &prices, &perr);
    if (!have_prices && !ui.quiet)
        fprintf(stderr, "lambdamr stream: no cost estimate: %s\n", perr.msg);
    json_t *params = report_params(argc, argv, job_name, args, source_uri, output_uri, invoker_name, &o,
                                   (uint64_t)window_s, timeout_s);
    struct lmr_stream_report_options ro = {.params = params};
    if (asprintf(&ui.report_key, "%s%s_lambdamr/report.json", out_prefix, *out_prefix ? "/" : "") < 0)
        ui.report_key = NULL;
    if (!params || !ui.report_key || lmr_stream_report_new(&ro, &ui.report, &err)) {
        json_decref(params);
        goto fail;
    }
    json_decref(params);
    ui.window_ms = o.window_ms;
    ui.out = out;
    ui.ckpt = ckpt;
    ui.inproc_store = !strcmp(invoker_name, "inproc") ? cfg.output : NULL;
    ui.prices = have_prices ? &prices : NULL;
    ui.kinesis = !strcmp(src->vtable->name, "kinesis");
    ui.report_written_mono_ms = lmr_mono_ms();
    const char *iv = getenv("LMR_STREAM_REPORT_INTERVAL_MS");
    ui.report_interval_ms = iv && atof(iv) > 0 ? atof(iv) : LMR_STREAM_REPORT_INTERVAL_MS;
    o.on_invocation = on_invocation;
    struct lmr_stream_stats stats = {0};
    enum lmr_result r = lmr_stream_poll(&o, &stats, &err);
    if (ui.tty && !ui.quiet)
        fprintf(stderr, "\r\033[K");
    if (!ui.quiet)
        fprintf(stderr,
                "lambdamr stream: %" PRIu64 " records read, %" PRIu64 " processed, %" PRIu64 " failed, %" PRIu64
                " windows committed (%" PRIu64 " already), %" PRIu64 " window parts ended early, %" PRIu64
                " invocations in %.1f s\n",
                stats.records_read, stats.records_processed, stats.records_failed, stats.windows_committed,
                stats.windows_already_committed, stats.windows_terminated_early, stats.invocations, stats.elapsed_s);
    /* The report, whatever the outcome: "drained" (every shard ended), "stopped" (a signal) or "failed". */
    const char *status = r ? "failed" : stop_flag ? "stopped" : "drained";
    write_report(&ui, &stats, status, r ? (err.msg[0] ? err.msg : lmr_result_str(r)) : NULL);
    if (!ui.quiet && have_prices) {
        struct lmr_stream_report_end e = {.status = status,
                                          .stats = &stats,
                                          .prices = &prices,
                                          .stores = {&out->stats, ckpt && ckpt != out ? &ckpt->stats : NULL,
                                                     ui.inproc_store ? &ui.inproc_store->stats : NULL},
                                          .shard_hours =
                                              ui.kinesis ? (double)stats.n_shards * stats.elapsed_s / 3600.0 : 0};
        json_t *rj = lmr_stream_report_json(ui.report, &e);
        print_stream_cost(&stats, &prices, json_object_get(rj, "cost"), ui.kinesis);
        json_decref(rj);
    }
    lmr_stream_stats_clean_up(&stats);
    if (r)
        goto fail;
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "lambdamr stream: %s\n", err.msg[0] ? err.msg : "out of memory");
    if (svc && log_dir) {
        fprintf(stderr, "lambdamr stream: the function logs are in %s\n", log_dir);
        remove_logs = false;
    }
done:
    lmr_stream_report_destroy(ui.report);
    free(ui.report_key);
    lmr_invoker_destroy(inv);
    lmr_lambda_service_destroy(svc);
    if (remove_logs)
        lmr_remove_tree(log_dir, NULL);
    free(log_dir);
    free(out_uri_full);
    lmr_stream_source_destroy(src);
    lmr_store_destroy(out);
    lmr_store_destroy(ckpt);
    free(out_prefix);
    free(ckpt_prefix);
    free(args_json);
    lmr_stream_handler_config_clean_up(&cfg);
    return rc;
}

int lmr_cmd_stream(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "merge"))
        return cmd_merge(argc - 1, argv + 1);
    struct lmr_job_args *args = lmr_job_args_new();
    if (!args) {
        fprintf(stderr, "lambdamr stream: out of memory\n");
        return 1;
    }
    int rc = stream_main(argc, argv, args);
    lmr_job_args_destroy(args);
    return rc;
}
