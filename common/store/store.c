#define _GNU_SOURCE /* asprintf */
/* URI dispatch and the thin wrappers around the back-end vtable. */
#include "store/store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/misc.h"

enum lmr_result lmr_store_check_key(const char *key, struct lmr_err *err)
{
    if (!key || !*key)
        return lmr_fail(err, LMR_ERR_INVALID, "empty object key");
    if (!lmr_utf8_valid(key, strlen(key))) {
        char shown[512];
        return lmr_fail(err, LMR_ERR_INVALID,
                        "the name '%s' (bytes shown as \\xHH) is not valid UTF-8; object keys must be UTF-8 (as S3 "
                        "requires): rename it",
                        lmr_escape_bytes(key, shown, sizeof shown));
    }
    if (key[0] == '/')
        return lmr_fail(err, LMR_ERR_INVALID, "object key '%s' must be relative (no leading '/')", key);
    const char *p = key;
    while (*p) {
        const char *seg = p;
        while (*p && *p != '/')
            p++;
        size_t len = (size_t)(p - seg);
        if ((len == 2 && seg[0] == '.' && seg[1] == '.') || (len == 1 && seg[0] == '.'))
            return lmr_fail(err, LMR_ERR_INVALID,
                            "object key '%s' has a '.' or '..' segment; keys cannot leave the store root", key);
        if (*p == '/')
            p++;
    }
    return LMR_OK;
}

/* A prefix may be empty or end in '/'; otherwise it follows the key rules. */
static enum lmr_result check_prefix(const char *prefix, struct lmr_err *err)
{
    if (!prefix || !*prefix)
        return LMR_OK;
    size_t n = strlen(prefix);
    if (prefix[n - 1] != '/')
        return lmr_store_check_key(prefix, err);
    char *copy = strndup(prefix, n - 1);
    if (!copy)
        return LMR_ERR_NOMEM;
    enum lmr_result r = n > 1 ? lmr_store_check_key(copy, err) : lmr_fail(err, LMR_ERR_INVALID, "prefix is '/'");
    free(copy);
    return r;
}

enum lmr_result lmr_store_open(const char *uri, struct lmr_store **out, char **prefix, struct lmr_err *err)
{
    if (prefix)
        *prefix = NULL;
    if (!uri || !*uri)
        return lmr_fail(err, LMR_ERR_INVALID, "empty location: give a path, file:// or s3:// URI");
    if (!strncmp(uri, "s3://", 5)) {
        const char *bucket = uri + 5;
        const char *slash = strchr(bucket, '/');
        size_t blen = slash ? (size_t)(slash - bucket) : strlen(bucket);
        if (blen == 0)
            return lmr_fail(err, LMR_ERR_INVALID, "'%s' has no bucket name: use s3://BUCKET/PREFIX", uri);
        char *b = strndup(bucket, blen);
        if (!b)
            return LMR_ERR_NOMEM;
        const char *rest = slash ? slash + 1 : "";
        enum lmr_result r = check_prefix(rest, err);
        if (!r)
            r = lmr_s3_store_new(b, out, err);
        free(b);
        if (!r && prefix && !(*prefix = strdup(rest))) {
            lmr_store_destroy(*out);
            return LMR_ERR_NOMEM;
        }
        return r;
    }
    const char *path = uri;
    if (!strncmp(uri, "file://", 7))
        path = uri + 7;
    else if (strstr(uri, "://"))
        return lmr_fail(err, LMR_ERR_UNSUPPORTED, "'%s': unsupported URI scheme; use a path, file:// or s3://", uri);
    if (!*path)
        return lmr_fail(err, LMR_ERR_INVALID, "'%s' names no path", uri);
    char *abs = lmr_abspath(path);
    if (!abs)
        return LMR_ERR_NOMEM;
    /* An existing regular file: root the store at its directory, the file name is the prefix. */
    struct stat st;
    char *pfx = NULL;
    if (stat(abs, &st) == 0 && !S_ISDIR(st.st_mode)) {
        char *slash = strrchr(abs, '/');
        pfx = strdup(slash + 1);
        if (slash == abs)
            slash[1] = '\0'; /* a file directly under '/' */
        else
            *slash = '\0';
    } else {
        pfx = strdup("");
    }
    if (!pfx) {
        free(abs);
        return LMR_ERR_NOMEM;
    }
    enum lmr_result r = lmr_file_store_new(abs, out, err);
    free(abs);
    if (!r && prefix)
        *prefix = pfx;
    else
        free(pfx);
    return r;
}

enum lmr_result lmr_store_open_root(const char *root_uri, struct lmr_store **out, struct lmr_err *err)
{
    if (!strncmp(root_uri, "s3://", 5)) {
        if (strchr(root_uri + 5, '/'))
            return lmr_fail(err, LMR_ERR_INVALID, "'%s' is not a store root (s3://BUCKET)", root_uri);
        return lmr_s3_store_new(root_uri + 5, out, err);
    }
    if (!strncmp(root_uri, "file://", 7) && root_uri[7] == '/')
        return lmr_file_store_new(root_uri + 7, out, err);
    return lmr_fail(err, LMR_ERR_INVALID, "'%s' is not a store root (file:///DIR or s3://BUCKET)", root_uri);
}

void lmr_store_destroy(struct lmr_store *s)
{
    if (s)
        s->vtable->destroy(s);
}

/* Every listed object is checked before the caller sees it (see lmr_store_list). */
struct checked_list {
    struct lmr_store *store;
    const char *prefix;
    lmr_store_list_fn fn;
    void *user_data;
    struct lmr_err *err;
    enum lmr_result failed; /* our own refusal (its message is in err) */
};

static enum lmr_result check_listed(void *ud, const struct lmr_store_object *obj)
{
    struct checked_list *cl = ud;
    size_t pl = strlen(cl->prefix);
    enum lmr_result r = LMR_OK;
    if (!obj->key || strncmp(obj->key, cl->prefix, pl)) {
        char shown[512];
        r = lmr_fail(cl->err, LMR_ERR_FORMAT,
                     "listing '%s' under the prefix '%s' returned the key '%s', which is outside that prefix; the "
                     "store's listing is malformed",
                     cl->store->root_uri, cl->prefix, lmr_escape_bytes(obj->key ? obj->key : "", shown, sizeof shown));
    } else if ((r = lmr_store_check_key(obj->key, cl->err))) {
        lmr_err_prefix(cl->err, "listing '%s'", cl->store->root_uri);
    } else if (obj->size_bytes > LMR_STORE_MAX_OBJECT_BYTES) {
        r = lmr_fail(cl->err, LMR_ERR_FORMAT,
                     "listing '%s' gave the object '%s' a size of %llu bytes, more than any object can have (%llu); "
                     "the store's listing is malformed",
                     cl->store->root_uri, obj->key, (unsigned long long)obj->size_bytes,
                     (unsigned long long)LMR_STORE_MAX_OBJECT_BYTES);
    }
    if (r) {
        cl->failed = r;
        return r;
    }
    return cl->fn(cl->user_data, obj);
}

enum lmr_result lmr_store_list(struct lmr_store *s, const char *prefix, lmr_store_list_fn fn, void *user_data,
                               struct lmr_err *err)
{
    enum lmr_result r = check_prefix(prefix, err);
    if (r)
        return r;
    struct lmr_err own = {0};
    struct checked_list cl = {
        .store = s, .prefix = prefix ? prefix : "", .fn = fn, .user_data = user_data, .err = err ? err : &own};
    r = s->vtable->list(s, cl.prefix, check_listed, &cl, err);
    if (r && cl.failed == r && err && err != cl.err)
        *err = *cl.err;
    return r;
}

enum lmr_result lmr_store_uri_within(const char *inner, const char *outer, bool *within, struct lmr_err *err)
{
    struct lmr_store *si = NULL, *so = NULL;
    char *pi = NULL, *po = NULL;
    *within = false;
    enum lmr_result r = lmr_store_open(inner, &si, &pi, err);
    if (!r)
        r = lmr_store_open(outer, &so, &po, err);
    if (!r) {
        /* Compare whole locations (root + "/" + prefix, no trailing '/'): a file store's root is the
         * directory named, so "in" and "in/out" have different roots but nested locations. */
        char *li = NULL, *lo = NULL;
        if (asprintf(&li, "%s/%s", si->root_uri, pi) < 0 || asprintf(&lo, "%s/%s", so->root_uri, po) < 0) {
            li = lo = NULL;
            r = LMR_ERR_NOMEM;
        } else {
            size_t ni = strlen(li), no = strlen(lo);
            while (ni && li[ni - 1] == '/')
                ni--;
            while (no && lo[no - 1] == '/')
                no--;
            /* "a/b" holds "a/b" and "a/b/...", not "a/bc" */
            *within = ni >= no && !strncmp(li, lo, no) && (ni == no || li[no] == '/');
        }
        free(li);
        free(lo);
    }
    lmr_store_destroy(si);
    lmr_store_destroy(so);
    free(pi);
    free(po);
    return r;
}

enum lmr_result lmr_store_head(struct lmr_store *s, const char *key, uint64_t *size_bytes, struct lmr_err *err)
{
    enum lmr_result r = lmr_store_check_key(key, err);
    return r ? r : s->vtable->head(s, key, size_bytes, err);
}

enum lmr_result lmr_store_open_read(struct lmr_store *s, const char *key, uint64_t offset, uint64_t length,
                                    struct lmr_store_reader **out, struct lmr_err *err)
{
    enum lmr_result r = lmr_store_check_key(key, err);
    return r ? r : s->vtable->open_read(s, key, offset, length, out, err);
}

enum lmr_result lmr_store_open_read_with(struct lmr_store *s, const char *key, uint64_t offset, uint64_t length,
                                         const struct lmr_store_read_options *opts, struct lmr_store_reader **out,
                                         struct lmr_err *err)
{
    enum lmr_result r = lmr_store_check_key(key, err);
    if (r)
        return r;
    if (opts && s->vtable->open_read_with)
        return s->vtable->open_read_with(s, key, offset, length, opts, out, err);
    return s->vtable->open_read(s, key, offset, length, out, err);
}

enum lmr_result lmr_store_read(struct lmr_store_reader *r, void *buf, size_t cap, size_t *got, struct lmr_err *err)
{
    return r->store->vtable->read(r, buf, cap, got, err);
}

void lmr_store_close_read(struct lmr_store_reader *r)
{
    if (r)
        r->store->vtable->close_read(r);
}

enum lmr_result lmr_store_open_write(struct lmr_store *s, const char *key, unsigned flags,
                                     struct lmr_store_writer **out, struct lmr_err *err)
{
    enum lmr_result r = lmr_store_check_key(key, err);
    return r ? r : s->vtable->open_write(s, key, flags, out, err);
}

enum lmr_result lmr_store_write(struct lmr_store_writer *w, const void *data, size_t len, struct lmr_err *err)
{
    return w->store->vtable->write(w, data, len, err);
}

enum lmr_result lmr_store_commit(struct lmr_store_writer *w, struct lmr_err *err)
{
    return w->store->vtable->commit(w, err);
}

void lmr_store_abort(struct lmr_store_writer *w)
{
    if (w)
        w->store->vtable->abort(w);
}

enum lmr_result lmr_store_delete(struct lmr_store *s, const char *const *keys, size_t n, struct lmr_err *err)
{
    for (size_t i = 0; i < n; i++) {
        enum lmr_result r = lmr_store_check_key(keys[i], err);
        if (r)
            return r;
    }
    return n ? s->vtable->delete_keys(s, keys, n, err) : LMR_OK;
}

enum lmr_result lmr_store_get(struct lmr_store *s, const char *key, uint64_t offset, uint64_t length,
                              struct lmr_buf *out, struct lmr_err *err)
{
    struct lmr_store_reader *rd;
    enum lmr_result r = lmr_store_open_read(s, key, offset, length, &rd, err);
    if (r)
        return r;
    for (;;) {
        size_t room_left = out->max_bytes - out->len, got = 0;
        if (room_left == 0) { /* full: fine only if the object has no more bytes */
            char probe;
            r = lmr_store_read(rd, &probe, 1, &got, err);
            if (!r && got)
                r = lmr_fail(err, LMR_ERR_TOO_LARGE, "object '%s' in %s is larger than the %zu bytes allowed here", key,
                             s->root_uri, out->max_bytes);
            break;
        }
        if ((r = lmr_buf_reserve(out, room_left < 65536 ? room_left : 65536)))
            break;
        r = lmr_store_read(rd, out->data + out->len, out->cap - out->len, &got, err);
        if (r || got == 0)
            break;
        out->len += got;
        out->data[out->len] = '\0';
    }
    lmr_store_close_read(rd);
    return r;
}

enum lmr_result lmr_store_put(struct lmr_store *s, const char *key, const void *data, size_t len, unsigned flags,
                              struct lmr_err *err)
{
    struct lmr_store_writer *w;
    enum lmr_result r = lmr_store_open_write(s, key, flags, &w, err);
    if (r)
        return r;
    if ((r = lmr_store_write(w, data, len, err))) {
        lmr_store_abort(w);
        return r;
    }
    return lmr_store_commit(w, err);
}

enum lmr_result lmr_store_get_versioned(struct lmr_store *s, const char *key, struct lmr_buf *out,
                                        char etag[LMR_STORE_ETAG_BYTES], struct lmr_err *err)
{
    enum lmr_result r = lmr_store_check_key(key, err);
    if (!r && !s->vtable->get_versioned)
        r = lmr_fail(err, LMR_ERR_UNSUPPORTED, "the %s store cannot read versions (ETags)", s->vtable->scheme);
    return r ? r : s->vtable->get_versioned(s, key, out, etag, err);
}

enum lmr_result lmr_store_put_if_match(struct lmr_store *s, const char *key, const void *data, size_t len,
                                       const char *etag, struct lmr_err *err)
{
    enum lmr_result r = lmr_store_check_key(key, err);
    if (!r && !s->vtable->put_if_match)
        r = lmr_fail(err, LMR_ERR_UNSUPPORTED, "the %s store has no conditional writes (If-Match)", s->vtable->scheme);
    return r ? r : s->vtable->put_if_match(s, key, data, len, etag, err);
}

enum lmr_result lmr_store_keys_push(struct lmr_store_keys *k, const char *s, size_t len)
{
    if (k->max && k->n >= k->max) {
        k->too_many = true;
        return LMR_ERR_TOO_LARGE;
    }
    if (k->n == k->cap) {
        size_t cap = k->cap ? k->cap * 2 : 64;
        char **v = realloc(k->v, cap * sizeof *v);
        if (!v)
            return LMR_ERR_NOMEM;
        k->v = v;
        k->cap = cap;
    }
    if (!(k->v[k->n] = strndup(s, len)))
        return LMR_ERR_NOMEM;
    k->n++;
    return LMR_OK;
}

enum lmr_result lmr_store_keys_add(void *user_data, const struct lmr_store_object *obj)
{
    return lmr_store_keys_push(user_data, obj->key, strlen(obj->key));
}

bool lmr_store_keys_has(const struct lmr_store_keys *k, const char *s)
{
    for (size_t i = 0; i < k->n; i++)
        if (!strcmp(k->v[i], s))
            return true;
    return false;
}

void lmr_store_keys_free(struct lmr_store_keys *k)
{
    for (size_t i = 0; i < k->n; i++)
        free(k->v[i]);
    free(k->v);
    memset(k, 0, sizeof *k);
}
