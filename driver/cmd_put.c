/*
 * lambdamr put: a Kinesis producer. Reads lines from standard input and sends them with
 * PutRecords in batches of up to 500 Kinesis records (and 5 MiB); entries that fail (throttling,
 * internal errors) are resent alone, with exponential backoff and jitter, until they succeed.
 * By default the lines are aggregated as the Kinesis Producer Library does (stream/kpl_aggregator.h:
 * one KPL aggregated record per shard, up to Kinesis's 1 MiB record, every line keeping its own
 * partition key); --no-aggregate sends one plain record per line.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "stream/event.h"
#include "stream/kpl_aggregator.h"
#include "aws/kinesis.h"
#include "util/buf.h"
#include "util/misc.h"

#define MAX_ATTEMPTS 30
#define AGGREGATE_MIN_BYTES 64
#define MAX_BUFFERED_MS_DEFAULT 100 /* the KPL's RecordMaxBufferedTime default */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: lambdamr put --stream NAME [--partition-key-field N] [--delimiter D] [--no-aggregate]\n"
            "                    [--aggregate-max-bytes N] < lines\n\n"
            "Put every line of standard input into Kinesis stream NAME, with PutRecords in batches of up\n"
            "to 500 records and 5 MiB; failed entries are resent with backoff. By default the lines are\n"
            "aggregated as the Kinesis Producer Library does: KPL aggregated records (magic, protobuf, MD5)\n"
            "of up to 1 MiB, one per shard, each line keeping its partition key (the aggregated record's\n"
            "key table), so that every line lands on the shard its key maps to. `lambdamr stream`, the\n"
            "KCL and the kinesis-aggregation libraries deaggregate them; for consumers that do not, use\n"
            "--no-aggregate.\n\n"
            "  --stream NAME             the Kinesis stream (endpoint from AWS_ENDPOINT_URL_KINESIS or\n"
            "                            AWS_ENDPOINT_URL when set)\n"
            "  --partition-key-field N   use field N (1-based) of each line as its partition key\n"
            "                            (default: the line number, which spreads records over shards)\n"
            "  --delimiter D             field delimiter for --partition-key-field (default: whitespace)\n"
            "  --no-aggregate            one plain Kinesis record per line\n"
            "  --aggregate-max-bytes N   the most bytes of one aggregated record, with its partition key\n"
            "                            (%u to 1048576, the default: Kinesis's record limit)\n"
            "  --quiet                   no summary line\n",
            AGGREGATE_MIN_BYTES);
}

/* One Kinesis record of a PutRecords batch. */
struct entry {
    char *data;
    size_t len;
    char key[LMR_KINESIS_PARTITION_KEY_MAX + 1];
    size_t shard;        /* where the aggregator meant it to go */
    size_t user_records; /* lines in it */
};

/* The batch being filled, and what has been put. */
struct producer {
    struct lmr_kinesis *k;
    struct lmr_kpl_aggregator *agg; /* NULL with --no-aggregate */
    struct entry batch[LMR_KINESIS_PUT_RECORDS_MAX];
    size_t n, bytes;
    uint64_t put_lines, put_records, resent;
    uint64_t relists;     /* shard lists taken again after a record landed elsewhere (a reshard) */
    bool shards_moved;    /* a record landed on another shard than the aggregator's: list them again */
    double held_since_ms; /* when the oldest line not yet sent was read */
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

/* Send the batch: resend only the failed entries until all are in. */
static enum lmr_result put_batch(struct producer *p, struct lmr_err *err)
{
    struct lmr_kinesis *k = p->k;
    struct entry *e = p->batch;
    size_t n = p->n;
    uint64_t *resent = &p->resent;
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
            if (!res || json_object_get(res, "ErrorCode")) {
                todo[still++] = todo[i];
                continue;
            }
            const char *shard = json_string_value(json_object_get(res, "ShardId"));
            if (p->agg && shard && strcmp(shard, lmr_kpl_aggregator_shard_id(p->agg, e[todo[i]].shard)))
                p->shards_moved = true;
            p->put_lines += e[todo[i]].user_records;
            p->put_records++;
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

/* Send the batch (unless send is false) and empty it. */
static enum lmr_result send_batch(struct producer *p, bool send, struct lmr_err *err)
{
    enum lmr_result r = send && p->n ? put_batch(p, err) : LMR_OK;
    for (size_t i = 0; i < p->n; i++)
        free(p->batch[i].data);
    p->n = p->bytes = 0;
    return r;
}

/* Add one Kinesis record to the batch (sent first when the record would not fit); takes rec->data. */
static enum lmr_result push(void *ctx, struct lmr_kpl_out_record *rec, struct lmr_err *err)
{
    struct producer *p = ctx;
    size_t bytes = rec->len + strlen(rec->partition_key);
    enum lmr_result r = LMR_OK;
    if (p->n == LMR_KINESIS_PUT_RECORDS_MAX || p->bytes + bytes > LMR_KINESIS_PUT_BYTES_MAX)
        r = send_batch(p, true, err);
    if (r) {
        free(rec->data);
        return r;
    }
    struct entry *e = &p->batch[p->n++];
    e->data = rec->data;
    e->len = rec->len;
    snprintf(e->key, sizeof e->key, "%s", rec->partition_key);
    e->shard = rec->shard;
    e->user_records = rec->user_records;
    p->bytes += bytes;
    return LMR_OK;
}

/* (Re)build the aggregator from the stream's open shards. */
static enum lmr_result aggregator_open(struct producer *p, size_t max_bytes, struct lmr_err *err)
{
    struct lmr_kinesis_shard *shards = NULL;
    size_t n = 0;
    enum lmr_result r = lmr_kinesis_list_shards(p->k, 0, &shards, &n, err);
    if (r)
        return lmr_err_prefix(err, "aggregation needs the stream's shards (kinesis:ListShards), or use --no-aggregate");
    struct lmr_kpl_aggregator_options o = {.record_max_bytes = max_bytes};
    lmr_kpl_aggregator_destroy(p->agg);
    p->agg = NULL;
    r = lmr_kpl_aggregator_new(&o, shards, n, &p->agg, err);
    free(shards);
    if (r)
        lmr_err_prefix(err, "Kinesis stream '%s'", lmr_kinesis_stream_name(p->k));
    p->shards_moved = false;
    return r;
}

/* Are lines held (in the batch or the aggregator) that have not been sent? */
static bool holding(const struct producer *p)
{
    return p->n || lmr_kpl_aggregator_held_bytes(p->agg);
}

/* Send everything held. */
static enum lmr_result flush_all(struct producer *p, struct lmr_err *err)
{
    enum lmr_result r = p->agg ? lmr_kpl_aggregator_flush(p->agg, push, p, err) : LMR_OK;
    enum lmr_result sent = send_batch(p, !r, err); /* after a failure nothing more is sent */
    return r ? r : sent;
}

/* Has standard input's stdio buffer unread bytes? (glibc's FILE; elsewhere the answer is "no",
   which costs at most one early send.) */
static bool stdin_buffered(void)
{
#ifdef __GLIBC__
    return stdin->_IO_read_ptr < stdin->_IO_read_end;
#else
    return false;
#endif
}

/* Before reading on: if lines are held and standard input has nothing for the rest of their
   max_buffered_ms, send them (as the KPL does after RecordMaxBufferedTime). */
static enum lmr_result wait_input(struct producer *p, unsigned max_buffered_ms, struct lmr_err *err)
{
    while (holding(p) && !stdin_buffered()) {
        double left_ms = p->held_since_ms + max_buffered_ms - lmr_mono_ms();
        struct pollfd pfd = {STDIN_FILENO, POLLIN, 0};
        int ready = left_ms > 0 ? poll(&pfd, 1, (int)left_ms + 1) : 0;
        if (ready > 0 || (ready < 0 && errno != EINTR))
            return LMR_OK; /* input (or an error getline will report) */
        if (!ready)
            return flush_all(p, err);
    }
    return LMR_OK;
}

/* One line: into the aggregator, or as a plain record. */
static enum lmr_result put_line(struct producer *p, const char *line, size_t len, const char *key, size_t max_bytes,
                                struct lmr_err *err)
{
    if (!p->agg) {
        struct lmr_kpl_out_record rec = {.len = len, .partition_key = key, .user_records = 1};
        if (!(rec.data = malloc(len + 1)))
            return lmr_fail(err, LMR_ERR_NOMEM, "out of memory");
        memcpy(rec.data, line, len);
        return push(p, &rec, err);
    }
    enum lmr_result r = lmr_kpl_aggregator_add(p->agg, line, len, key, push, p, err);
    if (!r && p->shards_moved) { /* resharded: what is held goes as it is, new lines by the new map */
        r = lmr_kpl_aggregator_flush(p->agg, push, p, err);
        if (!r)
            r = aggregator_open(p, max_bytes, err);
        p->relists++;
    }
    return r;
}

int lmr_cmd_put(int argc, char **argv)
{
    const char *stream = NULL, *delim = NULL;
    unsigned key_field = 0;
    bool quiet = false, aggregate = true;
    size_t max_bytes = LMR_STREAM_RECORD_MAX_BYTES;
    unsigned max_buffered_ms = MAX_BUFFERED_MS_DEFAULT;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--quiet")) {
            quiet = true;
            continue;
        }
        if (!strcmp(argv[i], "--no-aggregate")) {
            aggregate = false;
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
        } else if (!strcmp(argv[i - 1], "--aggregate-max-bytes")) {
            if (lmr_parse_u64(v, AGGREGATE_MIN_BYTES, LMR_STREAM_RECORD_MAX_BYTES, &n)) {
                fprintf(stderr, "lambdamr put: --aggregate-max-bytes must be a byte count from %u to %u, not '%s'\n",
                        AGGREGATE_MIN_BYTES, LMR_STREAM_RECORD_MAX_BYTES, v);
                return 2;
            }
            max_bytes = (size_t)n;
        } else if (!strcmp(argv[i - 1], "--max-buffered-ms")) {
            if (lmr_parse_u64(v, 0, 60000, &n)) {
                fprintf(stderr,
                        "lambdamr put: --max-buffered-ms must be a number of milliseconds from 0 to 60000, not '%s'\n",
                        v);
                return 2;
            }
            max_buffered_ms = (unsigned)n;
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
    struct producer *p = calloc(1, sizeof *p);
    if (!p) {
        fprintf(stderr, "lambdamr put: out of memory\n");
        return 1;
    }
    if (lmr_kinesis_new(stream, &p->k, &err) || (aggregate && aggregator_open(p, max_bytes, &err))) {
        fprintf(stderr, "lambdamr put: %s\n", err.msg);
        lmr_kinesis_destroy(p->k);
        free(p);
        return 1;
    }
    uint64_t lines = 0, skipped = 0;
    char *line = NULL, key[LMR_KINESIS_PARTITION_KEY_MAX + 1];
    size_t cap = 0;
    ssize_t len;
    enum lmr_result r = LMR_OK;
    double t0 = lmr_mono_ms();
    while (!r && !(r = wait_input(p, max_buffered_ms, &err)) && (len = getline(&line, &cap, stdin)) >= 0) {
        if (len && line[len - 1] == '\n')
            len--;
        if (key_field)
            field(line, (size_t)len, key_field, delim, key, sizeof key);
        if (!key_field || !key[0])
            snprintf(key, sizeof key, "%" PRIu64, lines + 1);
        if ((size_t)len > LMR_STREAM_RECORD_MAX_BYTES - strlen(key)) {
            skipped++;
            fprintf(stderr, "lambdamr put: line %" PRIu64 " is larger than a Kinesis record (1 MiB); skipped\n",
                    lines + skipped);
            continue;
        }
        lines++;
        if (!holding(p))
            p->held_since_ms = lmr_mono_ms();
        r = put_line(p, line, (size_t)len, key, max_bytes, &err);
    }
    if (r)
        send_batch(p, false, NULL); /* after a failure nothing more is sent */
    else
        r = flush_all(p, &err);
    if (r)
        fprintf(stderr, "lambdamr put: %s\n", err.msg);
    free(line);
    if (!quiet) {
        char relisted[96] = "";
        if (p->relists)
            snprintf(relisted, sizeof relisted, ", shards listed again %" PRIu64 " time(s) after a reshard",
                     p->relists);
        fprintf(stderr,
                "lambdamr put: %" PRIu64 " records into %s in %.1f s as %" PRIu64 " Kinesis records (%" PRIu64
                " resent, %" PRIu64 " skipped%s)\n",
                p->put_lines, stream, (lmr_mono_ms() - t0) / 1000.0, p->put_records, p->resent, skipped, relisted);
    }
    lmr_kpl_aggregator_destroy(p->agg);
    lmr_kinesis_destroy(p->k);
    free(p);
    return r ? 1 : 0;
}
