#include "output.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/log.h"

#define MAX_LISTED_NAMES 1000000u

/* ---- what is in the output -------------------------------------------------------------------------------- */

struct found {
    const char *prefix;
    struct lmr_store_keys parts;    /* top-level part-* names */
    struct lmr_store_keys lambdamr; /* full keys under _lambdamr/ except the lease */
    bool success;
};

static enum lmr_result on_output(void *user_data, const struct lmr_store_object *obj)
{
    struct found *f = user_data;
    const char *name = obj->key + strlen(f->prefix);
    if (!strcmp(name, "_SUCCESS"))
        f->success = true;
    else if (!strncmp(name, "part-", 5) && !strchr(name, '/'))
        return lmr_store_keys_push(&f->parts, name, strlen(name));
    else if (!strncmp(name, "_lambdamr/", 10) && strcmp(name, "_lambdamr/lease.json"))
        return lmr_store_keys_add(&f->lambdamr, obj);
    return LMR_OK;
}

static char *join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 1;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s%s", a, b);
    return s;
}

static json_t *get_json(struct lmr_store *s, const char *key, size_t max, struct lmr_err *err)
{
    struct lmr_buf b;
    lmr_buf_init(&b, max);
    json_t *j = NULL;
    if (lmr_store_get(s, key, 0, LMR_STORE_TO_END, &b, err) == LMR_OK)
        j = json_loadb(b.data ? b.data : "", b.len, 0, NULL);
    lmr_buf_clean_up(&b);
    return j;
}

/* _SUCCESS's list of parts; for outputs of lambdamr before job-scoped output (empty _SUCCESS),
 * the parts its report counted. Sets *job to the job id found (borrowed from the returned JSON). */
static enum lmr_result success_parts(const struct lmr_output_check *c, struct lmr_store_keys *listed, char *job,
                                     size_t cap)
{
    char *key = join(c->prefix, "_SUCCESS");
    json_t *j = key ? get_json(c->store, key, LMR_SUCCESS_MAX_BYTES, NULL) : NULL;
    free(key);
    enum lmr_result r = LMR_OK;
    json_t *parts = json_object_get(j, "parts"), *p;
    size_t i;
    if (json_is_array(parts)) {
        snprintf(job, cap, "%s", lmr_json_str(j, "job_id", "?"));
        json_array_foreach(parts, i, p) if (!r && json_is_string(p)) r =
            lmr_store_keys_push(listed, json_string_value(p), strlen(json_string_value(p)));
    } else {
        key = join(c->prefix, "_lambdamr/report.json");
        json_t *rep = key ? get_json(c->store, key, LMR_SUCCESS_MAX_BYTES, NULL) : NULL;
        free(key);
        if (lmr_json_str(rep, "job_id", NULL)) {
            snprintf(job, cap, "%s", lmr_json_str(rep, "job_id", "?"));
            uint64_t red = lmr_json_u64(rep, "reducers", 0), n = red ? red : lmr_json_u64(rep, "mappers", 0);
            for (uint64_t t = 0; !r && t < n && t < MAX_LISTED_NAMES; t++) {
                char name[32];
                snprintf(name, sizeof name, "part-%c-%05llu", red ? 'r' : 'm', (unsigned long long)t);
                r = lmr_store_keys_push(listed, name, strlen(name));
            }
        }
        json_decref(rep);
    }
    json_decref(j);
    return r;
}

/* The parts an earlier job's work records name: reduce tasks' folders, and map tasks' folders that hold a claim. */
struct work_scan {
    const char *prefix;
    struct lmr_store_keys *listed;
};

static enum lmr_result on_work(void *user_data, const struct lmr_store_object *obj)
{
    struct work_scan *ws = user_data;
    const char *rel = obj->key + strlen(ws->prefix);
    unsigned task;
    char kind, rest[80];
    if (sscanf(rel, "%*[a-z]/%c-%5u/%79s", &kind, &task, rest) != 3 || (kind != 'r' && kind != 'm'))
        return LMR_OK;
    size_t n = strlen(rest);
    bool claim = n > 6 && !strcmp(rest + n - 6, ".claim");
    if (!(kind == 'r' && (claim || !strcmp(rest, "commit.json"))) && !(kind == 'm' && claim))
        return LMR_OK;
    char name[32];
    snprintf(name, sizeof name, "part-%c-%05u", kind, task);
    return lmr_store_keys_has(ws->listed, name) ? LMR_OK : lmr_store_keys_push(ws->listed, name, strlen(name));
}

static enum lmr_result previous_work_parts(const struct lmr_output_check *c, struct lmr_store **work,
                                           const char **work_key, struct lmr_store_keys *listed, struct lmr_err *err)
{
    json_t *w = json_object_get(c->previous, "work");
    const char *root = lmr_json_str(w, "root", NULL), *key = lmr_json_str(w, "key", NULL);
    *work = NULL;
    *work_key = key;
    if (!root || !key || !*key)
        return LMR_OK;
    enum lmr_result r = lmr_store_set_get(c->stores, root, work, err);
    if (r)
        return lmr_err_prefix(err, "opening the work location of the earlier job %s",
                              lmr_json_str(c->previous, "job_id", "?"));
    struct work_scan ws = {.prefix = key, .listed = listed};
    return lmr_store_list(*work, key, on_work, &ws, err);
}

/* ---- symbolic links --------------------------------------------------------------------------------------- */

/* On the file store, is any component of key (below the root) a symbolic link? */
static bool through_symlink(struct lmr_store *s, const char *key)
{
    if (strcmp(s->vtable->scheme, "file"))
        return false;
    const char *root = s->root_uri + strlen("file://");
    char path[4096];
    int n = snprintf(path, sizeof path, "%s/%s", root, key);
    if (n < 0 || (size_t)n >= sizeof path)
        return true; /* cannot check: treat as unsafe */
    for (char *p = path + strlen(root) + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            struct stat st;
            bool link = lstat(path, &st) == 0 && S_ISLNK(st.st_mode);
            *p = saved;
            if (link)
                return true;
            if (!saved)
                return false;
        }
    }
}

/* ---- prepare ---------------------------------------------------------------------------------------------- */

static enum lmr_result delete_keys(struct lmr_store *s, char **keys, size_t n, size_t *removed, struct lmr_err *err)
{
    for (size_t i = 0; i < n; i++)
        if (through_symlink(s, keys[i]))
            return lmr_fail(err, LMR_ERR_INVALID,
                            "refusing to remove '%s' in %s: it is (or lies below) a symbolic link; --overwrite "
                            "never deletes through links: remove it yourself or choose another --output",
                            keys[i], s->root_uri);
    enum lmr_result r = n ? lmr_store_delete(s, (const char *const *)keys, n, err) : LMR_OK;
    if (!r)
        *removed += n;
    return r;
}

enum lmr_result lmr_output_prepare(const struct lmr_output_check *c, struct lmr_output_state *st, struct lmr_err *err)
{
    memset(st, 0, sizeof *st);
    struct found f = {.prefix = c->prefix, .parts.max = MAX_LISTED_NAMES, .lambdamr.max = MAX_LISTED_NAMES};
    struct lmr_store_keys listed = {.max = MAX_LISTED_NAMES}, doomed = {.max = MAX_LISTED_NAMES},
                          work_keys = {.max = MAX_LISTED_NAMES};
    char success_job[128] = "", *lambdamr_dir = join(c->prefix, "_lambdamr");
    const char *prev_job = lmr_json_str(c->previous, "job_id", NULL);
    struct lmr_store *prev_work = NULL;
    const char *prev_work_key = NULL;
    enum lmr_result r = lambdamr_dir ? lmr_store_list(c->store, c->prefix, on_output, &f, err) : LMR_ERR_NOMEM;
    if (r) {
        lmr_err_prefix(err, "checking output '%s'", c->uri);
        goto out;
    }
    st->had_parts = f.parts.n > 0 || f.success;
    st->had_success = f.success;
    if (!st->had_parts)
        goto out;
    if (!r)
        r = success_parts(c, &listed, success_job, sizeof success_job);
    if (!r && prev_job && strcmp(prev_job, c->job_id))
        r = previous_work_parts(c, &prev_work, &prev_work_key, &listed, err);
    if (r)
        goto out;
    const char *who = success_job[0] ? success_job : prev_job;
    if (!c->overwrite) {
        if (f.success)
            r = lmr_fail(err, LMR_ERR_EXISTS,
                         "output '%s' already holds a finished job (%s%s_SUCCESS); choose another --output or add "
                         "--overwrite to replace it",
                         c->uri, who ? "job " : "", who ? who : "");
        else
            r = lmr_fail(err, LMR_ERR_EXISTS,
                         "output '%s' already holds part files%s%s (no _SUCCESS: an unfinished or failed job); "
                         "choose another --output or add --overwrite to replace them",
                         c->uri, who ? " of job " : "", who ? who : "");
        goto out;
    }
    /* --overwrite: only what an earlier job listed. */
    for (size_t i = 0; i < f.parts.n && !r; i++)
        if (!lmr_store_keys_has(&listed, f.parts.v[i]))
            r = lmr_fail(err, LMR_ERR_EXISTS,
                         "output '%s' holds '%s', which no earlier lambdamr job lists as its output; --overwrite "
                         "removes only a job's own parts: remove it yourself or choose another --output",
                         c->uri, f.parts.v[i]);
    if (!r && through_symlink(c->store, lambdamr_dir))
        r = lmr_fail(err, LMR_ERR_INVALID,
                     "refusing to clear '%s' in %s: it is a symbolic link; --overwrite never deletes through links",
                     lambdamr_dir, c->store->root_uri);
    for (size_t i = 0; i < f.parts.n && !r; i++) {
        char *k = join(c->prefix, f.parts.v[i]);
        r = k ? lmr_store_keys_push(&doomed, k, strlen(k)) : LMR_ERR_NOMEM;
        free(k);
    }
    if (!r && f.success) {
        char *k = join(c->prefix, "_SUCCESS");
        r = k ? lmr_store_keys_push(&doomed, k, strlen(k)) : LMR_ERR_NOMEM;
        free(k);
    }
    /* _SUCCESS and the parts first (readers stop seeing a finished job), then the rest. */
    if (!r)
        r = delete_keys(c->store, doomed.v, doomed.n, &st->removed, err);
    if (!r)
        r = delete_keys(c->store, f.lambdamr.v, f.lambdamr.n, &st->removed, err);
    /* The earlier job's work data when it lived elsewhere (--work). */
    if (!r && prev_work && prev_work_key &&
        (prev_work != c->store || strncmp(prev_work_key, lambdamr_dir, strlen(lambdamr_dir)))) {
        r = lmr_store_list(prev_work, prev_work_key, lmr_store_keys_add, &work_keys, err);
        if (!r)
            r = delete_keys(prev_work, work_keys.v, work_keys.n, &st->removed, err);
    }
    if (!r)
        LMR_INFO("--overwrite removed %zu keys of job %s from %s", st->removed, who ? who : "?", c->uri);
out:
    lmr_store_keys_free(&f.parts);
    lmr_store_keys_free(&f.lambdamr);
    lmr_store_keys_free(&listed);
    lmr_store_keys_free(&doomed);
    lmr_store_keys_free(&work_keys);
    free(lambdamr_dir);
    return r;
}

char *lmr_output_success_text(const char *job_id, const char *const *parts, size_t nparts)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < nparts; i++)
        json_array_append_new(a, json_string(parts[i]));
    json_t *j = json_pack("{s:i, s:s, s:o}", "version", 1, "job_id", job_id, "parts", a);
    char *s = j ? json_dumps(j, JSON_INDENT(1)) : NULL;
    json_decref(j);
    return s;
}
