#include "role.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "coordinator.h"
#include "aws/curl_api.h"
#include "job/args.h"
#include "job/task.h"
#include "job/task_log.h"
#include "job_plan.h"
#include "lambda/aws_invoker.h"
#include "lease.h"
#include "util/log.h"
#include "util/misc.h"

#define EVENT_MAX_BYTES (256u * 1024)

static enum lmr_result respond(struct lmr_buf *response, const char *job_id, const char *status, const char *error)
{
    json_t *j = json_pack("{s:s, s:s}", "job_id", job_id ? job_id : "", "status", status);
    if (j && error)
        json_object_set_new(j, "error", json_string(error));
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    enum lmr_result r = s ? lmr_buf_append_str(response, s) : LMR_ERR_NOMEM;
    free(s);
    return r;
}

static enum lmr_result read_manifest(struct lmr_store *work, const char *key, struct lmr_job_plan *plan,
                                     struct lmr_err *err)
{
    struct lmr_buf b;
    lmr_buf_init(&b, LMR_MANIFEST_MAX_BYTES);
    enum lmr_result r = lmr_store_get(work, key, 0, LMR_STORE_TO_END, &b, err);
    json_error_t je;
    json_t *m = r ? NULL : json_loadb(b.data ? b.data : "", b.len, 0, &je);
    lmr_buf_clean_up(&b);
    if (!r && !m)
        r = lmr_fail(err, LMR_ERR_FORMAT, "manifest %s%s is not JSON: %s", work->root_uri, key, je.text);
    if (!r)
        r = lmr_plan_from_manifest(m, plan, err);
    json_decref(m);
    return r;
}

/* The job record's status ("running", "succeeded", ...), or "" when there is none; *record gets the record. */
static void job_status(struct lmr_store *work, const struct lmr_job_plan *plan, char *out, size_t cap, json_t **record)
{
    char *key = lmr_work_key(&plan->job, "job.json");
    struct lmr_buf b;
    lmr_buf_init(&b, 4u << 20);
    json_t *j = NULL;
    if (key && lmr_store_get(work, key, 0, LMR_STORE_TO_END, &b, NULL) == LMR_OK)
        j = json_loadb(b.data ? b.data : "", b.len, 0, NULL);
    snprintf(out, cap, "%s", lmr_json_str(j, "status", ""));
    *record = j;
    lmr_buf_clean_up(&b);
    free(key);
}

/* The event's "speculation" object ({"enabled", "quantile", "factor", "min_ms"}, each optional: the
 * defaults of speculation.h), validated as the driver's options are. */
static enum lmr_result speculation_from_event(json_t *ev, struct lmr_speculation *spec, struct lmr_err *err)
{
    *spec = lmr_speculation_defaults();
    json_t *s = json_object_get(ev, "speculation");
    if (!s)
        return LMR_OK;
    if (!json_is_object(s))
        return lmr_fail(err, LMR_ERR_FORMAT, "coordinator event: \"speculation\" must be an object");
    json_t *v;
    if ((v = json_object_get(s, "enabled")))
        spec->enabled = json_is_true(v);
    if ((v = json_object_get(s, "quantile")))
        spec->quantile = json_number_value(v);
    if ((v = json_object_get(s, "factor")))
        spec->factor = json_number_value(v);
    if ((v = json_object_get(s, "min_ms"))) {
        double ms = json_number_value(v);
        spec->min_ms = ms < 0                            ? UINT32_MAX
                       : ms > LMR_SPECULATION_MIN_MS_MAX ? LMR_SPECULATION_MIN_MS_MAX + 1u
                                                         : (unsigned)ms;
    }
    enum lmr_result r = lmr_speculation_check(spec, err);
    return r ? lmr_err_prefix(err, "coordinator event") : LMR_OK;
}

/* The event's "rebalance": "auto" (or absent), "on" or "off". */
static enum lmr_rebalance rebalance_from_event(const json_t *ev)
{
    const char *v = lmr_json_str(ev, "rebalance", "auto");
    return !strcmp(v, "on") ? LMR_REBALANCE_ON : !strcmp(v, "off") ? LMR_REBALANCE_OFF : LMR_REBALANCE_AUTO;
}

/* The event for the next round: the same job, the lease handed over from this holder. */
static enum lmr_result continue_job(struct lmr_invoker *inv, json_t *ev, const char *function, const char *holder,
                                    struct lmr_err *err)
{
    json_t *next = json_deep_copy(ev);
    json_object_set_new(next, "holder", json_string(holder));
    json_object_set_new(next, "round", json_integer((json_int_t)lmr_json_u64(ev, "round", 1) + 1));
    json_object_set_new(next, "resume", json_true());
    char *text = next ? json_dumps(next, JSON_COMPACT) : NULL;
    json_decref(next);
    struct lmr_invoke_result ir;
    lmr_invoke_result_init(&ir, 64 * 1024);
    enum lmr_result r =
        text ? lmr_invoke(inv, function, text, strlen(text), LMR_INVOKE_EVENT, 0, &ir, err) : LMR_ERR_NOMEM;
    lmr_invoke_result_clean_up(&ir);
    free(text);
    return r;
}

static void *load_curl(void *arg)
{
    (void)arg;
    lmr_curl_load(NULL); /* once per process: a failure is the handler's to report */
    return NULL;
}

void lmr_coordinator_init(void)
{
    pthread_t t;
    pthread_attr_t a;
    if (pthread_attr_init(&a))
        return;
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &a, load_curl, NULL)) /* no thread: the handler's client opens it itself */
        LMR_DEBUG("coordinator: no thread to open libcurl ahead of the event");
    pthread_attr_destroy(&a);
}

enum lmr_result lmr_coordinator_handle(void *user_data, const struct lmr_runtime_context *ctx, const char *event,
                                       size_t event_len, struct lmr_buf *response, struct lmr_err *err)
{
    json_error_t je;
    json_t *ev = event_len <= EVENT_MAX_BYTES ? json_loadb(event, event_len, 0, &je) : NULL;
    if (!ev)
        return lmr_fail(err, LMR_ERR_FORMAT, "coordinator event: not JSON of at most %u bytes", EVENT_MAX_BYTES);
    json_t *fns = json_object_get(ev, "functions"), *mf = json_object_get(ev, "manifest");
    const char *kind = lmr_json_str(ev, "kind", ""), *root = lmr_json_str(mf, "root", NULL),
               *mkey = lmr_json_str(mf, "key", NULL), *fingerprint = lmr_json_str(ev, "fingerprint", NULL),
               *map_fn = lmr_json_str(fns, "map", NULL), *reduce_fn = lmr_json_str(fns, "reduce", NULL),
               *self_fn = lmr_json_str(fns, "coordinator", ctx && ctx->function_name ? ctx->function_name : NULL);
    if (strcmp(kind, "coordinate") || !root || !mkey || !fingerprint || !map_fn || !reduce_fn || !self_fn) {
        json_decref(ev);
        return lmr_fail(err, LMR_ERR_FORMAT,
                        "coordinator event: needs kind \"coordinate\", manifest {root, key}, fingerprint and "
                        "functions {map, reduce, coordinator}");
    }
    struct lmr_store_set stores = {0};
    struct lmr_store *work = NULL, *out = NULL;
    double t0 = lmr_mono_ms(), invoked_ms = (double)lmr_wall_ms();
    struct lmr_buf log;
    lmr_buf_init(&log, LMR_TASK_LOG_MAX_BYTES);
    lmr_task_log_begin(&log);
    struct lmr_job_plan plan = {0};
    struct lmr_lease *lease = NULL;
    struct lmr_invoker *inv = NULL;
    bool invoker_in_use = false;
    json_t *previous = NULL, *report = NULL, *record = NULL;
    char *lease_key = NULL, status[32] = "";
    enum lmr_result r = lmr_store_set_get(&stores, root, &work, err);
    if (!r)
        r = read_manifest(work, mkey, &plan, err);
    if (!r)
        r = lmr_store_set_get(&stores, plan.job.output.root, &out, err);
    if (r)
        goto done;
    int parent = (int)getppid(); /* see lmr_coordinator_options.parent_pid */
    LMR_INFO("coordinator round %llu of job %s: %zu map tasks, %u reducers, output %s",
             (unsigned long long)lmr_json_u64(ev, "round", 1), plan.job.job_id, plan.ntasks, plan.job.reducers,
             plan.output_uri);
    /* A repeated delivery of a job that has finished: nothing to do. */
    job_status(work, &plan, status, sizeof status, &record);
    if (status[0] && strcmp(status, "running")) {
        r = respond(response, plan.job.job_id, status, NULL);
        goto done;
    }
    /* A job an earlier coordinator left running (a resume, a retried Event): this is the next round. */
    if (status[0] && lmr_json_u64(record, "round", 0) >= lmr_json_u64(ev, "round", 1))
        json_object_set_new(ev, "round", json_integer((json_int_t)lmr_json_u64(record, "round", 0) + 1));
    lease_key = lmr_output_key(&plan.job, "_lambdamr/lease.json");
    struct lmr_lease_options lo = {.store = out,
                                   .key = lease_key,
                                   .output_uri = plan.output_uri,
                                   .job_id = plan.job.job_id,
                                   .fingerprint = fingerprint,
                                   .work_root = plan.job.work.root,
                                   .work_key = plan.job.work.key,
                                   .duration_ms = lmr_json_u64(ev, "lease_duration_ms", 0),
                                   .takeover_holder = lmr_json_str(ev, "holder", NULL)};
    if (!lease_key) {
        r = LMR_ERR_NOMEM;
        goto done;
    }
    /* A lease of this same job that was not handed to us: an earlier coordinator died (a retried
     * Event) or still runs (a duplicate delivery). Wait for it to expire (it is not renewed when
     * its holder is dead), for at most two lease durations and not past our deadline. */
    uint64_t dur = lo.duration_ms ? lo.duration_ms : LMR_LEASE_DEFAULT_DURATION_MS;
    uint64_t give_up = lmr_wall_ms() + 2 * dur + 1000;
    if (ctx && ctx->deadline_ms && give_up > ctx->deadline_ms - 1000)
        give_up = ctx->deadline_ms - 1000;
    while ((r = lmr_lease_acquire(&lo, &lease, &previous, err)) == LMR_ERR_EXISTS && lmr_wall_ms() < give_up) {
        json_t *cur = NULL;
        bool same_job = lmr_lease_peek(out, lease_key, &cur, NULL) == LMR_OK &&
                        !strcmp(lmr_json_str(cur, "job_id", ""), plan.job.job_id);
        json_decref(cur);
        if (!same_job)
            break;
        lmr_err_clear(err);
        lmr_sleep_ms(dur / 4 ? dur / 4 : 1);
    }
    if (r == LMR_ERR_EXISTS) { /* another coordinator drives the job: this delivery is a duplicate */
        LMR_INFO("job %s: %s", plan.job.job_id, err->msg);
        lmr_err_clear(err);
        r = respond(response, plan.job.job_id, "busy", NULL);
        goto done;
    }
    if (r)
        goto done;
    struct lmr_aws_invoker_options ao = {0};
    if ((r = lmr_aws_invoker_new(&ao, &inv, err))) {
        lmr_lease_release(lease, "failed", NULL);
        goto done;
    }

    /* Stop starting tasks a margin before the deadline (a quarter of the time given, if shorter). */
    uint64_t stop_at = 0;
    if (ctx && ctx->deadline_ms) {
        int64_t left = lmr_runtime_remaining_ms(ctx);
        const char *m = getenv("LMR_COORDINATOR_MARGIN_MS");
        uint64_t margin = m ? strtoull(m, NULL, 10) : LMR_COORDINATOR_DEADLINE_MARGIN_MS;
        if (left > 0 && margin > (uint64_t)left / 4 && !m)
            margin = (uint64_t)left / 4;
        stop_at = ctx->deadline_ms > margin ? ctx->deadline_ms - margin : 1;
    }
    plan.command = lmr_json_str(ev, "command", NULL); /* borrowed from the event, for the report */
    bool continued = false;
    json_t *er = json_object_get(ev, "earlier_requests");
    /* The prices the driver chose (its region, --price-file); without them the built-in default. */
    struct lmr_prices prices;
    bool have_prices =
        json_object_get(ev, "prices") && !lmr_prices_from_json(json_object_get(ev, "prices"), &prices, NULL);
    plan.command = lmr_json_str(ev, "command", NULL);
    struct lmr_speculation spec;
    if ((r = speculation_from_event(ev, &spec, err))) {
        lmr_lease_release(lease, "failed", NULL);
        goto done;
    }
    struct lmr_coordinator_options co = {
        .invoker = inv,
        .map_function = map_fn,
        .reduce_function = reduce_fn,
        .work_store = work,
        .output_store = out,
        .driver_stores = &stores,
        .concurrency = (uint32_t)lmr_json_u64(ev, "concurrency", 8),
        .max_attempts = (uint32_t)lmr_json_u64(ev, "max_attempts", 3),
        .speculation = &spec,
        .rebalance = rebalance_from_event(ev),
        .invoker_in_use = &invoker_in_use,
        .prices = have_prices ? &prices : NULL,
        .lease = lease,
        .stop_at_ms = stop_at,
        .continued = &continued,
        /* A job record that says running: an earlier coordinator died or paused (a retried Event). */
        .resume = json_is_true(json_object_get(ev, "resume")) || lmr_json_u64(ev, "round", 1) > 1 ||
                  !strcmp(status, "running"),
        .parent_pid = parent,
        .round = (uint32_t)lmr_json_u64(ev, "round", 1),
        /* This invocation, for the report; the record an earlier round left, to carry its figures on. */
        .request_id = ctx && ctx->request_id ? ctx->request_id : NULL,
        .memory_mb = ctx ? ctx->memory_size_mb : 0,
        .invoked_ms = invoked_ms,
        .earlier_record = !strcmp(status, "running") ? record : NULL,
        .earlier_requests = {lmr_json_u64(er, "get", 0), lmr_json_u64(er, "put", 0), lmr_json_u64(er, "list", 0),
                             lmr_json_u64(er, "head", 0), lmr_json_u64(er, "delete", 0)},
    };
    r = lmr_coordinator_run(&co, &plan, &report, err);
    if (continued) {
        lmr_err_clear(err);
        r = continue_job(inv, ev, self_fn, lmr_lease_holder(lease), err);
        if (r) /* nobody will continue: the lease runs out and the job can be resumed by rerunning */
            LMR_WARN("job %s: could not hand over to a new coordinator: %s", plan.job.job_id, err->msg);
        r = respond(response, plan.job.job_id, r ? "failed" : "continued", r ? err->msg : NULL);
    } else {
        const char *st = !r ? "succeeded" : r == LMR_ERR_CANCELLED ? "cancelled" : "failed";
        char msg[LMR_ERR_MSG_BYTES];
        snprintf(msg, sizeof msg, "%s", r ? err->msg : "");
        lmr_err_clear(err);
        r = respond(response, plan.job.job_id, st, msg[0] ? msg : NULL);
    }
done:;
    char round_name[32];
    snprintf(round_name, sizeof round_name, "round-%llu", (unsigned long long)lmr_json_u64(ev, "round", 1));
    lmr_task_log_end(&log, work, plan.job.work.key ? &plan.job : NULL, "coordinator", round_name, t0, r, err);
    json_decref(report);
    json_decref(record);
    json_decref(previous);
    if (invoker_in_use) /* a superseded attempt's sync invocation is still in flight on it: leave it */
        LMR_WARN("job %s: a superseded attempt is still in flight; its invoker is left to it", plan.job.job_id);
    else
        lmr_invoker_destroy(inv);
    lmr_lease_destroy(lease);
    free(lease_key);
    lmr_plan_clean_up(&plan);
    lmr_store_set_clean_up(&stores);
    json_decref(ev);
    return r;
}
