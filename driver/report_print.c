#include "report_print.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "job/task.h"
#include "util/misc.h"

static const char *count(uint64_t n, char *buf, size_t cap)
{
    if (n >= 10000000)
        snprintf(buf, cap, "%.1fM", (double)n / 1e6);
    else if (n >= 10000)
        snprintf(buf, cap, "%.1fk", (double)n / 1e3);
    else
        snprintf(buf, cap, "%" PRIu64, n);
    return buf;
}

static const char *bytes(uint64_t n, char *buf, size_t cap)
{
    return lmr_format_bytes((double)n, buf, cap);
}

static void phase_line(FILE *f, const char *name, const json_t *ph)
{
    if (!ph)
        return;
    fprintf(f, "  %-8s %8.2f s", name, lmr_json_double(ph, "wall_ms", 0) / 1000.0);
    uint64_t tasks = lmr_json_u64(ph, "tasks", 0);
    if (tasks)
        fprintf(f, "  %" PRIu64 " task%s, %" PRIu64 " attempt%s (%" PRIu64 " failed)", tasks, tasks == 1 ? "" : "s",
                lmr_json_u64(ph, "attempts", 0), lmr_json_u64(ph, "attempts", 0) == 1 ? "" : "s",
                lmr_json_u64(ph, "failed_attempts", 0));
    if (lmr_json_u64(ph, "reused", 0))
        fprintf(f, ", %" PRIu64 " reused (committed before a resume)", lmr_json_u64(ph, "reused", 0));
    fprintf(f, "\n");
}

/* A stream run's report: the run, its windows, what it would cost. */
static void print_stream(FILE *f, const json_t *r)
{
    const json_t *t = json_object_get(r, "totals"), *st = json_object_get(t, "store"),
                 *cost = json_object_get(r, "cost");
    fprintf(f, "\nlambdamr stream %s: %s after %.1f s, %.0f s windows from %s to %s\n", lmr_json_str(r, "job", "?"),
            lmr_json_str(r, "status", "?"), lmr_json_double(r, "wall_ms", 0) / 1000.0,
            lmr_json_double(r, "window_ms", 0) / 1000.0, lmr_json_str(r, "source", "?"),
            lmr_json_str(r, "output", "?"));
    fprintf(f,
            "  records  %" JSON_INTEGER_FORMAT " read, %" JSON_INTEGER_FORMAT " processed, %" JSON_INTEGER_FORMAT
            " failed\n  windows  %" JSON_INTEGER_FORMAT
            " closed (%zu in the report in full)\n  invoked  %" JSON_INTEGER_FORMAT " times (%" JSON_INTEGER_FORMAT
            " cold, %" JSON_INTEGER_FORMAT " failed), %.3f GB-s billed\n"
            "  requests GET %" JSON_INTEGER_FORMAT ", PUT %" JSON_INTEGER_FORMAT ", LIST %" JSON_INTEGER_FORMAT
            ", HEAD %" JSON_INTEGER_FORMAT ", DELETE %" JSON_INTEGER_FORMAT "\n",
            (json_int_t)lmr_json_u64(t, "records_read", 0), (json_int_t)lmr_json_u64(t, "records_processed", 0),
            (json_int_t)lmr_json_u64(t, "records_failed", 0), (json_int_t)lmr_json_u64(t, "windows_closed", 0),
            json_array_size(json_object_get(r, "windows")), (json_int_t)lmr_json_u64(t, "invocations", 0),
            (json_int_t)lmr_json_u64(t, "cold_starts", 0), (json_int_t)lmr_json_u64(t, "failed_invocations", 0),
            lmr_json_double(t, "gb_seconds", 0), (json_int_t)lmr_json_u64(st, "get", 0),
            (json_int_t)lmr_json_u64(st, "put", 0), (json_int_t)lmr_json_u64(st, "list", 0),
            (json_int_t)lmr_json_u64(st, "head", 0), (json_int_t)lmr_json_u64(st, "delete", 0));
    if (cost)
        fprintf(f, "  cost     est. $%.7f (Lambda $%.7f, Kinesis $%.7f, S3 requests $%.7f), Init included\n",
                lmr_json_double(cost, "total_usd", 0), lmr_json_double(cost, "lambda_usd", 0),
                lmr_json_double(cost, "kinesis_usd", 0), lmr_json_double(cost, "s3_usd", 0));
    if (json_object_get(r, "error"))
        fprintf(f, "  error    %s\n", lmr_json_str(r, "error", ""));
}

void lmr_report_print(FILE *f, const json_t *report)
{
    if (!strcmp(lmr_json_str(report, "kind", ""), "stream")) {
        print_stream(f, report);
        return;
    }
    char a[32], b[32], c[32], d[32];
    const json_t *phases = json_object_get(report, "phases");
    const json_t *map = json_object_get(phases, "map"), *red = json_object_get(phases, "reduce");
    const json_t *input = json_object_get(report, "input"), *cost = json_object_get(report, "cost");
    const json_t *req = json_object_get(report, "store_requests");
    double wall_s = lmr_json_double(report, "wall_ms", 0) / 1000.0;

    fprintf(f, "\nlambdamr %s (job %s): %s in %.2f s, %.1f MiB/s\n", lmr_json_str(report, "job", "?"),
            lmr_json_str(report, "job_id", "?"), lmr_json_str(report, "status", "?"), wall_s,
            lmr_json_double(report, "throughput_mib_s", 0));
    fprintf(f,
            "  input    %" PRIu64 " object%s, %s -> %" PRIu64 " map tasks, %" PRIu64 " reducers, %" PRIu64
            " MB per function\n",
            lmr_json_u64(input, "objects", 0), lmr_json_u64(input, "objects", 0) == 1 ? "" : "s",
            bytes(lmr_json_u64(input, "bytes", 0), a, sizeof a), lmr_json_u64(report, "mappers", 0),
            lmr_json_u64(report, "reducers", 0), lmr_json_u64(report, "memory_mb", 0));
    phase_line(f, "plan", json_object_get(phases, "plan"));
    phase_line(f, "map", map);
    fprintf(f, "           records %s in -> %s out; intermediate %s -> %s stored; %" PRIu64 " spill%s\n",
            count(lmr_json_u64(map, "records_in", 0), a, sizeof a),
            count(lmr_json_u64(map, "records_out", 0), b, sizeof b),
            bytes(lmr_json_u64(map, "intermediate_raw_bytes", 0), c, sizeof c),
            bytes(lmr_json_u64(map, "intermediate_bytes", 0), d, sizeof d), lmr_json_u64(map, "spills", 0),
            lmr_json_u64(map, "spills", 0) == 1 ? "" : "s");
    if (lmr_json_u64(map, "malformed_records", 0))
        fprintf(f, "           %" PRIu64 " malformed records skipped\n", lmr_json_u64(map, "malformed_records", 0));
    const json_t *merge = json_object_get(phases, "merge");
    if (merge) {
        const json_t *mr = json_object_get(merge, "store_requests");
        phase_line(f, "merge", merge);
        fprintf(f,
                "           %" PRIu64 " map outputs into %" PRIu64 " objects (fan-in %" PRIu64 "): records %s in -> %s "
                "out, %s read, %s written; GET %" PRIu64 ", PUT %" PRIu64 "\n",
                lmr_json_u64(merge, "sources", 0), lmr_json_u64(merge, "tasks", 0),
                lmr_json_u64(json_object_get(report, "exchange"), "fan_in", 0),
                count(lmr_json_u64(merge, "records_in", 0), a, sizeof a),
                count(lmr_json_u64(merge, "records_out", 0), b, sizeof b),
                bytes(lmr_json_u64(merge, "bytes_in", 0), c, sizeof c),
                bytes(lmr_json_u64(merge, "bytes_out", 0), d, sizeof d), lmr_json_u64(mr, "get", 0),
                lmr_json_u64(mr, "put", 0));
    }
    if (red) {
        phase_line(f, "reduce", red);
        fprintf(f, "           records %s in -> %s key groups -> %s out (%s)\n",
                count(lmr_json_u64(red, "records_in", 0), a, sizeof a),
                count(lmr_json_u64(red, "groups", 0), b, sizeof b),
                count(lmr_json_u64(red, "records_out", 0), c, sizeof c),
                bytes(lmr_json_u64(red, "bytes_out", 0), d, sizeof d));
    }
    phase_line(f, "commit", json_object_get(phases, "commit"));
    const json_t *counters = json_object_get(report, "counters");
    if (json_object_size(counters)) { /* the job's named counters (lmr_job_count) */
        const char *k;
        json_t *v;
        size_t i = 0;
        fprintf(f, "  counters");
        json_object_foreach((json_t *)counters, k, v)
            fprintf(f, "%s %s %" PRIu64, i++ ? "," : "", k, (uint64_t)json_integer_value(v));
        fprintf(f, "\n");
    }
    fprintf(f, "  requests GET %" PRIu64 ", PUT %" PRIu64 ", LIST %" PRIu64 ", HEAD %" PRIu64 ", DELETE %" PRIu64 "\n",
            lmr_json_u64(req, "get", 0), lmr_json_u64(req, "put", 0), lmr_json_u64(req, "list", 0),
            lmr_json_u64(req, "head", 0), lmr_json_u64(req, "delete", 0));
    fprintf(f,
            "  billing  %" PRIu64 " invocations, %.3f GB-s billed -> est. $%.7f (Lambda $%.7f + S3 requests $%.7f)\n",
            lmr_json_u64(cost, "invocations", 0), lmr_json_double(cost, "gb_seconds", 0),
            lmr_json_double(cost, "total_usd", 0), lmr_json_double(cost, "lambda_usd", 0),
            lmr_json_double(cost, "s3_usd", 0));
    const json_t *coord = json_object_get(cost, "coordinator");
    if (lmr_json_u64(coord, "invocations", 0))
        fprintf(f, "           of which the coordinator: %" PRIu64 " invocation%s, %.3f GB-s, $%.7f\n",
                lmr_json_u64(coord, "invocations", 0), lmr_json_u64(coord, "invocations", 0) == 1 ? "" : "s",
                lmr_json_double(coord, "gb_seconds", 0), lmr_json_double(coord, "lambda_usd", 0));
    const json_t *prices = json_object_get(cost, "prices");
    if (prices)
        fprintf(f, "           Init included; %s %s prices of %s (%s)\n", lmr_json_str(prices, "region", "?"),
                lmr_json_str(prices, "architecture", "?"), lmr_json_str(prices, "date", "?"),
                lmr_json_str(prices, "source", "?"));
    fprintf(f, "  output   %s (part files, _SUCCESS; report in _lambdamr/report.json)\n",
            lmr_json_str(report, "output", "?"));
}

void lmr_json_print(FILE *f, const json_t *j)
{
    char *text = json_dumps(j, JSON_INDENT(2));
    if (text)
        fprintf(f, "%s\n", text);
    free(text);
}

void lmr_report_print_as(FILE *f, const json_t *report, bool json)
{
    if (json)
        lmr_json_print(f, report);
    else
        lmr_report_print(f, report);
}
