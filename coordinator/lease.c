#include "lease.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "job/task.h"
#include "util/misc.h"

#define ACQUIRE_ROUNDS 5

struct lmr_lease {
    struct lmr_lease_options o;
    char *key, *output_uri, *job_id, *fingerprint, *work_root, *work_key;
    char holder[17];
    char host[256];
    char etag[LMR_STORE_ETAG_BYTES];
    uint64_t started_ms;
};

static json_t *record(const struct lmr_lease *l, const char *state, const char *status, uint64_t expires_ms)
{
    return json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:I, s:s, s:s, s:I, s:I, s:{s:s, s:s}}", "version",
                     LMR_LEASE_VERSION, "job_id", l->job_id, "fingerprint", l->fingerprint, "state", state, "status",
                     status, "holder", l->holder, "pid", (json_int_t)getpid(), "host", l->host, "output", l->output_uri,
                     "started_ms", (json_int_t)l->started_ms, "expires_ms", (json_int_t)expires_ms, "work", "root",
                     l->work_root, "key", l->work_key);
}

/* Write rec over the version we read (etag) or, with etag NULL, create it; then learn the new ETag. */
static enum lmr_result write_record(struct lmr_lease *l, json_t *rec, const char *etag, struct lmr_err *err)
{
    char *text = rec ? json_dumps(rec, JSON_COMPACT) : NULL;
    json_decref(rec);
    if (!text)
        return LMR_ERR_NOMEM;
    enum lmr_result r = etag ? lmr_store_put_if_match(l->o.store, l->key, text, strlen(text), etag, err)
                             : lmr_store_put(l->o.store, l->key, text, strlen(text), LMR_PUT_CREATE_ONLY, err);
    free(text);
    if (r)
        return r;
    /* The put does not return the new ETag: read it back (and check the record is ours). */
    struct lmr_buf b;
    lmr_buf_init(&b, LMR_LEASE_MAX_BYTES);
    r = lmr_store_get_versioned(l->o.store, l->key, &b, l->etag, err);
    json_t *now = r ? NULL : json_loadb(b.data ? b.data : "", b.len, 0, NULL);
    if (!r && strcmp(lmr_json_str(now, "holder", ""), l->holder))
        r = lmr_fail(err, LMR_ERR_EXISTS,
                     "the lease of output '%s' was taken over by job %s right after it was written", l->output_uri,
                     lmr_json_str(now, "job_id", "?"));
    json_decref(now);
    lmr_buf_clean_up(&b);
    return r;
}

bool lmr_lease_record_held(const json_t *rec, uint64_t now_ms)
{
    return !strcmp(lmr_json_str(rec, "state", ""), "held") && lmr_json_u64(rec, "expires_ms", 0) > now_ms;
}

/* A handover: the record's holder is the one that passed this job on to us. */
static bool handed_over(const struct lmr_lease *l, const json_t *rec)
{
    return l->o.takeover_holder && !strcmp(lmr_json_str(rec, "holder", ""), l->o.takeover_holder) &&
           !strcmp(lmr_json_str(rec, "job_id", ""), l->job_id);
}

/* A holder on this host whose process is gone cannot renew: its lease is as good as expired. */
static bool holder_gone(const struct lmr_lease *l, const json_t *rec)
{
    uint64_t pid = lmr_json_u64(rec, "pid", 0);
    if (getenv("LMR_LEASE_IGNORE_PID")) /* tests: only expiry frees a lease, as across hosts */
        return false;
    return pid > 0 && !strcmp(lmr_json_str(rec, "host", ""), l->host) && kill((pid_t)pid, 0) && errno == ESRCH;
}

static void format_time(uint64_t epoch_ms, char *out, size_t cap)
{
    time_t t = (time_t)(epoch_ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, cap, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

static void lease_free(struct lmr_lease *l)
{
    free(l->key);
    free(l->output_uri);
    free(l->job_id);
    free(l->fingerprint);
    free(l->work_root);
    free(l->work_key);
    free(l);
}

enum lmr_result lmr_lease_acquire(const struct lmr_lease_options *opts, struct lmr_lease **out, json_t **previous,
                                  struct lmr_err *err)
{
    *out = NULL;
    *previous = NULL;
    struct lmr_lease *l = calloc(1, sizeof *l);
    if (!l)
        return LMR_ERR_NOMEM;
    l->o = *opts;
    if (!l->o.duration_ms)
        l->o.duration_ms = LMR_LEASE_DEFAULT_DURATION_MS;
    l->key = strdup(opts->key);
    l->output_uri = strdup(opts->output_uri);
    l->job_id = strdup(opts->job_id);
    l->fingerprint = strdup(opts->fingerprint);
    l->work_root = strdup(opts->work_root);
    l->work_key = strdup(opts->work_key);
    lmr_random_hex(l->holder, 8);
    if (gethostname(l->host, sizeof l->host))
        snprintf(l->host, sizeof l->host, "unknown");
    l->started_ms = lmr_wall_ms();
    if (!l->key || !l->output_uri || !l->job_id || !l->fingerprint || !l->work_root || !l->work_key) {
        lease_free(l);
        return LMR_ERR_NOMEM;
    }
    enum lmr_result r = LMR_ERR_EXISTS;
    for (int round = 0; round < ACQUIRE_ROUNDS && r == LMR_ERR_EXISTS; round++) {
        struct lmr_buf b;
        char etag[LMR_STORE_ETAG_BYTES];
        lmr_buf_init(&b, LMR_LEASE_MAX_BYTES);
        lmr_err_clear(err);
        json_decref(*previous);
        *previous = NULL;
        r = lmr_store_get_versioned(l->o.store, l->key, &b, etag, err);
        if (r == LMR_ERR_NOT_FOUND) {
            lmr_err_clear(err);
            r = write_record(l, record(l, "held", "running", lmr_wall_ms() + l->o.duration_ms), NULL, err);
        } else if (!r) {
            json_error_t je;
            *previous = json_loadb(b.data ? b.data : "", b.len, 0, &je);
            if (!json_is_object(*previous)) {
                r = lmr_fail(err, LMR_ERR_FORMAT,
                             "the lease of output '%s' (%s) is not valid JSON (%s); remove it if no job runs there",
                             l->output_uri, l->key, je.text);
            } else if (lmr_lease_record_held(*previous, lmr_wall_ms()) && !handed_over(l, *previous) &&
                       !(holder_gone(l, *previous) &&
                         !strcmp(lmr_json_str(*previous, "fingerprint", ""), l->fingerprint))) {
                char until[64];
                format_time(lmr_json_u64(*previous, "expires_ms", 0), until, sizeof until);
                r = lmr_fail(err, LMR_ERR_EXISTS,
                             "output '%s' is held by job %s (run on host %s by process %llu, lease until %s); "
                             "wait for it to finish or stop that process (a stopped job's lease expires by itself), "
                             "or choose another --output",
                             l->output_uri, lmr_json_str(*previous, "job_id", "?"),
                             lmr_json_str(*previous, "host", "?"),
                             (unsigned long long)lmr_json_u64(*previous, "pid", 0), until);
                lmr_buf_clean_up(&b);
                break;
            } else {
                r = write_record(l, record(l, "held", "running", lmr_wall_ms() + l->o.duration_ms), etag, err);
            }
        }
        lmr_buf_clean_up(&b);
        if (r == LMR_ERR_EXISTS) /* another job came first: look again */
            lmr_sleep_ms(lmr_backoff_ms((unsigned)round, 20, 500));
    }
    if (r) {
        if (!err || !err->msg[0])
            lmr_fail(err, r, "could not take the lease of output '%s'", l->output_uri);
        lease_free(l);
        json_decref(*previous);
        *previous = NULL;
        return r;
    }
    *out = l;
    return LMR_OK;
}

enum lmr_result lmr_lease_peek(struct lmr_store *store, const char *key, json_t **record, struct lmr_err *err)
{
    struct lmr_buf b;
    char etag[LMR_STORE_ETAG_BYTES];
    lmr_buf_init(&b, LMR_LEASE_MAX_BYTES);
    *record = NULL;
    enum lmr_result r = lmr_store_get_versioned(store, key, &b, etag, err);
    if (r == LMR_ERR_NOT_FOUND) {
        lmr_err_clear(err);
        r = LMR_OK;
    } else if (!r && (*record = json_loadb(b.data ? b.data : "", b.len, 0, NULL), !json_is_object(*record))) {
        /* (json_is_object evaluates its argument twice: load first) */
        json_decref(*record);
        *record = NULL;
        r = lmr_fail(err, LMR_ERR_FORMAT, "the output lease %s in %s is not valid JSON; remove it if no job runs there",
                     key, store->root_uri);
    }
    lmr_buf_clean_up(&b);
    return r;
}

enum lmr_result lmr_lease_renew(struct lmr_lease *l, struct lmr_err *err)
{
    char etag[LMR_STORE_ETAG_BYTES];
    snprintf(etag, sizeof etag, "%s", l->etag);
    enum lmr_result r = write_record(l, record(l, "held", "running", lmr_wall_ms() + l->o.duration_ms), etag, err);
    if (r == LMR_ERR_EXISTS)
        lmr_err_prefix(err, "job %s lost the lease of output '%s' (another job took it over)", l->job_id,
                       l->output_uri);
    return r;
}

enum lmr_result lmr_lease_release(struct lmr_lease *l, const char *status, struct lmr_err *err)
{
    char etag[LMR_STORE_ETAG_BYTES];
    snprintf(etag, sizeof etag, "%s", l->etag);
    return write_record(l, record(l, "released", status, 0), etag, err);
}

enum lmr_result lmr_lease_restore(struct lmr_lease *l, const json_t *previous, struct lmr_err *err)
{
    if (!previous)
        return lmr_lease_release(l, "refused", err);
    char *text = json_dumps(previous, JSON_COMPACT);
    enum lmr_result r =
        text ? lmr_store_put_if_match(l->o.store, l->key, text, strlen(text), l->etag, err) : LMR_ERR_NOMEM;
    free(text);
    return r;
}

const char *lmr_lease_holder(const struct lmr_lease *l)
{
    return l->holder;
}

uint64_t lmr_lease_duration_ms(const struct lmr_lease *l)
{
    return l->o.duration_ms;
}

void lmr_lease_destroy(struct lmr_lease *l)
{
    if (l)
        lease_free(l);
}
