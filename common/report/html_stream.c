/*
 * The page of a stream report: the run's parameters, a table of its windows, and for each window
 * kept in full a timeline (a row per shard lane, a bar per invocation; final invokes, cold starts
 * and failed invocations marked; the window's end drawn as a line), then the cost.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "html.h"
#include "html_internal.h"
#include "job/task.h"
#include "stream/event.h"
#include "util/misc.h"

#define WIDTH 1000.0
#define LABEL 150.0
#define ROW 14
#define GAP 2
#define AXIS 22

static void params(FILE *f, const json_t *r)
{
    char buf[256];
    fputs("<section id=\"job\"><h2>Run</h2><table>\n", f);
    lmr_html_row(f, "source", lmr_json_str(r, "source", ""));
    lmr_html_row(f, "output", lmr_json_str(r, "output", ""));
    snprintf(buf, sizeof buf, "%.0f s tumbling windows", lmr_json_double(r, "window_ms", 0) / 1000.0);
    lmr_html_row(f, "window", buf);
    lmr_html_row(f, "invoker", lmr_json_str(r, "invoker", ""));
    const char *name;
    json_t *v;
    json_object_foreach(json_object_get(r, "mapping"), name, v)
    {
        char *text = json_dumps(v, JSON_ENCODE_ANY);
        lmr_html_row(f, name, text ? text : "");
        free(text);
    }
    lmr_html_args_and_command(f, r, "run");
}

static void window_row(FILE *f, const json_t *w, const char *cls)
{
    char a[40], b[40];
    uint64_t start = lmr_json_u64(w, "start_ms", 0);
    fprintf(f, "<tr class=\"%s\" data-window=\"%" PRIu64 "\"><td>%s</td><td>%s</td><td>", cls, start,
            lmr_stream_iso8601(start, a, sizeof a), lmr_stream_iso8601(lmr_json_u64(w, "end_ms", 0), b, sizeof b));
    lmr_html_esc(f, lmr_json_str(w, "status", ""));
    fprintf(f,
            "</td><td class=\"n\">%" PRIu64 "</td><td class=\"n\">%" PRIu64 "</td><td class=\"n\">%" PRIu64
            "</td><td class=\"n\">%" PRIu64 "</td><td class=\"n\">%.0f ms</td><td class=\"n\">%.3f</td></tr>\n",
            lmr_json_u64(w, "records", 0), lmr_json_u64(w, "invocation_count", 0), lmr_json_u64(w, "cold_starts", 0),
            lmr_json_u64(w, "failed_invocations", 0), lmr_json_double(w, "billed_duration_ms", 0),
            lmr_json_double(w, "gb_seconds", 0));
}

static void windows_table(FILE *f, const json_t *r)
{
    const json_t *limits = json_object_get(r, "limits");
    fprintf(f,
            "<section id=\"windows\"><h2>Windows</h2><p class=\"muted\">The last %" PRIu64
            " windows in full (with a timeline each), the %" PRIu64
            " before them as one line each; every window counts in the totals.",
            lmr_json_u64(limits, "windows_in_full", 0), lmr_json_u64(limits, "window_summaries", 0));
    if (lmr_json_u64(limits, "earlier_windows_dropped", 0))
        fprintf(f, " %" PRIu64 " earlier windows are in the totals only.",
                lmr_json_u64(limits, "earlier_windows_dropped", 0));
    fputs("</p><table id=\"windows-table\"><tr><th>start</th><th>end</th><th>status</th><th class=\"n\">records</th>"
          "<th class=\"n\">invocations</th><th class=\"n\">cold</th><th class=\"n\">failed</th>"
          "<th class=\"n\">billed</th><th class=\"n\">GB-s</th></tr>\n",
          f);
    size_t i;
    json_t *w;
    json_array_foreach(json_object_get(r, "earlier_windows"), i, w) window_row(f, w, "window-summary");
    json_array_foreach(json_object_get(r, "windows"), i, w) window_row(f, w, "window");
    const json_t *t = json_object_get(r, "totals");
    fprintf(f,
            "<tr id=\"totals\"><th colspan=\"3\">run total</th><td class=\"n\">%" PRIu64 "</td><td class=\"n\">%" PRIu64
            "</td><td class=\"n\">%" PRIu64 "</td><td class=\"n\">%" PRIu64
            "</td><td class=\"n\">%.0f ms</td><td class=\"n\">%.3f</td></tr></table></section>\n",
            lmr_json_u64(t, "records_processed", 0), lmr_json_u64(t, "invocations", 0),
            lmr_json_u64(t, "cold_starts", 0), lmr_json_u64(t, "failed_invocations", 0),
            lmr_json_double(t, "billed_duration_ms", 0), lmr_json_double(t, "gb_seconds", 0));
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* One window's timeline: a row per slot (shard lane) that invoked for it, a bar per invocation. */
static enum lmr_result window_timeline(FILE *f, const json_t *w, struct lmr_err *err)
{
    const json_t *invs = json_object_get(w, "invocations");
    size_t n = json_array_size(invs), i;
    uint64_t start = lmr_json_u64(w, "start_ms", 0), end = lmr_json_u64(w, "end_ms", 0);
    char a[40], b[40];
    fprintf(f, "<section class=\"window-timeline\" id=\"window-%" PRIu64 "\" data-window=\"%" PRIu64 "\"><h3>", start,
            start);
    fprintf(f, "Window %s &ndash; %s: ", lmr_stream_iso8601(start, a, sizeof a), lmr_stream_iso8601(end, b, sizeof b));
    lmr_html_esc(f, lmr_json_str(w, "status", ""));
    fprintf(f, ", %" PRIu64 " records, %" PRIu64 " invocations</h3>\n", lmr_json_u64(w, "records", 0),
            lmr_json_u64(w, "invocation_count", 0));
    if (lmr_json_u64(w, "invocations_dropped", 0))
        fprintf(f, "<p class=\"muted\">%" PRIu64 " further invocations are counted above but not drawn.</p>\n",
                lmr_json_u64(w, "invocations_dropped", 0));
    uint32_t *slots = calloc(n ? n : 1, sizeof *slots);
    if (!slots)
        return lmr_fail(err, LMR_ERR_NOMEM, "out of memory laying out the timeline of window %s", a);
    double t0 = 0, t1 = 0;
    json_t *v;
    json_array_foreach(invs, i, v)
    {
        slots[i] = (uint32_t)lmr_json_u64(v, "slot", 0);
        double s = lmr_json_double(v, "start_ms", 0), e = lmr_json_double(v, "end_ms", s);
        if (!i || s < t0)
            t0 = s;
        if (e > t1)
            t1 = e;
    }
    /* Dense rows: the distinct slots in order. */
    qsort(slots, n, sizeof *slots, cmp_u32);
    size_t rows = 0;
    for (i = 0; i < n; i++)
        if (!rows || slots[rows - 1] != slots[i])
            slots[rows++] = slots[i];
    double span = t1 > t0 ? t1 - t0 : 1;
    double height = AXIS + (double)(rows ? rows : 1) * (ROW + GAP);
    fprintf(f,
            "<svg class=\"timeline-svg\" xmlns=\"http://www.w3.org/2000/svg\" width=\"100%%\" viewBox=\"0 0 %.0f "
            "%.0f\" preserveAspectRatio=\"none\" style=\"height:%.0fpx\">\n",
            WIDTH + LABEL, height, height);
    fprintf(f, "<text x=\"%.0f\" y=\"12\">%.0f ms from the first invoke to the last answer</text>\n", LABEL, span);
    double we = (double)end;
    if (we >= t0 && we <= t1)
        fprintf(f,
                "<line class=\"window-end\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%d\" y2=\"%.0f\"><title>window "
                "end</title></line>\n",
                LABEL + (we - t0) / span * WIDTH, LABEL + (we - t0) / span * WIDTH, AXIS - 6, height);
    for (size_t r = 0; r < rows; r++) {
        /* The row's label: the shard and lane of its first invocation. */
        json_array_foreach(invs, i, v) if (lmr_json_u64(v, "slot", 0) == slots[r])
        {
            fprintf(f, "<text x=\"0\" y=\"%.0f\">", AXIS + (double)r * (ROW + GAP) + 11);
            const char *shard = lmr_json_str(v, "shard", "");
            size_t sl = strlen(shard);
            lmr_html_esc(f, sl > 14 ? shard + sl - 14 : shard);
            fprintf(f, " lane %" PRIu64 "</text>\n", lmr_json_u64(v, "lane", 0));
            break;
        }
    }
    json_array_foreach(invs, i, v)
    {
        uint32_t slot = (uint32_t)lmr_json_u64(v, "slot", 0);
        size_t r = 0;
        while (r + 1 < rows && slots[r] != slot)
            r++;
        double s = lmr_json_double(v, "start_ms", 0), e = lmr_json_double(v, "end_ms", s);
        double x = LABEL + (s - t0) / span * WIDTH, wd = (e - s) / span * WIDTH;
        if (wd < 0.5)
            wd = 0.5;
        double y = AXIS + (double)r * (ROW + GAP);
        bool final = json_is_true(json_object_get(v, "final")), cold = json_is_true(json_object_get(v, "cold"));
        const char *error = lmr_json_str(v, "error", NULL);
        fprintf(f, "<rect class=\"bar stream%s%s%s%s\" data-window=\"%" PRIu64 "\" data-shard=\"",
                final ? " final" : "", error ? " failed" : "", cold ? " cold" : "",
                lmr_json_u64(v, "throttle_retries", 0) ? " retry" : "", start);
        lmr_html_esc(f, lmr_json_str(v, "shard", ""));
        fprintf(f, "\" data-lane=\"%" PRIu64 "\" data-request=\"", lmr_json_u64(v, "lane", 0));
        lmr_html_esc(f, lmr_json_str(v, "request_id", ""));
        fprintf(f, "\" x=\"%.2f\" y=\"%.0f\" width=\"%.2f\" height=\"%d\"><title>", x, y, wd, ROW);
        fprintf(f, "%s%" PRIu64 " records: %.1f ms", final ? "final invoke, " : "", lmr_json_u64(v, "records", 0),
                lmr_json_double(v, "duration_ms", 0));
        if (cold)
            fprintf(f, " (cold start, Init %.1f ms)", lmr_json_double(v, "init_duration_ms", 0));
        fprintf(f, ", billed %.0f ms at %" PRIu64 " MB, max %" PRIu64 " MB used",
                lmr_json_double(v, "billed_duration_ms", 0), lmr_json_u64(v, "memory_size_mb", 0),
                lmr_json_u64(v, "max_memory_used_mb", 0));
        const json_t *st = json_object_get(v, "store");
        if (st) {
            char ra[32], wa[32];
            fprintf(f, "; read %s, wrote %s; GET %" PRIu64 ", PUT %" PRIu64 ", HEAD %" PRIu64 ", LIST %" PRIu64,
                    lmr_format_bytes((double)lmr_json_u64(st, "bytes_read", 0), ra, sizeof ra),
                    lmr_format_bytes((double)lmr_json_u64(st, "bytes_written", 0), wa, sizeof wa),
                    lmr_json_u64(st, "get", 0), lmr_json_u64(st, "put", 0), lmr_json_u64(st, "head", 0),
                    lmr_json_u64(st, "list", 0));
        }
        if (lmr_json_u64(v, "throttle_retries", 0))
            fprintf(f, "; throttled %" PRIu64 " times first", lmr_json_u64(v, "throttle_retries", 0));
        if (error) {
            fputs("; FAILED: ", f);
            lmr_html_esc(f, error);
        }
        fputs("</title></rect>\n", f);
        double init = lmr_json_double(v, "init_duration_ms", 0);
        if (cold && e > s) {
            double iw = (init < e - s ? init : e - s) / span * WIDTH;
            fprintf(f, "<rect class=\"init\" x=\"%.2f\" y=\"%.0f\" width=\"%.2f\" height=\"%d\"/>\n", x, y,
                    iw < 0.5 ? 0.5 : iw, ROW);
        }
    }
    fputs("</svg></section>\n", f);
    free(slots);
    return LMR_OK;
}

enum lmr_result lmr_report_html_stream(FILE *f, const json_t *r, struct lmr_err *err)
{
    if (!json_is_array(json_object_get(r, "windows")) || !json_is_object(json_object_get(r, "totals")))
        return lmr_fail(err, LMR_ERR_FORMAT, "the stream report has no windows or totals: is it a lambdamr report?");
    const char *status = lmr_json_str(r, "status", "unknown");
    const json_t *t = json_object_get(r, "totals");
    lmr_html_open(f, lmr_json_str(r, "job", "stream"), "stream");
    fputs("<header><h1>lambdamr stream ", f);
    lmr_html_esc(f, lmr_json_str(r, "job", "stream"));
    fprintf(f, " <span class=\"status %s\" id=\"status\">", !strcmp(status, "failed") ? "failed-job" : "succeeded");
    lmr_html_esc(f, status);
    fprintf(f,
            "</span></h1>\n<p class=\"muted\">%.1f s &middot; %" PRIu64 " records read, %" PRIu64 " processed, %" PRIu64
            " failed &middot; %" PRIu64 " windows closed &middot; %" PRIu64 " invocations</p></header>\n",
            lmr_json_double(r, "wall_ms", 0) / 1000.0, lmr_json_u64(t, "records_read", 0),
            lmr_json_u64(t, "records_processed", 0), lmr_json_u64(t, "records_failed", 0),
            lmr_json_u64(t, "windows_closed", 0), lmr_json_u64(t, "invocations", 0));
    const char *error = lmr_json_str(r, "error", NULL);
    if (error) {
        fputs("<p id=\"error\"><b>Error:</b> ", f);
        lmr_html_esc(f, error);
        fputs("</p>\n", f);
    }
    params(f, r);
    windows_table(f, r);
    fputs("<section id=\"timeline\"><h2>Timelines</h2><p class=\"muted\">Per window: one row per shard lane, one bar "
          "per invocation from the moment it was invoked to its answer; final invokes in yellow, failed ones in red, "
          "Init shaded, the window's end as a dashed line. Hover a bar for its figures.</p>\n",
          f);
    size_t i;
    json_t *w;
    json_array_foreach(json_object_get(r, "windows"), i, w)
    {
        enum lmr_result rr = window_timeline(f, w, err);
        if (rr)
            return rr;
    }
    fputs("</section>\n", f);
    if (json_is_object(json_object_get(r, "cost")))
        lmr_html_cost(f, r);
    fputs("</body></html>\n", f);
    if (ferror(f))
        return lmr_fail(err, LMR_ERR_IO, "could not write the HTML report");
    return LMR_OK;
}
