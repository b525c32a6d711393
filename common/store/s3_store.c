/*
 * The "s3" back-end (see s3_store.h). Requests go through the AWS HTTP client (signing,
 * retries, error messages); this file speaks S3:
 *
 * - list: ListObjectsV2 pages of up to 1,000 keys, followed by continuation token.
 * - read: ranged GETs of up to read_part_bytes, up to read_ahead of them in flight at once on
 *   a curl multi handle, handed to the reader in order. The first part tells the object's size
 *   (Content-Range), then the pipeline fills. Like TCP's slow start, a reader begins with one
 *   small part (1 MiB) in flight and doubles part size and window as it keeps reading, so the
 *   many small readers of a reducer's merge stay small. A sequential reader of a known range
 *   (a mapper's shard, struct lmr_store_read_options.sequential) skips the slow start: its
 *   whole window of full-size parts is requested at open. A reader's bytes in flight (parts
 *   requested or received but not yet read) never pass max_in_flight_bytes when the caller
 *   gives one (the task's memory share): the parts shrink (to 256 KiB) before the window does.
 *   Transfers move on at every read, not only while the head part is awaited. A failed part is
 *   retried with backoff.
 * - write: bytes are staged in a part buffer; an object that fits in one part is one PUT,
 *   a larger one a multipart upload (parts of part_size_bytes >= 5 MiB, two uploading in the
 *   background on a curl multi handle while the caller fills the next). Nothing is visible
 *   before commit; a failed or aborted upload is aborted (AbortMultipartUpload) so no parts
 *   stay behind. Create-only commits send If-None-Match: * on the PUT or on
 *   CompleteMultipartUpload: 412 PreconditionFailed means another writer won (LMR_ERR_EXISTS),
 *   unless the commit was retried and the object's ETag is the one our upload gives (our first
 *   attempt was applied, its answer lost). put_if_match does the same after a retried 412.
 * - delete: DeleteObjects in batches of 1,000 keys with Content-MD5.
 */
#include "store/s3_store.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "aws/curl_api.h"
#include "aws/xml.h"
#include "util/log.h"
#include "util/misc.h"

#define MIB ((size_t)1 << 20)
#define MIN_PART_BYTES (5 * MIB)
#define MAX_PARTS 10000
#define DELETE_BATCH 1000
#define LIST_PAGE_MAX_BYTES (8 * MIB)
#define ERROR_SLACK_BYTES (64u << 10)
#define MIN_READ_PART_BYTES ((uint64_t)256 << 10) /* parts shrink to this before the window does */

struct s3_store {
    struct lmr_aws_client *client;
    char *bucket;
    unsigned read_ahead;
    size_t read_part_bytes;
    size_t part_size_bytes;
};

static struct s3_store *impl_of(struct lmr_store *s)
{
    return s->impl;
}

/* "/" + the key, percent-encoded ('/' kept). Caller frees. */
static char *key_path(const char *key)
{
    struct lmr_buf b;
    lmr_buf_init(&b, 16 * 1024);
    if (lmr_buf_append(&b, "/", 1) || lmr_aws_uri_encode(&b, key, strlen(key), true)) {
        lmr_buf_clean_up(&b);
        return NULL;
    }
    return lmr_buf_detach(&b, NULL);
}

static char *resource_of(const char *bucket, const char *key)
{
    size_t n = strlen(bucket) + (key ? strlen(key) : 0) + 8;
    char *r = malloc(n);
    if (r)
        snprintf(r, n, "s3://%s/%s", bucket, key ? key : "");
    return r;
}

/* One synchronous S3 request with the store's counters updated. */
static enum lmr_result s3_send(struct lmr_store *s, const char *method, const char *path, const char *query,
                               const char *resource, const struct lmr_aws_header *hs, size_t nh, const void *body,
                               size_t len, struct lmr_aws_response *resp, size_t max_resp, struct lmr_err *err)
{
    struct s3_store *st = impl_of(s);
    struct lmr_aws_request req = {
        .service = LMR_AWS_S3,
        .method = method,
        .bucket = st->bucket,
        .path = path,
        .query = query,
        .headers = hs,
        .n_headers = nh,
        .body = body,
        .body_len = len,
        .resource = resource,
        .max_response_bytes = max_resp,
    };
    enum lmr_result r = lmr_aws_request(st->client, &req, resp, err);
    if (resp->attempts > 1)
        atomic_fetch_add(&s->stats.retries, resp->attempts - 1);
    return r;
}

static void count(struct lmr_store *s, atomic_uint_fast64_t *counter, unsigned attempts)
{
    atomic_fetch_add(counter, attempts ? attempts : 1);
    (void)s;
}

/* ---- listing ---------------------------------------------------------------------------------------------- */

/*
 * A ListObjectsV2 response is checked before its objects are used: every <Contents> has one
 * <Key> and one <Size> (a whole number no larger than any object can be), keys come in
 * strictly increasing order over the whole listing (S3 lists general purpose buckets in UTF-8
 * binary order, so a key at or before the previous one means a page was repeated), and a
 * truncated page names a continuation token different from the one that asked for it. A
 * response that breaks any of these stops the listing with LMR_ERR_FORMAT instead of counting
 * input twice, reading past a key, or looping for ever. (Directory buckets, "--x-s3", do not
 * list in order; for them only the order check is left out.)
 */
struct list_page {
    lmr_store_list_fn fn;
    void *user_data;
    struct lmr_err *err;
    const char *resource;
    bool check_order;
    struct lmr_buf key, last_key;
    bool have_key, have_size, have_last;
    uint64_t size;
    bool truncated;
    struct lmr_buf token, sent_token;
    enum lmr_result fn_result;
    bool malformed; /* bad_page set the message */
    size_t n_keys;
};

static enum lmr_result bad_page(struct list_page *lp, const char *what, const char *detail)
{
    lp->malformed = true;
    return lmr_fail(lp->err, LMR_ERR_FORMAT,
                    "S3 returned a malformed listing for %s: %s%s; try again, and report it "
                    "if it persists",
                    lp->resource, what, detail ? detail : "");
}

static enum lmr_result list_contents(struct list_page *lp)
{
    char shown[256];
    if (!lp->have_key)
        return bad_page(lp, "an object (<Contents>) without a <Key>", NULL);
    if (!lp->have_size)
        return bad_page(lp, "no <Size> for the key ", lmr_escape_bytes(lp->key.data, shown, sizeof shown));
    if (lp->check_order && lp->have_last && strcmp(lp->key.data, lp->last_key.data) <= 0)
        return bad_page(lp, "keys out of order or repeated, at ", lmr_escape_bytes(lp->key.data, shown, sizeof shown));
    struct lmr_store_object obj = {.key = lp->key.data, .size_bytes = lp->size};
    lp->n_keys++;
    enum lmr_result r = lp->fn(lp->user_data, &obj);
    if (r)
        return lp->fn_result = r;
    lmr_buf_reset(&lp->last_key);
    if ((r = lmr_buf_append(&lp->last_key, lp->key.data, lp->key.len)))
        return lmr_fail(lp->err, r, "a key in the listing of %s is longer than %zu bytes", lp->resource,
                        lp->last_key.max_bytes);
    lp->have_last = true;
    lp->have_key = lp->have_size = false;
    return LMR_OK;
}

static enum lmr_result list_xml(void *ud, const char *path, const char *text, size_t len)
{
    struct list_page *lp = ud;
    if (!strcmp(path, "ListBucketResult/Contents/Key")) {
        if (lp->have_key)
            return bad_page(lp, "an object with two <Key> elements", NULL);
        lmr_buf_reset(&lp->key);
        if (len == 0 || lmr_buf_append(&lp->key, text, len) || !lp->key.data)
            return bad_page(lp, len ? "a <Key> longer than 1,024 bytes" : "an empty <Key>", NULL);
        lp->have_key = true;
        return LMR_OK;
    }
    if (!strcmp(path, "ListBucketResult/Contents/Size")) {
        if (lp->have_size || lmr_parse_u64(text, 0, LMR_STORE_MAX_OBJECT_BYTES, &lp->size))
            return bad_page(lp, "an object <Size> that is not a whole number of bytes up to 48.8 TiB: ", text);
        lp->have_size = true;
        return LMR_OK;
    }
    if (!strcmp(path, "ListBucketResult/Contents"))
        return list_contents(lp);
    if (!strcmp(path, "ListBucketResult/IsTruncated")) {
        if (strcmp(text, "true") && strcmp(text, "false"))
            return bad_page(lp, "<IsTruncated> is neither true nor false: ", text);
        lp->truncated = !strcmp(text, "true");
        return LMR_OK;
    }
    if (!strcmp(path, "ListBucketResult/NextContinuationToken")) {
        lmr_buf_reset(&lp->token);
        return lmr_buf_append(&lp->token, text, len) ? bad_page(lp, "a continuation token over 4 KiB", NULL) : LMR_OK;
    }
    return LMR_OK;
}

static bool is_directory_bucket(const char *bucket)
{
    size_t n = strlen(bucket);
    return n > 6 && !strcmp(bucket + n - 6, "--x-s3");
}

static enum lmr_result s3_list(struct lmr_store *s, const char *prefix, lmr_store_list_fn fn, void *user_data,
                               struct lmr_err *err)
{
    struct s3_store *st = impl_of(s);
    struct lmr_err own = {0};
    struct list_page lp = {
        .fn = fn, .user_data = user_data, .err = err ? err : &own, .check_order = !is_directory_bucket(st->bucket)};
    lmr_buf_init(&lp.key, 1024);
    lmr_buf_init(&lp.last_key, 1024);
    lmr_buf_init(&lp.token, 4096);
    lmr_buf_init(&lp.sent_token, 4096);
    struct lmr_buf query;
    lmr_buf_init(&query, 64 * 1024);
    struct lmr_aws_response resp;
    lmr_aws_response_init(&resp);
    char *resource = resource_of(st->bucket, prefix);
    lp.resource = resource;
    enum lmr_result r = resource ? LMR_OK : LMR_ERR_NOMEM;
    bool first = true;
    while (!r && (first || lp.truncated)) {
        lmr_buf_reset(&query);
        /* Parameters in canonical (sorted) order, every value encoded. */
        if (!first) {
            r = lmr_buf_append_str(&query, "continuation-token=");
            if (!r)
                r = lmr_aws_uri_encode(&query, lp.token.data, lp.token.len, false);
            if (!r)
                r = lmr_buf_append(&query, "&", 1);
            lmr_buf_reset(&lp.sent_token);
            if (!r)
                r = lmr_buf_append(&lp.sent_token, lp.token.data, lp.token.len);
        }
        if (!r)
            r = lmr_buf_append_str(&query, "list-type=2&max-keys=1000&prefix=");
        if (!r)
            r = lmr_aws_uri_encode(&query, prefix, strlen(prefix), false);
        if (r)
            break;
        first = false;
        lp.truncated = false;
        lp.have_key = lp.have_size = false;
        lmr_buf_reset(&lp.token);
        r = s3_send(s, "GET", "/", query.data, resource, NULL, 0, NULL, 0, &resp, LIST_PAGE_MAX_BYTES, err);
        count(s, &s->stats.list_requests, resp.attempts);
        if (r)
            break;
        r = lmr_aws_xml_parse(resp.body.data ? resp.body.data : "", resp.body.len, list_xml, &lp, err);
        if (r && r == lp.fn_result)
            break; /* the caller stopped the listing; its result stands */
        if (r && !lp.malformed)
            r = lmr_err_prefix(err, "listing %s", resource);
        else if (!r && (lp.have_key || lp.have_size))
            r = bad_page(&lp, "a <Key> or <Size> outside any <Contents>", NULL);
        else if (!r && lp.truncated && !lp.token.len)
            r = lmr_fail(err, LMR_ERR_FORMAT,
                         "listing %s: S3 said the list is truncated but gave no continuation token", resource);
        else if (!r && lp.truncated && lp.sent_token.len == lp.token.len &&
                 !memcmp(lp.sent_token.data, lp.token.data, lp.token.len))
            r = bad_page(&lp,
                         "IsTruncated=true with the same continuation token it was asked with (the listing "
                         "would never end)",
                         NULL);
    }
    free(resource);
    lmr_aws_response_clean_up(&resp);
    lmr_buf_clean_up(&query);
    lmr_buf_clean_up(&lp.key);
    lmr_buf_clean_up(&lp.last_key);
    lmr_buf_clean_up(&lp.token);
    lmr_buf_clean_up(&lp.sent_token);
    return r;
}

static enum lmr_result s3_head(struct lmr_store *s, const char *key, uint64_t *size_bytes, struct lmr_err *err)
{
    struct s3_store *st = impl_of(s);
    char *path = key_path(key), *resource = resource_of(st->bucket, key);
    struct lmr_aws_response resp;
    lmr_aws_response_init(&resp);
    enum lmr_result r = path && resource ? LMR_OK : LMR_ERR_NOMEM;
    if (!r) {
        r = s3_send(s, "HEAD", path, NULL, resource, NULL, 0, NULL, 0, &resp, 0, err);
        count(s, &s->stats.head_requests, resp.attempts);
    }
    char v[64];
    if (!r && size_bytes) {
        if (lmr_aws_response_header(&resp, "Content-Length", v, sizeof v))
            *size_bytes = strtoull(v, NULL, 10);
        else
            r = lmr_fail(err, LMR_ERR_FORMAT, "%s: S3 answered HEAD without Content-Length", resource);
    }
    lmr_aws_response_clean_up(&resp);
    free(path);
    free(resource);
    return r;
}

/* ---- reading: ranged GETs, several in flight ------------------------------------------------------------ */

enum part_state { PART_IDLE, PART_RUNNING, PART_DONE, PART_READY };

struct part {
    enum part_state state;
    uint64_t off, len;
    char range[64];
    struct lmr_aws_header hdr;
    struct lmr_aws_request req;
    struct lmr_aws_response resp;
    struct lmr_aws_call call;
    CURLcode cc;
    unsigned attempt;
    size_t consumed;
};

struct s3_reader {
    struct lmr_store_reader base;
    CURLM *multi;
    char *path, *resource;
    uint64_t next_off; /* next byte to request */
    uint64_t req_end;  /* end of the requested range (UINT64_MAX: to the end) */
    uint64_t end;      /* known end (after the first part) */
    bool end_known;
    struct part *q;
    unsigned cap, head, count;
    unsigned window;          /* parts allowed in flight now (grows to cap) */
    uint64_t part_bytes;      /* this reader's largest part (read_part_bytes, or less under a byte cap) */
    uint64_t next_part_bytes; /* size of the next part (grows to part_bytes) */
    bool sequential;          /* the whole range is read in order: fill the window before the size is known */
    enum lmr_result failed;
    struct lmr_err failed_err;
};

static enum lmr_result part_submit(struct s3_reader *rd, struct part *p, struct lmr_err *err)
{
    struct s3_store *st = impl_of(rd->base.store);
    snprintf(p->range, sizeof p->range, "bytes=%llu-%llu", (unsigned long long)p->off,
             (unsigned long long)(p->off + p->len - 1));
    p->hdr = (struct lmr_aws_header){"Range", p->range};
    p->req = (struct lmr_aws_request){
        .service = LMR_AWS_S3,
        .method = "GET",
        .bucket = st->bucket,
        .path = rd->path,
        .headers = &p->hdr,
        .n_headers = 1,
        .resource = rd->resource,
        .max_response_bytes = (size_t)p->len + ERROR_SLACK_BYTES,
    };
    enum lmr_result r = lmr_aws_call_prepare(st->client, &p->req, &p->resp, &p->call, err);
    if (r)
        return r;
    if (lmr_curl.multi_add_handle(rd->multi, p->call.easy) != CURLM_OK) {
        lmr_aws_call_release(st->client, &p->call);
        return lmr_fail(err, LMR_ERR_INTERNAL, "%s: cannot start a transfer", rd->resource);
    }
    p->state = PART_RUNNING;
    p->attempt++;
    atomic_fetch_add(&rd->base.store->stats.get_requests, 1);
    return LMR_OK;
}

static enum lmr_result start_next_part(struct s3_reader *rd, struct lmr_err *err)
{
    struct part *p = &rd->q[(rd->head + rd->count) % rd->cap];
    uint64_t end = rd->end_known ? rd->end : rd->req_end;
    uint64_t len = end - rd->next_off;
    if (len > rd->next_part_bytes)
        len = rd->next_part_bytes;
    /* No runt at the end (a shard's tail chunk, say): a rest of at most half a part joins this one. */
    if (end != UINT64_MAX && end - rd->next_off - len <= len / 2)
        len = end - rd->next_off;
    p->off = rd->next_off;
    p->len = len;
    p->attempt = 0;
    p->consumed = 0;
    enum lmr_result r = part_submit(rd, p, err);
    if (r)
        return r;
    rd->next_off += len;
    rd->count++;
    if (rd->next_part_bytes < rd->part_bytes)
        rd->next_part_bytes = rd->next_part_bytes * 2 < rd->part_bytes ? rd->next_part_bytes * 2 : rd->part_bytes;
    return LMR_OK;
}

/* Where the pipeline may request up to: the object's end once known; before that, a sequential
   reader's requested end (parts past the object's end answer 416 and end the read). */
static uint64_t fill_end(const struct s3_reader *rd)
{
    if (rd->end_known)
        return rd->end;
    return rd->sequential && rd->req_end != UINT64_MAX ? rd->req_end : 0;
}

/* Request parts until the window is full or the range is. */
static enum lmr_result fill_window(struct s3_reader *rd, struct lmr_err *err)
{
    enum lmr_result r = LMR_OK;
    while (!r && rd->count < rd->window && rd->next_off < fill_end(rd))
        r = start_next_part(rd, err);
    return r;
}

static void part_stop(struct s3_reader *rd, struct part *p)
{
    struct s3_store *st = impl_of(rd->base.store);
    if (p->state == PART_RUNNING || p->state == PART_DONE) {
        lmr_curl.multi_remove_handle(rd->multi, p->call.easy);
        lmr_aws_call_release(st->client, &p->call);
    }
    p->state = PART_IDLE;
}

/* Run transfers until part p has finished. */
static void wait_for(struct s3_reader *rd, struct part *p)
{
    while (p->state == PART_RUNNING) {
        int running = 0, left = 0;
        lmr_curl.multi_perform(rd->multi, &running);
        CURLMsg *m;
        while ((m = lmr_curl.multi_info_read(rd->multi, &left))) {
            if (m->msg != CURLMSG_DONE)
                continue;
            for (unsigned i = 0; i < rd->cap; i++) {
                struct part *x = &rd->q[i];
                if (x->state == PART_RUNNING && x->call.easy == m->easy_handle) {
                    x->state = PART_DONE;
                    x->cc = m->data.result;
                }
            }
        }
        if (p->state == PART_RUNNING)
            lmr_curl.multi_poll(rd->multi, NULL, 0, 1000, NULL);
    }
}

/* Parse "bytes A-B/TOTAL". */
static bool content_range_total(struct lmr_aws_response *resp, uint64_t *total)
{
    char v[128];
    if (!lmr_aws_response_header(resp, "Content-Range", v, sizeof v))
        return false;
    const char *slash = strchr(v, '/');
    if (!slash || !isdigit((unsigned char)slash[1]))
        return false;
    *total = strtoull(slash + 1, NULL, 10);
    return true;
}

/* Wait for the head part and check it; retries failed transfers. */
static enum lmr_result ready_head(struct s3_reader *rd, struct lmr_err *err)
{
    struct s3_store *st = impl_of(rd->base.store);
    struct part *p = &rd->q[rd->head];
    while (p->state != PART_READY) {
        wait_for(rd, p);
        bool retry = false;
        enum lmr_result r = lmr_aws_call_finish(st->client, &p->call, p->cc, &retry, err);
        long status = p->resp.status;
        part_stop(rd, p);
        if (r && status == 416) {
            /* The range starts at or past the end of the object: nothing to read. */
            lmr_err_clear(err);
            if (!rd->end_known || p->off < rd->end)
                rd->end = p->off;
            rd->end_known = true;
            lmr_buf_reset(&p->resp.body);
            p->state = PART_READY;
            break;
        }
        if (r) {
            if (retry && p->attempt < lmr_aws_client_max_attempts(st->client)) {
                atomic_fetch_add(&rd->base.store->stats.retries, 1);
                lmr_sleep_ms(lmr_aws_client_backoff_ms(st->client, p->attempt));
                lmr_err_clear(err);
                if ((r = part_submit(rd, p, err)))
                    return r;
                continue;
            }
            return r;
        }
        uint64_t total = 0;
        if (p->resp.status == 200) /* the whole object (no range support, or it was empty) */
            total = p->resp.body.len;
        else if (!content_range_total(&p->resp, &total))
            return lmr_fail(err, LMR_ERR_FORMAT, "%s: S3 answered a ranged GET without Content-Range", rd->resource);
        if (!rd->end_known) {
            rd->end = total < rd->req_end ? total : rd->req_end;
            rd->end_known = true;
        }
        if (p->resp.status == 200 && p->off > 0) {
            /* Whole object for a range: keep only our slice. */
            uint64_t from = p->off < p->resp.body.len ? p->off : p->resp.body.len;
            memmove(p->resp.body.data, p->resp.body.data + from, p->resp.body.len - from);
            p->resp.body.len -= from;
        }
        uint64_t want = rd->end > p->off ? rd->end - p->off : 0;
        if (want > p->len)
            want = p->len;
        if (p->resp.body.len > want)
            p->resp.body.len = want;
        if (p->resp.body.len != want)
            return lmr_fail(err, LMR_ERR_FORMAT,
                            "%s: S3 returned %zu bytes for range %s (expected %llu); the object "
                            "may have changed while it was read",
                            rd->resource, p->resp.body.len, p->range, (unsigned long long)want);
        p->state = PART_READY;
    }
    return LMR_OK;
}

static enum lmr_result s3_read(struct lmr_store_reader *r, void *buf, size_t cap, size_t *got, struct lmr_err *err)
{
    struct s3_reader *rd = (struct s3_reader *)r;
    *got = 0;
    if (rd->failed) {
        if (err)
            *err = rd->failed_err;
        return rd->failed;
    }
    enum lmr_result res = LMR_OK;
    if (rd->count > 1) {
        /* Let the parts behind the head move on while the caller works on what it has read. */
        int running = 0;
        lmr_curl.multi_perform(rd->multi, &running);
    }
    while (!res && cap) {
        if (rd->count == 0) {
            uint64_t end = rd->end_known ? rd->end : rd->req_end;
            if (rd->next_off >= end)
                return LMR_OK; /* end of range */
            res = start_next_part(rd, err);
            if (res)
                break;
        }
        /* Keep the pipeline full (once the size is known, or for a sequential reader). */
        res = fill_window(rd, err);
        if (res)
            break;
        res = ready_head(rd, err);
        if (res)
            break;
        struct part *p = &rd->q[rd->head];
        size_t avail = p->resp.body.len - p->consumed;
        if (avail) {
            size_t n = avail < cap ? avail : cap;
            memcpy(buf, p->resp.body.data + p->consumed, n);
            p->consumed += n;
            *got = n;
            atomic_fetch_add(&r->store->stats.bytes_read, n);
        }
        if (p->consumed == p->resp.body.len) {
            p->state = PART_IDLE;
            rd->head = (rd->head + 1) % rd->cap;
            rd->count--;
            rd->window = rd->window * 2 < rd->cap ? rd->window * 2 : rd->cap;
            if (rd->end_known && rd->next_off > rd->end)
                rd->next_off = rd->end;
        }
        if (*got)
            return LMR_OK;
    }
    rd->failed = res;
    if (err)
        rd->failed_err = *err;
    else
        rd->failed_err.code = res;
    return res;
}

static void s3_close_read(struct lmr_store_reader *r)
{
    struct s3_reader *rd = (struct s3_reader *)r;
    for (unsigned i = 0; i < rd->cap; i++) {
        part_stop(rd, &rd->q[i]);
        lmr_aws_response_clean_up(&rd->q[i].resp);
    }
    lmr_curl.multi_cleanup(rd->multi);
    free(rd->q);
    free(rd->path);
    free(rd->resource);
    free(rd);
}

static enum lmr_result s3_open_read_with(struct lmr_store *s, const char *key, uint64_t offset, uint64_t length,
                                         const struct lmr_store_read_options *opts, struct lmr_store_reader **out,
                                         struct lmr_err *err)
{
    struct s3_store *st = impl_of(s);
    struct s3_reader *rd = calloc(1, sizeof *rd);
    if (!rd)
        return LMR_ERR_NOMEM;
    rd->base.store = s;
    /* The window and part size under the byte cap: shrink parts first (parallelism is what hides
       latency), then the window; at least one part. The last part of a range may be 1.5 parts
       (no runt), so the cap is met with parts + 1/2 parts. */
    unsigned parts = st->read_ahead;
    uint64_t part_bytes = st->read_part_bytes;
    uint64_t limit = opts ? opts->max_in_flight_bytes : 0;
    if (limit && (uint64_t)parts * part_bytes + part_bytes / 2 > limit) {
        part_bytes = limit * 2 / (2 * (uint64_t)parts + 1);
        if (part_bytes < MIN_READ_PART_BYTES) {
            part_bytes = MIN_READ_PART_BYTES < limit * 2 / 3 ? MIN_READ_PART_BYTES : limit * 2 / 3;
            parts = (unsigned)((limit - part_bytes / 2) / part_bytes);
        }
    }
    rd->cap = parts ? parts : 1;
    rd->part_bytes = part_bytes ? part_bytes : 1;
    rd->sequential = opts && opts->sequential;
    rd->q = calloc(rd->cap, sizeof *rd->q);
    rd->path = key_path(key);
    rd->resource = resource_of(st->bucket, key);
    rd->multi = lmr_curl.multi_init();
    if (!rd->q || !rd->path || !rd->resource || !rd->multi) {
        lmr_curl.multi_cleanup(rd->multi);
        free(rd->q);
        free(rd->path);
        free(rd->resource);
        free(rd);
        return lmr_fail(err, LMR_ERR_NOMEM, "out of memory opening s3://%s/%s", st->bucket, key);
    }
    for (unsigned i = 0; i < rd->cap; i++)
        lmr_aws_response_init(&rd->q[i].resp);
    rd->next_off = offset;
    /* Slow start, unless the whole range will be read in order anyway. */
    rd->window = rd->sequential ? rd->cap : 1;
    rd->next_part_bytes = rd->sequential || rd->part_bytes < MIB ? rd->part_bytes : MIB;
    rd->req_end = (length == LMR_STORE_TO_END || length > UINT64_MAX - offset) ? UINT64_MAX : offset + length;
    if (length == 0) {
        rd->end = offset;
        rd->end_known = true;
    }
    *out = &rd->base;
    /* Start the first part now: a missing object or bucket is reported by open, as the file back-end does. */
    if (length != 0) {
        enum lmr_result r = start_next_part(rd, err);
        if (!r)
            r = fill_window(rd, err); /* a sequential reader of a known range: all of its window now */
        if (!r)
            r = ready_head(rd, err);
        if (r) {
            s3_close_read(&rd->base);
            *out = NULL;
            return r;
        }
    }
    return LMR_OK;
}

static enum lmr_result s3_open_read(struct lmr_store *s, const char *key, uint64_t offset, uint64_t length,
                                    struct lmr_store_reader **out, struct lmr_err *err)
{
    return s3_open_read_with(s, key, offset, length, NULL, out, err);
}

/* ---- writing: one PUT or a multipart upload ---------------------------------------------------------------- */

/* A part upload on the writer's multi handle; up to UPLOADS_IN_FLIGHT go while the caller keeps writing. */
#define UPLOADS_IN_FLIGHT 2

struct upload_slot {
    bool busy, done;
    size_t part_number;
    struct lmr_buf body, query;
    struct lmr_aws_request req;
    struct lmr_aws_response resp;
    struct lmr_aws_call call;
    CURLcode cc;
    unsigned attempt;
};

struct s3_writer {
    struct lmr_store_writer base;
    unsigned flags;
    char *path, *resource;
    struct lmr_buf part;
    char *upload_id;
    char (*etags)[128];
    size_t n_parts; /* parts handed to uploads so far */
    CURLM *multi;
    struct upload_slot slots[UPLOADS_IN_FLIGHT];
};

static enum lmr_result initiate_xml(void *ud, const char *path, const char *text, size_t len)
{
    char **id = ud;
    if (!strcmp(path, "InitiateMultipartUploadResult/UploadId")) {
        free(*id);
        *id = strndup(text, len);
        return *id ? LMR_OK : LMR_ERR_NOMEM;
    }
    return LMR_OK;
}

static enum lmr_result upload_query(struct s3_writer *w, size_t part_number, struct lmr_buf *q)
{
    enum lmr_result r = part_number ? lmr_buf_printf(q, "partNumber=%zu&", part_number) : LMR_OK;
    if (!r)
        r = lmr_buf_append_str(q, "uploadId=");
    if (!r)
        r = lmr_aws_uri_encode(q, w->upload_id, strlen(w->upload_id), false);
    return r;
}

static enum lmr_result start_upload(struct s3_writer *w, struct lmr_err *err)
{
    if (w->upload_id)
        return LMR_OK;
    struct lmr_store *s = w->base.store;
    struct lmr_aws_response resp;
    lmr_aws_response_init(&resp);
    enum lmr_result r = s3_send(s, "POST", w->path, "uploads", w->resource, NULL, 0, NULL, 0, &resp, 0, err);
    count(s, &s->stats.put_requests, resp.attempts);
    if (!r)
        r = lmr_aws_xml_parse(resp.body.data ? resp.body.data : "", resp.body.len, initiate_xml, &w->upload_id, err);
    if (!r && !w->upload_id)
        r = lmr_fail(err, LMR_ERR_FORMAT, "%s: S3 started a multipart upload without an UploadId", w->resource);
    if (!r && !w->multi && !(w->multi = lmr_curl.multi_init()))
        r = LMR_ERR_NOMEM;
    lmr_aws_response_clean_up(&resp);
    return r;
}

static enum lmr_result slot_submit(struct s3_writer *w, struct upload_slot *u, struct lmr_err *err)
{
    struct s3_store *st = impl_of(w->base.store);
    u->req = (struct lmr_aws_request){
        .service = LMR_AWS_S3,
        .method = "PUT",
        .bucket = st->bucket,
        .path = w->path,
        .query = u->query.data,
        .body = u->body.data ? u->body.data : "",
        .body_len = u->body.len,
        .resource = w->resource,
        .max_response_bytes = ERROR_SLACK_BYTES,
    };
    enum lmr_result r = lmr_aws_call_prepare(st->client, &u->req, &u->resp, &u->call, err);
    if (r)
        return r;
    if (lmr_curl.multi_add_handle(w->multi, u->call.easy) != CURLM_OK) {
        lmr_aws_call_release(st->client, &u->call);
        return lmr_fail(err, LMR_ERR_INTERNAL, "%s: cannot start a part upload", w->resource);
    }
    u->busy = true;
    u->done = false;
    u->attempt++;
    atomic_fetch_add(&w->base.store->stats.put_requests, 1);
    return LMR_OK;
}

/* Move the transfers along; with wait, block until at least one of them finishes. */
static void uploads_pump(struct s3_writer *w, bool wait)
{
    if (!w->multi)
        return;
    for (;;) {
        int running = 0, left = 0;
        bool finished = false;
        lmr_curl.multi_perform(w->multi, &running);
        CURLMsg *m;
        while ((m = lmr_curl.multi_info_read(w->multi, &left))) {
            for (int i = 0; m->msg == CURLMSG_DONE && i < UPLOADS_IN_FLIGHT; i++) {
                struct upload_slot *u = &w->slots[i];
                if (u->busy && !u->done && u->call.easy == m->easy_handle) {
                    u->done = true;
                    u->cc = m->data.result;
                    finished = true;
                }
            }
        }
        if (!wait || finished || !running)
            return;
        lmr_curl.multi_poll(w->multi, NULL, 0, 1000, NULL);
    }
}

static void slot_stop(struct s3_writer *w, struct upload_slot *u)
{
    if (!u->busy)
        return;
    struct s3_store *st = impl_of(w->base.store);
    lmr_curl.multi_remove_handle(w->multi, u->call.easy);
    lmr_aws_call_release(st->client, &u->call);
    u->busy = false;
}

/* Wait for slot u's upload, retrying it as the HTTP client would; record its ETag. */
static enum lmr_result slot_finish(struct s3_writer *w, struct upload_slot *u, struct lmr_err *err)
{
    struct s3_store *st = impl_of(w->base.store);
    while (u->busy) {
        while (!u->done)
            uploads_pump(w, true);
        bool retry = false;
        enum lmr_result r = lmr_aws_call_finish(st->client, &u->call, u->cc, &retry, err);
        slot_stop(w, u);
        if (r && retry && u->attempt < lmr_aws_client_max_attempts(st->client)) {
            atomic_fetch_add(&w->base.store->stats.retries, 1);
            lmr_sleep_ms(lmr_aws_client_backoff_ms(st->client, u->attempt));
            lmr_err_clear(err);
            if ((r = slot_submit(w, u, err)))
                return r;
            continue;
        }
        if (r)
            return r;
        if (!lmr_aws_response_header(&u->resp, "ETag", w->etags[u->part_number - 1], sizeof w->etags[0]))
            return lmr_fail(err, LMR_ERR_FORMAT, "%s: S3 accepted part %zu without an ETag", w->resource,
                            u->part_number);
    }
    return LMR_OK;
}

/* Wait for every part upload. */
static enum lmr_result uploads_drain(struct s3_writer *w, struct lmr_err *err)
{
    for (;;) {
        struct upload_slot *oldest = NULL;
        for (int i = 0; i < UPLOADS_IN_FLIGHT; i++)
            if (w->slots[i].busy && (!oldest || w->slots[i].part_number < oldest->part_number))
                oldest = &w->slots[i];
        if (!oldest)
            return LMR_OK;
        enum lmr_result r = slot_finish(w, oldest, err);
        if (r)
            return r;
    }
}

/* Hand the staged part to an upload slot (waiting for one to free up) and start it. */
static enum lmr_result flush_part(struct s3_writer *w, struct lmr_err *err)
{
    enum lmr_result r = start_upload(w, err);
    if (!r && w->n_parts == MAX_PARTS)
        r = lmr_fail(err, LMR_ERR_TOO_LARGE, "%s: more than %d parts; raise LMR_S3_PART_BYTES", w->resource, MAX_PARTS);
    if (!r && !(w->n_parts % 64)) {
        void *e = realloc(w->etags, (w->n_parts + 64) * sizeof *w->etags);
        if (!e)
            r = LMR_ERR_NOMEM;
        else
            w->etags = e;
    }
    if (r)
        return r;
    struct upload_slot *u = NULL;
    while (!u) {
        struct upload_slot *oldest = NULL;
        for (int i = 0; i < UPLOADS_IN_FLIGHT && !u; i++) {
            if (!w->slots[i].busy)
                u = &w->slots[i];
            else if (!oldest || w->slots[i].part_number < oldest->part_number)
                oldest = &w->slots[i];
        }
        if (!u && (r = slot_finish(w, oldest, err)))
            return r;
    }
    struct lmr_buf tmp = u->body; /* swap buffers: the staged part goes out, an empty one comes back */
    u->body = w->part;
    w->part = tmp;
    lmr_buf_reset(&w->part);
    u->part_number = ++w->n_parts;
    u->attempt = 0;
    lmr_buf_reset(&u->query);
    r = upload_query(w, u->part_number, &u->query);
    return r ? r : slot_submit(w, u, err);
}

static enum lmr_result s3_open_write(struct lmr_store *s, const char *key, unsigned flags,
                                     struct lmr_store_writer **out, struct lmr_err *err)
{
    struct s3_store *st = impl_of(s);
    struct s3_writer *w = calloc(1, sizeof *w);
    if (!w)
        return LMR_ERR_NOMEM;
    w->base.store = s;
    w->flags = flags;
    w->path = key_path(key);
    w->resource = resource_of(st->bucket, key);
    lmr_buf_init(&w->part, st->part_size_bytes);
    for (int i = 0; i < UPLOADS_IN_FLIGHT; i++) {
        lmr_buf_init(&w->slots[i].body, st->part_size_bytes);
        lmr_buf_init(&w->slots[i].query, 4096);
        lmr_aws_response_init(&w->slots[i].resp);
    }
    if (!w->path || !w->resource) {
        free(w->path);
        free(w->resource);
        free(w);
        return lmr_fail(err, LMR_ERR_NOMEM, "out of memory writing s3://%s/%s", st->bucket, key);
    }
    *out = &w->base;
    return LMR_OK;
}

static enum lmr_result s3_write(struct lmr_store_writer *wb, const void *data, size_t len, struct lmr_err *err)
{
    struct s3_writer *w = (struct s3_writer *)wb;
    const char *p = data;
    while (len) {
        size_t room = w->part.max_bytes - w->part.len;
        size_t n = len < room ? len : room;
        enum lmr_result r = lmr_buf_append(&w->part, p, n);
        if (r)
            return lmr_fail(err, r, "%s: cannot stage %zu bytes", w->resource, n);
        p += n;
        len -= n;
        atomic_fetch_add(&wb->store->stats.bytes_written, n);
        if (w->part.len == w->part.max_bytes && len) {
            /* A full part and more to come: it goes out now (the last part waits for commit). */
            if ((r = flush_part(w, err)))
                return r;
        }
    }
    uploads_pump(w, false);
    return LMR_OK;
}

static void abort_upload(struct s3_writer *w)
{
    for (int i = 0; i < UPLOADS_IN_FLIGHT; i++)
        slot_stop(w, &w->slots[i]);
    if (!w->upload_id)
        return;
    struct lmr_store *s = w->base.store;
    struct lmr_aws_response resp;
    lmr_aws_response_init(&resp);
    struct lmr_buf q;
    lmr_buf_init(&q, 4096);
    struct lmr_err err = {0};
    if (!upload_query(w, 0, &q)) {
        enum lmr_result r = s3_send(s, "DELETE", w->path, q.data, w->resource, NULL, 0, NULL, 0, &resp, 0, &err);
        count(s, &s->stats.delete_requests, resp.attempts);
        if (r && r != LMR_ERR_NOT_FOUND)
            LMR_WARN("could not abort the multipart upload of %s; an incomplete upload may remain: %s", w->resource,
                     err.msg);
    }
    lmr_buf_clean_up(&q);
    lmr_aws_response_clean_up(&resp);
    free(w->upload_id);
    w->upload_id = NULL;
}

static void writer_free(struct s3_writer *w)
{
    for (int i = 0; i < UPLOADS_IN_FLIGHT; i++) {
        slot_stop(w, &w->slots[i]);
        lmr_buf_clean_up(&w->slots[i].body);
        lmr_buf_clean_up(&w->slots[i].query);
        lmr_aws_response_clean_up(&w->slots[i].resp);
    }
    lmr_curl.multi_cleanup(w->multi);
    lmr_buf_clean_up(&w->part);
    free(w->upload_id);
    free(w->etags);
    free(w->path);
    free(w->resource);
    free(w);
}

/* CompleteMultipartUpload can fail with 200 and an <Error> body. */
struct complete_state {
    char code[128], message[512];
};

static enum lmr_result complete_xml(void *ud, const char *path, const char *text, size_t len)
{
    struct complete_state *cs = ud;
    if (!strcmp(path, "Error/Code"))
        snprintf(cs->code, sizeof cs->code, "%.*s", (int)len, text);
    else if (!strcmp(path, "Error/Message"))
        snprintf(cs->message, sizeof cs->message, "%.*s", (int)len, text);
    return LMR_OK;
}

/*
 * A create-only commit that had to be retried can meet its own first attempt: the PUT (or
 * CompleteMultipartUpload) reached S3 and was applied, but the answer was lost (a reset
 * connection, a 5xx from a proxy after the fact), so the retry finds the key taken (412) or the
 * upload gone (NoSuchUpload). Treating that as "another writer won" would make the caller drop
 * an object that is in fact its own. So after a retried commit fails that way, the object's
 * ETag is compared with the one this upload gives (the MD5 of the body for a single PUT; the
 * MD5 of the parts' MD5s with "-N" for a multipart upload): equal means the commit is ours.
 * (Objects encrypted with SSE-KMS have other ETags: for them the old answer stands.)
 */
static void hex_of(const unsigned char *d, unsigned n, char *out)
{
    for (unsigned i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", d[i]);
}

/* The ETag this writer's upload gives its object, without quotes, into out (>= 48 bytes). */
static bool expected_etag(const struct s3_writer *w, char *out)
{
    unsigned char md5[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (!w->upload_id) {
        EVP_Digest(w->part.data ? w->part.data : "", w->part.len, md5, &n, EVP_md5(), NULL);
        hex_of(md5, n, out);
        return true;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = ctx && EVP_DigestInit_ex(ctx, EVP_md5(), NULL);
    for (size_t i = 0; ok && i < w->n_parts; i++) {
        const char *e = w->etags[i];
        unsigned char part[16];
        e += *e == '"';
        for (int b = 0; ok && b < 16; b++) {
            unsigned v;
            ok = sscanf(e + 2 * b, "%2x", &v) == 1;
            part[b] = (unsigned char)v;
        }
        ok = ok && EVP_DigestUpdate(ctx, part, sizeof part);
    }
    ok = ok && EVP_DigestFinal_ex(ctx, md5, &n);
    EVP_MD_CTX_free(ctx);
    if (ok) {
        hex_of(md5, n, out);
        sprintf(out + 2 * n, "-%zu", w->n_parts);
    }
    return ok;
}

/* Does the object at path (now) have the ETag want (without quotes)? One HEAD, retried as usual. */
static bool object_has_etag(struct lmr_store *s, const char *path, const char *resource, const char *want)
{
    char got[128];
    struct lmr_aws_response resp;
    lmr_aws_response_init(&resp);
    struct lmr_err ignored = {0};
    bool same = false;
    if (!s3_send(s, "HEAD", path, NULL, resource, NULL, 0, NULL, 0, &resp, 0, &ignored) &&
        lmr_aws_response_header(&resp, "ETag", got, sizeof got)) {
        const char *g = got + (*got == '"');
        size_t gl = strlen(g) - (strlen(g) && g[strlen(g) - 1] == '"');
        same = gl == strlen(want) && !strncmp(g, want, gl);
    }
    count(s, &s->stats.head_requests, resp.attempts);
    lmr_aws_response_clean_up(&resp);
    return same;
}

/* After a retried create-only commit failed with r: is the object there the one we wrote? */
static bool commit_was_ours(struct lmr_store *s, const struct s3_writer *w, enum lmr_result r, unsigned attempts)
{
    char want[64];
    if (attempts < 2 || (r != LMR_ERR_EXISTS && r != LMR_ERR_NOT_FOUND) || !expected_etag(w, want))
        return false;
    bool ours = object_has_etag(s, w->path, w->resource, want);
    if (ours)
        LMR_INFO("%s: the commit's first attempt was applied but its answer lost; the object is ours", w->resource);
    return ours;
}

static enum lmr_result s3_commit(struct lmr_store_writer *wb, struct lmr_err *err)
{
    struct s3_writer *w = (struct s3_writer *)wb;
    struct lmr_store *s = wb->store;
    struct lmr_aws_header cond = {"If-None-Match", "*"};
    bool create_only = w->flags & LMR_PUT_CREATE_ONLY;
    struct lmr_aws_response resp;
    lmr_aws_response_init(&resp);
    enum lmr_result r = LMR_OK;
    if (!w->upload_id) {
        r = s3_send(s, "PUT", w->path, NULL, w->resource, &cond, create_only ? 1 : 0, w->part.data ? w->part.data : "",
                    w->part.len, &resp, 0, err);
        count(s, &s->stats.put_requests, resp.attempts);
        if (r && create_only && commit_was_ours(s, w, r, resp.attempts))
            r = LMR_OK;
    } else {
        if (w->part.len)
            r = flush_part(w, err);
        if (!r)
            r = uploads_drain(w, err);
        struct lmr_buf body, q;
        lmr_buf_init(&body, 1 << 20);
        lmr_buf_init(&q, 4096);
        if (!r)
            r = lmr_buf_append_str(&body,
                                   "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
        for (size_t i = 0; !r && i < w->n_parts; i++) {
            r = lmr_buf_printf(&body, "<Part><PartNumber>%zu</PartNumber><ETag>", i + 1);
            if (!r)
                r = lmr_aws_xml_escape(&body, w->etags[i]);
            if (!r)
                r = lmr_buf_append_str(&body, "</ETag></Part>");
        }
        if (!r)
            r = lmr_buf_append_str(&body, "</CompleteMultipartUpload>");
        if (!r)
            r = upload_query(w, 0, &q);
        struct lmr_aws_header hs[2] = {{"Content-Type", "application/xml"}, cond};
        if (!r) {
            r = s3_send(s, "POST", w->path, q.data, w->resource, hs, create_only ? 2 : 1, body.data, body.len, &resp, 0,
                        err);
            count(s, &s->stats.put_requests, resp.attempts);
            if (r && commit_was_ours(s, w, r, resp.attempts)) {
                r = LMR_OK;
                free(w->upload_id); /* completed by the first attempt: nothing to abort */
                w->upload_id = NULL;
            }
        }
        if (!r && w->upload_id) {
            struct complete_state cs = {0};
            lmr_aws_xml_parse(resp.body.data ? resp.body.data : "", resp.body.len, complete_xml, &cs, NULL);
            if (cs.code[0])
                r = lmr_fail(err, !strcmp(cs.code, "PreconditionFailed") ? LMR_ERR_EXISTS : LMR_ERR_HTTP,
                             "%s: S3 could not complete the multipart upload (%s: %s)", w->resource, cs.code,
                             cs.message);
        }
        if (r)
            abort_upload(w); /* nothing half-written stays behind */
        else {
            free(w->upload_id);
            w->upload_id = NULL;
        }
        lmr_buf_clean_up(&body);
        lmr_buf_clean_up(&q);
    }
    if (r == LMR_ERR_EXISTS)
        lmr_fail(err, LMR_ERR_EXISTS, "%s already exists: a create-only commit lost to an earlier one", w->resource);
    lmr_aws_response_clean_up(&resp);
    writer_free(w);
    return r;
}

static void s3_abort(struct lmr_store_writer *wb)
{
    struct s3_writer *w = (struct s3_writer *)wb;
    abort_upload(w);
    writer_free(w);
}

/* ---- deleting ----------------------------------------------------------------------------------------------- */

struct delete_state {
    char key[1100], code[128], message[512];
    size_t errors;
};

static enum lmr_result delete_xml(void *ud, const char *path, const char *text, size_t len)
{
    struct delete_state *ds = ud;
    if (ds->errors > 1)
        return LMR_OK;
    if (!strcmp(path, "DeleteResult/Error/Key"))
        snprintf(ds->key, sizeof ds->key, "%.*s", (int)len, text);
    else if (!strcmp(path, "DeleteResult/Error/Code"))
        snprintf(ds->code, sizeof ds->code, "%.*s", (int)len, text);
    else if (!strcmp(path, "DeleteResult/Error/Message"))
        snprintf(ds->message, sizeof ds->message, "%.*s", (int)len, text);
    else if (!strcmp(path, "DeleteResult/Error"))
        ds->errors++;
    return LMR_OK;
}

static enum lmr_result s3_delete(struct lmr_store *s, const char *const *keys, size_t n, struct lmr_err *err)
{
    struct s3_store *st = impl_of(s);
    char *resource = resource_of(st->bucket, NULL);
    enum lmr_result r = resource ? LMR_OK : LMR_ERR_NOMEM;
    struct lmr_buf body;
    lmr_buf_init(&body, 4 << 20);
    struct lmr_aws_response resp;
    lmr_aws_response_init(&resp);
    for (size_t start = 0; !r && start < n; start += DELETE_BATCH) {
        size_t end = start + DELETE_BATCH < n ? start + DELETE_BATCH : n;
        lmr_buf_reset(&body);
        r = lmr_buf_append_str(&body, "<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Quiet>true</Quiet>");
        for (size_t i = start; !r && i < end; i++) {
            r = lmr_buf_append_str(&body, "<Object><Key>");
            if (!r)
                r = lmr_aws_xml_escape(&body, keys[i]);
            if (!r)
                r = lmr_buf_append_str(&body, "</Key></Object>");
        }
        if (!r)
            r = lmr_buf_append_str(&body, "</Delete>");
        if (r)
            break;
        unsigned char md5[EVP_MAX_MD_SIZE];
        unsigned int md5_len = 0;
        char md5_b64[32];
        EVP_Digest(body.data, body.len, md5, &md5_len, EVP_md5(), NULL);
        EVP_EncodeBlock((unsigned char *)md5_b64, md5, (int)md5_len);
        struct lmr_aws_header hs[] = {{"Content-MD5", md5_b64}, {"Content-Type", "application/xml"}};
        r = s3_send(s, "POST", "/", "delete", resource, hs, 2, body.data, body.len, &resp, 0, err);
        count(s, &s->stats.delete_requests, resp.attempts);
        if (r)
            break;
        struct delete_state ds = {0};
        r = lmr_aws_xml_parse(resp.body.data ? resp.body.data : "", resp.body.len, delete_xml, &ds, err);
        if (!r && ds.errors)
            r = lmr_fail(err, !strcmp(ds.code, "AccessDenied") ? LMR_ERR_AUTH : LMR_ERR_HTTP,
                         "s3://%s/%s: S3 could not delete it (%s: %s)%s", st->bucket, ds.key, ds.code, ds.message,
                         ds.errors > 1 ? ", nor some other keys of the batch" : "");
    }
    lmr_aws_response_clean_up(&resp);
    lmr_buf_clean_up(&body);
    free(resource);
    return r;
}

/* ---- store ------------------------------------------------------------------------------------------------- */

static void s3_destroy(struct lmr_store *s)
{
    struct s3_store *st = impl_of(s);
    lmr_aws_client_destroy(st->client);
    free(st->bucket);
    free(st);
    free(s->root_uri);
    free(s);
}

/* ---- versions: ETags and If-Match --------------------------------------------------------------------- */

static enum lmr_result s3_get_versioned(struct lmr_store *s, const char *key, struct lmr_buf *out,
                                        char etag[LMR_STORE_ETAG_BYTES], struct lmr_err *err)
{
    struct s3_store *st = impl_of(s);
    char *path = key_path(key), *resource = resource_of(st->bucket, key);
    struct lmr_aws_response resp;
    lmr_aws_response_init(&resp);
    enum lmr_result r = path && resource ? LMR_OK : LMR_ERR_NOMEM;
    size_t room = out->max_bytes - out->len;
    if (!r) {
        r = s3_send(s, "GET", path, NULL, resource, NULL, 0, NULL, 0, &resp, room ? room : 1, err);
        count(s, &s->stats.get_requests, resp.attempts);
    }
    if (!r && !lmr_aws_response_header(&resp, "ETag", etag, LMR_STORE_ETAG_BYTES))
        r = lmr_fail(err, LMR_ERR_FORMAT, "%s: S3 answered GET without an ETag", resource);
    if (!r && resp.body.len > room)
        r = lmr_fail(err, LMR_ERR_TOO_LARGE, "%s is larger than the %zu bytes allowed here", resource, out->max_bytes);
    if (!r && resp.body.len) {
        r = lmr_buf_append(out, resp.body.data, resp.body.len);
        atomic_fetch_add(&s->stats.bytes_read, resp.body.len);
    }
    lmr_aws_response_clean_up(&resp);
    free(path);
    free(resource);
    return r;
}

static enum lmr_result s3_put_if_match(struct lmr_store *s, const char *key, const void *data, size_t len,
                                       const char *etag, struct lmr_err *err)
{
    struct s3_store *st = impl_of(s);
    char *path = key_path(key), *resource = resource_of(st->bucket, key);
    struct lmr_aws_response resp;
    lmr_aws_response_init(&resp);
    struct lmr_aws_header cond = {"If-Match", etag};
    enum lmr_result r = path && resource ? LMR_OK : LMR_ERR_NOMEM;
    if (!r) {
        r = s3_send(s, "PUT", path, NULL, resource, &cond, 1, len ? data : "", len, &resp, 0, err);
        count(s, &s->stats.put_requests, resp.attempts);
        if (!r)
            atomic_fetch_add(&s->stats.bytes_written, len);
    }
    /*
     * A retried If-Match PUT that fails with 412 may have met its own first attempt: applied, but
     * the answer lost (a reset, a 5xx after the fact), so the ETag it names is gone because of
     * this very write. Then the object holds our bytes: its ETag is their MD5 (a single PUT).
     * Equal means the write is ours and done; anything else stays "another writer came first".
     */
    if (r == LMR_ERR_EXISTS && resp.attempts >= 2) {
        unsigned char md5[EVP_MAX_MD_SIZE];
        unsigned int n = 0;
        char want[2 * EVP_MAX_MD_SIZE + 1];
        EVP_Digest(len ? data : "", len, md5, &n, EVP_md5(), NULL);
        hex_of(md5, n, want);
        if (object_has_etag(s, path, resource, want)) {
            LMR_INFO("%s: the If-Match write's first attempt was applied but its answer lost; the object is ours",
                     resource);
            lmr_err_clear(err);
            r = LMR_OK;
            atomic_fetch_add(&s->stats.bytes_written, len);
        }
    }
    /* 412 PreconditionFailed: the ETag changed; 409 ConditionalRequestConflict: a concurrent conditional write. */
    if (r == LMR_ERR_EXISTS || (r && resp.status == 409))
        r = lmr_fail(err, LMR_ERR_EXISTS,
                     "%s changed since it was read (If-Match %s failed): another writer came first", resource, etag);
    lmr_aws_response_clean_up(&resp);
    free(path);
    free(resource);
    return r;
}

static const struct lmr_store_vtable s3_vtable = {
    .scheme = "s3",
    .list = s3_list,
    .head = s3_head,
    .open_read = s3_open_read,
    .read = s3_read,
    .close_read = s3_close_read,
    .open_write = s3_open_write,
    .write = s3_write,
    .commit = s3_commit,
    .abort = s3_abort,
    .delete_keys = s3_delete,
    .destroy = s3_destroy,
    .get_versioned = s3_get_versioned,
    .put_if_match = s3_put_if_match,
    .open_read_with = s3_open_read_with,
};

static enum lmr_result check_bucket(const char *b, struct lmr_err *err)
{
    size_t n = strlen(b);
    bool ok = n >= 3 && n <= 63 && isalnum((unsigned char)b[0]) && isalnum((unsigned char)b[n - 1]);
    for (size_t i = 0; ok && i < n; i++)
        ok = islower((unsigned char)b[i]) || isdigit((unsigned char)b[i]) || b[i] == '-' || b[i] == '.';
    if (!ok)
        return lmr_fail(err, LMR_ERR_INVALID,
                        "'%s' is not a valid S3 bucket name (3-63 lower-case letters, digits, '-' or '.')", b);
    return LMR_OK;
}

enum lmr_result lmr_s3_store_new_with(const char *bucket, const struct lmr_s3_store_options *opts,
                                      struct lmr_store **out, struct lmr_err *err)
{
    enum lmr_result r = check_bucket(bucket, err);
    if (r)
        return r;
    struct lmr_s3_store_options o = opts ? *opts : (struct lmr_s3_store_options){0};
    if (!o.read_ahead)
        o.read_ahead = 4;
    if (o.read_ahead > 64)
        o.read_ahead = 64;
    if (!o.read_part_bytes)
        o.read_part_bytes = 8 * MIB;
    if (!o.part_size_bytes)
        o.part_size_bytes = 8 * MIB;
    if (o.part_size_bytes < MIN_PART_BYTES)
        return lmr_fail(err, LMR_ERR_INVALID, "S3 multipart parts must be at least 5 MiB (got %zu bytes)",
                        o.part_size_bytes);
    struct lmr_store *s = calloc(1, sizeof *s);
    struct s3_store *st = calloc(1, sizeof *st);
    char *uri = malloc(strlen(bucket) + 6);
    if (!s || !st || !uri || !(st->bucket = strdup(bucket))) {
        free(s);
        free(uri);
        if (st)
            free(st->bucket);
        free(st);
        return LMR_ERR_NOMEM;
    }
    struct lmr_aws_client_options co = {.config = o.config};
    if ((r = lmr_aws_client_new(&co, &st->client, err))) {
        free(s);
        free(uri);
        free(st->bucket);
        free(st);
        return lmr_err_prefix(err, "opening s3://%s", bucket);
    }
    st->read_ahead = o.read_ahead;
    st->read_part_bytes = o.read_part_bytes;
    st->part_size_bytes = o.part_size_bytes;
    sprintf(uri, "s3://%s", bucket);
    s->vtable = &s3_vtable;
    s->impl = st;
    s->root_uri = uri;
    *out = s;
    return LMR_OK;
}

static size_t env_size(const char *name, size_t dflt)
{
    const char *v = getenv(name);
    uint64_t x;
    if (v && *v && lmr_parse_size(v, &x) == LMR_OK)
        return (size_t)x;
    if (v && *v)
        LMR_WARN("ignoring %s='%s': not a size", name, v);
    return dflt;
}

enum lmr_result lmr_s3_store_new(const char *bucket, struct lmr_store **out, struct lmr_err *err)
{
    struct lmr_s3_store_options o = {
        .read_ahead = (unsigned)env_size("LMR_S3_READ_AHEAD", 4),
        .read_part_bytes = env_size("LMR_S3_READ_PART_BYTES", 8 * MIB),
        .part_size_bytes = env_size("LMR_S3_PART_BYTES", 8 * MIB),
    };
    return lmr_s3_store_new_with(bucket, &o, out, err);
}

/* ---- response parsers without a request (fuzzing) ----------------------------------------------------------- */

static enum lmr_result ignore_object(void *user_data, const struct lmr_store_object *obj)
{
    (void)user_data;
    (void)obj;
    return LMR_OK;
}

enum lmr_result lmr_s3_parse_response(enum lmr_s3_response kind, const char *xml, size_t len, lmr_store_list_fn fn,
                                      void *user_data, struct lmr_err *err)
{
    enum lmr_result r = LMR_ERR_INVALID;
    switch (kind) {
    case LMR_S3_LIST_PAGE: {
        /* Set up as s3_list does (keep the two in step when list_page changes). */
        struct lmr_err own = {0};
        struct list_page lp = {.fn = fn ? fn : ignore_object,
                               .user_data = user_data,
                               .err = err ? err : &own,
                               .resource = "s3://fuzz/",
                               .check_order = true};
        lmr_buf_init(&lp.key, 1024);
        lmr_buf_init(&lp.last_key, 1024);
        lmr_buf_init(&lp.token, 4096);
        lmr_buf_init(&lp.sent_token, 4096);
        r = lmr_aws_xml_parse(xml, len, list_xml, &lp, err);
        lmr_buf_clean_up(&lp.key);
        lmr_buf_clean_up(&lp.last_key);
        lmr_buf_clean_up(&lp.token);
        lmr_buf_clean_up(&lp.sent_token);
        break;
    }
    case LMR_S3_INITIATE_UPLOAD: {
        char *id = NULL;
        r = lmr_aws_xml_parse(xml, len, initiate_xml, &id, err);
        free(id);
        break;
    }
    case LMR_S3_COMPLETE_UPLOAD: {
        struct complete_state cs = {0};
        r = lmr_aws_xml_parse(xml, len, complete_xml, &cs, err);
        break;
    }
    case LMR_S3_DELETE_RESULT: {
        struct delete_state ds = {0};
        r = lmr_aws_xml_parse(xml, len, delete_xml, &ds, err);
        break;
    }
    }
    return r;
}
