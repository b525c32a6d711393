#define _GNU_SOURCE
#include "stream/handler.h"

#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "job/args.h"
#include "job/counters.h"
#include "job/registry.h"
#include "stream/event.h"
#include "stream/state.h"
#include "util/misc.h"

enum lmr_result lmr_stream_check_job(const struct lmr_job_ops *job, struct lmr_err *err)
{
    if (!job->combine || !job->value_size || !job->reduce || job->map_only)
        return lmr_fail(err, LMR_ERR_UNSUPPORTED,
                        "job '%s' cannot run as a stream job: windows combine at emit time, so the job needs a "
                        "combiner (value_size and combine) and a reduce",
                        job->name);
    return LMR_OK;
}

enum lmr_result lmr_stream_handler_config_init(struct lmr_stream_handler_config *cfg, const struct lmr_job_ops *job,
                                               const struct lmr_job_args *args, struct lmr_err *err)
{
    memset(cfg, 0, sizeof *cfg);
    enum lmr_result r = lmr_stream_check_job(job, err);
    if (r)
        return r;
    cfg->job = job;
    if (job->setup) {
        char msg[512] = "";
        if (job->setup(&cfg->job_state, args, msg, sizeof msg)) {
            cfg->job = NULL;
            return lmr_fail(err, LMR_ERR_INVALID, "job '%s': %s", job->name, msg[0] ? msg : "invalid arguments");
        }
    }
    return LMR_OK;
}

enum lmr_result lmr_stream_handler_config_from_env(struct lmr_stream_handler_config *cfg, struct lmr_err *err)
{
    memset(cfg, 0, sizeof *cfg);
    const char *name = getenv("LMR_STREAM_JOB");
    if (!name || !*name)
        return lmr_fail(err, LMR_ERR_INVALID,
                        "the stream function needs LMR_STREAM_JOB (a job name such as wordcount) in its environment");
    const struct lmr_job_ops *job;
    enum lmr_result r = lmr_job_find(name, &job, err);
    if (r)
        return r;
    struct lmr_job_args *args = NULL;
    const char *args_text = getenv("LMR_STREAM_ARGS");
    if (args_text && *args_text) {
        json_error_t jerr;
        json_t *obj = json_loads(args_text, 0, &jerr);
        if (!obj)
            return lmr_fail(err, LMR_ERR_INVALID, "LMR_STREAM_ARGS is not JSON (%s): give an object of strings",
                            jerr.text);
        r = lmr_job_args_from_json(obj, &args, err);
        json_decref(obj);
        if (r)
            return lmr_err_prefix(err, "LMR_STREAM_ARGS: ");
    }
    r = lmr_stream_handler_config_init(cfg, job, args, err);
    lmr_job_args_destroy(args);
    if (r)
        return r;
    const char *max = getenv("LMR_STREAM_STATE_MAX");
    uint64_t v;
    if (max && *max) {
        if (lmr_parse_u64(max, 64, LMR_STREAM_STATE_MAX_BYTES, &v)) {
            lmr_stream_handler_config_clean_up(cfg);
            return lmr_fail(err, LMR_ERR_INVALID, "LMR_STREAM_STATE_MAX must be a byte count from 64 to %u",
                            LMR_STREAM_STATE_MAX_BYTES);
        }
        cfg->state_max_bytes = (size_t)v;
    }
    const char *fm = getenv("LMR_STREAM_FAIL_MATCH");
    if (fm && *fm)
        cfg->fail_match = strdup(fm);
    return LMR_OK;
}

void lmr_stream_handler_config_clean_up(struct lmr_stream_handler_config *cfg)
{
    if (!cfg)
        return;
    if (cfg->job && cfg->job->teardown)
        cfg->job->teardown(cfg->job_state);
    free(cfg->fail_match);
    memset(cfg, 0, sizeof *cfg);
}

/* The environment's configuration, built on the first invocation. */
static struct lmr_stream_handler_config env_cfg;
static struct lmr_err env_err;
static pthread_once_t env_once = PTHREAD_ONCE_INIT;
static void env_init(void)
{
    lmr_stream_handler_config_from_env(&env_cfg, &env_err);
}

struct state_emitter {
    struct lmr_emitter base;
    struct lmr_stream_state *st;
    const struct lmr_job_ops *job;
    void *job_state;
    enum lmr_result r;
};

static void state_emit(struct lmr_emitter *self, struct lmr_slice key, struct lmr_slice value)
{
    struct state_emitter *em = (struct state_emitter *)self;
    if (!em->r)
        em->r = lmr_stream_state_add(em->st, em->job, em->job_state, key, value);
}

/* Map every line of one record's data. @return 0, or the map's non-zero code. */
static int map_record(const struct lmr_stream_handler_config *cfg, struct state_emitter *em, const uint8_t *p, size_t n,
                      struct lmr_job_counters *counters)
{
    const uint8_t *end = p + n;
    do {
        const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
        const uint8_t *stop = nl ? nl : end;
        size_t len = (size_t)(stop - p);
        if (len && p[len - 1] == '\r')
            len--;
        if (len || !nl) {
            int rc = cfg->job->map(cfg->job_state, lmr_slice_make(p, len), &em->base, counters);
            if (rc)
                return rc;
        }
        p = nl ? nl + 1 : end;
    } while (p < end);
    return 0;
}

enum lmr_result lmr_stream_handler(void *user_data, const struct lmr_runtime_context *ctx, const char *event,
                                   size_t event_len, struct lmr_buf *response, struct lmr_err *err)
{
    const struct lmr_stream_handler_config *cfg = user_data;
    if (!cfg) {
        pthread_once(&env_once, env_init);
        if (env_err.code) {
            if (err)
                *err = env_err;
            return env_err.code;
        }
        cfg = &env_cfg;
    }
    size_t max_state = cfg->state_max_bytes ? cfg->state_max_bytes : LMR_STREAM_STATE_MAX_BYTES;
    struct lmr_stream_event ev;
    struct lmr_stream_state *st = NULL;
    const char *failed = NULL;
    bool full = false;
    struct lmr_job_counters counters = {0};
    enum lmr_result r = lmr_stream_event_parse(event, event_len, &ev, err);
    if (r)
        goto done;
    if (!(st = lmr_stream_state_new(cfg->job->value_size))) {
        r = lmr_fail(err, LMR_ERR_NOMEM, "out of memory for the window state");
        goto done;
    }
    if ((r = lmr_stream_state_merge(st, cfg->job, cfg->job_state, ev.state_text, ev.state_len, NULL, err)))
        goto done;
    struct state_emitter em = {{state_emit}, st, cfg->job, cfg->job_state, LMR_OK};
    for (size_t i = 0; i < ev.n_records && !ev.is_final_invoke; i++) {
        const struct lmr_stream_parsed_record *rec = &ev.records[i];
        if (cfg->fail_match && memmem(rec->data, rec->len, cfg->fail_match, strlen(cfg->fail_match))) {
            failed = rec->sequence_number;
            break;
        }
        lmr_stream_state_begin(st);
        int rc = map_record(cfg, &em, rec->data, rec->len, &counters);
        if (em.r) {
            lmr_stream_state_rollback(st);
            r = lmr_fail(err, em.r,
                         em.r == LMR_ERR_INVALID
                             ? "job '%s' emitted a value whose size is not its value_size (record %s)"
                             : "job '%s' could not combine record %s into the window state",
                         cfg->job->name, rec->sequence_number);
            goto done;
        }
        if (rc) {
            /* The map rejected this record: report it, keep what came before. */
            lmr_stream_state_rollback(st);
            failed = rec->sequence_number;
            break;
        }
        if (lmr_stream_state_encoded_bytes(st) > max_state) {
            lmr_stream_state_rollback(st);
            if (!lmr_stream_state_count(st)) {
                r = lmr_fail(err, LMR_ERR_TOO_LARGE,
                             "record %s alone makes a window state larger than %zu bytes; it cannot be processed",
                             rec->sequence_number, max_state);
                goto done;
            }
            /* Terminate the window early: return what fits, the rest comes back with a fresh state. */
            full = true;
            failed = rec->sequence_number;
            break;
        }
        lmr_stream_state_commit(st);
    }
    struct lmr_buf state_json;
    lmr_buf_init(&state_json, max_state + 64);
    r = lmr_stream_state_encode(st, full, &state_json);
    if (!r)
        r = lmr_stream_response_build(response, state_json.data, failed ? &failed : NULL, failed ? 1 : 0, err);
    else
        r = lmr_fail(err, r, "cannot encode the window state: %s", lmr_result_str(r));
    lmr_buf_clean_up(&state_json);
done:
    lmr_job_counters_clean_up(&counters); /* named counters are not reported by stream tasks (yet) */
    lmr_stream_state_destroy(st);
    lmr_stream_event_clean_up(&ev);
    return r;
}
