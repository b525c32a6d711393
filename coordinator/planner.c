#include "planner.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lambda/memory.h"
#include "util/misc.h"

#define MiB (1024ull * 1024ull)

struct input_object {
    struct lmr_store *store; /* NULL for an assumed object (estimates) */
    const char *root;        /* the store's root URI */
    char *key;
    uint64_t size;
};

struct expand_state {
    struct input_object *objs;
    size_t n, cap;
    struct lmr_store *store;
    const char *prefix;
    size_t matched;
    bool too_many; /* more objects than a plan can hold */
};

/* Hadoop's rule: names starting with '_' or '.' (below the input location) are not input. */
static bool hidden(const char *rel)
{
    for (const char *p = rel; *p;) {
        if (*p == '_' || *p == '.')
            return true;
        const char *slash = strchr(p, '/');
        if (!slash)
            break;
        p = slash + 1;
    }
    return false;
}

static enum lmr_result on_object(void *user_data, const struct lmr_store_object *obj)
{
    struct expand_state *st = user_data;
    size_t pl = strlen(st->prefix);
    const char *rel = obj->key + pl;
    /* "dir/x" as a prefix means the object "dir/x" or everything below "dir/x/", not "dir/xy". */
    if (pl && st->prefix[pl - 1] != '/' && *rel) {
        if (*rel != '/')
            return LMR_OK;
        rel++;
    }
    if (*rel && hidden(rel))
        return LMR_OK;
    if (st->n >= LMR_PLAN_MAX_SHARDS) {
        st->too_many = true;
        return LMR_ERR_TOO_LARGE;
    }
    if (st->n == st->cap) {
        size_t cap = st->cap ? st->cap * 2 : 256;
        struct input_object *o = realloc(st->objs, cap * sizeof *o);
        if (!o)
            return LMR_ERR_NOMEM;
        st->objs = o;
        st->cap = cap;
    }
    if (!(st->objs[st->n].key = strdup(obj->key)))
        return LMR_ERR_NOMEM;
    st->objs[st->n].store = st->store;
    st->objs[st->n].root = st->store->root_uri;
    st->objs[st->n].size = obj->size_bytes;
    st->n++;
    st->matched++;
    return LMR_OK;
}

/* Open the store of uri (sharing one per root) and list the objects it names. */
static enum lmr_result expand(struct expand_state *st, const char *uri, struct lmr_store_set *stores,
                              struct lmr_err *err)
{
    struct lmr_store *s;
    char *prefix;
    enum lmr_result r = lmr_store_open(uri, &s, &prefix, err);
    if (r)
        return lmr_err_prefix(err, "input '%s'", uri);
    if ((r = lmr_store_set_adopt(stores, &s, err))) {
        free(prefix);
        return r;
    }
    st->store = s;
    st->prefix = prefix;
    st->matched = 0;
    r = lmr_store_list(s, prefix, on_object, st, err);
    if (r && st->too_many)
        r = lmr_fail(err, LMR_ERR_TOO_LARGE,
                     "the inputs hold more than %u objects, the most one job plans (each object is at least one "
                     "shard); combine small files, or run several jobs over parts of '%s'",
                     LMR_PLAN_MAX_SHARDS, uri);
    else if (r)
        lmr_err_prefix(err, "listing input '%s'", uri);
    else if (st->matched == 0)
        r = lmr_fail(err, LMR_ERR_NOT_FOUND,
                     "input '%s' does not exist or holds no input files (names starting with '_' or '.' are "
                     "skipped); check the path",
                     uri);
    free(prefix);
    st->prefix = NULL;
    return r;
}

/* An input described, not listed: assume_objects objects sharing assume_bytes evenly. */
static enum lmr_result assume(struct expand_state *st, const struct lmr_plan_options *opts, struct lmr_err *err)
{
    uint64_t n = opts->assume_objects ? opts->assume_objects : 1;
    if (n > opts->assume_bytes)
        return lmr_fail(err, LMR_ERR_INVALID, "--assume-input: %" PRIu64 " objects cannot share %" PRIu64 " bytes", n,
                        opts->assume_bytes);
    if (n > LMR_PLAN_MAX_ASSUMED_OBJECTS)
        return lmr_fail(err, LMR_ERR_TOO_LARGE, "--assume-input: at most %u objects", LMR_PLAN_MAX_ASSUMED_OBJECTS);
    if (!(st->objs = calloc(n, sizeof *st->objs)))
        return LMR_ERR_NOMEM;
    st->cap = n;
    for (uint64_t i = 0; i < n; i++) {
        char key[40];
        snprintf(key, sizeof key, "assumed/part-%05" PRIu64, i);
        st->objs[i].root = opts->ninputs && !strncmp(opts->inputs[0], "s3://", 5) ? "s3://assumed" : "file:///assumed";
        st->objs[i].size = opts->assume_bytes / n + (i < opts->assume_bytes % n);
        if (!(st->objs[i].key = strdup(key)))
            return LMR_ERR_NOMEM;
        st->n++;
    }
    return LMR_OK;
}

/* Local files can be checked before anything runs; remote objects fail in their map task. */
static enum lmr_result check_readable(const struct input_object *o, struct lmr_err *err)
{
    if (!o->store || strcmp(o->store->vtable->scheme, "file"))
        return LMR_OK;
    struct lmr_store_reader *rd;
    enum lmr_result r = lmr_store_open_read(o->store, o->key, 0, 0, &rd, err);
    if (!r)
        lmr_store_close_read(rd);
    return r;
}

static enum lmr_result add_shard(struct lmr_map_task *t, const struct input_object *o, uint64_t off, uint64_t len)
{
    struct lmr_shard *sh = realloc(t->shards, (t->nshards + 1) * sizeof *sh);
    if (!sh)
        return LMR_ERR_NOMEM;
    t->shards = sh;
    struct lmr_shard *s = &sh[t->nshards];
    memset(s, 0, sizeof *s);
    s->object.root = strdup(o->root);
    s->object.key = strdup(o->key);
    s->offset = off;
    s->length = len;
    s->object_size = o->size;
    s->codec = lmr_codec_from_key(o->key);
    t->nshards++;
    return s->object.root && s->object.key ? LMR_OK : LMR_ERR_NOMEM;
}

/* ---- an input reached twice (two --input locations that overlap) is planned once --------------------------- */

struct named_object {
    char *uri; /* one name whichever --input reached it (object_name) */
    size_t index;
};

/* The object's one name: its URI, and for a local file the path with every link resolved (so a
 * file reached through a symbolic link under one --input and by its own name under another is
 * one object). Caller frees. */
static char *object_name(const struct input_object *o)
{
    const char *root = o->root;
    size_t len = strlen(root) + strlen(o->key) + 2;
    char *uri = malloc(len);
    if (!uri)
        return NULL;
    snprintf(uri, len, "%s/%s", root, o->key);
    if (strncmp(uri, "file://", 7))
        return uri;
    char *real = realpath(uri + 7, NULL);
    if (!real)
        return uri; /* vanished: its map task will say so */
    free(uri);
    return real;
}

static int cmp_named(const void *a, const void *b)
{
    const struct named_object *x = a, *y = b;
    int c = strcmp(x->uri, y->uri);
    /* equal names: the one listed first comes first, so it is the one kept */
    return c ? c : (x->index > y->index) - (x->index < y->index);
}

/* Drop objects named twice (the same location through overlapping --input), keeping the first. */
static enum lmr_result drop_duplicate_objects(struct expand_state *st)
{
    if (st->n < 2)
        return LMR_OK;
    size_t n = st->n;
    struct named_object *names = calloc(n, sizeof *names);
    bool *drop = calloc(st->n, sizeof *drop);
    enum lmr_result r = names && drop ? LMR_OK : LMR_ERR_NOMEM;
    for (size_t i = 0; i < st->n && !r; i++) {
        names[i].index = i;
        if (!(names[i].uri = object_name(&st->objs[i])))
            r = LMR_ERR_NOMEM;
    }
    if (!r) {
        qsort(names, st->n, sizeof *names, cmp_named);
        for (size_t i = 1; i < st->n; i++)
            if (!strcmp(names[i].uri, names[i - 1].uri))
                drop[names[i].index] = true;
        size_t kept = 0;
        for (size_t i = 0; i < st->n; i++) {
            if (drop[i])
                free(st->objs[i].key);
            else
                st->objs[kept++] = st->objs[i];
        }
        st->n = kept;
    }
    for (size_t i = 0; names && i < n; i++)
        free(names[i].uri);
    free(names);
    free(drop);
    return r;
}

/* Refuse a plan of more shards than LMR_PLAN_MAX_SHARDS before any of them is made. */
static enum lmr_result check_shard_count(const struct expand_state *st, uint64_t split, bool balanced, uint64_t total,
                                         struct lmr_err *err)
{
    uint64_t shards = 0;
    for (size_t i = 0; i < st->n && shards <= LMR_PLAN_MAX_SHARDS; i++) {
        uint64_t size = st->objs[i].size;
        bool whole = lmr_codec_from_key(st->objs[i].key) != LMR_CODEC_NONE;
        /* balanced tasks may cut an object once more, where a task is full */
        shards += whole || size == 0 ? (size > 0) : (size - 1) / split + 1 + balanced;
    }
    if (shards <= LMR_PLAN_MAX_SHARDS)
        return LMR_OK;
    char have[32], need[32];
    uint64_t at_least = total / LMR_PLAN_MAX_SHARDS + 1;
    return lmr_fail(err, LMR_ERR_TOO_LARGE,
                    "--split-size %llu bytes would cut the input (%s in %zu objects) into more than %u shards, the "
                    "most one job plans; give a larger --split-size (at least %s)",
                    (unsigned long long)split, lmr_format_bytes((double)total, have, sizeof have), st->n,
                    LMR_PLAN_MAX_SHARDS, lmr_format_bytes((double)at_least, need, sizeof need));
}

/* Refuse tasks of more shards than one task event can carry (packing under --mappers). */
static enum lmr_result check_task_sizes(const struct lmr_job_plan *plan, struct lmr_err *err)
{
    for (size_t i = 0; i < plan->ntasks; i++)
        if (plan->tasks[i].nshards > LMR_PLAN_MAX_SHARDS_PER_TASK)
            return lmr_fail(err, LMR_ERR_TOO_LARGE,
                            "map task %zu would read %zu shards, more than the %u one task event can carry; raise "
                            "--mappers or --split-size",
                            i, plan->tasks[i].nshards, LMR_PLAN_MAX_SHARDS_PER_TASK);
    return LMR_OK;
}

enum lmr_result lmr_plan_inputs(const struct lmr_plan_options *opts, struct lmr_store_set *stores,
                                struct lmr_job_plan *plan, struct lmr_err *err)
{
    struct expand_state st = {0};
    enum lmr_result r = LMR_OK;
    if (opts->assume_bytes)
        r = assume(&st, opts, err);
    for (size_t i = 0; i < opts->ninputs && !r && !opts->assume_bytes; i++)
        r = expand(&st, opts->inputs[i], stores, err);
    if (!r)
        r = drop_duplicate_objects(&st); /* assumed objects have distinct names */
    uint64_t total = 0;
    for (size_t i = 0; i < st.n && !r; i++) {
        total += st.objs[i].size;
        r = check_readable(&st.objs[i], err);
    }
    if (!r && st.n == 0)
        r = lmr_fail(err, LMR_ERR_NOT_FOUND, "no input: give at least one --input");

    /* Split size: as asked, or (by default) balanced tasks in whole waves of the invocation slots. */
    uint64_t split = opts->split_size_bytes;
    bool balanced = !opts->split_size_given && !opts->max_mappers;
    if (balanced) {
        uint64_t conc = opts->concurrency ? opts->concurrency : 1;
        uint64_t ntasks = total ? (total + split - 1) / split : 1;
        if (opts->combining && total <= conc * LMR_PLAN_MAX_WAVE_TASK_BYTES)
            ntasks = conc;
        ntasks = (ntasks + conc - 1) / conc * conc;
        uint64_t floor_tasks = total / LMR_PLAN_MIN_AUTO_SPLIT_BYTES;
        if (ntasks > floor_tasks)
            ntasks = floor_tasks ? floor_tasks : 1;
        split = (total + ntasks - 1) / ntasks;
        if (split == 0)
            split = 1;
    } else if (!opts->split_size_given && opts->concurrency > 1 && total / split < opts->concurrency) {
        uint64_t even = (total + opts->concurrency - 1) / opts->concurrency; /* --mappers: every slot gets work */
        split = even < LMR_PLAN_MIN_AUTO_SPLIT_BYTES ? LMR_PLAN_MIN_AUTO_SPLIT_BYTES : even;
    }
    if (!r)
        r = check_shard_count(&st, split, balanced, total, err);
    /* Shards are packed into tasks of about one split; --mappers caps the count. Balanced: every
       task is filled to exactly the split, objects cut where a task is full. */
    uint64_t target = split;
    if (opts->max_mappers) {
        uint64_t per = (total + opts->max_mappers - 1) / opts->max_mappers;
        if (per > target)
            target = per;
    }
    size_t cap = 16;
    plan->tasks = calloc(cap, sizeof *plan->tasks);
    plan->ntasks = 0;
    if (!plan->tasks)
        r = LMR_ERR_NOMEM;
    uint64_t in_task = 0;
    for (size_t i = 0; i < st.n && !r; i++) {
        const struct input_object *o = &st.objs[i];
        bool whole = lmr_codec_from_key(o->key) != LMR_CODEC_NONE;
        for (uint64_t off = 0; off < o->size && !r;) {
            uint64_t rest = o->size - off, len;
            bool full;
            if (balanced) {
                full = in_task >= target;
                uint64_t room = full ? target : target - in_task;
                len = whole || rest <= room ? rest : room;
            } else {
                len = whole || rest <= split ? rest : split;
                full = in_task >= target || (opts->max_mappers == 0 && in_task + len > target && in_task > 0);
            }
            if (plan->ntasks == 0 || (full && (!opts->max_mappers || plan->ntasks < opts->max_mappers))) {
                if (plan->ntasks == cap) {
                    struct lmr_map_task *t = realloc(plan->tasks, cap * 2 * sizeof *t);
                    if (!t) {
                        r = LMR_ERR_NOMEM;
                        break;
                    }
                    memset(t + cap, 0, cap * sizeof *t);
                    plan->tasks = t;
                    cap *= 2;
                }
                plan->ntasks++;
                in_task = 0;
            }
            r = add_shard(&plan->tasks[plan->ntasks - 1], o, off, len);
            in_task += len;
            off += len;
        }
    }
    if (!r && plan->ntasks == 0) { /* only empty files: one task that reads nothing */
        plan->ntasks = 1;
    }
    if (!r)
        r = check_task_sizes(plan, err);
    plan->input_bytes = total;
    plan->input_objects = st.n;
    for (size_t i = 0; i < st.n; i++)
        free(st.objs[i].key);
    free(st.objs);
    return r;
}

void lmr_plan_tasks_free(struct lmr_job_plan *plan)
{
    for (size_t i = 0; i < plan->ntasks; i++) {
        for (size_t s = 0; s < plan->tasks[i].nshards; s++)
            lmr_location_clean_up(&plan->tasks[i].shards[s].object);
        free(plan->tasks[i].shards);
    }
    free(plan->tasks);
    plan->tasks = NULL;
    plan->ntasks = 0;
}
