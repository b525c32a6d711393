/* The join's in-memory side: open addressing over entries, values chained per key, one cap. */
#include "job/join_table.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "job/task.h"
#include "store/store.h"
#include "util/buf.h"

struct entry {
    uint64_t hash;
    size_t key_off;
    uint32_t key_len;
    uint32_t first, last; /* value index + 1 */
};

struct value {
    size_t off;
    uint32_t len;
    uint32_t next; /* value index + 1; 0 ends the chain */
};

struct lmr_join_table {
    size_t max_bytes;
    struct lmr_buf bytes; /* keys and values back to back */
    struct entry *entries;
    size_t nentries, entries_cap;
    struct value *values;
    size_t nvalues, values_cap;
    uint64_t *slots; /* 0 empty; else the key hash's high 32 bits << 32 | (entry index + 1) */
    size_t nslots;   /* power of two, at most half full */
};

struct lmr_join_table *lmr_join_table_new(size_t max_bytes)
{
    struct lmr_join_table *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->max_bytes = max_bytes;
    lmr_buf_init(&t->bytes, max_bytes);
    t->nslots = 1024;
    t->slots = calloc(t->nslots, sizeof *t->slots);
    if (!t->slots) {
        free(t);
        return NULL;
    }
    return t;
}

void lmr_join_table_destroy(struct lmr_join_table *t)
{
    if (!t)
        return;
    lmr_buf_clean_up(&t->bytes);
    free(t->entries);
    free(t->values);
    free(t->slots);
    free(t);
}

void lmr_join_table_clear(struct lmr_join_table *t)
{
    lmr_buf_reset(&t->bytes);
    t->nentries = 0;
    t->nvalues = 0;
    memset(t->slots, 0, t->nslots * sizeof *t->slots);
}

size_t lmr_join_table_bytes(const struct lmr_join_table *t)
{
    return t->bytes.cap + t->entries_cap * sizeof *t->entries + t->values_cap * sizeof *t->values +
           t->nslots * sizeof *t->slots;
}

static bool key_equal(const struct lmr_join_table *t, const struct entry *e, struct lmr_slice key, uint64_t h)
{
    return e->hash == h && e->key_len == key.len && !memcmp(t->bytes.data + e->key_off, key.ptr, key.len);
}

static inline uint64_t slot_tag(uint64_t h)
{
    return h >> 32 << 32;
}

/* The slot of key, or the empty slot where it would go. The tag in the slot spares loading the
   entry of every other key on the way (a cache miss each in a large table). */
static size_t probe(const struct lmr_join_table *t, struct lmr_slice key, uint64_t h)
{
    size_t mask = t->nslots - 1, i = (size_t)h & mask;
    uint64_t tag = slot_tag(h), s;
    while ((s = t->slots[i]) &&
           ((s & ~(uint64_t)UINT32_MAX) != tag || !key_equal(t, &t->entries[(uint32_t)s - 1], key, h)))
        i = (i + 1) & mask;
    return i;
}

/* Grow array *p of *cap elements of size sz to hold n + 1, within the cap. */
static enum lmr_result grow(struct lmr_join_table *t, void **p, size_t *cap, size_t n, size_t sz)
{
    if (n < *cap)
        return LMR_OK;
    size_t ncap = *cap ? *cap * 2 : 1024;
    if (lmr_join_table_bytes(t) + (ncap - *cap) * sz > t->max_bytes)
        return LMR_ERR_TOO_LARGE;
    void *q = realloc(*p, ncap * sz);
    if (!q)
        return LMR_ERR_NOMEM;
    *p = q;
    *cap = ncap;
    return LMR_OK;
}

static enum lmr_result rehash(struct lmr_join_table *t)
{
    size_t n = t->nslots * 2;
    if (lmr_join_table_bytes(t) + t->nslots * sizeof *t->slots > t->max_bytes)
        return LMR_ERR_TOO_LARGE;
    uint64_t *s = calloc(n, sizeof *s);
    if (!s)
        return LMR_ERR_NOMEM;
    for (size_t e = 0; e < t->nentries; e++) {
        size_t i = (size_t)t->entries[e].hash & (n - 1);
        while (s[i])
            i = (i + 1) & (n - 1);
        s[i] = slot_tag(t->entries[e].hash) | (uint64_t)(e + 1);
    }
    free(t->slots);
    t->slots = s;
    t->nslots = n;
    return LMR_OK;
}

static enum lmr_result append_bytes(struct lmr_join_table *t, struct lmr_slice s, size_t *off)
{
    *off = t->bytes.len;
    if (t->bytes.len + s.len > t->bytes.cap &&
        lmr_join_table_bytes(t) + (t->bytes.cap > s.len ? t->bytes.cap : s.len) > t->max_bytes)
        return LMR_ERR_TOO_LARGE;
    return lmr_buf_append(&t->bytes, s.ptr, s.len) == LMR_OK ? LMR_OK : LMR_ERR_TOO_LARGE;
}

uint64_t lmr_join_table_hash(struct lmr_slice key)
{
    return XXH3_64bits(key.ptr, key.len);
}

void lmr_join_table_prefetch(const struct lmr_join_table *t, uint64_t h)
{
    __builtin_prefetch(&t->slots[(size_t)h & (t->nslots - 1)]);
}

enum lmr_result lmr_join_table_add(struct lmr_join_table *t, struct lmr_slice key, struct lmr_slice value)
{
    return lmr_join_table_add_hashed(t, key, value, XXH3_64bits(key.ptr, key.len));
}

enum lmr_result lmr_join_table_add_hashed(struct lmr_join_table *t, struct lmr_slice key, struct lmr_slice value,
                                          uint64_t h)
{
    if (key.len > UINT32_MAX || value.len > UINT32_MAX || t->nvalues >= UINT32_MAX - 1)
        return LMR_ERR_TOO_LARGE;
    enum lmr_result r;
    if ((t->nentries + 1) * 2 > t->nslots && (r = rehash(t)))
        return r;
    size_t i = probe(t, key, h);
    if ((r = grow(t, (void **)&t->values, &t->values_cap, t->nvalues, sizeof *t->values)))
        return r;
    struct value *v = &t->values[t->nvalues];
    if ((r = append_bytes(t, value, &v->off)))
        return r;
    v->len = (uint32_t)value.len;
    v->next = 0;
    uint32_t vi = (uint32_t)++t->nvalues;
    if (t->slots[i]) {
        struct entry *e = &t->entries[(uint32_t)t->slots[i] - 1];
        t->values[e->last - 1].next = vi;
        e->last = vi;
        return LMR_OK;
    }
    if ((r = grow(t, (void **)&t->entries, &t->entries_cap, t->nentries, sizeof *t->entries)))
        return r;
    struct entry *e = &t->entries[t->nentries];
    if ((r = append_bytes(t, key, &e->key_off)))
        return r;
    e->hash = h;
    e->key_len = (uint32_t)key.len;
    e->first = e->last = vi;
    t->slots[i] = slot_tag(h) | (uint64_t)++t->nentries;
    return LMR_OK;
}

bool lmr_join_table_find(const struct lmr_join_table *t, struct lmr_slice key, struct lmr_join_iter *it)
{
    uint64_t h = XXH3_64bits(key.ptr, key.len);
    size_t i = probe(t, key, h);
    it->t = t;
    it->at = t->slots[i] ? t->entries[(uint32_t)t->slots[i] - 1].first : 0;
    return it->at != 0;
}

bool lmr_join_table_next(struct lmr_join_iter *it, struct lmr_slice *value)
{
    if (!it->at)
        return false;
    const struct value *v = &it->t->values[it->at - 1];
    *value = lmr_slice_make(it->t->bytes.data + v->off, v->len);
    it->at = v->next;
    return true;
}

/* ---- loading a location ---- */

struct listing {
    const char *prefix;
    char **keys;
    uint64_t *sizes;
    size_t n, cap;
    uint64_t bytes;
    const char *bad_codec;
};

static enum lmr_result on_object(void *ud, const struct lmr_store_object *obj)
{
    struct listing *l = ud;
    const char *name = obj->key + strlen(l->prefix);
    /* hidden names at any level below the prefix, as the planner skips them */
    for (const char *p = name; p; p = strchr(p, '/')) {
        if (*p == '/')
            p++;
        if (*p == '_' || *p == '.')
            return LMR_OK;
    }
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        char **k = realloc(l->keys, cap * sizeof *k);
        if (!k)
            return LMR_ERR_NOMEM;
        l->keys = k;
        uint64_t *s = realloc(l->sizes, cap * sizeof *s);
        if (!s)
            return LMR_ERR_NOMEM;
        l->sizes = s;
        l->cap = cap;
    }
    if (!(l->keys[l->n] = strdup(obj->key)))
        return LMR_ERR_NOMEM;
    l->sizes[l->n++] = obj->size_bytes;
    l->bytes += obj->size_bytes;
    return LMR_OK;
}

static void listing_clean_up(struct listing *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->keys[i]);
    free(l->keys);
    free(l->sizes);
}

static enum lmr_result list_location(const char *uri, struct lmr_store **store, char **prefix, struct listing *l,
                                     struct lmr_err *err)
{
    memset(l, 0, sizeof *l);
    enum lmr_result r = lmr_store_open(uri, store, prefix, err);
    if (r)
        return lmr_err_prefix(err, "join side '%s'", uri);
    /* a folder: list below "prefix/" so that "dir" does not also match "dir2" */
    size_t n = strlen(*prefix);
    char *p = *prefix;
    if (n && p[n - 1] != '/') {
        uint64_t size;
        if (lmr_store_head(*store, p, &size, NULL) != LMR_OK) {
            char *q = malloc(n + 2);
            if (!q)
                return LMR_ERR_NOMEM;
            snprintf(q, n + 2, "%s/", p);
            free(p);
            *prefix = p = q;
        }
    }
    l->prefix = p;
    if ((r = lmr_store_list(*store, p, on_object, l, err)))
        return lmr_err_prefix(err, "listing join side '%s'", uri);
    return LMR_OK;
}

enum lmr_result lmr_join_location_bytes(const char *uri, uint64_t *bytes, struct lmr_err *err)
{
    struct lmr_store *store = NULL;
    char *prefix = NULL;
    struct listing l;
    enum lmr_result r = list_location(uri, &store, &prefix, &l, err);
    *bytes = l.bytes;
    listing_clean_up(&l);
    free(prefix);
    lmr_store_destroy(store);
    return r;
}

static enum lmr_result read_lines(const char *uri, uint64_t max_bytes, bool per_object, lmr_join_line_fn fn,
                                  void *user_data, struct lmr_err *err)
{
    struct lmr_store *store = NULL;
    char *prefix = NULL;
    struct listing l;
    enum lmr_result r = list_location(uri, &store, &prefix, &l, err);
    for (size_t i = 0; per_object && !r && i < l.n; i++)
        if (l.sizes[i] > max_bytes)
            r = lmr_fail(err, LMR_ERR_TOO_LARGE,
                         "object '%s' of '%s' holds %llu bytes, more than the %llu a task reads at once; give the "
                         "functions more --memory",
                         l.keys[i], uri, (unsigned long long)l.sizes[i], (unsigned long long)max_bytes);
    if (!r && !per_object && l.bytes > max_bytes)
        r = lmr_fail(err, LMR_ERR_TOO_LARGE,
                     "join side '%s' holds %llu bytes, more than the %llu a task can load; use the reduce-side join "
                     "(--arg join=reduce) or give the functions more --memory",
                     uri, (unsigned long long)l.bytes, (unsigned long long)max_bytes);
    struct lmr_buf b;
    lmr_buf_init(&b, max_bytes + 1);
    for (size_t i = 0; i < l.n && !r; i++) {
        if (lmr_codec_from_key(l.keys[i]) != LMR_CODEC_NONE) {
            r = lmr_fail(err, LMR_ERR_UNSUPPORTED,
                         "join side object '%s' is compressed; a broadcast side must be plain text (decompress it "
                         "or use --arg join=reduce)",
                         l.keys[i]);
            break;
        }
        lmr_buf_reset(&b);
        if ((r = lmr_store_get(store, l.keys[i], 0, l.sizes[i], &b, err))) {
            lmr_err_prefix(err, "reading join side '%s'", uri);
            break;
        }
        size_t at = 0;
        while (at < b.len && !r) {
            const char *nl = memchr(b.data + at, '\n', b.len - at);
            size_t e = nl ? (size_t)(nl - b.data) : b.len, len = e - at;
            if (len && b.data[at + len - 1] == '\r')
                len--;
            if (fn(user_data, lmr_slice_make(b.data + at, len)))
                r = lmr_fail(err, LMR_ERR_INVALID, "join side '%s': loading object '%s' failed", uri, l.keys[i]);
            at = e + 1;
        }
    }
    lmr_buf_clean_up(&b);
    listing_clean_up(&l);
    free(prefix);
    lmr_store_destroy(store);
    return r;
}

enum lmr_result lmr_join_load_lines(const char *uri, uint64_t max_bytes, lmr_join_line_fn fn, void *user_data,
                                    struct lmr_err *err)
{
    return read_lines(uri, max_bytes, false, fn, user_data, err);
}

enum lmr_result lmr_join_scan_lines(const char *uri, uint64_t max_object_bytes, lmr_join_line_fn fn, void *user_data,
                                    struct lmr_err *err)
{
    return read_lines(uri, max_object_bytes, true, fn, user_data, err);
}
