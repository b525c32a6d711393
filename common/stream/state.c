#include "stream/state.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "stream/event.h"
#include "stream/json_scan.h"
#include "util/base64.h"

#define KEY_MAX_BYTES (64u * 1024u)
#define STATE_PREFIX "{\"lmr\":\"1\",\"kv\":\""
#define STATE_SUFFIX "\"}"

struct entry {
    uint64_t hash;
    uint32_t key_off;
    uint32_t key_len;
};

struct undo {
    uint32_t idx;
    uint32_t inserted; /* 1: idx was inserted (undo = remove it); 0: acc changed (old acc saved) */
};

struct lmr_stream_state {
    size_t value_size;
    uint32_t *slots; /* 0 = empty, else entry index + 1 */
    size_t n_slots;  /* power of two */
    struct entry *entries;
    uint8_t *accs; /* value_size bytes per entry */
    size_t n, cap;
    uint8_t *keys; /* key bytes arena */
    size_t keys_len, keys_cap;
    size_t packed_bytes; /* bytes of the packed encoding */
    bool in_tx;
    struct undo *undo;
    size_t n_undo, undo_cap;
    uint8_t *undo_accs; /* old accumulators, one per undo entry (unused for inserts) */
    struct lmr_stream_state_meta meta;
};

static size_t varint_len(size_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

struct lmr_stream_state *lmr_stream_state_new(size_t value_size)
{
    if (!value_size)
        return NULL;
    struct lmr_stream_state *st = calloc(1, sizeof *st);
    if (!st)
        return NULL;
    st->value_size = value_size;
    st->n_slots = 1024;
    st->slots = calloc(st->n_slots, sizeof *st->slots);
    if (!st->slots) {
        free(st);
        return NULL;
    }
    return st;
}

void lmr_stream_state_destroy(struct lmr_stream_state *st)
{
    if (!st)
        return;
    free(st->slots);
    free(st->entries);
    free(st->accs);
    free(st->keys);
    free(st->undo);
    free(st->undo_accs);
    free(st);
}

void lmr_stream_state_clear(struct lmr_stream_state *st)
{
    memset(st->slots, 0, st->n_slots * sizeof *st->slots);
    st->n = 0;
    st->keys_len = 0;
    st->packed_bytes = 0;
    st->n_undo = 0;
    st->in_tx = false;
    memset(&st->meta, 0, sizeof st->meta);
}

struct lmr_stream_state_meta *lmr_stream_state_meta(struct lmr_stream_state *st)
{
    return &st->meta;
}

/* Meta values are short tokens (digits, letters, '-', '_', '.'), so they need no JSON escaping. */
static bool meta_token_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' || c == '_' ||
              c == '.'))
            return false;
    }
    return true;
}

static size_t meta_bytes(const struct lmr_stream_state_meta *m, char *out, size_t cap)
{
    char tmp[400] = "";
    int n = 0;
    if (m->lanes > 1)
        n += snprintf(tmp + n, sizeof tmp - (size_t)n, ",\"lane\":\"%u\",\"lanes\":\"%u\"", m->lane, m->lanes);
    if (m->run[0])
        n += snprintf(tmp + n, sizeof tmp - (size_t)n, ",\"run\":\"%s\"", m->run);
    if (m->first[0])
        n += snprintf(tmp + n, sizeof tmp - (size_t)n, ",\"first\":\"%s\"", m->first);
    if (m->records)
        n += snprintf(tmp + n, sizeof tmp - (size_t)n, ",\"n\":\"%" PRIu64 "\"", m->records);
    if (m->ref[0])
        n += snprintf(tmp + n, sizeof tmp - (size_t)n, ",\"ref\":\"%s\"", m->ref);
    if (out)
        snprintf(out, cap, "%s", tmp);
    return (size_t)n;
}

size_t lmr_stream_state_count(const struct lmr_stream_state *st)
{
    return st->n;
}

static const uint8_t *key_ptr(const struct lmr_stream_state *st, const struct entry *e)
{
    return st->keys + e->key_off;
}

static enum lmr_result grow_slots(struct lmr_stream_state *st)
{
    size_t n = st->n_slots * 2;
    uint32_t *slots = calloc(n, sizeof *slots);
    if (!slots)
        return LMR_ERR_NOMEM;
    for (size_t i = 0; i < st->n; i++) {
        size_t s = st->entries[i].hash & (n - 1);
        while (slots[s])
            s = (s + 1) & (n - 1);
        slots[s] = (uint32_t)i + 1;
    }
    free(st->slots);
    st->slots = slots;
    st->n_slots = n;
    return LMR_OK;
}

static enum lmr_result log_undo(struct lmr_stream_state *st, uint32_t idx, bool inserted)
{
    if (st->n_undo == st->undo_cap) {
        size_t cap = st->undo_cap ? st->undo_cap * 2 : 256;
        struct undo *u = realloc(st->undo, cap * sizeof *u);
        if (!u)
            return LMR_ERR_NOMEM;
        st->undo = u;
        uint8_t *a = realloc(st->undo_accs, cap * st->value_size);
        if (!a)
            return LMR_ERR_NOMEM;
        st->undo_accs = a;
        st->undo_cap = cap;
    }
    st->undo[st->n_undo] = (struct undo){idx, inserted};
    if (!inserted)
        memcpy(st->undo_accs + st->n_undo * st->value_size, st->accs + (size_t)idx * st->value_size, st->value_size);
    st->n_undo++;
    return LMR_OK;
}

enum lmr_result lmr_stream_state_add(struct lmr_stream_state *st, const struct lmr_job_ops *job, void *job_state,
                                     struct lmr_slice key, struct lmr_slice value)
{
    if (value.len != st->value_size)
        return LMR_ERR_INVALID;
    if (key.len > KEY_MAX_BYTES)
        return LMR_ERR_TOO_LARGE;
    uint64_t h = XXH3_64bits(key.ptr, key.len);
    size_t mask = st->n_slots - 1, s = h & mask;
    for (uint32_t v; (v = st->slots[s]); s = (s + 1) & mask) {
        struct entry *e = &st->entries[v - 1];
        if (e->hash == h && e->key_len == key.len && !memcmp(key_ptr(st, e), key.ptr, key.len)) {
            if (st->in_tx && log_undo(st, v - 1, false))
                return LMR_ERR_NOMEM;
            job->combine(job_state, st->accs + (size_t)(v - 1) * st->value_size, value);
            return LMR_OK;
        }
    }
    /* Insert. */
    if (st->n == st->cap) {
        size_t cap = st->cap ? st->cap * 2 : 256;
        struct entry *e = realloc(st->entries, cap * sizeof *e);
        if (!e)
            return LMR_ERR_NOMEM;
        st->entries = e;
        uint8_t *a = realloc(st->accs, cap * st->value_size);
        if (!a)
            return LMR_ERR_NOMEM;
        st->accs = a;
        st->cap = cap;
    }
    if (st->keys_len + key.len > st->keys_cap) {
        size_t cap = st->keys_cap ? st->keys_cap : 4096;
        while (cap < st->keys_len + key.len)
            cap *= 2;
        if (cap > UINT32_MAX)
            return LMR_ERR_TOO_LARGE;
        uint8_t *k = realloc(st->keys, cap);
        if (!k)
            return LMR_ERR_NOMEM;
        st->keys = k;
        st->keys_cap = cap;
    }
    if (st->in_tx && log_undo(st, (uint32_t)st->n, true))
        return LMR_ERR_NOMEM;
    uint32_t idx = (uint32_t)st->n++;
    memcpy(st->keys + st->keys_len, key.ptr, key.len);
    st->entries[idx] = (struct entry){h, (uint32_t)st->keys_len, (uint32_t)key.len};
    st->keys_len += key.len;
    memcpy(st->accs + (size_t)idx * st->value_size, value.ptr, st->value_size);
    st->slots[s] = idx + 1;
    st->packed_bytes += varint_len(key.len) + key.len + st->value_size;
    if (st->n * 4 > st->n_slots * 3 && grow_slots(st))
        return LMR_ERR_NOMEM;
    return LMR_OK;
}

void lmr_stream_state_begin(struct lmr_stream_state *st)
{
    st->in_tx = true;
    st->n_undo = 0;
}

void lmr_stream_state_commit(struct lmr_stream_state *st)
{
    st->in_tx = false;
    st->n_undo = 0;
}

/* Remove the slot that points at idx, with backward-shift deletion (linear probing stays valid). */
static void remove_slot(struct lmr_stream_state *st, uint32_t idx)
{
    size_t mask = st->n_slots - 1, s = st->entries[idx].hash & mask;
    while (st->slots[s] != idx + 1)
        s = (s + 1) & mask;
    size_t hole = s;
    for (size_t j = (hole + 1) & mask; st->slots[j]; j = (j + 1) & mask) {
        size_t home = st->entries[st->slots[j] - 1].hash & mask;
        /* Move j into the hole unless its home lies cyclically in (hole, j]. */
        bool in_between = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (!in_between) {
            st->slots[hole] = st->slots[j];
            hole = j;
        }
    }
    st->slots[hole] = 0;
}

void lmr_stream_state_rollback(struct lmr_stream_state *st)
{
    while (st->n_undo) {
        struct undo *u = &st->undo[--st->n_undo];
        if (u->inserted) {
            /* Inserts are undone newest first, so u->idx is always the last entry. */
            struct entry *e = &st->entries[u->idx];
            remove_slot(st, u->idx);
            st->packed_bytes -= varint_len(e->key_len) + e->key_len + st->value_size;
            st->keys_len = e->key_off;
            st->n = u->idx;
        } else {
            memcpy(st->accs + (size_t)u->idx * st->value_size, st->undo_accs + st->n_undo * st->value_size,
                   st->value_size);
        }
    }
    st->in_tx = false;
}

size_t lmr_stream_state_encoded_bytes(const struct lmr_stream_state *st)
{
    return sizeof STATE_PREFIX - 1 + lmr_base64_len(st->packed_bytes) + sizeof STATE_SUFFIX - 1 +
           meta_bytes(&st->meta, NULL, 0);
}

size_t lmr_stream_state_packed_bytes(const struct lmr_stream_state *st)
{
    return st->packed_bytes;
}

static void pack_into(const struct lmr_stream_state *st, uint8_t *packed)
{
    size_t p = 0;
    for (size_t i = 0; i < st->n; i++) {
        const struct entry *e = &st->entries[i];
        size_t v = e->key_len;
        while (v >= 0x80) {
            packed[p++] = (uint8_t)(v | 0x80);
            v >>= 7;
        }
        packed[p++] = (uint8_t)v;
        memcpy(packed + p, key_ptr(st, e), e->key_len);
        p += e->key_len;
        memcpy(packed + p, st->accs + i * st->value_size, st->value_size);
        p += st->value_size;
    }
}

enum lmr_result lmr_stream_state_pack(const struct lmr_stream_state *st, struct lmr_buf *out)
{
    enum lmr_result r = lmr_buf_reserve(out, st->packed_bytes);
    if (r)
        return r;
    pack_into(st, (uint8_t *)out->data + out->len);
    out->len += st->packed_bytes;
    return LMR_OK;
}

enum lmr_result lmr_stream_state_encode(const struct lmr_stream_state *st, bool full, struct lmr_buf *out)
{
    uint8_t *packed = malloc(st->packed_bytes ? st->packed_bytes : 1);
    if (!packed)
        return LMR_ERR_NOMEM;
    pack_into(st, packed);
    char meta[400];
    meta_bytes(&st->meta, meta, sizeof meta);
    enum lmr_result r = lmr_buf_append_str(out, STATE_PREFIX);
    if (!r)
        r = lmr_base64_append(out, packed, st->packed_bytes);
    if (!r)
        r = lmr_buf_append_str(out, "\"");
    if (!r)
        r = lmr_buf_append_str(out, meta);
    if (!r)
        r = lmr_buf_append_str(out, full ? ",\"full\":\"1\"}" : "}");
    free(packed);
    return r;
}

enum lmr_result lmr_stream_state_merge_packed(struct lmr_stream_state *st, const struct lmr_job_ops *job,
                                              void *job_state, const uint8_t *p, size_t n, struct lmr_err *err)
{
    size_t i = 0;
    while (i < n) {
        size_t klen = 0;
        unsigned shift = 0;
        for (;;) {
            if (i >= n || shift > 28)
                return lmr_fail(err, LMR_ERR_FORMAT, "the window state is corrupt (bad key length)");
            uint8_t b = p[i++];
            klen |= (size_t)(b & 0x7f) << shift;
            shift += 7;
            if (!(b & 0x80))
                break;
        }
        if (klen > n - i || st->value_size > n - i - klen)
            return lmr_fail(err, LMR_ERR_FORMAT, "the window state is corrupt (entry past the end)");
        enum lmr_result r = lmr_stream_state_add(st, job, job_state, lmr_slice_make(p + i, klen),
                                                 lmr_slice_make(p + i + klen, st->value_size));
        if (r)
            return lmr_fail(err, r, "cannot merge the window state: %s", lmr_result_str(r));
        i += klen + st->value_size;
    }
    return LMR_OK;
}

enum lmr_result lmr_stream_state_merge(struct lmr_stream_state *st, const struct lmr_job_ops *job, void *job_state,
                                       const char *json_text, size_t len, bool *full, struct lmr_err *err)
{
    if (full)
        *full = false;
    if (!json_text || !len)
        return LMR_OK;
    struct lmr_json_scan s;
    lmr_json_scan_init(&s, json_text, len);
    bool first = true, version_ok = false, esc = false;
    const char *key, *kv = NULL, *raw;
    size_t klen, kv_len = 0, rlen;
    if (!lmr_json_scan_expect(&s, '{'))
        return lmr_fail(err, LMR_ERR_FORMAT, "the window state is not a JSON object");
    size_t members = 0;
    while (lmr_json_scan_member(&s, &first, &key, &klen)) {
        members++;
        bool ok;
        if (LMR_JSON_KEY_IS(key, klen, "lmr") && lmr_json_scan_peek(&s) == '"') {
            ok = lmr_json_scan_string(&s, &raw, &rlen, NULL);
            version_ok = ok && rlen == 1 && raw[0] == '1';
        } else if (LMR_JSON_KEY_IS(key, klen, "kv") && lmr_json_scan_peek(&s) == '"') {
            ok = lmr_json_scan_string(&s, &kv, &kv_len, &esc);
        } else if ((LMR_JSON_KEY_IS(key, klen, "lane") || LMR_JSON_KEY_IS(key, klen, "lanes") ||
                    LMR_JSON_KEY_IS(key, klen, "run") || LMR_JSON_KEY_IS(key, klen, "first") ||
                    LMR_JSON_KEY_IS(key, klen, "n") || LMR_JSON_KEY_IS(key, klen, "ref")) &&
                   lmr_json_scan_peek(&s) == '"') {
            bool mesc = false;
            ok = lmr_json_scan_string(&s, &raw, &rlen, &mesc);
            if (ok && (mesc || rlen > LMR_STREAM_SEQ_MAX || !meta_token_ok(raw, rlen)))
                return lmr_fail(err, LMR_ERR_FORMAT, "the window state's \"%.*s\" is not a short token", (int)klen,
                                key);
            if (ok && klen == 1) {
                char num[24];
                snprintf(num, sizeof num, "%.*s", (int)(rlen < 23 ? rlen : 23), raw);
                st->meta.records = strtoull(num, NULL, 10);
            } else if (ok && key[0] == 'f')
                snprintf(st->meta.first, sizeof st->meta.first, "%.*s", (int)rlen, raw);
            else if (ok && klen == 3 && key[1] == 'e')
                snprintf(st->meta.ref, sizeof st->meta.ref, "%.*s", (int)(rlen < sizeof st->meta.ref ? rlen : 0), raw);
            else if (ok && key[0] == 'r')
                snprintf(st->meta.run, sizeof st->meta.run, "%.*s", (int)(rlen < sizeof st->meta.run ? rlen : 0), raw);
            else if (ok) {
                char num[16];
                snprintf(num, sizeof num, "%.*s", (int)(rlen < 15 ? rlen : 15), raw);
                unsigned long v = strtoul(num, NULL, 10);
                if (v > LMR_STREAM_LANES_MAX)
                    return lmr_fail(err, LMR_ERR_FORMAT, "the window state's lane numbers are out of range");
                if (klen == 4)
                    st->meta.lane = (uint32_t)v;
                else
                    st->meta.lanes = (uint32_t)v;
            }
        } else {
            if (LMR_JSON_KEY_IS(key, klen, "full") && full)
                *full = true;
            ok = lmr_json_scan_skip(&s);
        }
        if (!ok)
            break;
    }
    if (s.failed || lmr_json_scan_peek(&s) != '\0')
        return lmr_fail(err, LMR_ERR_FORMAT, "the window state is not a valid JSON object");
    if (!members)
        return LMR_OK;
    if (version_ok && !kv)
        return LMR_OK; /* a seed state: meta only */
    if (!version_ok || !kv)
        return lmr_fail(err, LMR_ERR_FORMAT,
                        "the window state was not written by lambdamr's stream handler (no \"lmr\":\"1\" and \"kv\")");
    uint8_t *packed = malloc(kv_len + 1);
    char *unesc = esc ? malloc(kv_len + 1) : NULL;
    if (!packed || (esc && !unesc)) {
        free(packed);
        free(unesc);
        return lmr_fail(err, LMR_ERR_NOMEM, "out of memory decoding the window state");
    }
    if (esc) {
        kv_len = lmr_json_unescape(kv, kv_len, unesc);
        kv = unesc;
    }
    size_t plen;
    enum lmr_result r;
    if (kv_len == (size_t)-1 || lmr_base64_decode(kv, kv_len, packed, &plen))
        r = lmr_fail(err, LMR_ERR_FORMAT, "the window state's \"kv\" is not valid base64");
    else
        r = lmr_stream_state_merge_packed(st, job, job_state, packed, plen, err);
    free(packed);
    free(unesc);
    return r;
}

void lmr_stream_state_peek_ref(const char *json_text, size_t len, char *out, size_t cap)
{
    out[0] = '\0';
    if (!json_text || !len)
        return;
    struct lmr_json_scan s;
    lmr_json_scan_init(&s, json_text, len);
    if (!lmr_json_scan_expect(&s, '{'))
        return;
    bool first = true;
    const char *key, *raw;
    size_t klen, rlen;
    while (lmr_json_scan_member(&s, &first, &key, &klen)) {
        if (LMR_JSON_KEY_IS(key, klen, "ref") && lmr_json_scan_peek(&s) == '"') {
            bool esc = false;
            if (lmr_json_scan_string(&s, &raw, &rlen, &esc) && !esc && rlen < cap && rlen <= LMR_STREAM_REF_MAX &&
                meta_token_ok(raw, rlen))
                snprintf(out, cap, "%.*s", (int)rlen, raw);
            return;
        }
        if (!lmr_json_scan_skip(&s))
            return;
    }
}

enum lmr_result lmr_stream_state_merge_text(struct lmr_stream_state *st, const struct lmr_job_ops *job, void *job_state,
                                            const char *json_text, bool *full, struct lmr_err *err)
{
    return lmr_stream_state_merge(st, job, job_state, json_text, json_text ? strlen(json_text) : 0, full, err);
}

struct sort_ctx {
    const struct lmr_stream_state *st;
    int (*compare)(struct lmr_slice a, struct lmr_slice b);
};
static __thread struct sort_ctx sort_ctx;

static int bytewise(struct lmr_slice a, struct lmr_slice b)
{
    int c = memcmp(a.ptr, b.ptr, a.len < b.len ? a.len : b.len);
    return c ? c : (a.len > b.len) - (a.len < b.len);
}

static int cmp_idx(const void *pa, const void *pb)
{
    const struct entry *a = &sort_ctx.st->entries[*(const uint32_t *)pa];
    const struct entry *b = &sort_ctx.st->entries[*(const uint32_t *)pb];
    return sort_ctx.compare(lmr_slice_make(key_ptr(sort_ctx.st, a), a->key_len),
                            lmr_slice_make(key_ptr(sort_ctx.st, b), b->key_len));
}

enum lmr_result lmr_stream_state_foreach_sorted(const struct lmr_stream_state *st, const struct lmr_job_ops *job,
                                                void (*fn)(void *user, struct lmr_slice key, struct lmr_slice acc),
                                                void *user)
{
    uint32_t *order = malloc((st->n ? st->n : 1) * sizeof *order);
    if (!order)
        return LMR_ERR_NOMEM;
    for (size_t i = 0; i < st->n; i++)
        order[i] = (uint32_t)i;
    sort_ctx = (struct sort_ctx){st, job && job->compare ? job->compare : bytewise};
    qsort(order, st->n, sizeof *order, cmp_idx);
    for (size_t i = 0; i < st->n; i++) {
        const struct entry *e = &st->entries[order[i]];
        fn(user, lmr_slice_make(key_ptr(st, e), e->key_len),
           lmr_slice_make(st->accs + (size_t)order[i] * st->value_size, st->value_size));
    }
    free(order);
    return LMR_OK;
}

/* Reduce plumbing: a one-value group, and an emitter writing key<TAB>value lines. */
struct one_value {
    struct lmr_values base;
    struct lmr_slice value;
    bool done;
};
static bool one_value_next(struct lmr_values *self, struct lmr_slice *value)
{
    struct one_value *v = (struct one_value *)self;
    if (v->done)
        return false;
    v->done = true;
    *value = v->value;
    return true;
}

struct line_emitter {
    struct lmr_emitter base;
    struct lmr_buf *out;
    enum lmr_result r;
};
static void line_emit(struct lmr_emitter *self, struct lmr_slice key, struct lmr_slice value)
{
    struct line_emitter *em = (struct line_emitter *)self;
    if (em->r)
        return;
    em->r = lmr_buf_append(em->out, key.ptr, key.len);
    if (!em->r)
        em->r = lmr_buf_append(em->out, "\t", 1);
    if (!em->r)
        em->r = lmr_buf_append(em->out, value.ptr, value.len);
    if (!em->r)
        em->r = lmr_buf_append(em->out, "\n", 1);
}

struct reduce_ctx {
    const struct lmr_job_ops *job;
    void *job_state;
    struct line_emitter em;
};
static void reduce_one(void *user, struct lmr_slice key, struct lmr_slice acc)
{
    struct reduce_ctx *c = user;
    struct one_value vals = {{one_value_next}, acc, false};
    c->job->reduce(c->job_state, key, &vals.base, &c->em.base);
}

enum lmr_result lmr_stream_state_reduce_lines(const struct lmr_stream_state *st, const struct lmr_job_ops *job,
                                              void *job_state, struct lmr_buf *out, struct lmr_err *err)
{
    struct reduce_ctx c = {job, job_state, {{line_emit}, out, LMR_OK}};
    enum lmr_result r = lmr_stream_state_foreach_sorted(st, job, reduce_one, &c);
    if (!r)
        r = c.em.r;
    if (r)
        return lmr_fail(err, r, "cannot write the window's output (%zu keys): %s", st->n, lmr_result_str(r));
    return LMR_OK;
}
