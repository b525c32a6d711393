#include "stream/kpl.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <string.h>

/* --- MD5 (OpenSSL's, fetched once) ----------------------------------------------------------- */

static EVP_MD *md5_fetched;
static pthread_once_t md5_once = PTHREAD_ONCE_INIT;
static void md5_init(void)
{
    md5_fetched = EVP_MD_fetch(NULL, "MD5", NULL);
}

static bool md5(const uint8_t *p, size_t n, uint8_t out[LMR_KPL_DIGEST_BYTES])
{
    pthread_once(&md5_once, md5_init);
    unsigned got = 0;
    return EVP_Digest(p, n, out, &got, md5_fetched ? md5_fetched : EVP_md5(), NULL) == 1 && got == LMR_KPL_DIGEST_BYTES;
}

/* --- Protobuf wire format: varints, tags, skipping ------------------------------------------- */

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

/* A varint of at most 10 bytes whose value fits 64 bits. */
static inline bool get_varint(const uint8_t **pp, const uint8_t *end, uint64_t *v)
{
    return lmr_varint_get(pp, end, LMR_VARINT_MAX_BYTES, v);
}

/* A tag: field number (1 .. 2^29 - 1) and wire type. */
static inline bool get_tag(const uint8_t **pp, const uint8_t *end, uint32_t *field, unsigned *wt)
{
    uint64_t t;
    if (!get_varint(pp, end, &t) || t >> 32 || (t >> 3) == 0)
        return false;
    *field = (uint32_t)(t >> 3);
    *wt = (unsigned)(t & 7);
    return true;
}

/* A length-delimited value: [*body, *body + *len) inside the buffer. */
static inline bool get_len(const uint8_t **pp, const uint8_t *end, const uint8_t **body, size_t *len)
{
    uint64_t n;
    if (!get_varint(pp, end, &n) || n > (uint64_t)(end - *pp))
        return false;
    *body = *pp;
    *len = (size_t)n;
    *pp += n;
    return true;
}

/* Skip a field's value of wire type wt (groups, 3 and 4, and 6/7 are malformed here). */
static bool skip_value(const uint8_t **pp, const uint8_t *end, unsigned wt)
{
    uint64_t v;
    const uint8_t *body;
    size_t len;
    switch (wt) {
    case WT_VARINT:
        return get_varint(pp, end, &v);
    case WT_I64:
        if (end - *pp < 8)
            return false;
        *pp += 8;
        return true;
    case WT_LEN:
        return get_len(pp, end, &body, &len);
    case WT_I32:
        if (end - *pp < 4)
            return false;
        *pp += 4;
        return true;
    default:
        return false;
    }
}

/* --- Messages -------------------------------------------------------------------------------- */

/* Tag { required string key = 1; optional string value = 2; } */
static bool check_tag(const uint8_t *p, const uint8_t *end)
{
    bool have_key = false;
    while (p < end) {
        uint32_t f;
        unsigned wt;
        if (!get_tag(&p, end, &f, &wt))
            return false;
        if (f == 1 && wt == WT_LEN)
            have_key = true;
        if (!skip_value(&p, end, wt))
            return false;
    }
    return have_key;
}

/*
 * Record { required uint64 partition_key_index = 1; optional uint64 explicit_hash_key_index = 2;
 *          required bytes data = 3; repeated Tag tags = 4; }
 * A known field with another wire type is an unknown field, as protobuf reads it; a repeated
 * scalar takes its last value. check: validate (tags too); else the record is known to be valid.
 */
static bool read_record(const uint8_t *p, const uint8_t *end, struct lmr_kpl_user_record *u, bool check)
{
    bool have_pk = false, have_data = false;
    size_t tags = 0;
    memset(u, 0, sizeof *u);
    /* The layout the KPL and lambdamr's writer produce: a one-byte partition_key_index, then the
       data, nothing else (this is the per-line hot path). Anything else takes the general loop. */
    if (end - p >= 4 && p[0] == 0x08 && p[1] < 0x80 && p[2] == 0x1a) {
        const uint8_t *q = p + 3;
        uint64_t n;
        if (get_varint(&q, end, &n) && n == (uint64_t)(end - q)) {
            u->partition_key_index = p[1];
            u->data = q;
            u->len = (size_t)n;
            return true;
        }
    }
    while (p < end) {
        uint32_t f;
        unsigned wt;
        if (!get_tag(&p, end, &f, &wt))
            return false;
        if (f == 1 && wt == WT_VARINT) {
            if (!get_varint(&p, end, &u->partition_key_index))
                return false;
            have_pk = true;
        } else if (f == 2 && wt == WT_VARINT) {
            if (!get_varint(&p, end, &u->explicit_hash_key_index))
                return false;
            u->has_explicit_hash_key_index = true;
        } else if (f == 3 && wt == WT_LEN) {
            if (!get_len(&p, end, &u->data, &u->len))
                return false;
            have_data = true;
        } else if (f == 4 && wt == WT_LEN && check) {
            const uint8_t *body;
            size_t len;
            if (!get_len(&p, end, &body, &len) || ++tags > LMR_KPL_TAGS_MAX || !check_tag(body, body + len))
                return false;
        } else if (!skip_value(&p, end, wt)) {
            return false;
        }
    }
    return have_pk && have_data;
}

bool lmr_kpl_open_message(const uint8_t *msg, size_t len, struct lmr_kpl_reader *rd)
{
    memset(rd, 0, sizeof *rd);
    const uint8_t *p = msg, *end = msg + len;
    size_t n_pk = 0, n_ehk = 0, n_rec = 0;
    uint64_t max_pk = 0, max_ehk = 0;
    bool any_ehk = false;
    while (p < end) {
        uint32_t f;
        unsigned wt;
        if (!get_tag(&p, end, &f, &wt))
            return false;
        if (wt == WT_LEN && f <= 3) {
            const uint8_t *body;
            size_t blen;
            if (!get_len(&p, end, &body, &blen))
                return false;
            if (f == 1 && ++n_pk > LMR_KPL_KEYS_MAX)
                return false;
            if (f == 2 && ++n_ehk > LMR_KPL_KEYS_MAX)
                return false;
            if (f == 3) {
                struct lmr_kpl_user_record u;
                if (++n_rec > LMR_KPL_USER_RECORDS_MAX || !read_record(body, body + blen, &u, true))
                    return false;
                if (u.partition_key_index > max_pk)
                    max_pk = u.partition_key_index;
                if (u.has_explicit_hash_key_index) {
                    any_ehk = true;
                    if (u.explicit_hash_key_index > max_ehk)
                        max_ehk = u.explicit_hash_key_index;
                }
            }
        } else if (!skip_value(&p, end, wt)) {
            return false;
        }
    }
    /* Every index names an entry of its table. */
    if (n_rec && max_pk >= n_pk)
        return false;
    if (any_ehk && max_ehk >= n_ehk)
        return false;
    rd->msg = rd->p = msg;
    rd->msg_end = end;
    rd->n_records = n_rec;
    rd->n_partition_keys = n_pk;
    rd->n_explicit_hash_keys = n_ehk;
    return true;
}

bool lmr_kpl_open(const uint8_t *data, size_t len, struct lmr_kpl_reader *rd)
{
    memset(rd, 0, sizeof *rd);
    if (len <= LMR_KPL_MAGIC_BYTES + LMR_KPL_DIGEST_BYTES || memcmp(data, LMR_KPL_MAGIC, LMR_KPL_MAGIC_BYTES))
        return false;
    const uint8_t *msg = data + LMR_KPL_MAGIC_BYTES;
    size_t msg_len = len - LMR_KPL_MAGIC_BYTES - LMR_KPL_DIGEST_BYTES;
    uint8_t digest[LMR_KPL_DIGEST_BYTES];
    if (!md5(msg, msg_len, digest) || memcmp(digest, msg + msg_len, LMR_KPL_DIGEST_BYTES))
        return false;
    return lmr_kpl_open_message(msg, msg_len, rd);
}

bool lmr_kpl_next(struct lmr_kpl_reader *rd, struct lmr_kpl_user_record *out)
{
    const uint8_t *end = rd->msg_end;
    while (rd->p < end) {
        uint32_t f;
        unsigned wt;
        /* The message was checked whole by open: these cannot fail, but stop safely if they did. */
        if (!get_tag(&rd->p, end, &f, &wt))
            break;
        if (f == 3 && wt == WT_LEN) {
            const uint8_t *body;
            size_t blen;
            if (!get_len(&rd->p, end, &body, &blen) || !read_record(body, body + blen, out, false))
                break;
            return true;
        }
        if (!skip_value(&rd->p, end, wt))
            break;
    }
    rd->p = end;
    return false;
}

bool lmr_kpl_key(const struct lmr_kpl_reader *rd, int table, uint64_t index, const char **key, size_t *len)
{
    const uint8_t *p = rd->msg, *end = rd->msg_end;
    uint64_t i = 0;
    while (p && p < end) {
        uint32_t f;
        unsigned wt;
        if (!get_tag(&p, end, &f, &wt))
            return false;
        if (wt == WT_LEN && (int)f == table) {
            const uint8_t *body;
            size_t blen;
            if (!get_len(&p, end, &body, &blen))
                return false;
            if (i++ == index) {
                *key = (const char *)body;
                *len = blen;
                return true;
            }
        } else if (!skip_value(&p, end, wt)) {
            return false;
        }
    }
    return false;
}

/* --- Writing --------------------------------------------------------------------------------- */

enum lmr_result lmr_kpl_start(struct lmr_buf *out, size_t *start)
{
    *start = out->len;
    return lmr_buf_append(out, LMR_KPL_MAGIC, LMR_KPL_MAGIC_BYTES);
}

enum lmr_result lmr_kpl_add_key(struct lmr_buf *out, int table, const void *key, size_t len)
{
    enum lmr_result r = lmr_buf_reserve(out, lmr_kpl_key_bytes(len));
    if (r)
        return r;
    uint8_t *o = (uint8_t *)out->data + out->len;
    *o++ = (uint8_t)(table << 3 | WT_LEN); /* field 1 or 2, length-delimited: a key table entry */
    o = lmr_varint_put(o, len);
    if (len)
        memcpy(o, key, len);
    out->len = (size_t)(o + len - (uint8_t *)out->data);
    out->data[out->len] = '\0';
    return LMR_OK;
}

enum lmr_result lmr_kpl_begin(struct lmr_buf *out, const char *partition_key, size_t *start)
{
    size_t pk_len = strlen(partition_key);
    enum lmr_result r = lmr_buf_reserve(out, lmr_kpl_fixed_bytes(pk_len));
    if (!r)
        r = lmr_kpl_start(out, start);
    return r ? r : lmr_kpl_add_key(out, 1, partition_key, pk_len);
}

enum lmr_result lmr_kpl_add_indexed(struct lmr_buf *out, const void *data, size_t len, uint64_t pk_index)
{
    size_t bytes = lmr_kpl_indexed_record_bytes(len, pk_index);
    enum lmr_result r = lmr_buf_reserve(out, bytes);
    if (r)
        return r;
    uint8_t *o = (uint8_t *)out->data + out->len;
    *o++ = 0x1a; /* field 3, length-delimited: records[] */
    o = lmr_varint_put(o, 1 + lmr_varint_bytes(pk_index) + 1 + lmr_varint_bytes(len) + len);
    *o++ = 0x08; /* field 1, varint: partition_key_index (required, so written even when 0) */
    o = lmr_varint_put(o, pk_index);
    *o++ = 0x1a; /* field 3, length-delimited: data */
    o = lmr_varint_put(o, len);
    if (len)
        memcpy(o, data, len);
    out->len += bytes;
    out->data[out->len] = '\0';
    return LMR_OK;
}

enum lmr_result lmr_kpl_add(struct lmr_buf *out, const void *data, size_t len)
{
    if (len < 124 && out->cap - out->len >= len + 6) {
        /* A line (the hot path): both lengths take one byte, and the room is there. */
        uint8_t *o = (uint8_t *)out->data + out->len;
        o[0] = 0x1a;
        o[1] = (uint8_t)(len + 4);
        o[2] = 0x08;
        o[3] = 0x00;
        o[4] = 0x1a;
        o[5] = (uint8_t)len;
        memcpy(o + 6, data, len);
        out->len += len + 6;
        out->data[out->len] = '\0';
        return LMR_OK;
    }
    return lmr_kpl_add_indexed(out, data, len, 0);
}

enum lmr_result lmr_kpl_finish(struct lmr_buf *out, size_t start)
{
    enum lmr_result r = lmr_buf_reserve(out, LMR_KPL_DIGEST_BYTES);
    if (r)
        return r;
    const uint8_t *msg = (const uint8_t *)out->data + start + LMR_KPL_MAGIC_BYTES;
    if (!md5(msg, out->len - start - LMR_KPL_MAGIC_BYTES, (uint8_t *)out->data + out->len))
        return LMR_ERR_INTERNAL;
    out->len += LMR_KPL_DIGEST_BYTES;
    out->data[out->len] = '\0';
    return LMR_OK;
}
