/*
 * HTTP status codes by hour from web server logs (Common or Combined Log Format):
 *   127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /a.gif HTTP/1.0" 200 2326 ...
 * gives the key "2000-10-10T13<TAB>200" and counts it. Hours are the log's local time as written.
 *
 * Shows: a fixed-size combiner (a 64-bit count), rejecting rows (malformed_records, and the named
 * counter "malformed_lines"; with --arg strict=1 a malformed line fails the task instead).
 *
 *   lambdamr run ./http_status.so --input access.log --output out/status
 *   -> lines "2000-10-10T13<TAB>200<TAB>1234"
 */
#include <lambdamr/job.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct state {
    int strict;
};

static int hs_setup(void **state, const struct lmr_job_args *args, char *errbuf, size_t errbuf_len)
{
    (void)errbuf, (void)errbuf_len;
    struct state *s = malloc(sizeof *s);
    if (!s)
        return -1;
    const char *st = lmr_job_arg(args, "strict");
    s->strict = st && strcmp(st, "0");
    *state = s;
    return 0;
}

static void hs_teardown(void *state)
{
    free(state);
}

static int month_number(const uint8_t *m)
{
    static const char names[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    for (int i = 0; i < 12; i++)
        if (!memcmp(m, names + 3 * i, 3))
            return i + 1;
    return 0;
}

static int digits(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] < '0' || p[i] > '9')
            return 0;
    return 1;
}

/* Parse one line into "YYYY-MM-DDTHH\tSSS" (17 bytes). @return 0 on success. */
static int parse(struct lmr_slice rec, char key[17])
{
    const uint8_t *lb = memchr(rec.ptr, '[', rec.len);
    /* [dd/Mon/yyyy:HH: */
    if (!lb || (size_t)(rec.ptr + rec.len - lb) < 16)
        return -1;
    const uint8_t *t = lb + 1;
    if (!digits(t, 2) || t[2] != '/' || t[6] != '/' || !digits(t + 7, 4) || t[11] != ':' || !digits(t + 12, 2))
        return -1;
    int mon = month_number(t + 3);
    if (!mon)
        return -1;
    /* the status follows the request's closing quote: "..." SSS */
    const uint8_t *q;
    const uint8_t *rq = memchr(t, '"', (size_t)(rec.ptr + rec.len - t));
    if (!rq)
        return -1;
    q = memchr(rq + 1, '"', (size_t)(rec.ptr + rec.len - rq - 1));
    if (!q || (size_t)(rec.ptr + rec.len - q) < 5 || q[1] != ' ' || !digits(q + 2, 3) ||
        (q + 5 < rec.ptr + rec.len && q[5] != ' '))
        return -1;
    snprintf(key, 17, "%.4s-%02d-%.2sT%.2s", (const char *)t + 7, mon, (const char *)t, (const char *)t + 12);
    key[13] = '\t';
    memcpy(key + 14, q + 2, 3);
    return 0;
}

static int hs_map(void *state, struct lmr_slice rec, struct lmr_emitter *out, struct lmr_job_counters *counters)
{
    const struct state *s = state;
    char key[17];
    if (parse(rec, key)) {
        if (s->strict) {
            lmr_job_error(counters, "not a Common Log Format line: '%.*s'", (int)(rec.len < 80 ? rec.len : 80),
                          (const char *)rec.ptr);
            return -1;
        }
        counters->malformed_records++;
        lmr_job_count(counters, "malformed_lines", 1);
        return 0;
    }
    uint64_t one = 1;
    lmr_emit(out, lmr_slice_make(key, 17), lmr_slice_make(&one, sizeof one));
    return 0;
}

static void hs_combine(void *state, uint8_t *acc, struct lmr_slice value)
{
    (void)state;
    uint64_t a, b;
    memcpy(&a, acc, 8);
    memcpy(&b, value.ptr, 8);
    a += b;
    memcpy(acc, &a, 8);
}

static void hs_reduce(void *state, struct lmr_slice key, struct lmr_values *values, struct lmr_emitter *out)
{
    (void)state;
    struct lmr_slice v;
    uint64_t n = 0;
    if (lmr_values_next(values, &v))
        memcpy(&n, v.ptr, 8);
    char num[24];
    int len = snprintf(num, sizeof num, "%llu", (unsigned long long)n);
    lmr_emit(out, key, lmr_slice_make(num, (size_t)len));
}

static const struct lmr_job_ops ops = {
    .abi_version = LMR_JOB_ABI_VERSION,
    .name = "http_status",
    .summary = "count HTTP status codes by hour in Common Log Format lines",
    .setup = hs_setup,
    .teardown = hs_teardown,
    .map = hs_map,
    .value_size = 8,
    .combine = hs_combine,
    .reduce = hs_reduce,
};

const struct lmr_job_ops *lmr_job_plugin(void)
{
    return &ops;
}
