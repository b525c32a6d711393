#include "stream/state.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shuffle/combine_table.h"
#include "stream/event.h"
#include "stream/json_scan.h"
#include "util/base64.h"
#include "util/varint.h"

#define KEY_MAX_BYTES (64u * 1024u)
#define STATE_KEY_LEN_MAX_BYTES 5 /* a packed entry's key length: at most 5 varint bytes (35 bits) */
#define STATE_PREFIX "{\"lmr\":\"1\",\"kv\":\""
#define STATE_SUFFIX "\"}"

/*
 * The entries live in the shared combining table (shuffle/combine_table: the collector's, used
 * here through upsert/find/remove, so the job is given per call as this interface has it).
 *
 * A transaction logs, per change, what undoes it, in one byte array read backwards at rollback:
 *     key bytes, [the old accumulator, when the key existed], u32 key length, u32 inserted
 */
struct lmr_stream_state {
    size_t value_size;
    struct lmr_combine_table *table;
    size_t packed_bytes; /* bytes of the packed encoding */
    bool in_tx;
    uint8_t *undo;
    size_t undo_len, undo_cap;
    struct lmr_stream_state_meta meta;
};

struct lmr_stream_state *lmr_stream_state_new(size_t value_size)
{
    if (!value_size)
        return NULL;
    struct lmr_stream_state *st = calloc(1, sizeof *st);
    if (!st)
        return NULL;
    st->value_size = value_size;
    struct lmr_combine_table_options o = {.value_size = value_size}; /* no budget: the 1 MB limit is the caller's */
    if (lmr_combine_table_new(&o, &st->table, NULL) != LMR_OK) {
        free(st);
        return NULL;
    }
    return st;
}

void lmr_stream_state_destroy(struct lmr_stream_state *st)
{
    if (!st)
        return;
    lmr_combine_table_destroy(st->table);
    free(st->undo);
    free(st);
}

void lmr_stream_state_clear(struct lmr_stream_state *st)
{
    lmr_combine_table_clear(st->table);
    st->packed_bytes = 0;
    st->undo_len = 0;
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
    return lmr_combine_table_count(st->table);
}

/* memcpy for the short keys and 8-byte accumulators of the hot path, without a call. */
static inline void copy_short(uint8_t *dst, const uint8_t *src, size_t n)
{
    if (n >= 8 && n <= 16) {
        memcpy(dst, src, 8);
        memcpy(dst + n - 8, src + n - 8, 8);
    } else if (n >= 4 && n < 8) {
        memcpy(dst, src, 4);
        memcpy(dst + n - 4, src + n - 4, 4);
    } else if (n < 4) {
        for (size_t i = 0; i < n; i++)
            dst[i] = src[i];
    } else {
        memcpy(dst, src, n);
    }
}

/* Log what undoes a change of key (old: its accumulator before, NULL for an insert). */
static enum lmr_result log_undo(struct lmr_stream_state *st, struct lmr_slice key, const uint8_t *old)
{
    size_t need = key.len + (old ? st->value_size : 0) + 8;
    if (st->undo_cap - st->undo_len < need) {
        size_t cap = st->undo_cap ? st->undo_cap : 4096;
        while (cap - st->undo_len < need)
            cap *= 2;
        uint8_t *u = realloc(st->undo, cap);
        if (!u)
            return LMR_ERR_NOMEM;
        st->undo = u;
        st->undo_cap = cap;
    }
    uint8_t *p = st->undo + st->undo_len;
    copy_short(p, key.ptr, key.len);
    p += key.len;
    if (old) {
        copy_short(p, old, st->value_size);
        p += st->value_size;
    }
    uint32_t kl = (uint32_t)key.len, inserted = old ? 0 : 1;
    memcpy(p, &kl, 4);
    memcpy(p + 4, &inserted, 4);
    st->undo_len += need;
    return LMR_OK;
}

enum lmr_result lmr_stream_state_add(struct lmr_stream_state *st, const struct lmr_job_ops *job, void *job_state,
                                     struct lmr_slice key, struct lmr_slice value)
{
    if (value.len != st->value_size)
        return LMR_ERR_INVALID;
    if (key.len > KEY_MAX_BYTES)
        return LMR_ERR_TOO_LARGE;
    uint8_t *acc;
    bool inserted;
    enum lmr_result r = lmr_combine_table_upsert(st->table, key, &acc, &inserted, NULL);
    if (r)
        return r;
    if (st->in_tx && log_undo(st, key, inserted ? NULL : acc)) {
        if (inserted)
            lmr_combine_table_remove(st->table, key);
        return LMR_ERR_NOMEM;
    }
    if (inserted) {
        copy_short(acc, value.ptr, st->value_size);
        st->packed_bytes += lmr_varint_bytes(key.len) + key.len + st->value_size;
    } else {
        job->combine(job_state, acc, value);
    }
    return LMR_OK;
}

void lmr_stream_state_begin(struct lmr_stream_state *st)
{
    st->in_tx = true;
    st->undo_len = 0;
}

void lmr_stream_state_commit(struct lmr_stream_state *st)
{
    st->in_tx = false;
    st->undo_len = 0;
}

void lmr_stream_state_rollback(struct lmr_stream_state *st)
{
    /* Newest change first, so a key changed twice gets its oldest accumulator back. */
    while (st->undo_len) {
        uint32_t kl, inserted;
        memcpy(&kl, st->undo + st->undo_len - 8, 4);
        memcpy(&inserted, st->undo + st->undo_len - 4, 4);
        size_t rec = (size_t)kl + (inserted ? 0 : st->value_size) + 8;
        const uint8_t *p = st->undo + st->undo_len - rec;
        struct lmr_slice key = lmr_slice_make(p, kl);
        if (inserted) {
            if (lmr_combine_table_remove(st->table, key))
                st->packed_bytes -= lmr_varint_bytes(kl) + kl + st->value_size;
        } else {
            uint8_t *acc = lmr_combine_table_find(st->table, key);
            if (acc)
                memcpy(acc, p + kl, st->value_size);
        }
        st->undo_len -= rec;
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

struct pack_ctx {
    uint8_t *out;
    size_t p, value_size;
};

static void pack_one(void *user, struct lmr_slice key, uint8_t *acc)
{
    struct pack_ctx *c = user;
    c->p = (size_t)(lmr_varint_put(c->out + c->p, key.len) - c->out);
    if (key.len)
        memcpy(c->out + c->p, key.ptr, key.len);
    c->p += key.len;
    memcpy(c->out + c->p, acc, c->value_size);
    c->p += c->value_size;
}

/* The packed entries (st->packed_bytes of them) into packed, in the table's order. */
static void pack_into(const struct lmr_stream_state *st, uint8_t *packed)
{
    struct pack_ctx c = {packed, 0, st->value_size};
    lmr_combine_table_foreach(st->table, pack_one, &c);
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
        uint64_t klen;
        const uint8_t *q = p + i;
        if (!lmr_varint_get(&q, p + n, STATE_KEY_LEN_MAX_BYTES, &klen))
            return lmr_fail(err, LMR_ERR_FORMAT, "the window state is corrupt (bad key length)");
        i = (size_t)(q - p);
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

void lmr_stream_state_controls(const char *json_text, size_t len, struct lmr_stream_state_controls *c)
{
    memset(c, 0, sizeof *c);
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
        bool esc = false;
        if (LMR_JSON_KEY_IS(key, klen, "kv"))
            c->has_kv = true;
        if ((LMR_JSON_KEY_IS(key, klen, "ref") || LMR_JSON_KEY_IS(key, klen, "byref")) &&
            lmr_json_scan_peek(&s) == '"') {
            if (!lmr_json_scan_string(&s, &raw, &rlen, &esc))
                return;
            if (esc || !meta_token_ok(raw, rlen))
                continue;
            if (klen == 3 && rlen <= LMR_STREAM_REF_MAX)
                snprintf(c->ref, sizeof c->ref, "%.*s", (int)rlen, raw);
            else if (klen == 5)
                c->mode = rlen == 4 && !memcmp(raw, "snap", 4) ? LMR_STREAM_STATE_SNAPSHOT : LMR_STREAM_STATE_BY_REF;
        } else if (!lmr_json_scan_skip(&s)) {
            return;
        }
    }
}

enum lmr_result lmr_stream_state_encode_ref(const struct lmr_stream_state *st, bool full, struct lmr_buf *out)
{
    char meta[400];
    meta_bytes(&st->meta, meta, sizeof meta);
    enum lmr_result r = lmr_buf_append_str(out, "{\"lmr\":\"1\"");
    if (!r)
        r = lmr_buf_append_str(out, meta);
    if (!r)
        r = lmr_buf_append_str(out, full ? ",\"full\":\"1\"}" : "}");
    return r;
}

enum lmr_result lmr_stream_state_merge_text(struct lmr_stream_state *st, const struct lmr_job_ops *job, void *job_state,
                                            const char *json_text, bool *full, struct lmr_err *err)
{
    return lmr_stream_state_merge(st, job, job_state, json_text, json_text ? strlen(json_text) : 0, full, err);
}

/* With a job's own order the sorted view needs a constant primary key (the prefix is bytewise). */
static uint64_t no_sortkey(void *user, struct lmr_slice key)
{
    (void)user;
    (void)key;
    return 0;
}

enum lmr_result lmr_stream_state_foreach_sorted(const struct lmr_stream_state *st, const struct lmr_job_ops *job,
                                                void (*fn)(void *user, struct lmr_slice key, struct lmr_slice acc),
                                                void *user)
{
    bool custom = job && job->compare;
    struct lmr_combine_sort how = {custom ? no_sortkey : NULL, NULL, custom ? job->compare : NULL, false};
    struct lmr_combine_item *items;
    size_t n;
    if (lmr_combine_table_sorted(st->table, &how, &items, &n, NULL) != LMR_OK)
        return LMR_ERR_NOMEM;
    for (size_t i = 0; i < n; i++)
        fn(user, lmr_combine_item_key(st->table, &items[i]),
           lmr_slice_make(lmr_combine_item_acc(st->table, &items[i]), st->value_size));
    free(items);
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
        return lmr_fail(err, r, "cannot write the window's output (%zu keys): %s", lmr_stream_state_count(st),
                        lmr_result_str(r));
    return LMR_OK;
}
