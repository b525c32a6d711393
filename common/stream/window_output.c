#define _GNU_SOURCE
#include "stream/window_output.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stream/event.h"
#include "util/log.h"

#define PART_MAGIC "LMRW1\n"
#define OUTPUT_MAX_BYTES ((size_t)1 << 32)
#define WINDOWS_DIR "_lambdamr/windows/"

static char *join(const char *prefix, const char *rest)
{
    char *k;
    if (asprintf(&k, "%s%s%s", prefix, *prefix ? "/" : "", rest) < 0)
        return NULL;
    return k;
}

char *lmr_stream_window_output_key(const char *prefix, uint64_t window_start_ms)
{
    char iso[40], rest[80];
    snprintf(rest, sizeof rest, "window=%s/part-00000", lmr_stream_iso8601(window_start_ms, iso, sizeof iso));
    return join(prefix, rest);
}

/* "<prefix>/_lambdamr/windows/window=<ISO>/" */
static char *parts_dir(const char *prefix, uint64_t w)
{
    char iso[40], rest[120];
    snprintf(rest, sizeof rest, WINDOWS_DIR "window=%s/", lmr_stream_iso8601(w, iso, sizeof iso));
    return join(prefix, rest);
}

static char *part_key(const char *prefix, const struct lmr_stream_part_id *id)
{
    char *dir = parts_dir(prefix, id->window_start_ms), *k = NULL;
    if (!dir)
        return NULL;
    const char *run = id->run ? id->run : "";
    int rc = id->early ? asprintf(&k, "%s%s/early-%sL%u-%s.kv", dir, id->shard_id, run, id->lane,
                                  id->first_seq && *id->first_seq ? id->first_seq : "none")
                       : asprintf(&k, "%s%s/final-%sL%u.kv", dir, id->shard_id, run, id->lane);
    free(dir);
    return rc < 0 ? NULL : k;
}

enum lmr_result lmr_stream_window_write_part(struct lmr_store *store, const char *prefix,
                                             const struct lmr_stream_part_id *id, const struct lmr_stream_state *st,
                                             const char *job_name, const char *args_json, uint64_t records,
                                             bool *already, struct lmr_err *err)
{
    if (already)
        *already = false;
    if (!id->shard_id || !*id->shard_id || strchr(id->shard_id, '/'))
        return lmr_fail(err, LMR_ERR_INVALID, "the event's shardId '%s' cannot name a window part",
                        id->shard_id ? id->shard_id : "");
    char *key = part_key(prefix, id);
    if (!key)
        return lmr_fail(err, LMR_ERR_NOMEM, "out of memory naming a window part");
    json_error_t jerr;
    json_t *args = args_json && *args_json ? json_loads(args_json, 0, &jerr) : json_object();
    json_t *hdr = json_pack("{s:s,s:o,s:I}", "job", job_name ? job_name : "", "args", args ? args : json_object(),
                            "records", (json_int_t)records);
    enum lmr_result r = LMR_OK;
    struct lmr_buf b;
    lmr_buf_init(&b, LMR_STREAM_PART_MAX_BYTES);
    char *line = NULL;
    if (!hdr || !(line = json_dumps(hdr, JSON_COMPACT))) {
        r = lmr_fail(err, LMR_ERR_NOMEM, "out of memory writing window part %s", key);
        goto done;
    }
    if ((r = lmr_buf_append_str(&b, PART_MAGIC)) || (r = lmr_buf_append_str(&b, line)) ||
        (r = lmr_buf_append(&b, "\n", 1)) || (r = lmr_stream_state_pack(st, &b))) {
        r = lmr_fail(err, r, "window part %s is larger than %u bytes", key, LMR_STREAM_PART_MAX_BYTES);
        goto done;
    }
    r = lmr_store_put(store, key, b.data, b.len, LMR_PUT_CREATE_ONLY, err);
    if (r == LMR_ERR_EXISTS) {
        lmr_err_clear(err);
        r = LMR_OK;
        if (already)
            *already = true;
    } else if (r) {
        lmr_err_prefix(err, "writing window part %s: ", key);
    }
done:
    free(line);
    json_decref(hdr);
    lmr_buf_clean_up(&b);
    free(key);
    return r;
}

/* The keys under dir (capped at LMR_STREAM_WINDOW_PARTS_MAX). */
static enum lmr_result list_keys(struct lmr_store *store, const char *dir, struct lmr_store_keys *k,
                                 struct lmr_err *err)
{
    k->max = LMR_STREAM_WINDOW_PARTS_MAX;
    enum lmr_result r = lmr_store_list(store, dir, lmr_store_keys_add, k, err);
    if (k->too_many)
        return lmr_fail(err, LMR_ERR_TOO_LARGE, "%s%s holds more than %u window parts; merge cannot read them all",
                        store->root_uri, dir, LMR_STREAM_WINDOW_PARTS_MAX);
    if (r == LMR_ERR_NOMEM)
        return lmr_fail(err, r, "out of memory listing %s%s", store->root_uri, dir);
    if (r)
        return lmr_err_prefix(err, "listing window parts %s: ", dir);
    return LMR_OK;
}

enum lmr_result lmr_stream_window_complete(struct lmr_store *store, const char *prefix, uint64_t window_start_ms,
                                           const char *const *shard_ids, size_t n, const char *run, uint32_t lanes,
                                           bool *complete, struct lmr_err *err)
{
    *complete = false;
    char *dir = parts_dir(prefix, window_start_ms);
    if (!dir)
        return lmr_fail(err, LMR_ERR_NOMEM, "out of memory");
    struct lmr_store_keys k = {0};
    enum lmr_result r = list_keys(store, dir, &k, err);
    bool all = !r && n > 0;
    for (size_t s = 0; all && s < n; s++) {
        for (uint32_t l = 0; all && l < (lanes ? lanes : 1); l++) {
            char want[600];
            snprintf(want, sizeof want, "%s%s/final-%sL%u.kv", dir, shard_ids[s], run ? run : "", l);
            bool found = false;
            for (size_t i = 0; i < k.n && !found; i++)
                found = !strcmp(k.v[i], want);
            all = found;
        }
    }
    *complete = all;
    lmr_store_keys_free(&k);
    free(dir);
    return r;
}

static bool is_part(const char *key)
{
    size_t n = strlen(key);
    return n > 3 && !strcmp(key + n - 3, ".kv");
}

/* Is key a part of run `run` (NULL: of any run)? Names: .../(final|early)-<run>L<lane>... */
static bool part_of_run(const char *key, const char *run)
{
    if (!run)
        return true;
    const char *base = strrchr(key, '/');
    base = base ? base + 1 : key;
    if (strncmp(base, "final-", 6) && strncmp(base, "early-", 6))
        return false;
    const char *r = base + 6, *l = strchr(r, 'L');
    return l && (size_t)(l - r) == strlen(run) && !strncmp(r, run, (size_t)(l - r));
}

/* Read a part: check its header, merge its entries into st. */
static enum lmr_result merge_part(struct lmr_store *store, const char *key, struct lmr_stream_state *st,
                                  const struct lmr_job_ops *job, void *job_state, uint64_t *records,
                                  struct lmr_err *err)
{
    struct lmr_buf b;
    lmr_buf_init(&b, LMR_STREAM_PART_MAX_BYTES);
    enum lmr_result r = lmr_store_get(store, key, 0, LMR_STORE_TO_END, &b, err);
    if (r) {
        lmr_buf_clean_up(&b);
        return r == LMR_ERR_NOT_FOUND ? r : lmr_err_prefix(err, "reading window part %s: ", key);
    }
    const char *p = b.data ? b.data : "";
    const char *nl =
        b.len > sizeof PART_MAGIC - 1 ? memchr(p + sizeof PART_MAGIC - 1, '\n', b.len - (sizeof PART_MAGIC - 1)) : NULL;
    json_t *hdr = NULL;
    if (b.len < sizeof PART_MAGIC - 1 || memcmp(p, PART_MAGIC, sizeof PART_MAGIC - 1) || !nl ||
        !(hdr = json_loadb(p + sizeof PART_MAGIC - 1, (size_t)(nl - p) - (sizeof PART_MAGIC - 1), 0, NULL))) {
        lmr_buf_clean_up(&b);
        return lmr_fail(err, LMR_ERR_FORMAT,
                        "%s/%s is not a window part written by lambdamr (no LMRW1 header); remove it and run "
                        "'lambdamr stream merge' again",
                        store->root_uri, key);
    }
    const char *jn = json_string_value(json_object_get(hdr, "job"));
    if (jn && *jn && strcmp(jn, job->name))
        LMR_WARN("stream: window part %s was written by job '%s', merging it with '%s'", key, jn, job->name);
    *records += (uint64_t)json_integer_value(json_object_get(hdr, "records"));
    json_decref(hdr);
    const uint8_t *data = (const uint8_t *)nl + 1;
    r = lmr_stream_state_merge_packed(st, job, job_state, data, b.len - (size_t)(data - (const uint8_t *)p), err);
    if (r)
        lmr_err_prefix(err, "window part %s/%s: ", store->root_uri, key);
    lmr_buf_clean_up(&b);
    return r;
}

static void delete_keys(struct lmr_store *store, struct lmr_store_keys *k)
{
    struct lmr_err derr = {0};
    if (k->n && lmr_store_delete(store, (const char *const *)k->v, k->n, &derr))
        LMR_WARN("stream: cannot delete %zu merged window part(s): %s", k->n, derr.msg);
}

enum lmr_result lmr_stream_window_merge(struct lmr_store *store, const char *prefix, uint64_t window_start_ms,
                                        const char *run, const struct lmr_job_ops *job, void *job_state,
                                        struct lmr_stream_merge_result *res, struct lmr_err *err)
{
    memset(res, 0, sizeof *res);
    char *out_key = lmr_stream_window_output_key(prefix, window_start_ms);
    char *dir = parts_dir(prefix, window_start_ms);
    struct lmr_stream_state *st = lmr_stream_state_new(job->value_size);
    struct lmr_store_keys k = {0};
    struct lmr_buf lines;
    lmr_buf_init(&lines, OUTPUT_MAX_BYTES);
    enum lmr_result r = LMR_OK;
    if (!out_key || !dir || !st) {
        r = lmr_fail(err, LMR_ERR_NOMEM, "out of memory merging a window");
        goto done;
    }
    if ((r = list_keys(store, dir, &k, err)))
        goto done;
    uint64_t size;
    if (lmr_store_head(store, out_key, &size, NULL) == LMR_OK) {
        res->already = true;
        delete_keys(store, &k);
        goto done;
    }
    for (size_t i = 0; i < k.n && !r; i++) {
        if (!is_part(k.v[i]))
            continue;
        if (!part_of_run(k.v[i], run)) {
            res->other_runs++;
            continue;
        }
        r = merge_part(store, k.v[i], st, job, job_state, &res->records, err);
        if (r == LMR_ERR_NOT_FOUND) {
            /* Deleted under us: another merger committed the output (checked below). */
            lmr_err_clear(err);
            r = LMR_OK;
            if (lmr_store_head(store, out_key, &size, NULL) == LMR_OK) {
                res->already = true;
                goto done;
            }
            r = lmr_fail(err, LMR_ERR_NOT_FOUND, "window part %s/%s disappeared before the window was merged",
                         store->root_uri, k.v[i]);
        }
        res->parts++;
    }
    if (r)
        goto done;
    if (!res->parts) {
        res->no_parts = true;
        goto done;
    }
    /* The parts of other runs go too: they are an interrupted run's, whose records were read again. */
    res->keys = lmr_stream_state_count(st);
    if ((r = lmr_stream_state_reduce_lines(st, job, job_state, &lines, err)))
        goto done;
    r = lmr_store_put(store, out_key, lines.data ? lines.data : "", lines.len, LMR_PUT_CREATE_ONLY, err);
    if (r == LMR_ERR_EXISTS) {
        lmr_err_clear(err);
        r = LMR_OK;
        res->already = true;
    } else if (r) {
        lmr_err_prefix(err, "committing window output %s: ", out_key);
        goto done;
    }
    delete_keys(store, &k);
done:
    lmr_buf_clean_up(&lines);
    lmr_store_keys_free(&k);
    lmr_stream_state_destroy(st);
    free(dir);
    free(out_key);
    return r;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

enum lmr_result lmr_stream_window_list(struct lmr_store *store, const char *prefix, uint64_t **windows, size_t *n,
                                       struct lmr_err *err)
{
    *windows = NULL;
    *n = 0;
    char *dir = join(prefix, WINDOWS_DIR);
    if (!dir)
        return lmr_fail(err, LMR_ERR_NOMEM, "out of memory");
    struct lmr_store_keys k = {0};
    enum lmr_result r = list_keys(store, dir, &k, err);
    uint64_t *v = r ? NULL : calloc(k.n ? k.n : 1, sizeof *v);
    if (!r && !v)
        r = lmr_fail(err, LMR_ERR_NOMEM, "out of memory");
    size_t count = 0;
    for (size_t i = 0; !r && i < k.n; i++) {
        const char *rest = k.v[i] + strlen(dir);
        if (strncmp(rest, "window=", 7))
            continue;
        char iso[64];
        const char *slash = strchr(rest + 7, '/');
        if (!slash || (size_t)(slash - rest - 7) >= sizeof iso)
            continue;
        memcpy(iso, rest + 7, (size_t)(slash - rest - 7));
        iso[slash - rest - 7] = '\0';
        uint64_t w;
        if (lmr_stream_parse_time(iso, &w))
            continue;
        bool seen = false;
        for (size_t j = 0; j < count && !seen; j++)
            seen = v[j] == w;
        if (!seen)
            v[count++] = w;
    }
    lmr_store_keys_free(&k);
    free(dir);
    if (r) {
        free(v);
        return r;
    }
    qsort(v, count, sizeof *v, cmp_u64);
    *windows = v;
    *n = count;
    return LMR_OK;
}

enum lmr_result lmr_stream_window_job(struct lmr_store *store, const char *prefix, uint64_t window_start_ms,
                                      char **job_name, json_t **args, struct lmr_err *err)
{
    *job_name = NULL;
    *args = NULL;
    char *dir = parts_dir(prefix, window_start_ms);
    if (!dir)
        return lmr_fail(err, LMR_ERR_NOMEM, "out of memory");
    struct lmr_store_keys k = {0};
    enum lmr_result r = list_keys(store, dir, &k, err);
    size_t i = 0;
    while (!r && i < k.n && !is_part(k.v[i]))
        i++;
    if (!r && i == k.n)
        r = lmr_fail(err, LMR_ERR_NOT_FOUND, "window %s has no parts left", dir);
    struct lmr_buf b;
    lmr_buf_init(&b, 64 * 1024);
    if (!r) {
        /* The header is the first line after the magic: read the first 64 KiB. */
        r = lmr_store_get(store, k.v[i], 0, 64 * 1024, &b, err);
        const char *nl = !r && b.len > 6 ? memchr(b.data + 6, '\n', b.len - 6) : NULL;
        json_t *hdr =
            nl && !memcmp(b.data, PART_MAGIC, 6) ? json_loadb(b.data + 6, (size_t)(nl - b.data) - 6, 0, NULL) : NULL;
        const char *jn = json_string_value(json_object_get(hdr, "job"));
        if (!r && (!jn || !*jn))
            r = lmr_fail(err, LMR_ERR_FORMAT, "window part %s/%s does not name its job", store->root_uri, k.v[i]);
        if (!r) {
            *job_name = strdup(jn);
            json_t *a = json_object_get(hdr, "args");
            *args = json_is_object(a) ? json_incref(a) : json_object();
        }
        json_decref(hdr);
    }
    lmr_buf_clean_up(&b);
    lmr_store_keys_free(&k);
    free(dir);
    return r;
}
