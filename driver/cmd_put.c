/*
 * lambdamr put: a Kinesis producer. Reads lines from standard input and sends them with
 * PutRecords in batches of up to 500 records (and 5 MiB); entries that fail (throttling,
 * internal errors) are resent alone, with exponential backoff and jitter, until they succeed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "stream/event.h"
#include "aws/kinesis.h"
#include "util/buf.h"
#include "util/misc.h"

#define MAX_ATTEMPTS 30

static void usage(FILE *f)
{
    fprintf(f, "usage: lambdamr put --stream NAME [--partition-key-field N] [--delimiter D] < lines\n\n"
               "Put every line of standard input into Kinesis stream NAME as one record, with PutRecords in\n"
               "batches of up to 500 records; failed entries are resent with backoff.\n\n"
               "  --stream NAME             the Kinesis stream (endpoint from AWS_ENDPOINT_URL_KINESIS or\n"
               "                            AWS_ENDPOINT_URL when set)\n"
               "  --partition-key-field N   use field N (1-based) of each line as its partition key\n"
               "                            (default: the line number, which spreads records over shards)\n"
               "  --delimiter D             field delimiter for --partition-key-field (default: whitespace)\n"
               "  --quiet                   no summary line\n");
}

struct entry {
    char *data;
    size_t len;
    char key[LMR_KINESIS_PARTITION_KEY_MAX + 1];
};

/* Field n (1-based) of line, split at delim (NULL = runs of blanks). */
static void field(const char *line, size_t len, unsigned n, const char *delim, char *out, size_t cap)
{
    const char *p = line, *end = line + len;
    for (unsigned i = 1;; i++) {
        if (!delim)
            while (p < end && (*p == ' ' || *p == '\t'))
                p++;
        const char *start = p;
        if (delim) {
            const char *d = memmem(p, (size_t)(end - p), delim, strlen(delim));
            p = d ? d : end;
        } else {
            while (p < end && *p != ' ' && *p != '\t')
                p++;
        }
        if (i == n) {
            size_t fl = (size_t)(p - start);
            if (fl >= cap)
                fl = cap - 1;
            memcpy(out, start, fl);
            out[fl] = '\0';
            return;
        }
        if (p >= end) {
            out[0] = '\0';
            return;
        }
        p += delim ? strlen(delim) : 0;
    }
}

/* Send entries[0..n): resend only the failed ones until all are in. */
static enum lmr_result put_batch(struct lmr_kinesis *k, struct entry *e, size_t n, uint64_t *resent,
                                 struct lmr_err *err)
{
    size_t *todo = malloc(n * sizeof *todo), left = n;
    if (!todo)
        return lmr_fail(err, LMR_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        todo[i] = i;
    enum lmr_result r = LMR_OK;
    struct lmr_buf b64;
    lmr_buf_init(&b64, 2 * LMR_STREAM_RECORD_MAX_BYTES);
    for (unsigned attempt = 0; left; attempt++) {
        if (attempt >= MAX_ATTEMPTS) {
            r = lmr_fail(err, LMR_ERR_THROTTLED,
                         "%zu records could not be put into %s after %u attempts; the stream may need more shards",
                         left, lmr_kinesis_stream_name(k), MAX_ATTEMPTS);
            break;
        }
        if (attempt)
            lmr_sleep_ms(lmr_backoff_ms(attempt, 50, 5000));
        json_t *recs = json_array();
        for (size_t i = 0; i < left; i++) {
            struct entry *x = &e[todo[i]];
            lmr_buf_reset(&b64);
            lmr_base64_append(&b64, x->data, x->len);
            json_array_append_new(recs,
                                  json_pack("{s:s,s:s}", "Data", b64.data ? b64.data : "", "PartitionKey", x->key));
        }
        json_t *resp;
        char code[128];
        r = lmr_kinesis_call(k, "PutRecords",
                             json_pack("{s:s,s:o}", "StreamName", lmr_kinesis_stream_name(k), "Records", recs), &resp,
                             code, err);
        if (r == LMR_ERR_THROTTLED) {
            lmr_err_clear(err);
            r = LMR_OK;
            *resent += left;
            continue;
        }
        if (r)
            break;
        json_t *results = json_object_get(resp, "Records");
        size_t still = 0;
        for (size_t i = 0; i < left; i++) {
            json_t *res = json_array_get(results, i);
            if (!res || json_object_get(res, "ErrorCode"))
                todo[still++] = todo[i];
        }
        if (still)
            *resent += still;
        left = still;
        json_decref(resp);
    }
    lmr_buf_clean_up(&b64);
    free(todo);
    return r;
}

int lmr_cmd_put(int argc, char **argv)
{
    const char *stream = NULL, *delim = NULL;
    unsigned key_field = 0;
    bool quiet = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--quiet")) {
            quiet = true;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "lambdamr put: %s needs a value; run 'lambdamr put --help'\n", argv[i]);
            return 2;
        }
        const char *v = argv[++i];
        uint64_t n;
        if (!strcmp(argv[i - 1], "--stream")) {
            stream = v;
        } else if (!strcmp(argv[i - 1], "--partition-key-field")) {
            if (lmr_parse_u64(v, 1, 1000, &n)) {
                fprintf(stderr, "lambdamr put: --partition-key-field must be a field number from 1, not '%s'\n", v);
                return 2;
            }
            key_field = (unsigned)n;
        } else if (!strcmp(argv[i - 1], "--delimiter")) {
            if (!*v) {
                fprintf(stderr, "lambdamr put: --delimiter must not be empty\n");
                return 2;
            }
            delim = v;
        } else {
            fprintf(stderr, "lambdamr put: unknown option '%s'; run 'lambdamr put --help'\n", argv[i - 1]);
            return 2;
        }
    }
    if (!stream) {
        fprintf(stderr, "lambdamr put: --stream NAME is required\n");
        return 2;
    }
    struct lmr_err err = {0};
    struct lmr_kinesis *k;
    if (lmr_kinesis_new(stream, &k, &err)) {
        fprintf(stderr, "lambdamr put: %s\n", err.msg);
        return 1;
    }
    struct entry batch[LMR_KINESIS_PUT_RECORDS_MAX];
    size_t n = 0, bytes = 0;
    uint64_t lines = 0, resent = 0, skipped = 0;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int rc = 0;
    double t0 = lmr_mono_ms();
    for (;;) {
        len = getline(&line, &cap, stdin);
        bool flush = len < 0 || n == LMR_KINESIS_PUT_RECORDS_MAX;
        if (len >= 0) {
            if (len && line[len - 1] == '\n')
                len--;
            size_t klen_est = key_field ? LMR_KINESIS_PARTITION_KEY_MAX : 20;
            if ((size_t)len > LMR_STREAM_RECORD_MAX_BYTES - klen_est) {
                skipped++;
                fprintf(stderr, "lambdamr put: line %" PRIu64 " is larger than a Kinesis record (1 MiB); skipped\n",
                        lines + 1);
                continue;
            }
            if (bytes + (size_t)len + klen_est > LMR_KINESIS_PUT_BYTES_MAX)
                flush = true;
        }
        if (flush && n) {
            if (put_batch(k, batch, n, &resent, &err)) {
                fprintf(stderr, "lambdamr put: %s\n", err.msg);
                rc = 1;
            }
            for (size_t i = 0; i < n; i++)
                free(batch[i].data);
            n = 0;
            bytes = 0;
            if (rc)
                break;
        }
        if (len < 0)
            break;
        struct entry *e = &batch[n++];
        e->data = malloc((size_t)len + 1);
        if (!e->data) {
            fprintf(stderr, "lambdamr put: out of memory\n");
            rc = 1;
            n--;
            break;
        }
        memcpy(e->data, line, (size_t)len);
        e->len = (size_t)len;
        lines++;
        if (key_field)
            field(line, (size_t)len, key_field, delim, e->key, sizeof e->key);
        if (!key_field || !e->key[0])
            snprintf(e->key, sizeof e->key, "%" PRIu64, lines);
        bytes += e->len + strlen(e->key);
    }
    for (size_t i = 0; i < n; i++)
        free(batch[i].data);
    free(line);
    if (!quiet)
        fprintf(stderr,
                "lambdamr put: %" PRIu64 " records into %s in %.1f s (%" PRIu64 " resent, %" PRIu64 " skipped)\n",
                lines - (rc ? n : 0), stream, (lmr_mono_ms() - t0) / 1000.0, resent, skipped);
    lmr_kinesis_destroy(k);
    return rc;
}
