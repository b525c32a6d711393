#include "report/stream_report.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "job/task.h"
#include "util/misc.h"

/* Store figures in the order the report names them. */
enum { REQ_GET, REQ_PUT, REQ_LIST, REQ_HEAD, REQ_DELETE, REQ_BYTES_READ, REQ_BYTES_WRITTEN, REQ_RETRIES, REQ_N };
static const char *const req_names[REQ_N] = {"get",    "put",        "list",          "head",
                                             "delete", "bytes_read", "bytes_written", "retries"};

struct win {
    uint64_t start_ms, window_ms;
    bool closed, already;
    uint64_t records, closed_ms;
    char *key;
    uint64_t first_ms, last_ms;
    uint64_t invocations, finals, failed, cold, throttle_retries, records_invoked, dropped;
    struct lmr_billing_totals billing;
    uint64_t req[REQ_N];
    json_t *invs; /* the invocations kept in full */
};

struct slot {
    char shard[LMR_STREAM_SHARD_ID_MAX];
    uint32_t lane;
};

struct lmr_stream_report {
    pthread_mutex_t mu;
    json_t *params;
    uint64_t start_ms;
    size_t windows_max, invs_max, summaries_max;
    struct win open[LMR_STREAM_REPORT_OPEN_WINDOWS];
    size_t n_open;
    struct win *full; /* ring of windows_max closed windows */
    size_t n_full, full_head;
    json_t *summaries; /* windows before the full ones, oldest first */
    uint64_t summaries_dropped;
    /* Totals of the run (every window, open ones too). */
    uint64_t windows_closed, invocations, failed, cold, finals, throttle_retries;
    struct lmr_billing_totals billing;
    uint64_t req[REQ_N];
    struct slot *slots;
    size_t n_slots;
};

enum lmr_result lmr_stream_report_new(const struct lmr_stream_report_options *o, struct lmr_stream_report **out,
                                      struct lmr_err *err)
{
    struct lmr_stream_report *r = calloc(1, sizeof *r);
    *out = NULL;
    if (!r)
        return lmr_fail(err, LMR_ERR_NOMEM, "out of memory for the stream report");
    r->windows_max = o->windows_max ? o->windows_max : LMR_STREAM_REPORT_WINDOWS;
    r->invs_max =
        o->invocations_per_window_max ? o->invocations_per_window_max : LMR_STREAM_REPORT_INVOCATIONS_PER_WINDOW;
    r->summaries_max = o->summaries_max ? o->summaries_max : LMR_STREAM_REPORT_SUMMARIES;
    r->params = o->params ? json_deep_copy(o->params) : json_object();
    r->full = calloc(r->windows_max, sizeof *r->full);
    r->summaries = json_array();
    r->slots = calloc(LMR_STREAM_REPORT_SLOTS, sizeof *r->slots);
    r->start_ms = lmr_wall_ms();
    pthread_mutex_init(&r->mu, NULL);
    if (!r->params || !r->full || !r->summaries || !r->slots) {
        lmr_stream_report_destroy(r);
        return lmr_fail(err, LMR_ERR_NOMEM, "out of memory for the stream report");
    }
    *out = r;
    return LMR_OK;
}

static void win_clean_up(struct win *w)
{
    free(w->key);
    json_decref(w->invs);
    memset(w, 0, sizeof *w);
}

void lmr_stream_report_destroy(struct lmr_stream_report *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_open; i++)
        win_clean_up(&r->open[i]);
    for (size_t i = 0; r->full && i < r->windows_max; i++)
        win_clean_up(&r->full[i]);
    free(r->full);
    free(r->slots);
    json_decref(r->params);
    json_decref(r->summaries);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

/* A window's one-line figures (also the head of its full entry). */
static json_t *win_summary(const struct win *w)
{
    return json_pack("{s:I, s:I, s:s, s:I, s:I, s:I, s:I, s:f, s:f, s:I}", "start_ms", (json_int_t)w->start_ms,
                     "end_ms", (json_int_t)(w->start_ms + w->window_ms), "status",
                     !w->closed   ? "open"
                     : w->already ? "already_committed"
                                  : "committed",
                     "records", (json_int_t)w->records, "invocation_count", (json_int_t)w->invocations, "cold_starts",
                     (json_int_t)w->cold, "failed_invocations", (json_int_t)w->failed, "billed_duration_ms",
                     w->billing.billed_ms, "gb_seconds", w->billing.gb_seconds, "closed_ms", (json_int_t)w->closed_ms);
}

static json_t *req_json(const uint64_t req[REQ_N])
{
    json_t *o = json_object();
    for (int i = 0; o && i < REQ_N; i++)
        json_object_set_new(o, req_names[i], json_integer((json_int_t)req[i]));
    return o;
}

static json_t *win_full(const struct win *w, const struct lmr_prices *p)
{
    json_t *o = win_summary(w);
    if (!o)
        return NULL;
    if (w->key)
        json_object_set_new(o, "key", json_string(w->key));
    json_object_set_new(o, "first_invoke_ms", json_integer((json_int_t)w->first_ms));
    json_object_set_new(o, "last_answer_ms", json_integer((json_int_t)w->last_ms));
    json_object_set_new(o, "final_invokes", json_integer((json_int_t)w->finals));
    json_object_set_new(o, "records_invoked", json_integer((json_int_t)w->records_invoked));
    json_object_set_new(o, "throttle_retries", json_integer((json_int_t)w->throttle_retries));
    json_object_set_new(o, "init_duration_ms", json_real(w->billing.init_ms));
    json_object_set_new(o, "init_gb_seconds", json_real(w->billing.init_gb_seconds));
    if (p)
        json_object_set_new(o, "lambda_usd",
                            json_real(w->billing.gb_seconds * p->lambda_gb_second +
                                      (double)w->billing.invocations * p->lambda_per_million_requests / 1e6));
    json_object_set_new(o, "store", req_json(w->req));
    json_object_set_new(o, "invocations_dropped", json_integer((json_int_t)w->dropped));
    /* A copy: the poller goes on adding to the window while the caller writes this out. */
    json_object_set_new(o, "invocations", w->invs ? json_deep_copy(w->invs) : json_array());
    return o;
}

/* The window's entry among the open ones, created (at its place in window order) when missing. */
static struct win *open_win(struct lmr_stream_report *r, uint64_t start_ms, uint64_t window_ms)
{
    size_t i = 0;
    while (i < r->n_open && r->open[i].start_ms < start_ms)
        i++;
    if (i < r->n_open && r->open[i].start_ms == start_ms)
        return &r->open[i];
    if (r->n_open == LMR_STREAM_REPORT_OPEN_WINDOWS) {
        /* Too many windows at once: the oldest open one goes to the summaries as it is. */
        json_t *s = win_summary(&r->open[0]);
        if (s && json_array_append_new(r->summaries, s) == 0 && json_array_size(r->summaries) > r->summaries_max) {
            json_array_remove(r->summaries, 0);
            r->summaries_dropped++;
        }
        win_clean_up(&r->open[0]);
        memmove(&r->open[0], &r->open[1], (r->n_open - 1) * sizeof r->open[0]);
        r->n_open--;
        if (i)
            i--;
    }
    memmove(&r->open[i + 1], &r->open[i], (r->n_open - i) * sizeof r->open[0]);
    r->n_open++;
    struct win *w = &r->open[i];
    memset(w, 0, sizeof *w);
    w->start_ms = start_ms;
    w->window_ms = window_ms;
    w->invs = json_array();
    return w;
}

static uint32_t slot_of(struct lmr_stream_report *r, const char *shard, uint32_t lane)
{
    for (size_t i = 0; i < r->n_slots; i++)
        if (r->slots[i].lane == lane && !strcmp(r->slots[i].shard, shard))
            return (uint32_t)i;
    if (r->n_slots == LMR_STREAM_REPORT_SLOTS)
        return LMR_STREAM_REPORT_SLOTS - 1; /* every further lane shares the last row */
    snprintf(r->slots[r->n_slots].shard, sizeof r->slots[r->n_slots].shard, "%s", shard);
    r->slots[r->n_slots].lane = lane;
    return (uint32_t)r->n_slots++;
}

/* Where the "store" member's object starts in payload[0..len), or NULL (see lmr_stream_report_payload_store). */
static const char *store_member(const char *payload, size_t len)
{
    static const char tag[] = ",\"store\":{";
    size_t tl = sizeof tag - 1;
    if (!payload || len < tl + 2 || payload[len - 1] != '}')
        return NULL;
    /* The member is small and last: look for it in the response's tail only. */
    size_t from = len > 512 ? len - 512 : 0;
    for (size_t i = len - tl - 1; i + 1 > from; i--)
        if (!memcmp(payload + i, tag, tl))
            return payload + i + tl - 1;
    return NULL;
}

/*
 * The store member as the stream function writes it ({"get":N,...,"retries":N} in req_names'
 * order, then the response's closing brace) into req; false for any other shape (then it is
 * parsed as JSON). Saves a JSON parse per invocation.
 */
static bool scan_store(const char *p, const char *end, uint64_t req[REQ_N])
{
    if (p >= end || *p++ != '{')
        return false;
    for (int i = 0; i < REQ_N; i++) {
        size_t nl = strlen(req_names[i]);
        if ((size_t)(end - p) < nl + 4 || p[0] != '"' || memcmp(p + 1, req_names[i], nl) || p[nl + 1] != '"' ||
            p[nl + 2] != ':')
            return false;
        p += nl + 3;
        uint64_t v = 0;
        const char *digits = p;
        while (p < end && *p >= '0' && *p <= '9' && p - digits < 19)
            v = v * 10 + (uint64_t)(*p++ - '0');
        if (p == digits || p >= end || *p != (i + 1 < REQ_N ? ',' : '}') || v > (uint64_t)INT64_MAX ||
            (digits[0] == '0' && p - digits > 1))
            return false; /* not as the function writes it (JSON has no leading zeros): parse it */
        p++;
        req[i] = v;
    }
    return end - p == 1 && *p == '}';
}

json_t *lmr_stream_report_payload_store(const char *payload, size_t len)
{
    const char *member = store_member(payload, len);
    if (!member)
        return NULL;
    json_t *o = json_loadb(member, (size_t)(payload + len - 1 - member), 0, NULL);
    if (json_is_object(o))
        return o;
    json_decref(o);
    return NULL;
}

void lmr_stream_report_add_invocation(struct lmr_stream_report *r, const struct lmr_stream_invocation *inv,
                                      uint64_t window_ms)
{
    if (!r || !inv)
        return;
    const struct lmr_invoke_result *res = inv->res;
    uint64_t req[REQ_N] = {0};
    json_t *store = NULL; /* parsed only when the member is not in the function's own shape */
    bool have_store = false;
    const char *member = res ? store_member(res->payload.data, res->payload.len) : NULL;
    if (member && scan_store(member, res->payload.data + res->payload.len, req)) {
        have_store = true;
    } else if (member) {
        store = lmr_stream_report_payload_store(res->payload.data, res->payload.len);
        have_store = store != NULL;
        for (int i = 0; store && i < REQ_N; i++)
            req[i] = lmr_json_u64(store, req_names[i], 0);
    }
    pthread_mutex_lock(&r->mu);
    struct win *w = open_win(r, inv->window_start_ms, window_ms);
    uint32_t slot = slot_of(r, inv->shard_id ? inv->shard_id : "", inv->lane);
    bool cold = res && res->init_duration_ms > 0;
    w->invocations++;
    r->invocations++;
    w->finals += inv->final;
    r->finals += inv->final;
    w->failed += inv->error != NULL;
    r->failed += inv->error != NULL;
    w->cold += cold;
    r->cold += cold;
    w->records_invoked += inv->records;
    if (res) {
        w->throttle_retries += res->throttle_retries;
        r->throttle_retries += res->throttle_retries;
        lmr_billing_add(&w->billing, res->duration_ms, res->init_duration_ms, res->billed_duration_ms,
                        res->memory_size_mb, 512);
        lmr_billing_add(&r->billing, res->duration_ms, res->init_duration_ms, res->billed_duration_ms,
                        res->memory_size_mb, 512);
    }
    for (int i = 0; have_store && i < REQ_N; i++) {
        w->req[i] += req[i];
        r->req[i] += req[i];
    }
    if (!w->first_ms || inv->start_ms < w->first_ms)
        w->first_ms = inv->start_ms;
    if (inv->end_ms > w->last_ms)
        w->last_ms = inv->end_ms;
    if (json_array_size(w->invs) >= r->invs_max || !w->invs) {
        w->dropped++;
    } else {
        json_t *o = json_pack(
            "{s:s, s:I, s:I, s:b, s:b, s:I, s:I, s:I, s:s, s:f, s:f, s:f, s:b, s:I, s:I, s:I}", "shard",
            inv->shard_id ? inv->shard_id : "", "lane", (json_int_t)inv->lane, "slot", (json_int_t)slot, "final",
            inv->final, "terminated_early", inv->terminated_early, "records", (json_int_t)inv->records, "start_ms",
            (json_int_t)inv->start_ms, "end_ms", (json_int_t)inv->end_ms, "request_id", res ? res->request_id : "",
            "duration_ms", res ? res->duration_ms : 0.0, "billed_duration_ms",
            res ? lmr_billed_ms(res->duration_ms, res->init_duration_ms, res->billed_duration_ms) : 0.0,
            "init_duration_ms", res ? res->init_duration_ms : 0.0, "cold", cold, "memory_size_mb",
            (json_int_t)(res ? res->memory_size_mb : 0), "max_memory_used_mb",
            (json_int_t)(res ? res->max_memory_used_mb : 0), "throttle_retries",
            (json_int_t)(res ? res->throttle_retries : 0));
        if (o && store)
            json_object_set(o, "store", store);
        else if (o && have_store)
            json_object_set_new(o, "store", req_json(req));
        if (o && inv->error)
            json_object_set_new(o, "error", json_string(inv->error));
        if (!o || json_array_append_new(w->invs, o))
            w->dropped++;
    }
    pthread_mutex_unlock(&r->mu);
    json_decref(store);
}

void lmr_stream_report_window_closed(struct lmr_stream_report *r, uint64_t window_start_ms, uint64_t window_ms,
                                     uint64_t records, bool already, const char *key)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    struct win *w = open_win(r, window_start_ms, window_ms);
    w->closed = true;
    w->already = already;
    w->records = records;
    w->closed_ms = lmr_wall_ms();
    free(w->key);
    w->key = key ? strdup(key) : NULL;
    r->windows_closed++;
    /* Into the ring of full windows; the one it replaces becomes a summary line. */
    size_t at = (r->full_head + r->n_full) % r->windows_max;
    if (r->n_full == r->windows_max) {
        at = r->full_head;
        json_t *s = win_summary(&r->full[at]);
        if (s && json_array_append_new(r->summaries, s) == 0 && json_array_size(r->summaries) > r->summaries_max) {
            json_array_remove(r->summaries, 0);
            r->summaries_dropped++;
        }
        win_clean_up(&r->full[at]);
        r->full_head = (r->full_head + 1) % r->windows_max;
    } else {
        r->n_full++;
    }
    r->full[at] = *w;
    size_t i = (size_t)(w - r->open);
    memmove(&r->open[i], &r->open[i + 1], (r->n_open - i - 1) * sizeof r->open[0]);
    r->n_open--;
    pthread_mutex_unlock(&r->mu);
}

json_t *lmr_stream_report_json(struct lmr_stream_report *r, const struct lmr_stream_report_end *e)
{
    const struct lmr_stream_stats *s = e->stats;
    uint64_t own[REQ_N] = {0};
    for (int i = 0; i < 4; i++) {
        const struct lmr_store_stats *st = e->stores[i];
        if (!st)
            continue;
        own[REQ_GET] += atomic_load(&st->get_requests);
        own[REQ_PUT] += atomic_load(&st->put_requests);
        own[REQ_LIST] += atomic_load(&st->list_requests);
        own[REQ_HEAD] += atomic_load(&st->head_requests);
        own[REQ_DELETE] += atomic_load(&st->delete_requests);
        own[REQ_BYTES_READ] += atomic_load(&st->bytes_read);
        own[REQ_BYTES_WRITTEN] += atomic_load(&st->bytes_written);
        own[REQ_RETRIES] += atomic_load(&st->retries);
    }
    pthread_mutex_lock(&r->mu);
    json_t *o = json_deep_copy(r->params);
    uint64_t now = lmr_wall_ms();
    uint64_t all[REQ_N];
    for (int i = 0; i < REQ_N; i++)
        all[i] = r->req[i] + own[i];
    json_t *windows = json_array();
    for (size_t i = 0; windows && i < r->n_full; i++)
        json_array_append_new(windows, win_full(&r->full[(r->full_head + i) % r->windows_max], e->prices));
    for (size_t i = 0; windows && i < r->n_open; i++)
        json_array_append_new(windows, win_full(&r->open[i], e->prices));
    json_t *totals =
        json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:f, s:o, s:o, s:o}",
                  "records_read", (json_int_t)s->records_read, "records_processed", (json_int_t)s->records_processed,
                  "records_failed", (json_int_t)s->records_failed, "invocations", (json_int_t)r->invocations,
                  "failed_invocations", (json_int_t)r->failed, "final_invokes", (json_int_t)r->finals, "cold_starts",
                  (json_int_t)r->cold, "throttle_retries", (json_int_t)r->throttle_retries, "windows_closed",
                  (json_int_t)r->windows_closed, "windows_committed", (json_int_t)s->windows_committed,
                  "windows_already_committed", (json_int_t)s->windows_already_committed, "windows_terminated_early",
                  (json_int_t)s->windows_terminated_early, "windows_merged_by_poller",
                  (json_int_t)s->windows_merged_by_poller, "billed_duration_ms", r->billing.billed_ms,
                  "init_duration_ms", r->billing.init_ms, "gb_seconds", r->billing.gb_seconds, "store", req_json(all),
                  "function_store", req_json(r->req), "driver_store", req_json(own));
    json_t *limits =
        json_pack("{s:I, s:I, s:I, s:I}", "windows_in_full", (json_int_t)r->windows_max, "invocations_per_window",
                  (json_int_t)r->invs_max, "window_summaries", (json_int_t)r->summaries_max, "earlier_windows_dropped",
                  (json_int_t)r->summaries_dropped);
    json_t *summaries = json_copy(r->summaries);
    struct lmr_billing_totals billing = r->billing;
    pthread_mutex_unlock(&r->mu);
    if (!o || !windows || !totals || !limits || !summaries) {
        json_decref(o);
        json_decref(windows);
        json_decref(totals);
        json_decref(limits);
        json_decref(summaries);
        return NULL;
    }
    json_object_set_new(o, "schema_version", json_integer(LMR_STREAM_REPORT_SCHEMA_VERSION));
    json_object_set_new(o, "kind", json_string("stream"));
    json_object_set_new(o, "status", json_string(e->status));
    if (e->error)
        json_object_set_new(o, "error", json_string(e->error));
    json_object_set_new(o, "start_ms", json_integer((json_int_t)r->start_ms));
    json_object_set_new(o, "end_ms", json_integer((json_int_t)now));
    json_object_set_new(o, "wall_ms", json_integer((json_int_t)(now - r->start_ms)));
    json_object_set_new(o, "totals", totals);
    json_object_set_new(o, "limits", limits);
    json_object_set_new(o, "windows", windows);
    json_object_set_new(o, "earlier_windows", summaries);
    if (e->prices) {
        struct lmr_request_counts q = {all[REQ_GET], all[REQ_PUT], all[REQ_LIST], all[REQ_HEAD], all[REQ_DELETE]};
        json_t *c = lmr_cost_stream_totals(e->prices, &billing, &q, e->shard_hours, 0);
        if (c)
            json_object_set_new(o, "cost", c);
    }
    return o;
}

enum lmr_result lmr_stream_report_write(struct lmr_stream_report *r, const struct lmr_stream_report_end *e,
                                        struct lmr_store *store, const char *key, struct lmr_err *err)
{
    json_t *j = lmr_stream_report_json(r, e);
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!text)
        return lmr_fail(err, LMR_ERR_NOMEM, "out of memory writing the stream report %s", key);
    enum lmr_result rr = lmr_store_put(store, key, text, strlen(text), 0, err);
    free(text);
    if (rr)
        lmr_err_prefix(err, "the stream report %s%s%s", store->root_uri, "/", key);
    return rr;
}
