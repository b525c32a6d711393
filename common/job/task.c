#include "job/task.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lambda/memory.h"

enum lmr_codec lmr_codec_from_key(const char *key)
{
    size_t n = strlen(key);
    if (n > 3 && !strcmp(key + n - 3, ".gz"))
        return LMR_CODEC_GZIP;
    if (n > 4 && !strcmp(key + n - 4, ".zst"))
        return LMR_CODEC_ZSTD;
    return LMR_CODEC_NONE;
}

const char *lmr_codec_name(enum lmr_codec c)
{
    return c == LMR_CODEC_GZIP ? "gzip" : c == LMR_CODEC_ZSTD ? "zstd" : "none";
}

static enum lmr_codec codec_parse(const char *s)
{
    if (s && !strcmp(s, "gzip"))
        return LMR_CODEC_GZIP;
    if (s && !strcmp(s, "zstd"))
        return LMR_CODEC_ZSTD;
    return LMR_CODEC_NONE;
}

void lmr_location_clean_up(struct lmr_location *loc)
{
    free(loc->root);
    free(loc->key);
    loc->root = loc->key = NULL;
}

void lmr_job_common_clean_up(struct lmr_job_common *c)
{
    free(c->job_id);
    free(c->job_name);
    lmr_job_args_destroy(c->args);
    lmr_location_clean_up(&c->work);
    lmr_location_clean_up(&c->output);
    memset(c, 0, sizeof *c);
}

void lmr_map_task_clean_up(struct lmr_map_task *t)
{
    lmr_job_common_clean_up(&t->job);
    free(t->attempt_id);
    for (size_t i = 0; i < t->nshards; i++)
        lmr_location_clean_up(&t->shards[i].object);
    free(t->shards);
    memset(t, 0, sizeof *t);
}

void lmr_reduce_task_clean_up(struct lmr_reduce_task *t)
{
    lmr_job_common_clean_up(&t->job);
    free(t->attempt_id);
    for (size_t i = 0; i < t->nframes; i++)
        free(t->frames[i].key);
    free(t->frames);
    memset(t, 0, sizeof *t);
}

uint64_t lmr_json_u64(const json_t *obj, const char *name, uint64_t dflt)
{
    json_t *v = json_object_get(obj, name);
    if (json_is_integer(v) && json_integer_value(v) >= 0)
        return (uint64_t)json_integer_value(v);
    /* A real out of range would be an undefined cast (UBSan in fuzz_task_event): the default then. */
    if (json_is_real(v) && json_real_value(v) >= 0 && json_real_value(v) < 18446744073709551616.0)
        return (uint64_t)json_real_value(v);
    return dflt;
}

double lmr_json_double(const json_t *obj, const char *name, double dflt)
{
    json_t *v = json_object_get(obj, name);
    return json_is_number(v) ? json_number_value(v) : dflt;
}

const char *lmr_json_str(const json_t *obj, const char *name, const char *dflt)
{
    const char *s = json_string_value(json_object_get(obj, name));
    return s ? s : dflt;
}

static json_t *location_to_json(const struct lmr_location *l)
{
    return json_pack("{s:s, s:s}", "root", l->root, "key", l->key ? l->key : "");
}

static enum lmr_result location_from_json(const json_t *j, struct lmr_location *l, const char *what,
                                          struct lmr_err *err)
{
    const char *root = lmr_json_str(j, "root", NULL), *key = lmr_json_str(j, "key", NULL);
    if (!root || !key)
        return lmr_fail(err, LMR_ERR_FORMAT, "task event: '%s' needs a root and a key", what);
    l->root = strdup(root);
    l->key = strdup(key);
    return l->root && l->key ? LMR_OK : LMR_ERR_NOMEM;
}

json_t *lmr_job_common_to_json(const struct lmr_job_common *c)
{
    return json_pack("{s:s, s:s, s:o, s:o, s:o, s:I, s:I}", "job_id", c->job_id, "name", c->job_name, "args",
                     lmr_job_args_to_json(c->args), "work", location_to_json(&c->work), "output",
                     location_to_json(&c->output), "reducers", (json_int_t)c->reducers, "memory_mb",
                     (json_int_t)c->memory_mb);
}

enum lmr_result lmr_job_common_from_json(const json_t *j, struct lmr_job_common *c, struct lmr_err *err)
{
    const char *id = lmr_json_str(j, "job_id", NULL), *name = lmr_json_str(j, "name", NULL);
    if (!json_is_object(j) || !id || !name)
        return lmr_fail(err, LMR_ERR_FORMAT, "task event: 'job' must have job_id and name");
    c->job_id = strdup(id);
    c->job_name = strdup(name);
    if (!c->job_id || !c->job_name)
        return LMR_ERR_NOMEM;
    enum lmr_result r = lmr_job_args_from_json(json_object_get(j, "args"), &c->args, err);
    if (!r)
        r = location_from_json(json_object_get(j, "work"), &c->work, "work", err);
    if (!r)
        r = location_from_json(json_object_get(j, "output"), &c->output, "output", err);
    c->reducers = (uint32_t)lmr_json_u64(j, "reducers", 0);
    c->memory_mb = (uint32_t)lmr_json_u64(j, "memory_mb", LMR_MEMORY_DEFAULT_MB);
    return r;
}

json_t *lmr_shard_to_json(const struct lmr_shard *s)
{
    return json_pack("{s:s, s:s, s:I, s:I, s:I, s:s}", "root", s->object.root, "key", s->object.key, "offset",
                     (json_int_t)s->offset, "length", (json_int_t)s->length, "size", (json_int_t)s->object_size,
                     "codec", lmr_codec_name(s->codec));
}

json_t *lmr_map_task_to_json(const struct lmr_map_task *t)
{
    json_t *shards = json_array();
    for (size_t i = 0; i < t->nshards; i++)
        json_array_append_new(shards, lmr_shard_to_json(&t->shards[i]));
    return json_pack("{s:s, s:o, s:I, s:I, s:s, s:o}", "kind", "map", "job", lmr_job_common_to_json(&t->job), "task",
                     (json_int_t)t->task, "attempt", (json_int_t)t->attempt, "attempt_id", t->attempt_id, "shards",
                     shards);
}

json_t *lmr_reduce_task_to_json(const struct lmr_reduce_task *t)
{
    json_t *frames = json_array();
    for (size_t i = 0; i < t->nframes; i++)
        json_array_append_new(frames, json_pack("[s, I, I]", t->frames[i].key, (json_int_t)t->frames[i].offset,
                                                (json_int_t)t->frames[i].size_bytes));
    return json_pack("{s:s, s:o, s:I, s:I, s:s, s:o}", "kind", "reduce", "job", lmr_job_common_to_json(&t->job), "task",
                     (json_int_t)t->task, "attempt", (json_int_t)t->attempt, "attempt_id", t->attempt_id, "frames",
                     frames);
}

static enum lmr_result parse_event(const char *event, size_t len, const char *kind, json_t **out, struct lmr_err *err)
{
    json_error_t je;
    json_t *j = json_loadb(event, len, 0, &je);
    if (!j)
        return lmr_fail(err, LMR_ERR_FORMAT, "the %s task event is not valid JSON (%s at position %d)", kind, je.text,
                        je.position);
    if (!json_is_object(j) || strcmp(lmr_json_str(j, "kind", ""), kind)) {
        json_decref(j);
        return lmr_fail(err, LMR_ERR_FORMAT, "the event is not a %s task (\"kind\": \"%s\" expected)", kind, kind);
    }
    *out = j;
    return LMR_OK;
}

/* Attempt ids become part of store keys: letters, digits, '-' and '_' only. */
static bool attempt_id_ok(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)id[i]) && id[i] != '-' && id[i] != '_')
            return false;
    return true;
}

/*
 * What map and reduce events share: kind, job, task, attempt, attempt id, and one array
 * (list_name) of the task's inputs. *j holds the parsed event (the array points into it).
 */
static enum lmr_result parse_task(const char *event, size_t len, const char *kind, const char *list_name, json_t **j,
                                  struct lmr_job_common *job, uint32_t *task, uint32_t *attempt, char **attempt_id,
                                  json_t **list, struct lmr_err *err)
{
    enum lmr_result r = parse_event(event, len, kind, j, err);
    if (r)
        return r;
    r = lmr_job_common_from_json(json_object_get(*j, "job"), job, err);
    *task = (uint32_t)lmr_json_u64(*j, "task", 0);
    *attempt = (uint32_t)lmr_json_u64(*j, "attempt", 1);
    const char *id = lmr_json_str(*j, "attempt_id", "a");
    if (!r && !attempt_id_ok(id))
        r = lmr_fail(err, LMR_ERR_FORMAT,
                     "%s task event: attempt_id '%.80s' must be 1 to 64 letters, digits, '-' or '_'", kind, id);
    if (!r && !(*attempt_id = strdup(id)))
        r = LMR_ERR_NOMEM;
    *list = json_object_get(*j, list_name);
    if (!r && !json_is_array(*list))
        r = lmr_fail(err, LMR_ERR_FORMAT, "%s task event: '%s' must be an array", kind, list_name);
    return r;
}

enum lmr_result lmr_shard_from_json(const json_t *s, struct lmr_shard *sh, struct lmr_err *err)
{
    enum lmr_result r = location_from_json(s, &sh->object, "shard", err);
    sh->offset = lmr_json_u64(s, "offset", 0);
    sh->length = lmr_json_u64(s, "length", 0);
    sh->object_size = lmr_json_u64(s, "size", 0);
    sh->codec = codec_parse(lmr_json_str(s, "codec", "none"));
    return r;
}

enum lmr_result lmr_map_task_from_json(const char *event, size_t len, struct lmr_map_task *t, struct lmr_err *err)
{
    json_t *j = NULL, *shards;
    memset(t, 0, sizeof *t);
    enum lmr_result r =
        parse_task(event, len, "map", "shards", &j, &t->job, &t->task, &t->attempt, &t->attempt_id, &shards, err);
    if (!r) {
        t->nshards = json_array_size(shards);
        t->shards = calloc(t->nshards ? t->nshards : 1, sizeof *t->shards);
        if (!t->shards)
            r = LMR_ERR_NOMEM;
    }
    for (size_t i = 0; !r && i < t->nshards; i++) {
        r = lmr_shard_from_json(json_array_get(shards, i), &t->shards[i], err);
    }
    json_decref(j);
    if (r)
        lmr_map_task_clean_up(t);
    return r;
}

enum lmr_result lmr_reduce_task_from_json(const char *event, size_t len, struct lmr_reduce_task *t, struct lmr_err *err)
{
    json_t *j = NULL, *frames;
    memset(t, 0, sizeof *t);
    enum lmr_result r =
        parse_task(event, len, "reduce", "frames", &j, &t->job, &t->task, &t->attempt, &t->attempt_id, &frames, err);
    if (!r) {
        t->nframes = json_array_size(frames);
        t->frames = calloc(t->nframes ? t->nframes : 1, sizeof *t->frames);
        if (!t->frames)
            r = LMR_ERR_NOMEM;
    }
    for (size_t i = 0; !r && i < t->nframes; i++) {
        json_t *f = json_array_get(frames, i);
        const char *key = json_string_value(json_array_get(f, 0));
        if (!key || !json_is_integer(json_array_get(f, 1)) || !json_is_integer(json_array_get(f, 2))) {
            r = lmr_fail(err, LMR_ERR_FORMAT, "reduce task event: frame %zu must be [key, offset, size]", i);
            break;
        }
        if (!(t->frames[i].key = strdup(key)))
            r = LMR_ERR_NOMEM;
        t->frames[i].offset = (uint64_t)json_integer_value(json_array_get(f, 1));
        t->frames[i].size_bytes = (uint64_t)json_integer_value(json_array_get(f, 2));
    }
    json_decref(j);
    if (r)
        lmr_reduce_task_clean_up(t);
    return r;
}

char *lmr_work_key(const struct lmr_job_common *c, const char *fmt, ...)
{
    char tail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tail, sizeof tail, fmt, ap);
    va_end(ap);
    size_t n = strlen(c->work.key) + strlen(tail) + 1;
    char *k = malloc(n);
    if (k)
        snprintf(k, n, "%s%s", c->work.key, tail);
    return k;
}

char *lmr_output_key(const struct lmr_job_common *c, const char *name)
{
    size_t n = strlen(c->output.key) + strlen(name) + 1;
    char *k = malloc(n);
    if (k)
        snprintf(k, n, "%s%s", c->output.key, name);
    return k;
}
