/* The stage list of a job (see stages.h). */
#include "stages.h"

#include <stdlib.h>
#include <string.h>

#include "job/join.h"
#include "job/join_table.h"
#include "job/registry.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/misc.h"

static char *join2(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s%s%s", a, a[0] && a[strlen(a) - 1] == '/' ? "" : "/", b);
    return s;
}

static struct lmr_job_args *copy_args(const struct lmr_job_args *args)
{
    json_t *j = lmr_job_args_to_json(args);
    struct lmr_job_args *out = NULL;
    if (j && lmr_job_args_from_json(j, &out, NULL))
        out = NULL;
    json_decref(j);
    return out;
}

static struct lmr_stage *add_stage(struct lmr_stage_list *l, const char *job, const struct lmr_job_args *args,
                                   const char *output)
{
    struct lmr_stage *s = &l->stages[l->n];
    memset(s, 0, sizeof *s);
    s->job = job;
    s->args = copy_args(args);
    s->output = strdup(output);
    s->inputs = calloc(LMR_JOIN_MAX_SIDES + 1, sizeof *s->inputs);
    l->n++;
    return s->args && s->output && s->inputs ? s : NULL;
}

static bool add_input(struct lmr_stage *s, const char *uri)
{
    return (s->inputs[s->ninputs] = strdup(uri)) && ++s->ninputs;
}

static bool set_arg(struct lmr_stage *s, const char *name, const char *value)
{
    return value && lmr_job_args_set(s->args, name, value) == LMR_OK;
}

static bool set_location(struct lmr_stage *s, const char *name, const char *uri)
{
    char *n = lmr_join_normalize_location(uri);
    bool ok = set_arg(s, name, n);
    free(n);
    return ok;
}

/* Choose the strategy from --join (auto by default) and the sides' sizes. */
static enum lmr_result choose(const char *forced, uint64_t small_bytes, uint32_t memory_mb, const char **strategy,
                              struct lmr_err *err)
{
    if (forced && strcmp(forced, "auto") && strcmp(forced, "broadcast") && strcmp(forced, "reduce"))
        return lmr_fail(err, LMR_ERR_INVALID, "--join '%s' is not auto, broadcast or reduce", forced);
    if (forced && strcmp(forced, "auto")) {
        *strategy = !strcmp(forced, "broadcast") ? "broadcast" : "reduce";
        return LMR_OK;
    }
    /* the loaded sides as text; the table takes about twice that; a task loads up to a quarter */
    *strategy = small_bytes <= (uint64_t)memory_mb * 1024 * 1024 / 8 ? "broadcast" : "reduce";
    return LMR_OK;
}

static enum lmr_result plan_join(const struct lmr_stage_request *req, struct lmr_stage_list *l, struct lmr_err *err)
{
    if (req->ninputs)
        return lmr_fail(err, LMR_ERR_INVALID,
                        "a join reads its inputs from --side TAG=URI, not --input; give each input as --side");
    if (req->nsides < 2 || req->nsides > LMR_JOIN_MAX_SIDES)
        return lmr_fail(err, LMR_ERR_INVALID, "a join takes 2 to %u --side TAG=URI inputs, got %zu", LMR_JOIN_MAX_SIDES,
                        req->nsides);
    uint64_t bytes[LMR_JOIN_MAX_SIDES] = {0}, total = 0;
    size_t largest = req->nsides - 1;
    struct lmr_buf tags;
    lmr_buf_init(&tags, 4096);
    for (size_t i = 0; i < req->nsides; i++) {
        const char *eq = strchr(req->sides[i], '=');
        if (i)
            lmr_buf_append(&tags, ",", 1);
        lmr_buf_append(&tags, req->sides[i], (size_t)(eq - req->sides[i]));
        if (!req->estimate_only) {
            enum lmr_result r = lmr_join_location_bytes(eq + 1, &bytes[i], err);
            if (r) {
                lmr_buf_clean_up(&tags);
                return r;
            }
        }
        total += bytes[i];
        if (bytes[i] > bytes[largest])
            largest = i;
    }
    const char *strategy;
    enum lmr_result r = choose(lmr_job_arg(req->args, "join"), total - bytes[largest], req->memory_mb, &strategy, err);
    bool broadcast = !r && !strcmp(strategy, "broadcast");
    struct lmr_stage *s = r ? NULL : add_stage(l, broadcast ? "join-map" : "join", req->args, req->output);
    bool ok = s && set_arg(s, "sides", tags.data);
    for (size_t i = 0; ok && i < req->nsides; i++) {
        const char *eq = strchr(req->sides[i], '=');
        char name[96];
        snprintf(name, sizeof name, "side.%.*s", (int)(eq - req->sides[i]), req->sides[i]);
        ok = set_location(s, name, eq + 1);
        if (ok && (!broadcast || i == largest))
            ok = add_input(s, eq + 1);
        if (ok && broadcast && i == largest) {
            snprintf(name, sizeof name, "%.*s", (int)(eq - req->sides[i]), req->sides[i]);
            ok = set_arg(s, "stream", name);
        }
    }
    lmr_buf_clean_up(&tags);
    if (r)
        return r;
    l->strategy = strategy;
    return ok ? LMR_OK : lmr_fail(err, LMR_ERR_NOMEM, "out of memory planning the join");
}

static enum lmr_result plan_q3(const struct lmr_stage_request *req, struct lmr_stage_list *l, struct lmr_err *err)
{
    if (req->ninputs != 1 || req->nsides)
        return lmr_fail(err, LMR_ERR_INVALID,
                        "bdb-q3 takes one --input: the data set folder with rankings/ and uservisits/ (as 'lambdamr "
                        "gen bdb' writes it)");
    /* The arguments first (the dates), so that a bad one fails before any stage runs. */
    const struct lmr_job_ops *ops;
    char msg[512] = "";
    void *state = NULL;
    if (lmr_job_find("bdb-q3", &ops, err))
        return LMR_ERR_INVALID;
    if (ops->setup(&state, req->args, msg, sizeof msg))
        return lmr_fail(err, LMR_ERR_INVALID, "job 'bdb-q3': %s", msg);
    ops->teardown(state);
    char *rk = join2(req->inputs[0], "rankings"), *uv = join2(req->inputs[0], "uservisits");
    char *mid = join2(req->output, "_lambdamr/stage-1");
    uint64_t rk_bytes = 0, uv_bytes = 0;
    enum lmr_result r = rk && uv && mid ? LMR_OK : LMR_ERR_NOMEM;
    if (!r && !req->estimate_only && !(r = lmr_join_location_bytes(rk, &rk_bytes, err)) &&
        !(r = lmr_join_location_bytes(uv, &uv_bytes, err)) && (!rk_bytes || !uv_bytes))
        r = lmr_fail(err, LMR_ERR_NOT_FOUND, "bdb-q3: '%s' holds no %s; write a data set with 'lambdamr gen bdb'",
                     req->inputs[0], rk_bytes ? "uservisits/" : "rankings/");
    const char *strategy = NULL, *forced = lmr_job_arg(req->args, "join");
    /* auto: filter uservisits first, then join the (few) visits left with each rankings shard in
       its own mapper; every table is read once, and nothing but the filtered visits is shipped */
    if (!r && (!forced || !strcmp(forced, "auto") || !strcmp(forced, "filter-broadcast")))
        strategy = "filter-broadcast";
    else if (!r && strcmp(forced, "broadcast") && strcmp(forced, "reduce"))
        r = lmr_fail(err, LMR_ERR_INVALID, "--join '%s' is not auto, filter-broadcast, broadcast or reduce (bdb-q3)",
                     forced);
    else if (!r)
        r = choose(forced, rk_bytes, req->memory_mb, &strategy, err);
    const char *from = lmr_job_arg(req->args, "date-from"), *to = lmr_job_arg(req->args, "date-to");
    char between[64];
    snprintf(between, sizeof between, "3,%s,%s", from ? from : "", to ? to : "");
    bool ok = true;
    if (!r && !strcmp(strategy, "filter-broadcast")) {
        struct lmr_stage *s = add_stage(l, "scan", req->args, mid);
        ok = s && set_arg(s, "delimiter", ",") && set_arg(s, "fields", "1,2,3,4") && set_arg(s, "between", between) &&
             add_input(s, uv);
        if (s)
            s->temporary = true;
        struct lmr_stage *s2 = ok ? add_stage(l, "bdb-q3", req->args, req->output) : NULL;
        ok = ok && s2 && set_arg(s2, "stage", "probe") && set_location(s2, "visits", mid) && add_input(s2, rk);
    } else if (!r && !strcmp(strategy, "broadcast")) {
        struct lmr_stage *s = add_stage(l, "bdb-q3", req->args, req->output);
        ok = s && set_arg(s, "stage", "broadcast") && set_location(s, "rankings", rk) && add_input(s, uv);
    } else if (!r) {
        struct lmr_stage *s = add_stage(l, "join", req->args, mid);
        ok = s && set_arg(s, "sides", "rankings,uservisits") && set_location(s, "side.rankings", rk) &&
             set_location(s, "side.uservisits", uv) && set_arg(s, "key.rankings", "1") &&
             set_arg(s, "value.rankings", "2") && set_arg(s, "key.uservisits", "2") &&
             set_arg(s, "value.uservisits", "1,4") && set_arg(s, "between.uservisits", between) &&
             set_arg(s, "delimiter", ",") && add_input(s, rk) && add_input(s, uv);
        if (s)
            s->temporary = true;
        struct lmr_stage *s2 = ok ? add_stage(l, "bdb-q3", req->args, req->output) : NULL;
        ok = ok && s2 && set_arg(s2, "stage", "agg") && add_input(s2, mid);
    }
    free(rk);
    free(uv);
    free(mid);
    if (r)
        return r;
    l->strategy = strategy;
    return ok ? LMR_OK : lmr_fail(err, LMR_ERR_NOMEM, "out of memory planning bdb-q3");
}

enum lmr_result lmr_stages_plan(const struct lmr_stage_request *req, struct lmr_stage_list *out, struct lmr_err *err)
{
    memset(out, 0, sizeof *out);
    enum lmr_result r;
    if (!strcmp(req->job, "join"))
        r = plan_join(req, out, err);
    else if (!strcmp(req->job, "bdb-q3"))
        r = plan_q3(req, out, err);
    else if (req->nsides)
        r = lmr_fail(err, LMR_ERR_INVALID, "--side is for joins (join, bdb-q3 takes --input); job '%s' reads --input",
                     req->job);
    else {
        struct lmr_stage *s = add_stage(out, req->job, req->args, req->output);
        r = LMR_OK;
        for (size_t i = 0; s && i < req->ninputs && s; i++) {
            if (i >= LMR_JOIN_MAX_SIDES) { /* more inputs than the small array holds */
                char **p = realloc(s->inputs, (req->ninputs + 1) * sizeof *p);
                if (!p) {
                    s = NULL;
                    break;
                }
                s->inputs = p;
            }
            if (!add_input(s, req->inputs[i]))
                s = NULL;
        }
        if (!s)
            r = lmr_fail(err, LMR_ERR_NOMEM, "out of memory planning the job");
    }
    if (r)
        lmr_stages_clean_up(out);
    return r;
}

void lmr_stages_clean_up(struct lmr_stage_list *list)
{
    for (size_t i = 0; i < list->n; i++) {
        struct lmr_stage *s = &list->stages[i];
        lmr_job_args_destroy(s->args);
        for (size_t k = 0; s->inputs && k < s->ninputs; k++)
            free(s->inputs[k]);
        free(s->inputs);
        free(s->output);
    }
    memset(list, 0, sizeof *list);
}

static enum lmr_result list_under(const char *uri, struct lmr_store **store, struct lmr_store_keys *ks, char **prefix,
                                  struct lmr_err *err)
{
    char *raw = NULL;
    memset(ks, 0, sizeof *ks);
    enum lmr_result r = lmr_store_open(uri, store, &raw, err);
    if (r)
        return r;
    *prefix = join2(raw, "");
    free(raw);
    if (!*prefix)
        return LMR_ERR_NOMEM;
    if (!strcmp(*prefix, "/"))
        (*prefix)[0] = '\0';
    return lmr_store_list(*store, *prefix, lmr_store_keys_add, ks, err);
}

enum lmr_result lmr_stages_remove_output(const char *uri, struct lmr_err *err)
{
    struct lmr_store *store = NULL;
    struct lmr_store_keys ks;
    char *prefix = NULL;
    enum lmr_result r = list_under(uri, &store, &ks, &prefix, err);
    if (!r && ks.n)
        r = lmr_store_delete(store, (const char *const *)ks.v, ks.n, err);
    lmr_store_keys_free(&ks);
    free(prefix);
    lmr_store_destroy(store);
    return r;
}

enum lmr_result lmr_stages_print_q3_top(FILE *f, const char *output, struct lmr_err *err)
{
    struct lmr_store *store = NULL;
    struct lmr_store_keys ks;
    char *prefix = NULL, best[256] = "";
    double best_rev = -1;
    enum lmr_result r = list_under(output, &store, &ks, &prefix, err);
    struct lmr_buf b;
    lmr_buf_init(&b, 1u << 30);
    for (size_t i = 0; !r && i < ks.n; i++) {
        if (strncmp(ks.v[i] + strlen(prefix), "part-", 5))
            continue;
        lmr_buf_reset(&b);
        if ((r = lmr_store_get(store, ks.v[i], 0, LMR_STORE_TO_END, &b, err)))
            break;
        for (size_t at = 0; at < b.len;) {
            const char *nl = memchr(b.data + at, '\n', b.len - at);
            size_t e = nl ? (size_t)(nl - b.data) : b.len;
            const char *t1 = memchr(b.data + at, '\t', e - at);
            if (t1) {
                double rev = strtod(t1 + 1, NULL);
                if (rev > best_rev && e - at < sizeof best) {
                    best_rev = rev;
                    memcpy(best, b.data + at, e - at);
                    best[e - at] = '\0';
                }
            }
            at = e + 1;
        }
    }
    if (!r && best[0]) {
        char *t1 = strchr(best, '\t'), *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
        if (t2) {
            *t1 = *t2 = '\0';
            fprintf(f, "  top      sourceIP %s: totalRevenue %s, avgPageRank %s\n", best, t1 + 1, t2 + 1);
        }
    }
    lmr_buf_clean_up(&b);
    lmr_store_keys_free(&ks);
    free(prefix);
    lmr_store_destroy(store);
    return r;
}
