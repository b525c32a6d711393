#include "cost.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "job/task.h"

extern const unsigned char lmr_price_table_json[]; /* common/report/prices.json, compiled in (common/CMakeLists.txt) */

const char *lmr_build_architecture(void)
{
#if defined(__aarch64__)
    return "arm64";
#else
    return "x86_64";
#endif
}

static double num(const json_t *o, const char *a, const char *b)
{
    const json_t *v = json_object_get(o, a);
    if (b)
        v = json_object_get(v, b);
    return json_is_number(v) ? json_number_value(v) : -1;
}

/* Fill p from one region's entry; -1 marks a missing figure. */
static enum lmr_result region_prices(const json_t *entry, const char *arch, struct lmr_prices *p, struct lmr_err *err)
{
    const json_t *lambda = json_object_get(entry, "lambda"), *s3 = json_object_get(entry, "s3"),
                 *kin = json_object_get(entry, "kinesis");
    p->lambda_gb_second = num(lambda, "gb_second", arch);
    p->lambda_per_million_requests = num(lambda, "per_million_requests", NULL);
    p->lambda_ephemeral_gb_second = num(lambda, "ephemeral_gb_second", NULL);
    p->s3_per_1000_put = num(s3, "per_1000_put_copy_post_list", NULL);
    p->s3_per_1000_get = num(s3, "per_1000_get_and_other", NULL);
    p->kinesis_shard_hour = num(kin, "shard_hour", NULL);
    p->kinesis_per_million_put_units = num(kin, "per_million_put_payload_units", NULL);
    const char *missing = p->lambda_gb_second < 0                ? "lambda.gb_second for the architecture"
                          : p->lambda_per_million_requests < 0   ? "lambda.per_million_requests"
                          : p->s3_per_1000_put < 0               ? "s3.per_1000_put_copy_post_list"
                          : p->s3_per_1000_get < 0               ? "s3.per_1000_get_and_other"
                          : p->kinesis_shard_hour < 0            ? "kinesis.shard_hour"
                          : p->kinesis_per_million_put_units < 0 ? "kinesis.per_million_put_payload_units"
                                                                 : NULL;
    if (missing)
        return lmr_fail(err, LMR_ERR_FORMAT, "the price table has no number for %s in region %s (%s)", missing,
                        p->region, arch);
    if (p->lambda_ephemeral_gb_second < 0)
        p->lambda_ephemeral_gb_second = 0;
    return LMR_OK;
}

enum lmr_result lmr_prices_load(const char *price_file, const char *region, const char *architecture,
                                struct lmr_prices *out, struct lmr_err *err)
{
    memset(out, 0, sizeof *out);
    const char *arch = architecture && *architecture ? architecture : lmr_build_architecture();
    if (strcmp(arch, "x86_64") && strcmp(arch, "arm64"))
        return lmr_fail(err, LMR_ERR_INVALID, "architecture '%s' is not one of: x86_64, arm64", arch);
    json_error_t jerr;
    json_t *table =
        price_file ? json_load_file(price_file, 0, &jerr) : json_loads((const char *)lmr_price_table_json, 0, &jerr);
    if (!table)
        return lmr_fail(err, LMR_ERR_FORMAT, "price file '%s' is not valid JSON (line %d: %s); see %s for the shape",
                        price_file ? price_file : "(built-in)", jerr.line, jerr.text, "docs/FORMATS.md");
    enum lmr_result r = LMR_OK;
    const char *want = region && *region ? region : lmr_json_str(table, "default_region", "us-east-1");
    const json_t *regions = json_object_get(table, "regions");
    const json_t *entry = json_object_get(regions, want);
    snprintf(out->asked_region, sizeof out->asked_region, "%s", region ? region : "");
    snprintf(out->region, sizeof out->region, "%s", want);
    snprintf(out->architecture, sizeof out->architecture, "%s", arch);
    snprintf(out->date, sizeof out->date, "%s", lmr_json_str(table, "date", "unknown"));
    snprintf(out->source, sizeof out->source, "%s", price_file ? price_file : "built-in table");
    if (!entry) {
        char names[512] = "";
        const char *name;
        json_t *v;
        size_t n = 0;
        json_object_foreach((json_t *)regions, name, v)
        {
            n += (size_t)snprintf(names + n, n < sizeof names ? sizeof names - n : 0, "%s%s", n ? ", " : "", name);
            if (n >= sizeof names)
                break;
        }
        r = lmr_fail(err, LMR_ERR_NOT_FOUND,
                     "the price table (%s) has no prices for region '%s' (it has: %s); give --price-file FILE "
                     "with that region's prices",
                     out->source, want, names);
    } else {
        r = region_prices(entry, arch, out, err);
    }
    json_decref(table);
    return r;
}

double lmr_billed_ms(double duration_ms, double init_duration_ms, double reported_billed_ms)
{
    double d = duration_ms > 0 ? duration_ms : 0, i = init_duration_ms > 0 ? init_duration_ms : 0;
    double billed = ceil(d + i - 1e-9); /* whole ms; an exact integer stays itself */
    return billed > reported_billed_ms ? billed : reported_billed_ms;
}

json_t *lmr_prices_json(const struct lmr_prices *p)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:f, s:f, s:f, s:f, s:f, s:f, s:f}", "region", p->region, "architecture",
                     p->architecture, "date", p->date, "source", p->source, "lambda_gb_second", p->lambda_gb_second,
                     "lambda_per_million_requests", p->lambda_per_million_requests, "lambda_ephemeral_gb_second",
                     p->lambda_ephemeral_gb_second, "s3_per_1000_put_copy_post_list", p->s3_per_1000_put,
                     "s3_per_1000_get_and_other", p->s3_per_1000_get, "kinesis_shard_hour", p->kinesis_shard_hour,
                     "kinesis_per_million_put_payload_units", p->kinesis_per_million_put_units);
}

static json_t *s3_kind(uint64_t n, double per_1000)
{
    return json_pack("{s:I, s:f}", "requests", (json_int_t)n, "usd", (double)n * per_1000 / 1000.0);
}

void lmr_billing_add(struct lmr_billing_totals *t, double duration_ms, double init_ms, double reported_billed_ms,
                     uint32_t memory_mb, uint32_t ephemeral_mb)
{
    double init = init_ms > 0 ? init_ms : 0;
    double b = lmr_billed_ms(duration_ms, init, reported_billed_ms), gb = (double)memory_mb / 1024.0;
    t->invocations++;
    t->billed_ms += b;
    t->init_ms += init;
    t->gb_seconds += b / 1000.0 * gb;
    t->init_gb_seconds += init / 1000.0 * gb;
    if (ephemeral_mb > 512)
        t->ephemeral_gb_seconds += b / 1000.0 * (double)(ephemeral_mb - 512) / 1024.0;
}

/* The Lambda and S3 parts, shared by batch and stream costs. */
static json_t *cost_from_totals(const struct lmr_prices *p, const struct lmr_billing_totals *t,
                                const struct lmr_request_counts *q, double *total)
{
    double compute = t->gb_seconds * p->lambda_gb_second;
    double requests = (double)t->invocations * p->lambda_per_million_requests / 1e6;
    double ephemeral = t->ephemeral_gb_seconds * p->lambda_ephemeral_gb_second;
    double s3 = (double)(q->put + q->list) * p->s3_per_1000_put / 1000.0 +
                (double)(q->get + q->head) * p->s3_per_1000_get / 1000.0;
    *total = compute + requests + ephemeral + s3;
    json_t *o = json_object();
    json_object_set_new(o, "invocations", json_integer((json_int_t)t->invocations));
    json_object_set_new(o, "billed_duration_ms", json_real(t->billed_ms));
    json_object_set_new(o, "init_duration_ms", json_real(t->init_ms));
    json_object_set_new(o, "gb_seconds", json_real(t->gb_seconds));
    json_object_set_new(o, "init_gb_seconds", json_real(t->init_gb_seconds));
    json_object_set_new(o, "lambda_compute_usd", json_real(compute));
    json_object_set_new(o, "lambda_init_usd", json_real(t->init_gb_seconds * p->lambda_gb_second));
    json_object_set_new(o, "lambda_requests_usd", json_real(requests));
    json_object_set_new(o, "lambda_ephemeral_usd", json_real(ephemeral));
    json_object_set_new(o, "lambda_usd", json_real(compute + requests + ephemeral));
    json_object_set_new(o, "s3",
                        json_pack("{s:o, s:o, s:o, s:o, s:o}", "get", s3_kind(q->get, p->s3_per_1000_get), "head",
                                  s3_kind(q->head, p->s3_per_1000_get), "put", s3_kind(q->put, p->s3_per_1000_put),
                                  "list", s3_kind(q->list, p->s3_per_1000_put), "delete", s3_kind(q->del, 0)));
    json_object_set_new(o, "s3_usd", json_real(s3));
    json_object_set_new(o, "prices", lmr_prices_json(p));
    return o;
}

static json_t *cost_common(const struct lmr_prices *p, const json_t *invocations, const struct lmr_request_counts *q,
                           double *total)
{
    struct lmr_billing_totals t = {0};
    size_t i;
    json_t *inv;
    json_array_foreach(invocations, i, inv)
        lmr_billing_add(&t, lmr_json_double(inv, "duration_ms", 0), lmr_json_double(inv, "init_duration_ms", 0),
                        lmr_json_double(inv, "billed_duration_ms", 0), (uint32_t)lmr_json_u64(inv, "memory_size_mb", 0),
                        (uint32_t)lmr_json_u64(inv, "ephemeral_storage_mb", 512));
    return cost_from_totals(p, &t, q, total);
}

json_t *lmr_cost_batch(const struct lmr_prices *p, const json_t *invocations, const struct lmr_request_counts *req)
{
    double total;
    json_t *o = cost_common(p, invocations, req, &total);
    if (o) {
        json_object_set_new(o, "total_usd", json_real(total));
        json_object_set_new(o, "note",
                            json_string("Lambda compute includes Init (billed as AWS bills it); S3 requests are "
                                        "counted on every back-end, as if the store were S3 Standard"));
    }
    return o;
}

static json_t *add_kinesis(json_t *o, const struct lmr_prices *p, double total, double shard_hours,
                           uint64_t put_payload_units)
{
    if (!o)
        return NULL;
    double shards = shard_hours * p->kinesis_shard_hour;
    double puts = (double)put_payload_units * p->kinesis_per_million_put_units / 1e6;
    json_object_set_new(o, "kinesis",
                        json_pack("{s:f, s:f, s:I, s:f}", "shard_hours", shard_hours, "shard_usd", shards,
                                  "put_payload_units", (json_int_t)put_payload_units, "put_usd", puts));
    json_object_set_new(o, "kinesis_usd", json_real(shards + puts));
    json_object_set_new(o, "total_usd", json_real(total + shards + puts));
    json_object_set_new(o, "note",
                        json_string("Lambda compute includes Init; Kinesis shard-hours while the stream "
                                    "was read; S3 requests as if the store were S3 Standard"));
    return o;
}

json_t *lmr_cost_stream(const struct lmr_prices *p, const json_t *invocations, const struct lmr_request_counts *req,
                        double shard_hours, uint64_t put_payload_units)
{
    double total;
    json_t *o = cost_common(p, invocations, req, &total);
    return add_kinesis(o, p, total, shard_hours, put_payload_units);
}

json_t *lmr_cost_stream_totals(const struct lmr_prices *p, const struct lmr_billing_totals *t,
                               const struct lmr_request_counts *req, double shard_hours, uint64_t put_payload_units)
{
    double total;
    json_t *o = cost_from_totals(p, t, req, &total);
    return add_kinesis(o, p, total, shard_hours, put_payload_units);
}

enum lmr_result lmr_prices_from_json(const json_t *j, struct lmr_prices *out, struct lmr_err *err)
{
    static const struct {
        const char *name;
        size_t offset;
    } rates[] = {
        {"lambda_gb_second", offsetof(struct lmr_prices, lambda_gb_second)},
        {"lambda_per_million_requests", offsetof(struct lmr_prices, lambda_per_million_requests)},
        {"lambda_ephemeral_gb_second", offsetof(struct lmr_prices, lambda_ephemeral_gb_second)},
        {"s3_per_1000_put_copy_post_list", offsetof(struct lmr_prices, s3_per_1000_put)},
        {"s3_per_1000_get_and_other", offsetof(struct lmr_prices, s3_per_1000_get)},
        {"kinesis_shard_hour", offsetof(struct lmr_prices, kinesis_shard_hour)},
        {"kinesis_per_million_put_payload_units", offsetof(struct lmr_prices, kinesis_per_million_put_units)},
    };
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < sizeof rates / sizeof rates[0]; i++) {
        const json_t *v = json_object_get(j, rates[i].name);
        if (!json_is_number(v))
            return lmr_fail(err, LMR_ERR_FORMAT, "the prices have no number for %s", rates[i].name);
        *(double *)((char *)out + rates[i].offset) = json_number_value(v);
    }
    snprintf(out->region, sizeof out->region, "%s", lmr_json_str(j, "region", ""));
    snprintf(out->architecture, sizeof out->architecture, "%s", lmr_json_str(j, "architecture", ""));
    snprintf(out->date, sizeof out->date, "%s", lmr_json_str(j, "date", ""));
    snprintf(out->source, sizeof out->source, "%s", lmr_json_str(j, "source", ""));
    return LMR_OK;
}
