#include "job/task.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lambda/memory.h"
#include "store/store.h"

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
    free(t->frames_key);
    memset(t, 0, sizeof *t);
}

void lmr_merge_task_clean_up(struct lmr_merge_task *t)
{
    lmr_job_common_clean_up(&t->job);
    free(t->attempt_id);
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
    json_t *j = json_pack("{s:s, s:o, s:I, s:I, s:s, s:o}", "kind", "map", "job", lmr_job_common_to_json(&t->job),
                          "task", (json_int_t)t->task, "attempt", (json_int_t)t->attempt, "attempt_id", t->attempt_id,
                          "shards", shards);
    if (j && t->split_min_bytes)
        json_object_set_new(j, "split_min_bytes", json_integer((json_int_t)t->split_min_bytes));
    if (j && t->check_cut)
        json_object_set_new(j, "check_cut", json_true());
    if (j && t->ask_peer)
        json_object_set_new(j, "split_peer", json_integer(t->peer));
    return j;
}

json_t *lmr_reduce_frames_to_json(const struct lmr_frame *frames, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        if (json_array_append_new(a, json_pack("[s, I, I]", frames[i].key, (json_int_t)frames[i].offset,
                                               (json_int_t)frames[i].size_bytes))) {
            json_decref(a);
            return NULL;
        }
    return a ? json_pack("{s:o}", "frames", a) : NULL;
}

json_t *lmr_reduce_task_to_json(const struct lmr_reduce_task *t)
{
    json_t *list = t->frames_key ? json_pack("{s:[]}", "frames") : lmr_reduce_frames_to_json(t->frames, t->nframes);
    json_t *frames = json_incref(json_object_get(list, "frames"));
    json_decref(list);
    json_t *j = json_pack("{s:s, s:o, s:I, s:I, s:s, s:o}", "kind", "reduce", "job", lmr_job_common_to_json(&t->job),
                          "task", (json_int_t)t->task, "attempt", (json_int_t)t->attempt, "attempt_id", t->attempt_id,
                          "frames", frames);
    if (j && t->frames_key)
        json_object_set_new(j, "frames_key", json_string(t->frames_key));
    return j;
}

json_t *lmr_merge_task_to_json(const struct lmr_merge_task *t)
{
    return json_pack("{s:s, s:o, s:I, s:I, s:s, s:[I, I]}", "kind", "merge", "job", lmr_job_common_to_json(&t->job),
                     "task", (json_int_t)t->task, "attempt", (json_int_t)t->attempt, "attempt_id", t->attempt_id,
                     "maps", (json_int_t)t->first_map, (json_int_t)t->maps);
}

void lmr_task_event_kind(const char *event, size_t len, char *out, size_t cap)
{
    json_t *j = json_loadb(event, len, 0, NULL);
    snprintf(out, cap, "%s", lmr_json_str(j, "kind", ""));
    json_decref(j);
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
    if (!r) {
        t->split_min_bytes = lmr_json_u64(j, "split_min_bytes", 0);
        t->check_cut = json_is_true(json_object_get(j, "check_cut"));
        json_t *peer = json_object_get(j, "split_peer");
        t->ask_peer = json_is_integer(peer) && json_integer_value(peer) >= 0 &&
                      json_integer_value(peer) <= UINT32_MAX && json_integer_value(peer) != t->task;
        t->peer = t->ask_peer ? (uint32_t)json_integer_value(peer) : 0;
    }
    json_decref(j);
    if (r)
        lmr_map_task_clean_up(t);
    return r;
}

/* Parse a frame list ([[key, offset, size], ...]) into t->frames. what names the list in messages. */
static enum lmr_result frames_from_json(const json_t *frames, struct lmr_reduce_task *t, const char *what,
                                        struct lmr_err *err)
{
    if (!json_is_array(frames))
        return lmr_fail(err, LMR_ERR_FORMAT, "%s: 'frames' must be an array", what);
    t->nframes = json_array_size(frames);
    t->frames = calloc(t->nframes ? t->nframes : 1, sizeof *t->frames);
    if (!t->frames) {
        t->nframes = 0;
        return LMR_ERR_NOMEM;
    }
    for (size_t i = 0; i < t->nframes; i++) {
        json_t *f = json_array_get(frames, i);
        const char *key = json_string_value(json_array_get(f, 0));
        if (!key || !json_is_integer(json_array_get(f, 1)) || !json_is_integer(json_array_get(f, 2)) ||
            json_integer_value(json_array_get(f, 1)) < 0 || json_integer_value(json_array_get(f, 2)) < 0)
            return lmr_fail(err, LMR_ERR_FORMAT, "%s: frame %zu must be [key, offset, size]", what, i);
        if (!(t->frames[i].key = strdup(key)))
            return LMR_ERR_NOMEM;
        t->frames[i].offset = (uint64_t)json_integer_value(json_array_get(f, 1));
        t->frames[i].size_bytes = (uint64_t)json_integer_value(json_array_get(f, 2));
    }
    return LMR_OK;
}

enum lmr_result lmr_reduce_task_from_json(const char *event, size_t len, struct lmr_reduce_task *t, struct lmr_err *err)
{
    json_t *j = NULL, *frames;
    memset(t, 0, sizeof *t);
    enum lmr_result r =
        parse_task(event, len, "reduce", "frames", &j, &t->job, &t->task, &t->attempt, &t->attempt_id, &frames, err);
    if (!r)
        r = frames_from_json(frames, t, "reduce task event", err);
    const char *fk = lmr_json_str(j, "frames_key", NULL);
    if (!r && fk && !(t->frames_key = strdup(fk)))
        r = LMR_ERR_NOMEM;
    json_decref(j);
    if (r)
        lmr_reduce_task_clean_up(t);
    return r;
}

enum lmr_result lmr_reduce_task_load_frames(struct lmr_reduce_task *t, struct lmr_store *work, struct lmr_err *err)
{
    if (!t->frames_key)
        return LMR_OK;
    struct lmr_buf b;
    lmr_buf_init(&b, LMR_REDUCE_FRAMES_MAX_BYTES);
    enum lmr_result r = lmr_store_get(work, t->frames_key, 0, LMR_STORE_TO_END, &b, err);
    if (r == LMR_ERR_TOO_LARGE)
        r = lmr_fail(err, r, "the frame list %s of reduce task %u is over %u MiB", t->frames_key, t->task,
                     LMR_REDUCE_FRAMES_MAX_BYTES >> 20);
    else if (r)
        lmr_err_prefix(err, "reading the frame list of reduce task %u", t->task);
    json_error_t je;
    json_t *j = r ? NULL : json_loadb(b.data ? b.data : "", b.len, 0, &je);
    lmr_buf_clean_up(&b);
    if (!r && !j)
        r = lmr_fail(err, LMR_ERR_FORMAT, "the frame list %s of reduce task %u is not JSON: %s", t->frames_key, t->task,
                     je.text);
    if (!r) {
        for (size_t i = 0; i < t->nframes; i++)
            free(t->frames[i].key);
        free(t->frames);
        t->frames = NULL;
        t->nframes = 0;
        r = frames_from_json(json_object_get(j, "frames"), t, t->frames_key, err);
    }
    json_decref(j);
    return r;
}

enum lmr_result lmr_merge_task_from_json(const char *event, size_t len, struct lmr_merge_task *t, struct lmr_err *err)
{
    json_t *j = NULL, *maps = NULL;
    memset(t, 0, sizeof *t);
    enum lmr_result r =
        parse_task(event, len, "merge", "maps", &j, &t->job, &t->task, &t->attempt, &t->attempt_id, &maps, err);
    json_t *first = json_array_get(maps, 0), *count = json_array_get(maps, 1);
    if (!r && (json_array_size(maps) != 2 || !json_is_integer(first) || !json_is_integer(count) ||
               json_integer_value(first) < 0 || json_integer_value(count) < 1 ||
               json_integer_value(first) + json_integer_value(count) > UINT32_MAX))
        r = lmr_fail(err, LMR_ERR_FORMAT, "merge task event: 'maps' must be [first map task, count >= 1]");
    if (!r) {
        t->first_map = (uint32_t)json_integer_value(first);
        t->maps = (uint32_t)json_integer_value(count);
    }
    json_decref(j);
    if (r)
        lmr_merge_task_clean_up(t);
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

/* ---- cuts (dynamic work rebalancing) ---------------------------------------------------------------------- */

static uint64_t shard_end(const struct lmr_shard *s)
{
    return s->offset + s->length;
}

bool lmr_map_cut_decide(const struct lmr_shard *shards, size_t n, size_t cur, uint64_t pos, uint64_t min_side_bytes,
                        int64_t extra_tail_bytes, struct lmr_map_cut *cut)
{
    if (cur >= n)
        return false;
    const struct lmr_shard *c = &shards[cur];
    bool whole = c->codec != LMR_CODEC_NONE;
    if (!whole && pos < c->offset)
        pos = c->offset;
    if (!whole && pos > shard_end(c))
        pos = shard_end(c);
    /* What remains: the rest of the current shard (all of it when compressed: its progress is not known) and the
     * shards after it. */
    uint64_t rem_cur = whole ? c->length : shard_end(c) - pos, total = rem_cur;
    for (size_t k = cur + 1; k < n; k++)
        total += shards[k].length;
    if (total < 2 * min_side_bytes || total == 0)
        return false;
    int64_t half = (int64_t)(total / 2), want = extra_tail_bytes < -half ? 0 : half + extra_tail_bytes;
    uint64_t give = (uint64_t)want < total ? (uint64_t)want : total;
    uint64_t head = give < total ? total - give : 0; /* the bytes the task keeps */
    struct lmr_map_cut at;
    if (head < rem_cur) { /* the cut falls in the current shard */
        if (whole) {      /* a compressed shard is read whole: the next boundary */
            if (cur + 1 >= n)
                return false;
            at = (struct lmr_map_cut){cur + 1, shards[cur + 1].offset};
        } else {
            at = (struct lmr_map_cut){cur, pos + head};
        }
    } else {
        uint64_t acc = rem_cur;
        size_t k = cur + 1;
        for (; k < n && head >= acc + shards[k].length; k++)
            acc += shards[k].length;
        if (k >= n)
            return false;
        const struct lmr_shard *s = &shards[k];
        uint64_t into = head - acc; /* bytes of shard k the task keeps */
        if (s->codec == LMR_CODEC_NONE || into == 0)
            at = (struct lmr_map_cut){k, s->offset + into};
        else if (into <= s->length / 2) /* the nearer boundary: before shard k */
            at = (struct lmr_map_cut){k, s->offset};
        else if (k + 1 < n) /* or after it */
            at = (struct lmr_map_cut){k + 1, shards[k + 1].offset};
        else
            return false;
    }
    /* The tail (and with an even split both sides) must get at least min_side_bytes (a boundary cut may have moved
     * the cut). */
    uint64_t tail = shard_end(&shards[at.shard]) - at.offset;
    for (size_t k = at.shard + 1; k < n; k++)
        tail += shards[k].length;
    if (tail < min_side_bytes || tail == 0 || (!extra_tail_bytes && total - tail < min_side_bytes))
        return false;
    *cut = at;
    return true;
}

enum lmr_result lmr_map_cut_check(const struct lmr_shard *shards, size_t n, const struct lmr_map_cut *cut,
                                  struct lmr_err *err)
{
    if (cut->shard >= n)
        return lmr_fail(err, LMR_ERR_FORMAT, "the cut names shard %zu of a task with %zu shards", cut->shard, n);
    const struct lmr_shard *s = &shards[cut->shard];
    if (cut->offset < s->offset || cut->offset >= shard_end(s) ||
        (s->codec != LMR_CODEC_NONE && cut->offset != s->offset))
        return lmr_fail(err, LMR_ERR_FORMAT,
                        "the cut at byte %llu is not inside shard %zu (%s, bytes %llu-%llu%s) of the task",
                        (unsigned long long)cut->offset, cut->shard, s->object.key, (unsigned long long)s->offset,
                        (unsigned long long)shard_end(s), s->codec != LMR_CODEC_NONE ? ", compressed: whole only" : "");
    return LMR_OK;
}

enum lmr_result lmr_map_tail_shards(const struct lmr_shard *shards, size_t n, const struct lmr_map_cut *cut,
                                    struct lmr_shard **out, size_t *out_n, struct lmr_err *err)
{
    enum lmr_result r = lmr_map_cut_check(shards, n, cut, err);
    if (r)
        return r;
    size_t m = n - cut->shard;
    struct lmr_shard *t = calloc(m, sizeof *t);
    if (!t)
        return LMR_ERR_NOMEM;
    for (size_t k = 0; k < m; k++) {
        const struct lmr_shard *s = &shards[cut->shard + k];
        t[k] = *s;
        t[k].object.root = strdup(s->object.root);
        t[k].object.key = strdup(s->object.key);
        if (!t[k].object.root || !t[k].object.key)
            r = LMR_ERR_NOMEM;
    }
    t[0].offset = cut->offset;
    t[0].length = shard_end(&shards[cut->shard]) - cut->offset;
    if (r) {
        for (size_t k = 0; k < m; k++)
            lmr_location_clean_up(&t[k].object);
        free(t);
        return r;
    }
    *out = t;
    *out_n = m;
    return LMR_OK;
}

size_t lmr_map_head_shards(const struct lmr_shard *shards, size_t n, const struct lmr_map_cut *cut)
{
    if (cut->shard >= n)
        return n;
    return cut->shard + (cut->offset > shards[cut->shard].offset);
}

json_t *lmr_map_cut_to_json(const struct lmr_map_cut *cut)
{
    return json_pack("{s:I, s:I}", "shard", (json_int_t)cut->shard, "offset", (json_int_t)cut->offset);
}

bool lmr_map_cut_from_json(const json_t *j, struct lmr_map_cut *cut)
{
    json_t *s = json_object_get(j, "shard"), *o = json_object_get(j, "offset");
    if (!json_is_integer(s) || !json_is_integer(o) || json_integer_value(s) < 0 || json_integer_value(o) < 0)
        return false;
    cut->shard = (size_t)json_integer_value(s);
    cut->offset = (uint64_t)json_integer_value(o);
    return true;
}
