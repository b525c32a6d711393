#include "html.h"
#include "html_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "job/task.h"
#include "util/misc.h"

#define TIMELINE_WIDTH 1000.0
#define ROW_HEIGHT 14
#define ROW_GAP 2
#define AXIS_HEIGHT 22
#define LABEL_WIDTH 56

void lmr_html_esc(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '<':
            fputs("&lt;", f);
            break;
        case '>':
            fputs("&gt;", f);
            break;
        case '&':
            fputs("&amp;", f);
            break;
        case '"':
            fputs("&quot;", f);
            break;
        case '\'':
            fputs("&#39;", f);
            break;
        default:
            fputc(*s, f);
        }
    }
}

static const char *bytes_str(double n, char *buf, size_t cap)
{
    return lmr_format_bytes(n, buf, cap);
}

const char *lmr_html_usd(double v, char *buf, size_t cap)
{
    snprintf(buf, cap, v != 0 && fabs(v) < 0.01 ? "$%.7f" : "$%.4f", v);
    return buf;
}

/* Phase names get a CSS class of their own; anything unexpected is drawn as "other". */
static const char *phase_class(const char *phase)
{
    static const char *const known[] = {"map", "reduce", "merge", "coordinator", "stream"};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (phase && !strcmp(phase, known[i]))
            return known[i];
    return "other";
}

static const char style[] =
    "body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}"
    "h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd}"
    "table{border-collapse:collapse}td,th{padding:3px 10px;border-bottom:1px solid #eee;text-align:left}"
    "td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}"
    ".status{padding:1px 8px;border-radius:4px;color:#fff;font-size:14px}.succeeded{background:#2e7d32}"
    ".failed-job{background:#c62828}pre{background:#f6f6f6;padding:8px;white-space:pre-wrap;word-break:break-all}"
    "svg text{font:11px sans-serif;fill:#555}.grid{stroke:#eee}"
    "rect.bar{stroke:#fff;stroke-width:.6}.bar.map{fill:#4e79a7}.bar.reduce{fill:#f28e2b}.bar.merge{fill:#b07aa1}"
    ".bar.coordinator{fill:#59a14f}.bar.stream{fill:#76b7b2}.bar.other{fill:#9c755f}"
    ".bar.failed{fill:#e15759}.bar.retry{stroke:#222;stroke-width:1;stroke-dasharray:3 2}"
    ".bar.backup{stroke:#2ca02c;stroke-width:2;stroke-dasharray:1 2}.bar.superseded{opacity:.45}"
    ".bar.critical{stroke:#000;stroke-width:2}rect.init{fill:#000;opacity:.35}"
    ".legend span{display:inline-block;margin-right:14px}.sw{display:inline-block;width:12px;height:12px;"
    "vertical-align:middle;margin-right:4px}.hbar{height:12px;display:inline-block;vertical-align:middle}"
    ".muted{color:#777}.bar.final{fill:#edc948}line.window-end{stroke:#c62828;stroke-dasharray:4 3}";

void lmr_html_open(FILE *f, const char *job, const char *id)
{
    fputs("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
          "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
          "img-src data:; base-uri 'none'; form-action 'none'\">\n<title>lambdamr ",
          f);
    lmr_html_esc(f, job);
    fputs(" ", f);
    lmr_html_esc(f, id);
    fprintf(f, "</title>\n<style>%s</style></head>\n<body>\n", style);
}

static void header(FILE *f, const json_t *report)
{
    const char *status = lmr_json_str(report, "status", "unknown");
    lmr_html_open(f, lmr_json_str(report, "job", "job"), lmr_json_str(report, "job_id", ""));
    fputs("<header><h1>lambdamr ", f);
    lmr_html_esc(f, lmr_json_str(report, "job", "job"));
    fprintf(f, " <span class=\"status %s\" id=\"status\">", !strcmp(status, "succeeded") ? "succeeded" : "failed-job");
    lmr_html_esc(f, status);
    fprintf(f, "</span></h1>\n<p class=\"muted\">job ");
    lmr_html_esc(f, lmr_json_str(report, "job_id", "?"));
    fprintf(f, " &middot; %.2f s &middot; %.1f MiB/s</p></header>\n", lmr_json_double(report, "wall_ms", 0) / 1000.0,
            lmr_json_double(report, "throughput_mib_s", 0));
}

void lmr_html_row(FILE *f, const char *name, const char *value)
{
    fputs("<tr><th>", f);
    lmr_html_esc(f, name);
    fputs("</th><td>", f);
    lmr_html_esc(f, value);
    fputs("</td></tr>\n", f);
}

void lmr_html_args_and_command(FILE *f, const json_t *report, const char *what)
{
    const char *name;
    json_t *v;
    json_object_foreach(json_object_get(report, "args"), name, v)
    {
        char label[96];
        snprintf(label, sizeof label, "--%s", name);
        lmr_html_row(f, label, json_is_string(v) ? json_string_value(v) : "");
    }
    fputs("</table>\n", f);
    const char *command = lmr_json_str(report, "command", NULL);
    if (command) {
        fprintf(f, "<p>The command that reproduces this %s:</p><pre id=\"command\">", what);
        lmr_html_esc(f, command);
        fputs("</pre>\n", f);
    }
    fputs("</section>\n", f);
}

static void params(FILE *f, const json_t *report)
{
    char buf[256];
    const json_t *input = json_object_get(report, "input");
    fputs("<section id=\"job\"><h2>Job</h2><table>\n", f);
    size_t i;
    json_t *u;
    json_array_foreach(json_object_get(input, "uris"), i, u) lmr_html_row(f, "input", json_string_value(u));
    snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT " object%s, %s", (json_int_t)lmr_json_u64(input, "objects", 0),
             lmr_json_u64(input, "objects", 0) == 1 ? "" : "s",
             bytes_str((double)lmr_json_u64(input, "bytes", 0), (char[32]){0}, 32));
    lmr_html_row(f, "input size", buf);
    lmr_html_row(f, "output", lmr_json_str(report, "output", ""));
    snprintf(buf, sizeof buf,
             "%" JSON_INTEGER_FORMAT " map tasks, %" JSON_INTEGER_FORMAT " reducers, %" JSON_INTEGER_FORMAT
             " MB per function",
             (json_int_t)lmr_json_u64(report, "mappers", 0), (json_int_t)lmr_json_u64(report, "reducers", 0),
             (json_int_t)lmr_json_u64(report, "memory_mb", 0));
    lmr_html_row(f, "tasks", buf);
    lmr_html_args_and_command(f, report, "job");
}

struct bar {
    const json_t *inv;
    double start, end;
    uint32_t slot;
    bool critical;
};

/* The invocations that ended each phase: a chain of them is the job's critical path. */
static void mark_critical(struct bar *bars, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *ph = lmr_json_str(bars[i].inv, "phase", "");
        if (json_object_get(bars[i].inv, "error") || json_is_true(json_object_get(bars[i].inv, "superseded")))
            continue;
        bool last = true;
        for (size_t j = 0; j < n && last; j++)
            if (j != i && !json_object_get(bars[j].inv, "error") &&
                !json_is_true(json_object_get(bars[j].inv, "superseded")) &&
                !strcmp(lmr_json_str(bars[j].inv, "phase", ""), ph) && bars[j].end > bars[i].end)
                last = false;
        bars[i].critical = last;
    }
}

static double nice_step(double span_ms)
{
    static const double steps[] = {1,    2,    5,     10,    20,    50,     100,    200,    500,     1000,
                                   2000, 5000, 10000, 20000, 60000, 120000, 300000, 600000, 1800000, 3600000};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++)
        if (span_ms / steps[i] <= 10)
            return steps[i];
    return 7200000;
}

static enum lmr_result timeline(FILE *f, const json_t *report, struct lmr_err *err)
{
    const json_t *invs = json_object_get(report, "invocations");
    size_t n = json_array_size(invs);
    struct bar *bars = calloc(n ? n : 1, sizeof *bars);
    if (!bars)
        return lmr_fail(err, LMR_ERR_NOMEM, "out of memory laying out the timeline of %zu invocations", n);
    double t0 = lmr_json_double(report, "start_ms", 0), t1 = 0;
    uint32_t rows = 1;
    size_t i;
    json_t *inv;
    json_array_foreach(invs, i, inv)
    {
        bars[i].inv = inv;
        bars[i].start = lmr_json_double(inv, "start_ms", 0);
        bars[i].end = lmr_json_double(inv, "end_ms", bars[i].start);
        bars[i].slot = (uint32_t)lmr_json_u64(inv, "slot", 0);
        if (bars[i].slot + 1 > rows)
            rows = bars[i].slot + 1;
        if (t0 <= 0 || bars[i].start < t0)
            t0 = bars[i].start;
        if (bars[i].end > t1)
            t1 = bars[i].end;
    }
    mark_critical(bars, n);
    double span = t1 > t0 ? t1 - t0 : 1;
    double height = AXIS_HEIGHT + rows * (ROW_HEIGHT + ROW_GAP);
    fprintf(f,
            "<section id=\"timeline\"><h2>Timeline</h2>\n<p class=\"muted\">One row per concurrency slot, one bar "
            "per invocation (%zu), from the moment it was invoked to its answer. Hover a bar for its figures.</p>\n",
            n);
    fprintf(f,
            "<svg id=\"timeline-svg\" xmlns=\"http://www.w3.org/2000/svg\" width=\"100%%\" viewBox=\"0 0 %.0f %.0f\" "
            "preserveAspectRatio=\"none\" style=\"height:%.0fpx\">\n",
            TIMELINE_WIDTH + LABEL_WIDTH, height, height);
    double step = nice_step(span);
    for (double t = 0; t <= span + 1e-9; t += step) {
        double x = LABEL_WIDTH + t / span * TIMELINE_WIDTH;
        fprintf(f, "<line class=\"grid\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%d\" y2=\"%.0f\"/><text x=\"%.1f\" y=\"12\">", x,
                x, AXIS_HEIGHT - 6, height, x + 2);
        if (step >= 1000)
            fprintf(f, "%.0f s</text>\n", t / 1000.0);
        else
            fprintf(f, "%.0f ms</text>\n", t);
    }
    for (uint32_t r = 0; r < rows; r++)
        fprintf(f, "<text x=\"0\" y=\"%d\">slot %u</text>\n", AXIS_HEIGHT + r * (ROW_HEIGHT + ROW_GAP) + 11, r);
    for (i = 0; i < n; i++) {
        const json_t *v = bars[i].inv;
        const char *ph = lmr_json_str(v, "phase", "other"), *error = lmr_json_str(v, "error", NULL);
        uint64_t attempt = lmr_json_u64(v, "attempt", 1);
        double init = lmr_json_double(v, "init_duration_ms", 0);
        double x = LABEL_WIDTH + (bars[i].start - t0) / span * TIMELINE_WIDTH;
        double w = (bars[i].end - bars[i].start) / span * TIMELINE_WIDTH;
        if (w < 0.5)
            w = 0.5;
        double y = AXIS_HEIGHT + bars[i].slot * (ROW_HEIGHT + ROW_GAP);
        bool backup = json_is_true(json_object_get(v, "backup")),
             superseded = json_is_true(json_object_get(v, "superseded"));
        fprintf(f, "<rect class=\"bar %s%s%s%s%s%s%s\" data-phase=\"", phase_class(ph), error ? " failed" : "",
                attempt > 1 && !backup ? " retry" : "", backup ? " backup" : "", superseded ? " superseded" : "",
                init > 0 ? " cold" : "", bars[i].critical ? " critical" : "");
        lmr_html_esc(f, ph);
        fprintf(f,
                "\" data-task=\"%" JSON_INTEGER_FORMAT "\" data-attempt=\"%" JSON_INTEGER_FORMAT
                "\" x=\"%.2f\" y=\"%.0f\" width=\"%.2f\" height=\"%d\"><title>",
                (json_int_t)lmr_json_u64(v, "task", 0), (json_int_t)attempt, x, y, w, ROW_HEIGHT);
        lmr_html_esc(f, ph);
        fprintf(f, " task %" JSON_INTEGER_FORMAT " attempt %" JSON_INTEGER_FORMAT ": %.0f ms",
                (json_int_t)lmr_json_u64(v, "task", 0), (json_int_t)attempt, lmr_json_double(v, "duration_ms", 0));
        if (init > 0)
            fprintf(f, " (cold start, Init %.0f ms)", init);
        fprintf(f, ", billed %.0f ms at %" JSON_INTEGER_FORMAT " MB, max %" JSON_INTEGER_FORMAT " MB used",
                lmr_json_double(v, "billed_duration_ms", 0), (json_int_t)lmr_json_u64(v, "memory_size_mb", 0),
                (json_int_t)lmr_json_u64(v, "max_memory_used_mb", 0));
        const json_t *st = json_object_get(v, "store");
        if (st) {
            char a[32], b[32];
            fprintf(f, "; read %s, wrote %s; GET %" JSON_INTEGER_FORMAT ", PUT %" JSON_INTEGER_FORMAT,
                    bytes_str((double)lmr_json_u64(st, "bytes_read", 0), a, sizeof a),
                    bytes_str((double)lmr_json_u64(st, "bytes_written", 0), b, sizeof b),
                    (json_int_t)lmr_json_u64(st, "get", 0), (json_int_t)lmr_json_u64(st, "put", 0));
        }
        if (backup)
            fputs("; speculative backup", f);
        if (superseded)
            fputs(json_is_true(json_object_get(v, "unfinished")) ? "; superseded, still running when the phase ended"
                                                                 : "; superseded (another attempt committed first)",
                  f);
        if (bars[i].critical)
            fputs("; on the critical path", f);
        if (error) {
            fputs("; FAILED: ", f);
            lmr_html_esc(f, error);
        }
        fputs("</title></rect>\n", f);
        double elapsed = bars[i].end - bars[i].start;
        if (init > 0 && elapsed > 0) {
            double iw = (init < elapsed ? init : elapsed) / span * TIMELINE_WIDTH;
            fprintf(f, "<rect class=\"init\" x=\"%.2f\" y=\"%.0f\" width=\"%.2f\" height=\"%d\"/>\n", x, y,
                    iw < 0.5 ? 0.5 : iw, ROW_HEIGHT);
        }
    }
    fputs("</svg>\n<p class=\"legend\"><span><i class=\"sw bar map\" style=\"background:#4e79a7\"></i>map</span>"
          "<span><i class=\"sw\" style=\"background:#f28e2b\"></i>reduce</span>"
          "<span><i class=\"sw\" style=\"background:#e15759\"></i>failed attempt</span>"
          "<span><i class=\"sw\" style=\"border:1px dashed #222\"></i>retry (attempt &gt; 1)</span>"
          "<span><i class=\"sw\" style=\"border:2px dotted #2ca02c\"></i>speculative backup</span>"
          "<span><i class=\"sw\" style=\"background:#000;opacity:.35\"></i>cold start (Init)</span>"
          "<span><i class=\"sw\" style=\"border:2px solid #000\"></i>critical path</span></p>\n",
          f);
    /* The critical path in words: the invocation that ended each phase. */
    fputs("<p id=\"critical-path\">Critical path: ", f);
    bool first = true;
    for (i = 0; i < n; i++)
        if (bars[i].critical) {
            fprintf(f, "%s", first ? "" : " &rarr; ");
            lmr_html_esc(f, lmr_json_str(bars[i].inv, "phase", ""));
            fprintf(f, " task %" JSON_INTEGER_FORMAT " (attempt %" JSON_INTEGER_FORMAT ", ended at %.0f ms)",
                    (json_int_t)lmr_json_u64(bars[i].inv, "task", 0),
                    (json_int_t)lmr_json_u64(bars[i].inv, "attempt", 1), bars[i].end - t0);
            first = false;
        }
    fputs(first ? "none</p>\n</section>\n" : "</p>\n</section>\n", f);
    free(bars);
    return LMR_OK;
}

static void phases(FILE *f, const json_t *report)
{
    static const char *const names[] = {"plan", "map", "merge", "reduce", "commit"};
    const json_t *ph = json_object_get(report, "phases");
    double wall = lmr_json_double(report, "wall_ms", 0);
    char a[32], b[32];
    fputs("<section id=\"phases\"><h2>Phases</h2><table><tr><th>phase</th><th class=\"n\">time</th><th></th>"
          "<th class=\"n\">tasks</th><th class=\"n\">attempts</th><th class=\"n\">failed</th>"
          "<th class=\"n\">records in</th><th class=\"n\">records out</th><th class=\"n\">bytes in</th>"
          "<th class=\"n\">bytes out</th></tr>\n",
          f);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const json_t *p = json_object_get(ph, names[i]);
        if (!p)
            continue;
        double ms = lmr_json_double(p, "wall_ms", 0);
        double out = (double)(lmr_json_u64(p, "bytes_out", 0) + lmr_json_u64(p, "intermediate_bytes", 0) +
                              lmr_json_u64(p, "output_bytes", 0));
        fprintf(f,
                "<tr class=\"phase\" data-phase=\"%s\"><td>%s</td><td class=\"n\">%.3f s</td><td>"
                "<span class=\"hbar bar %s\" style=\"width:%.0fpx;background:#888\"></span></td>"
                "<td class=\"n\">%" JSON_INTEGER_FORMAT "</td><td class=\"n\">%" JSON_INTEGER_FORMAT "</td>"
                "<td class=\"n\">%" JSON_INTEGER_FORMAT "</td><td class=\"n\">%" JSON_INTEGER_FORMAT "</td>"
                "<td class=\"n\">%" JSON_INTEGER_FORMAT "</td><td class=\"n\">%s</td><td class=\"n\">%s</td></tr>\n",
                names[i], names[i], ms / 1000.0, phase_class(names[i]), wall > 0 ? 300.0 * ms / wall : 0,
                (json_int_t)lmr_json_u64(p, "tasks", 0), (json_int_t)lmr_json_u64(p, "attempts", 0),
                (json_int_t)lmr_json_u64(p, "failed_attempts", 0), (json_int_t)lmr_json_u64(p, "records_in", 0),
                (json_int_t)lmr_json_u64(p, "records_out", 0),
                bytes_str((double)lmr_json_u64(p, "bytes_in", 0), a, sizeof a), bytes_str(out, b, sizeof b));
    }
    fputs("</table>\n", f);
    const json_t *map = json_object_get(ph, "map");
    double raw = (double)lmr_json_u64(map, "intermediate_raw_bytes", 0),
           comp = (double)lmr_json_u64(map, "intermediate_bytes", 0);
    if (raw > 0) {
        fprintf(f,
                "<h2>Shuffle</h2><table id=\"shuffle\"><tr><td>intermediate data before compression</td>"
                "<td class=\"n\">%s</td><td><span class=\"hbar\" style=\"width:300px;background:#4e79a7\"></span>"
                "</td></tr><tr><td>after compression (zstd)</td><td class=\"n\">%s</td><td><span class=\"hbar\" "
                "style=\"width:%.0fpx;background:#f28e2b\"></span></td></tr></table>\n",
                bytes_str(raw, a, sizeof a), bytes_str(comp, b, sizeof b), 300.0 * comp / raw);
    }
    fputs("</section>\n", f);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void stragglers(FILE *f, const json_t *report)
{
    static const char *const names[] = {"map", "merge", "reduce"};
    const json_t *invs = json_object_get(report, "invocations");
    size_t n = json_array_size(invs), shown = 0;
    double *d = calloc(n ? n : 1, sizeof *d);
    fprintf(f,
            "<section id=\"stragglers\"><h2>Stragglers</h2><p class=\"muted\">Invocations that took more than "
            "%.1f&times; the median of their phase.</p><table><tr><th>phase</th><th class=\"n\">task</th>"
            "<th class=\"n\">attempt</th><th class=\"n\">duration</th><th class=\"n\">phase median</th></tr>\n",
            LMR_REPORT_STRAGGLER_FACTOR);
    for (size_t p = 0; d && p < sizeof names / sizeof names[0]; p++) {
        size_t k = 0, i;
        json_t *v;
        json_array_foreach(invs, i, v) if (!strcmp(lmr_json_str(v, "phase", ""), names[p])) d[k++] =
            lmr_json_double(v, "duration_ms", 0);
        if (k < 2)
            continue;
        qsort(d, k, sizeof *d, cmp_double);
        double median = k % 2 ? d[k / 2] : (d[k / 2 - 1] + d[k / 2]) / 2;
        json_array_foreach(invs, i, v)
        {
            double dur = lmr_json_double(v, "duration_ms", 0);
            if (strcmp(lmr_json_str(v, "phase", ""), names[p]) || dur <= LMR_REPORT_STRAGGLER_FACTOR * median)
                continue;
            fprintf(f,
                    "<tr class=\"straggler\"><td>%s</td><td class=\"n\">%" JSON_INTEGER_FORMAT
                    "</td><td class=\"n\">%" JSON_INTEGER_FORMAT
                    "</td><td class=\"n\">%.0f ms</td><td class=\"n\">%.0f ms</td></tr>\n",
                    names[p], (json_int_t)lmr_json_u64(v, "task", 0), (json_int_t)lmr_json_u64(v, "attempt", 1), dur,
                    median);
            shown++;
        }
    }
    fprintf(f, "</table>%s</section>\n", shown ? "" : "<p>None.</p>");
    free(d);
}

static void cost_row(FILE *f, const char *item, const char *quantity, const char *rate, double usd)
{
    char u[32];
    fputs("<tr class=\"cost-item\"><td>", f);
    lmr_html_esc(f, item);
    fputs("</td><td class=\"n\">", f);
    lmr_html_esc(f, quantity);
    fputs("</td><td class=\"n\">", f);
    lmr_html_esc(f, rate);
    fprintf(f, "</td><td class=\"n\">%s</td></tr>\n", lmr_html_usd(usd, u, sizeof u));
}

void lmr_html_cost(FILE *f, const json_t *report)
{
    const json_t *c = json_object_get(report, "cost"), *p = json_object_get(c, "prices"),
                 *s3 = json_object_get(c, "s3");
    char q[128], r[96], u[32];
    fputs("<section id=\"cost\"><h2>Cost</h2><table id=\"cost-table\"><tr><th>item</th><th class=\"n\">quantity</th>"
          "<th class=\"n\">price</th><th class=\"n\">USD</th></tr>\n",
          f);
    snprintf(q, sizeof q, "%.3f GB-s (%.3f of them Init) in %.0f billed ms", lmr_json_double(c, "gb_seconds", 0),
             lmr_json_double(c, "init_gb_seconds", 0), lmr_json_double(c, "billed_duration_ms", 0));
    snprintf(r, sizeof r, "$%.10f per GB-s", lmr_json_double(p, "lambda_gb_second", 0));
    cost_row(f, "Lambda compute, Init included", q, r, lmr_json_double(c, "lambda_compute_usd", 0));
    snprintf(q, sizeof q, "%" JSON_INTEGER_FORMAT " invocations", (json_int_t)lmr_json_u64(c, "invocations", 0));
    snprintf(r, sizeof r, "$%.2f per million", lmr_json_double(p, "lambda_per_million_requests", 0));
    cost_row(f, "Lambda requests", q, r, lmr_json_double(c, "lambda_requests_usd", 0));
    if (lmr_json_double(c, "lambda_ephemeral_usd", 0) > 0)
        cost_row(f, "Lambda ephemeral storage above 512 MB", "", "", lmr_json_double(c, "lambda_ephemeral_usd", 0));
    static const char *const kinds[] = {"get", "head", "put", "list", "delete"};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        const json_t *k = json_object_get(s3, kinds[i]);
        char item[32];
        snprintf(item, sizeof item, "S3 %s requests", kinds[i]);
        for (char *s = item + 3; *s && *s != ' '; s++)
            *s = (char)(*s - 'a' + 'A');
        snprintf(q, sizeof q, "%" JSON_INTEGER_FORMAT, (json_int_t)lmr_json_u64(k, "requests", 0));
        double per = !strcmp(kinds[i], "delete") ? 0
                     : !strcmp(kinds[i], "get") || !strcmp(kinds[i], "head")
                         ? lmr_json_double(p, "s3_per_1000_get_and_other", 0)
                         : lmr_json_double(p, "s3_per_1000_put_copy_post_list", 0);
        snprintf(r, sizeof r, per > 0 ? "$%.5f per 1,000" : "free", per);
        cost_row(f, item, q, r, lmr_json_double(k, "usd", 0));
    }
    const json_t *kin = json_object_get(c, "kinesis");
    if (kin) {
        snprintf(q, sizeof q, "%.3f shard-hours", lmr_json_double(kin, "shard_hours", 0));
        cost_row(f, "Kinesis shards", q, "", lmr_json_double(kin, "shard_usd", 0));
    }
    fprintf(f, "<tr id=\"cost-total\"><th>total</th><td></td><td></td><td class=\"n\"><b>%s</b></td></tr></table>\n",
            lmr_html_usd(lmr_json_double(c, "total_usd", 0), u, sizeof u));
    fputs("<p id=\"prices\">Prices: region ", f);
    lmr_html_esc(f, lmr_json_str(p, "region", "?"));
    fputs(", architecture ", f);
    lmr_html_esc(f, lmr_json_str(p, "architecture", "?"));
    fputs(", prices of ", f);
    lmr_html_esc(f, lmr_json_str(p, "date", "?"));
    fputs(" (", f);
    lmr_html_esc(f, lmr_json_str(p, "source", "?"));
    fputs("). ", f);
    lmr_html_esc(f, lmr_json_str(c, "note", ""));
    fputs("</p></section>\n", f);
}

enum lmr_result lmr_report_html_write(FILE *out, const json_t *report, struct lmr_err *err)
{
    if (!strcmp(lmr_json_str(report, "kind", ""), "stream"))
        return lmr_report_html_stream(out, report, err);
    if (!json_is_object(report) || !json_is_array(json_object_get(report, "invocations")) ||
        !json_is_object(json_object_get(report, "cost")))
        return lmr_fail(err, LMR_ERR_FORMAT, "the report has no invocations or cost: is it a lambdamr job report?");
    if (lmr_json_u64(report, "schema_version", 1) < 2)
        return lmr_fail(err, LMR_ERR_FORMAT,
                        "the report has schema version %" JSON_INTEGER_FORMAT
                        " (before timestamps were recorded); run the job again with this lambdamr",
                        (json_int_t)lmr_json_u64(report, "schema_version", 1));
    header(out, report);
    params(out, report);
    enum lmr_result r = timeline(out, report, err);
    if (r)
        return r;
    phases(out, report);
    stragglers(out, report);
    lmr_html_cost(out, report);
    fputs("</body></html>\n", out);
    if (ferror(out))
        return lmr_fail(err, LMR_ERR_IO, "could not write the HTML report");
    return LMR_OK;
}
