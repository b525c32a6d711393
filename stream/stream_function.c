#define _GNU_SOURCE
#include "stream_function.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "aws/kinesis.h"
#include "job/args.h"
#include "job/counters.h"
#include "job/registry.h"
#include "store/store.h"
#include "stream/event.h"
#include "stream/json_scan.h"
#include "stream/kpl.h"
#include "stream/state.h"
#include "stream/window_output.h"
#include "util/log.h"
#include "util/misc.h"

_Static_assert(LMR_STREAM_FN_SHARD_ID_MAX == LMR_KINESIS_SHARD_ID_MAX, "one shard id size");

/* What a warm environment keeps between invocations. */
struct lmr_stream_fn_cache {
    pthread_mutex_t mu;
    struct lmr_kinesis *kinesis; /* for the stream named below */
    char *kinesis_stream;
    /* The shards of the last window listed (the finals of a window's shards often meet in one environment). */
    uint64_t listed_window;
    char (*listed)[LMR_KINESIS_SHARD_ID_MAX];
    size_t n_listed;
};

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
    cfg->cache = calloc(1, sizeof *cfg->cache);
    cfg->job_name = strdup(job->name);
    json_t *aj = args ? lmr_job_args_to_json(args) : json_object();
    cfg->args_json = aj ? json_dumps(aj, JSON_COMPACT) : NULL;
    json_decref(aj);
    if (!cfg->cache || !cfg->job_name || !cfg->args_json) {
        lmr_stream_handler_config_clean_up(cfg);
        return lmr_fail(err, LMR_ERR_NOMEM, "out of memory setting up the stream function");
    }
    pthread_mutex_init(&cfg->cache->mu, NULL);
    if (job->setup) {
        char msg[512] = "";
        if (job->setup(&cfg->job_state, args, msg, sizeof msg)) {
            cfg->job = NULL;
            lmr_stream_handler_config_clean_up(cfg);
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
    const char *fe = getenv("LMR_STREAM_FORGET_EVERY");
    if (fe && *fe && !lmr_parse_u64(fe, 1, 1000000, &v))
        cfg->forget_every = (unsigned)v;
    const char *fm = getenv("LMR_STREAM_FAIL_MATCH");
    if (fm && *fm)
        cfg->fail_match = strdup(fm);
    const char *out = getenv("LMR_STREAM_OUTPUT");
    if (out && *out && (r = lmr_stream_handler_config_set_output(cfg, out, err))) {
        lmr_stream_handler_config_clean_up(cfg);
        return lmr_err_prefix(err, "LMR_STREAM_OUTPUT: ");
    }
    return LMR_OK;
}

enum lmr_result lmr_stream_handler_config_set_output(struct lmr_stream_handler_config *cfg, const char *uri,
                                                     struct lmr_err *err)
{
    lmr_store_destroy(cfg->output);
    free(cfg->output_prefix);
    cfg->output = NULL;
    cfg->output_prefix = NULL;
    return lmr_store_open(uri, &cfg->output, &cfg->output_prefix, err);
}

void lmr_stream_handler_config_clean_up(struct lmr_stream_handler_config *cfg)
{
    if (!cfg)
        return;
    if (cfg->job && cfg->job->teardown)
        cfg->job->teardown(cfg->job_state);
    free(cfg->fail_match);
    free(cfg->job_name);
    free(cfg->args_json);
    lmr_store_destroy(cfg->output);
    free(cfg->output_prefix);
    if (cfg->cache) {
        lmr_kinesis_destroy(cfg->cache->kinesis);
        free(cfg->cache->kinesis_stream);
        free(cfg->cache->listed);
        pthread_mutex_destroy(&cfg->cache->mu);
        free(cfg->cache);
    }
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
    const uint8_t *nl1 = n ? memchr(p, '\n', n) : NULL;
    if (cfg->job->map_block && (!nl1 || nl1 == end - 1)) {
        /* One line (the usual record): the job's block map, which emits what map would for that line. */
        size_t len = nl1 ? n - 1 : n;
        if (len && p[len - 1] == '\r')
            len--;
        if (!len)
            return nl1 ? 0 : cfg->job->map(cfg->job_state, lmr_slice_make(p, 0), &em->base, counters);
        return cfg->job->map_block(cfg->job_state, lmr_slice_make(p, n), &em->base, counters);
    }
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

/* The shards window [start, end) has, into ids (each LMR_KINESIS_SHARD_ID_MAX bytes); see the header. */
static enum lmr_result window_shards(const struct lmr_stream_handler_config *cfg, const struct lmr_stream_event *ev,
                                     char (**ids)[LMR_KINESIS_SHARD_ID_MAX], size_t *n, struct lmr_err *err)
{
    *ids = NULL;
    *n = 0;
    if (cfg->window_shards)
        return cfg->window_shards(cfg->window_shards_user, ev->event_source_arn, ev->shard_id, ev->window_start_ms,
                                  ev->window_end_ms, ids, n, err);
    const char *arn = ev->event_source_arn ? ev->event_source_arn : "";
    /* arn:aws:kinesis:REGION:ACCOUNT:stream/NAME */
    char region[64] = "", name[256] = "";
    if (sscanf(arn, "arn:%*[^:]:kinesis:%63[^:]:%*[^:]:stream/%255s", region, name) != 2 || !strcmp(region, "local")) {
        *ids = calloc(1, sizeof **ids);
        if (!*ids)
            return lmr_fail(err, LMR_ERR_NOMEM, "out of memory");
        snprintf((*ids)[0], sizeof(*ids)[0], "%s", ev->shard_id);
        *n = 1;
        return LMR_OK;
    }
    struct lmr_stream_fn_cache *c = cfg->cache;
    pthread_mutex_lock(&c->mu);
    enum lmr_result r = LMR_OK;
    if (!c->kinesis || strcmp(c->kinesis_stream, name)) {
        lmr_kinesis_destroy(c->kinesis);
        free(c->kinesis_stream);
        free(c->listed);
        c->listed = NULL;
        c->kinesis = NULL;
        c->kinesis_stream = strdup(name);
        if (!c->kinesis_stream)
            r = lmr_fail(err, LMR_ERR_NOMEM, "out of memory");
        else
            r = lmr_kinesis_new(name, &c->kinesis, err);
    }
    if (!r && c->listed && c->listed_window == ev->window_start_ms) {
        *ids = malloc(c->n_listed * sizeof **ids);
        if (*ids) {
            memcpy(*ids, c->listed, c->n_listed * sizeof **ids);
            *n = c->n_listed;
            pthread_mutex_unlock(&c->mu);
            return LMR_OK;
        }
    }
    /* Shards open at the window's start or at its end: a reshard inside the window brings both. */
    uint64_t at[2] = {ev->window_start_ms ? ev->window_start_ms : 1,
                      ev->window_end_ms > ev->window_start_ms ? ev->window_end_ms - 1 : ev->window_start_ms + 1};
    for (int t = 0; t < 2 && !r; t++) {
        struct lmr_kinesis_shard *sh;
        size_t count;
        if ((r = lmr_kinesis_list_shards(c->kinesis, at[t], &sh, &count, err)))
            break;
        for (size_t i = 0; i < count && !r; i++) {
            bool seen = false;
            for (size_t j = 0; j < *n && !seen; j++)
                seen = !strcmp((*ids)[j], sh[i].id);
            if (seen)
                continue;
            char(*nv)[LMR_KINESIS_SHARD_ID_MAX] = realloc(*ids, (*n + 1) * sizeof **ids);
            if (!nv) {
                r = lmr_fail(err, LMR_ERR_NOMEM, "out of memory");
                break;
            }
            *ids = nv;
            snprintf((*ids)[(*n)++], sizeof **ids, "%s", sh[i].id);
        }
        free(sh);
    }
    if (!r && *n) {
        void *copy = malloc(*n * sizeof **ids);
        if (copy) {
            memcpy(copy, *ids, *n * sizeof **ids);
            free(c->listed);
            c->listed = copy;
            c->n_listed = *n;
            c->listed_window = ev->window_start_ms;
        }
    }
    pthread_mutex_unlock(&c->mu);
    if (r) {
        free(*ids);
        *ids = NULL;
        *n = 0;
    }
    return r;
}

/* The final invoke: write this shard's part; the last part of the last shard merges the window. */
static enum lmr_result commit_final(const struct lmr_stream_handler_config *cfg, const struct lmr_stream_event *ev,
                                    struct lmr_stream_state *st, struct lmr_err *err)
{
    if (!cfg->output)
        return lmr_fail(err, LMR_ERR_INVALID,
                        "the stream function has no output for its windows: set LMR_STREAM_OUTPUT in its environment "
                        "(the --output URI, for example s3://bucket/prefix)");
    if (!ev->has_window || !ev->shard_id)
        return lmr_fail(err, LMR_ERR_FORMAT, "a final invoke needs \"window\" and \"shardId\"");
    /* A final invoke retried after its window was merged writes nothing. */
    char *out_key = lmr_stream_window_output_key(cfg->output_prefix, ev->window_start_ms);
    uint64_t size;
    bool merged = out_key && lmr_store_head(cfg->output, out_key, &size, NULL) == LMR_OK;
    free(out_key);
    if (merged)
        return LMR_OK;
    struct lmr_stream_state_meta *m = lmr_stream_state_meta(st);
    struct lmr_stream_part_id id = {.window_start_ms = ev->window_start_ms,
                                    .shard_id = ev->shard_id,
                                    .lane = m->lane,
                                    .run = m->run,
                                    .early = ev->is_terminated_early,
                                    .first_seq = m->first};
    bool already;
    enum lmr_result r = lmr_stream_window_write_part(cfg->output, cfg->output_prefix, &id, st, cfg->job_name,
                                                     cfg->args_json, m->records, &already, err);
    if (r || ev->is_terminated_early)
        return r;
    /* A state with a run token comes from lambdamr's poller over a source whose windows are read times:
       that poller merges the window itself once its final invokes are done. A function process can
       outlive a consumer killed with SIGKILL; if it merged, its commit could land after the next run
       had started reading those records again. Kinesis parts (no run) are replays of themselves, so any
       environment may merge them. */
    if (m->run[0])
        return LMR_OK;
    char(*ids)[LMR_KINESIS_SHARD_ID_MAX];
    size_t n;
    if ((r = window_shards(cfg, ev, &ids, &n, err))) {
        /* The part is safe; the window is merged by whoever sees it complete, the poller, or
           `lambdamr stream merge`. A final invoke that failed here would be retried without end. */
        LMR_WARN("stream: cannot list the shards of window %" PRIu64 " to see whether it is complete (%s); its "
                 "parts stay for 'lambdamr stream merge'",
                 ev->window_start_ms, err ? err->msg : "");
        lmr_err_clear(err);
        return LMR_OK;
    }
    const char **names = calloc(n ? n : 1, sizeof *names);
    if (!names) {
        free(ids);
        return lmr_fail(err, LMR_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++)
        names[i] = ids[i];
    bool complete = false;
    r = lmr_stream_window_complete(cfg->output, cfg->output_prefix, ev->window_start_ms, names, n, m->run,
                                   m->lanes ? m->lanes : 1, &complete, err);
    free(names);
    free(ids);
    if (r || !complete)
        return r;
    struct lmr_stream_merge_result mr;
    return lmr_stream_window_merge(cfg->output, cfg->output_prefix, ev->window_start_ms, m->run, cfg->job,
                                   cfg->job_state, &mr, err);
}

/*
 * States kept by this environment, by reference. Every response's state carries "ref" (this
 * environment's token and a version); when the next event's state carries the same ref, this
 * environment still holds exactly that state and uses it as it is, instead of decoding the
 * copy that came with the event (the event still carries it: the contract stays Lambda's, and a
 * cold or different environment decodes it). A ref that does not match (a retry with an older
 * state, another environment's state) is simply decoded.
 */
#define KEPT_STATES 16
static struct {
    pthread_mutex_t mu;
    char token[24];
    uint64_t version;
    struct {
        char ref[LMR_STREAM_REF_MAX + 1];
        struct lmr_stream_state *st;
        size_t value_size;
    } kept[KEPT_STATES];
} keep = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* Forget every kept state (the forget_every test hook: as if this environment were cold). */
static void kept_forget_all(void)
{
    struct lmr_stream_state *drop[KEPT_STATES];
    pthread_mutex_lock(&keep.mu);
    for (int i = 0; i < KEPT_STATES; i++) {
        drop[i] = keep.kept[i].st;
        keep.kept[i].st = NULL;
    }
    pthread_mutex_unlock(&keep.mu);
    for (int i = 0; i < KEPT_STATES; i++)
        lmr_stream_state_destroy(drop[i]);
}

static struct lmr_stream_state *kept_take(const char *ref, size_t value_size)
{
    struct lmr_stream_state *st = NULL;
    pthread_mutex_lock(&keep.mu);
    for (int i = 0; i < KEPT_STATES && !st; i++)
        if (keep.kept[i].st && keep.kept[i].value_size == value_size && !strcmp(keep.kept[i].ref, ref)) {
            st = keep.kept[i].st;
            keep.kept[i].st = NULL;
        }
    pthread_mutex_unlock(&keep.mu);
    return st;
}

/* A new reference for st (into its meta). */
static void kept_new_ref(struct lmr_stream_state *st)
{
    pthread_mutex_lock(&keep.mu);
    if (!keep.token[0])
        lmr_random_hex(keep.token, 8);
    snprintf(lmr_stream_state_meta(st)->ref, LMR_STREAM_REF_MAX + 1, "%s-%" PRIu64, keep.token, ++keep.version);
    pthread_mutex_unlock(&keep.mu);
}

static void kept_put(struct lmr_stream_state *st, size_t value_size)
{
    struct lmr_stream_state *evict = NULL;
    pthread_mutex_lock(&keep.mu);
    int slot = -1;
    for (int i = 0; i < KEPT_STATES && slot < 0; i++)
        if (!keep.kept[i].st)
            slot = i;
    if (slot < 0) {
        /* The oldest reference goes (versions grow). */
        slot = 0;
        evict = keep.kept[0].st;
        for (int i = 1; i < KEPT_STATES; i++)
            if (strtoull(strchr(keep.kept[i].ref, '-') + 1, NULL, 10) <
                strtoull(strchr(keep.kept[slot].ref, '-') + 1, NULL, 10)) {
                slot = i;
                evict = keep.kept[i].st;
            }
    }
    snprintf(keep.kept[slot].ref, sizeof keep.kept[slot].ref, "%s", lmr_stream_state_meta(st)->ref);
    keep.kept[slot].st = st;
    keep.kept[slot].value_size = value_size;
    pthread_mutex_unlock(&keep.mu);
    lmr_stream_state_destroy(evict);
}

/* The store figures of one invocation: a snapshot of the output store's counters. */
struct store_snap {
    uint64_t get, put, list, head, del, bytes_read, bytes_written, retries;
};

static void store_snap(const struct lmr_store *s, struct store_snap *o)
{
    memset(o, 0, sizeof *o);
    if (!s)
        return;
    o->get = atomic_load(&s->stats.get_requests);
    o->put = atomic_load(&s->stats.put_requests);
    o->list = atomic_load(&s->stats.list_requests);
    o->head = atomic_load(&s->stats.head_requests);
    o->del = atomic_load(&s->stats.delete_requests);
    o->bytes_read = atomic_load(&s->stats.bytes_read);
    o->bytes_written = atomic_load(&s->stats.bytes_written);
    o->retries = atomic_load(&s->stats.retries);
}

/* Append "store" (this invocation's requests by kind and bytes, as batch tasks report theirs) as the
   response's last member. Extra members are ignored by the event source mapping (lambdamr's and AWS's). */
static void append_store_figures(struct lmr_buf *response, const struct store_snap *a, const struct lmr_store *s)
{
    struct store_snap b;
    store_snap(s, &b);
    if (!response->len || response->data[response->len - 1] != '}')
        return;
    response->len--;
    if (lmr_buf_printf(response,
                       ",\"store\":{\"get\":%" PRIu64 ",\"put\":%" PRIu64 ",\"list\":%" PRIu64 ",\"head\":%" PRIu64
                       ",\"delete\":%" PRIu64 ",\"bytes_read\":%" PRIu64 ",\"bytes_written\":%" PRIu64
                       ",\"retries\":%" PRIu64 "}}",
                       b.get - a->get, b.put - a->put, b.list - a->list, b.head - a->head, b.del - a->del,
                       b.bytes_read - a->bytes_read, b.bytes_written - a->bytes_written, b.retries - a->retries))
        lmr_buf_append(response, "}", 1); /* no room: the response stays as it was */
}

/* The test hook LMR_STREAM_FAIL_MATCH: does the record (any of its user records) contain needle? */
static bool record_matches(const struct lmr_stream_parsed_record *rec, const struct lmr_kpl_reader *agg,
                           const char *needle)
{
    size_t n = strlen(needle);
    if (!agg)
        return memmem(rec->data, rec->len, needle, n) != NULL;
    struct lmr_kpl_reader rd = *agg;
    struct lmr_kpl_user_record u;
    while (lmr_kpl_next(&rd, &u))
        if (memmem(u.data, u.len, needle, n))
            return true;
    return false;
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
    /* Per-invocation store figures only where the process runs one invocation at a time (an execution
       environment); in-process handlers share one store between concurrent invocations. */
    bool own_store = !user_data;
    struct store_snap before;
    if (own_store)
        store_snap(cfg->output, &before);
    size_t max_state = cfg->state_max_bytes ? cfg->state_max_bytes : LMR_STREAM_STATE_MAX_BYTES;
    struct lmr_stream_event ev;
    struct lmr_stream_state *st = NULL;
    const char *failed = NULL;
    bool full = false;
    struct lmr_job_counters counters = {0};
    enum lmr_result r = lmr_stream_event_parse(event, event_len, &ev, err);
    if (r)
        goto done;
    if (cfg->forget_every) {
        static unsigned long calls;
        if (__atomic_add_fetch(&calls, 1, __ATOMIC_RELAXED) % cfg->forget_every == 0)
            kept_forget_all();
    }
    struct lmr_stream_state_controls ctl;
    lmr_stream_state_controls(ev.state_text, ev.state_len, &ctl);
    if (!ctl.ref[0] || !(st = kept_take(ctl.ref, cfg->job->value_size))) {
        if (ctl.ref[0] && !ctl.has_kv) {
            /* A state by reference (a whole state always has "kv") that this environment does not hold
               (a cold or another environment, or a retry after the state moved on): nothing is taken;
               lambdamr's poller rebuilds the state from its last whole copy and the records since. */
            r = lmr_stream_response_build(response, "{\"lmr\":\"1\",\"lost\":\"1\"}",
                                          ev.n_records ? &ev.records[0].sequence_number : NULL, ev.n_records ? 1 : 0,
                                          err);
            goto done;
        }
        if (!(st = lmr_stream_state_new(cfg->job->value_size))) {
            r = lmr_fail(err, LMR_ERR_NOMEM, "out of memory for the window state");
            goto done;
        }
        if ((r = lmr_stream_state_merge(st, cfg->job, cfg->job_state, ev.state_text, ev.state_len, NULL, err)))
            goto done;
    }
    /* The state this invocation returns gets its reference now, so that the limit below counts it. */
    bool keep_it = !ev.is_final_invoke;
    if (keep_it)
        kept_new_ref(st);
    else
        lmr_stream_state_meta(st)->ref[0] = '\0';
    struct state_emitter em = {{state_emit}, st, cfg->job, cfg->job_state, LMR_OK};
    struct lmr_stream_state_meta *meta = lmr_stream_state_meta(st);
    /* The exact encoded size costs a few formatted numbers: per record, a bound decides whether it is
       needed. The entries' base64 grows with the packed bytes; the meta strings can grow only by "first"
       and the digits of "n". */
    size_t packed0 = lmr_stream_state_packed_bytes(st);
    size_t bound0 = lmr_stream_state_encoded_bytes(st) - lmr_base64_len(packed0) + sizeof ",\"first\":\"\"" +
                    LMR_STREAM_SEQ_MAX + sizeof ",\"n\":\"\"" + 20;
    /* The aggregated records' digests are checked 64 records at a time (8 digests at once, kpl.h). */
    enum { CHECK_GROUP = 64 };
    bool intact[CHECK_GROUP];
    for (size_t i = 0; i < ev.n_records; i++) {
        const struct lmr_stream_parsed_record *rec = &ev.records[i];
        if (i % CHECK_GROUP == 0) {
            const uint8_t *data[CHECK_GROUP];
            size_t lens[CHECK_GROUP], m = ev.n_records - i < CHECK_GROUP ? ev.n_records - i : CHECK_GROUP;
            for (size_t j = 0; j < m; j++) {
                data[j] = ev.records[i + j].data;
                lens[j] = ev.records[i + j].len;
            }
            lmr_kpl_check_many(data, lens, m, intact);
        }
        /* An aggregated record (KPL format: lambdamr's local sources, KPL producers) is its user
           records, taken or failed as a whole: its sequence number is the only one the mapping knows. */
        struct lmr_kpl_reader agg;
        bool aggregated = intact[i % CHECK_GROUP] ? lmr_kpl_open_checked(rec->data, rec->len, &agg)
                                                  : lmr_kpl_open(rec->data, rec->len, &agg);
        size_t users = aggregated ? agg.n_records : 1;
        if (cfg->fail_match && record_matches(rec, aggregated ? &agg : NULL, cfg->fail_match)) {
            failed = rec->sequence_number;
            break;
        }
        lmr_stream_state_begin(st);
        int rc = 0;
        if (aggregated) {
            struct lmr_kpl_user_record u;
            while (!rc && !em.r && lmr_kpl_next(&agg, &u))
                rc = map_record(cfg, &em, u.data, u.len, &counters);
        } else {
            rc = map_record(cfg, &em, rec->data, rec->len, &counters);
        }
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
            /* The map rejected this record (or one of its user records): report it, keep what came before. */
            lmr_stream_state_rollback(st);
            failed = rec->sequence_number;
            break;
        }
        if (bound0 + lmr_base64_len(lmr_stream_state_packed_bytes(st)) > max_state &&
            lmr_stream_state_encoded_bytes(st) > max_state) {
            lmr_stream_state_rollback(st);
            if (!lmr_stream_state_count(st) && users <= 1) {
                r = lmr_fail(err, LMR_ERR_TOO_LARGE,
                             "record %s alone makes a window state larger than %zu bytes; it cannot be processed",
                             rec->sequence_number, max_state);
                goto done;
            }
            /* Terminate the window early: return what fits, the rest comes back with a fresh state. (An
               aggregated record that alone overflows an empty state is answered so too: lambdamr's poller
               then packs fewer lines into each.) */
            full = true;
            failed = rec->sequence_number;
            break;
        }
        lmr_stream_state_commit(st);
        if (!meta->first[0])
            snprintf(meta->first, sizeof meta->first, "%s", rec->sequence_number);
        meta->records += users;
    }
    if (ev.is_final_invoke && !failed) {
        /* The window's state is done: it becomes this shard's part of the window output. */
        if ((r = commit_final(cfg, &ev, st, err)))
            goto done;
        lmr_stream_state_clear(st);
    }
    struct lmr_buf state_json;
    lmr_buf_init(&state_json, max_state + 64 + LMR_STREAM_REF_MAX + 16);
    r = ctl.mode == LMR_STREAM_STATE_BY_REF ? lmr_stream_state_encode_ref(st, full, &state_json)
                                            : lmr_stream_state_encode(st, full, &state_json);
    if (!r)
        r = lmr_stream_response_build(response, state_json.data, failed ? &failed : NULL, failed ? 1 : 0, err);
    else
        r = lmr_fail(err, r, "cannot encode the window state: %s", lmr_result_str(r));
    if (!r && own_store)
        append_store_figures(response, &before, cfg->output);
    lmr_buf_clean_up(&state_json);
    if (!r && keep_it) {
        kept_put(st, cfg->job->value_size);
        st = NULL;
    }
done:
    lmr_job_counters_clean_up(&counters); /* named counters are not reported by stream tasks (yet) */
    lmr_stream_state_destroy(st);
    lmr_stream_event_clean_up(&ev);
    return r;
}
