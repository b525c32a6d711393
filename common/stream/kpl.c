#include "stream/kpl.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* --- MD5 (OpenSSL's, fetched once; 8 messages at once with AVX2) ------------------------------ */

static EVP_MD *md5_fetched;
static bool md5_avx2;
static pthread_once_t md5_once = PTHREAD_ONCE_INIT;
static void md5_init(void)
{
    md5_fetched = EVP_MD_fetch(NULL, "MD5", NULL);
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    /* LMR_KPL_MD5_SERIAL=1 keeps to OpenSSL's (tests run both). */
    const char *e = getenv("LMR_KPL_MD5_SERIAL");
    md5_avx2 = __builtin_cpu_supports("avx2") && !(e && !strcmp(e, "1"));
#endif
}

static bool md5(const uint8_t *p, size_t n, uint8_t out[LMR_KPL_DIGEST_BYTES])
{
    pthread_once(&md5_once, md5_init);
    unsigned got = 0;
    return EVP_Digest(p, n, out, &got, md5_fetched ? md5_fetched : EVP_md5(), NULL) == 1 && got == LMR_KPL_DIGEST_BYTES;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define LMR_KPL_MD5X8 1
#include <immintrin.h>

#define MD5_F(b, c, d) _mm256_xor_si256((d), _mm256_and_si256((b), _mm256_xor_si256((c), (d))))
#define MD5_G(b, c, d) _mm256_xor_si256((c), _mm256_and_si256((d), _mm256_xor_si256((b), (c))))
#define MD5_H(b, c, d) _mm256_xor_si256(_mm256_xor_si256((b), (c)), (d))
#define MD5_I(b, c, d) _mm256_xor_si256((c), _mm256_or_si256((b), _mm256_xor_si256((d), ones)))
/* a = b + ((a + f(b, c, d) + w + k) <<< s) */
#define MD5_STEP(f, a, b, c, d, w, k, s)                                                                               \
    do {                                                                                                               \
        __m256i t_ = _mm256_add_epi32(_mm256_add_epi32((a), MD5_##f((b), (c), (d))),                                   \
                                      _mm256_add_epi32((w), _mm256_set1_epi32((int)(k))));                             \
        (a) = _mm256_add_epi32((b), _mm256_or_si256(_mm256_slli_epi32(t_, (s)), _mm256_srli_epi32(t_, 32 - (s))));     \
    } while (0)

/* 8x8 transpose of 32-bit words: r[k] gets word k of each of the 8 rows. */
__attribute__((target("avx2"))) static inline void transpose8(__m256i r[8])
{
    __m256i t0 = _mm256_unpacklo_epi32(r[0], r[1]), t1 = _mm256_unpackhi_epi32(r[0], r[1]);
    __m256i t2 = _mm256_unpacklo_epi32(r[2], r[3]), t3 = _mm256_unpackhi_epi32(r[2], r[3]);
    __m256i t4 = _mm256_unpacklo_epi32(r[4], r[5]), t5 = _mm256_unpackhi_epi32(r[4], r[5]);
    __m256i t6 = _mm256_unpacklo_epi32(r[6], r[7]), t7 = _mm256_unpackhi_epi32(r[6], r[7]);
    __m256i u0 = _mm256_unpacklo_epi64(t0, t2), u1 = _mm256_unpackhi_epi64(t0, t2);
    __m256i u2 = _mm256_unpacklo_epi64(t1, t3), u3 = _mm256_unpackhi_epi64(t1, t3);
    __m256i u4 = _mm256_unpacklo_epi64(t4, t6), u5 = _mm256_unpackhi_epi64(t4, t6);
    __m256i u6 = _mm256_unpacklo_epi64(t5, t7), u7 = _mm256_unpackhi_epi64(t5, t7);
    r[0] = _mm256_permute2x128_si256(u0, u4, 0x20);
    r[1] = _mm256_permute2x128_si256(u1, u5, 0x20);
    r[2] = _mm256_permute2x128_si256(u2, u6, 0x20);
    r[3] = _mm256_permute2x128_si256(u3, u7, 0x20);
    r[4] = _mm256_permute2x128_si256(u0, u4, 0x31);
    r[5] = _mm256_permute2x128_si256(u1, u5, 0x31);
    r[6] = _mm256_permute2x128_si256(u2, u6, 0x31);
    r[7] = _mm256_permute2x128_si256(u3, u7, 0x31);
}

/* MD5 of 8 messages at once, one per 32-bit lane (RFC 1321; each lane's blocks are its message's, then its
   padding, from a tail of at most two blocks). */
__attribute__((target("avx2"))) static void md5x8(const uint8_t *const msg[8], const size_t len[8],
                                                  uint8_t out[8][LMR_KPL_DIGEST_BYTES])
{
    uint8_t tail[8][128];
    size_t full[8], blocks[8], most = 0;
    for (int i = 0; i < 8; i++) {
        full[i] = len[i] / 64;
        size_t rest = len[i] % 64, tb = rest + 9 <= 64 ? 1 : 2;
        memset(tail[i], 0, sizeof tail[i]);
        memcpy(tail[i], msg[i] + full[i] * 64, rest);
        tail[i][rest] = 0x80;
        uint64_t bits = (uint64_t)len[i] * 8;
        memcpy(tail[i] + tb * 64 - 8, &bits, 8); /* little-endian, as MD5 wants */
        blocks[i] = full[i] + tb;
        if (blocks[i] > most)
            most = blocks[i];
    }
    __m256i a = _mm256_set1_epi32(0x67452301), b = _mm256_set1_epi32((int)0xefcdab89),
            c = _mm256_set1_epi32((int)0x98badcfe), d = _mm256_set1_epi32(0x10325476);
    const __m256i ones = _mm256_set1_epi32(-1);
    const __m256i nblocks = _mm256_setr_epi32((int)blocks[0], (int)blocks[1], (int)blocks[2], (int)blocks[3],
                                              (int)blocks[4], (int)blocks[5], (int)blocks[6], (int)blocks[7]);
    for (size_t j = 0; j < most; j++) {
        const uint8_t *blk[8];
        for (int i = 0; i < 8; i++)
            blk[i] = j < full[i] ? msg[i] + j * 64 : j < blocks[i] ? tail[i] + (j - full[i]) * 64 : tail[i];
        __m256i w[16], lo[8], hi[8];
        for (int i = 0; i < 8; i++) {
            lo[i] = _mm256_loadu_si256((const __m256i *)(const void *)blk[i]);
            hi[i] = _mm256_loadu_si256((const __m256i *)(const void *)(blk[i] + 32));
        }
        transpose8(lo);
        transpose8(hi);
        for (int k = 0; k < 8; k++) {
            w[k] = lo[k];
            w[k + 8] = hi[k];
        }
        __m256i aa = a, bb = b, cc = c, dd = d;
        /* The 64 steps written out (constants in the instructions); the roles of a, b, c, d rotate. */
        MD5_STEP(F, aa, bb, cc, dd, w[0], 0xd76aa478, 7);
        MD5_STEP(F, dd, aa, bb, cc, w[1], 0xe8c7b756, 12);
        MD5_STEP(F, cc, dd, aa, bb, w[2], 0x242070db, 17);
        MD5_STEP(F, bb, cc, dd, aa, w[3], 0xc1bdceee, 22);
        MD5_STEP(F, aa, bb, cc, dd, w[4], 0xf57c0faf, 7);
        MD5_STEP(F, dd, aa, bb, cc, w[5], 0x4787c62a, 12);
        MD5_STEP(F, cc, dd, aa, bb, w[6], 0xa8304613, 17);
        MD5_STEP(F, bb, cc, dd, aa, w[7], 0xfd469501, 22);
        MD5_STEP(F, aa, bb, cc, dd, w[8], 0x698098d8, 7);
        MD5_STEP(F, dd, aa, bb, cc, w[9], 0x8b44f7af, 12);
        MD5_STEP(F, cc, dd, aa, bb, w[10], 0xffff5bb1, 17);
        MD5_STEP(F, bb, cc, dd, aa, w[11], 0x895cd7be, 22);
        MD5_STEP(F, aa, bb, cc, dd, w[12], 0x6b901122, 7);
        MD5_STEP(F, dd, aa, bb, cc, w[13], 0xfd987193, 12);
        MD5_STEP(F, cc, dd, aa, bb, w[14], 0xa679438e, 17);
        MD5_STEP(F, bb, cc, dd, aa, w[15], 0x49b40821, 22);
        MD5_STEP(G, aa, bb, cc, dd, w[1], 0xf61e2562, 5);
        MD5_STEP(G, dd, aa, bb, cc, w[6], 0xc040b340, 9);
        MD5_STEP(G, cc, dd, aa, bb, w[11], 0x265e5a51, 14);
        MD5_STEP(G, bb, cc, dd, aa, w[0], 0xe9b6c7aa, 20);
        MD5_STEP(G, aa, bb, cc, dd, w[5], 0xd62f105d, 5);
        MD5_STEP(G, dd, aa, bb, cc, w[10], 0x02441453, 9);
        MD5_STEP(G, cc, dd, aa, bb, w[15], 0xd8a1e681, 14);
        MD5_STEP(G, bb, cc, dd, aa, w[4], 0xe7d3fbc8, 20);
        MD5_STEP(G, aa, bb, cc, dd, w[9], 0x21e1cde6, 5);
        MD5_STEP(G, dd, aa, bb, cc, w[14], 0xc33707d6, 9);
        MD5_STEP(G, cc, dd, aa, bb, w[3], 0xf4d50d87, 14);
        MD5_STEP(G, bb, cc, dd, aa, w[8], 0x455a14ed, 20);
        MD5_STEP(G, aa, bb, cc, dd, w[13], 0xa9e3e905, 5);
        MD5_STEP(G, dd, aa, bb, cc, w[2], 0xfcefa3f8, 9);
        MD5_STEP(G, cc, dd, aa, bb, w[7], 0x676f02d9, 14);
        MD5_STEP(G, bb, cc, dd, aa, w[12], 0x8d2a4c8a, 20);
        MD5_STEP(H, aa, bb, cc, dd, w[5], 0xfffa3942, 4);
        MD5_STEP(H, dd, aa, bb, cc, w[8], 0x8771f681, 11);
        MD5_STEP(H, cc, dd, aa, bb, w[11], 0x6d9d6122, 16);
        MD5_STEP(H, bb, cc, dd, aa, w[14], 0xfde5380c, 23);
        MD5_STEP(H, aa, bb, cc, dd, w[1], 0xa4beea44, 4);
        MD5_STEP(H, dd, aa, bb, cc, w[4], 0x4bdecfa9, 11);
        MD5_STEP(H, cc, dd, aa, bb, w[7], 0xf6bb4b60, 16);
        MD5_STEP(H, bb, cc, dd, aa, w[10], 0xbebfbc70, 23);
        MD5_STEP(H, aa, bb, cc, dd, w[13], 0x289b7ec6, 4);
        MD5_STEP(H, dd, aa, bb, cc, w[0], 0xeaa127fa, 11);
        MD5_STEP(H, cc, dd, aa, bb, w[3], 0xd4ef3085, 16);
        MD5_STEP(H, bb, cc, dd, aa, w[6], 0x04881d05, 23);
        MD5_STEP(H, aa, bb, cc, dd, w[9], 0xd9d4d039, 4);
        MD5_STEP(H, dd, aa, bb, cc, w[12], 0xe6db99e5, 11);
        MD5_STEP(H, cc, dd, aa, bb, w[15], 0x1fa27cf8, 16);
        MD5_STEP(H, bb, cc, dd, aa, w[2], 0xc4ac5665, 23);
        MD5_STEP(I, aa, bb, cc, dd, w[0], 0xf4292244, 6);
        MD5_STEP(I, dd, aa, bb, cc, w[7], 0x432aff97, 10);
        MD5_STEP(I, cc, dd, aa, bb, w[14], 0xab9423a7, 15);
        MD5_STEP(I, bb, cc, dd, aa, w[5], 0xfc93a039, 21);
        MD5_STEP(I, aa, bb, cc, dd, w[12], 0x655b59c3, 6);
        MD5_STEP(I, dd, aa, bb, cc, w[3], 0x8f0ccc92, 10);
        MD5_STEP(I, cc, dd, aa, bb, w[10], 0xffeff47d, 15);
        MD5_STEP(I, bb, cc, dd, aa, w[1], 0x85845dd1, 21);
        MD5_STEP(I, aa, bb, cc, dd, w[8], 0x6fa87e4f, 6);
        MD5_STEP(I, dd, aa, bb, cc, w[15], 0xfe2ce6e0, 10);
        MD5_STEP(I, cc, dd, aa, bb, w[6], 0xa3014314, 15);
        MD5_STEP(I, bb, cc, dd, aa, w[13], 0x4e0811a1, 21);
        MD5_STEP(I, aa, bb, cc, dd, w[4], 0xf7537e82, 6);
        MD5_STEP(I, dd, aa, bb, cc, w[11], 0xbd3af235, 10);
        MD5_STEP(I, cc, dd, aa, bb, w[2], 0x2ad7d2bb, 15);
        MD5_STEP(I, bb, cc, dd, aa, w[9], 0xeb86d391, 21);
        /* Lanes whose message has ended keep their state. */
        __m256i live = _mm256_cmpgt_epi32(nblocks, _mm256_set1_epi32((int)j));
        a = _mm256_blendv_epi8(a, _mm256_add_epi32(a, aa), live);
        b = _mm256_blendv_epi8(b, _mm256_add_epi32(b, bb), live);
        c = _mm256_blendv_epi8(c, _mm256_add_epi32(c, cc), live);
        d = _mm256_blendv_epi8(d, _mm256_add_epi32(d, dd), live);
    }
    uint32_t va[8], vb[8], vc[8], vd[8];
    _mm256_storeu_si256((__m256i *)(void *)va, a);
    _mm256_storeu_si256((__m256i *)(void *)vb, b);
    _mm256_storeu_si256((__m256i *)(void *)vc, c);
    _mm256_storeu_si256((__m256i *)(void *)vd, d);
    for (int i = 0; i < 8; i++) {
        memcpy(out[i], &va[i], 4);
        memcpy(out[i] + 4, &vb[i], 4);
        memcpy(out[i] + 8, &vc[i], 4);
        memcpy(out[i] + 12, &vd[i], 4);
    }
}
#endif

bool lmr_kpl_md5_many(const uint8_t *const *msg, const size_t *len, size_t n, uint8_t (*out)[LMR_KPL_DIGEST_BYTES])
{
    pthread_once(&md5_once, md5_init);
    size_t i = 0;
#ifdef LMR_KPL_MD5X8
    /* Groups of 8 (a short last group is filled with empty messages), when there are at least 4 to do. */
    if (md5_avx2 && n >= 4) {
        static const uint8_t empty[1];
        for (; i < n; i += 8) {
            const uint8_t *m[8];
            size_t l[8];
            uint8_t d[8][LMR_KPL_DIGEST_BYTES];
            size_t k = n - i < 8 ? n - i : 8;
            for (size_t j = 0; j < 8; j++) {
                m[j] = j < k ? msg[i + j] : empty;
                l[j] = j < k ? len[i + j] : 0;
            }
            md5x8(m, l, d);
            memcpy(out + i, d, k * sizeof d[0]);
        }
        return true;
    }
#endif
    for (; i < n; i++)
        if (!md5(msg[i], len[i], out[i]))
            return false;
    return true;
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

void lmr_kpl_check_many(const uint8_t *const *data, const size_t *len, size_t n, bool *intact)
{
    enum { GROUP = 64 };
    for (size_t off = 0; off < n; off += GROUP) {
        const uint8_t *msg[GROUP];
        size_t mlen[GROUP], idx[GROUP], m = 0;
        uint8_t dig[GROUP][LMR_KPL_DIGEST_BYTES];
        for (size_t i = off; i < n && i < off + GROUP; i++) {
            intact[i] = false;
            if (len[i] > LMR_KPL_MAGIC_BYTES + LMR_KPL_DIGEST_BYTES &&
                !memcmp(data[i], LMR_KPL_MAGIC, LMR_KPL_MAGIC_BYTES)) {
                msg[m] = data[i] + LMR_KPL_MAGIC_BYTES;
                mlen[m] = len[i] - LMR_KPL_MAGIC_BYTES - LMR_KPL_DIGEST_BYTES;
                idx[m++] = i;
            }
        }
        if (m && lmr_kpl_md5_many(msg, mlen, m, dig))
            for (size_t j = 0; j < m; j++)
                intact[idx[j]] = !memcmp(dig[j], msg[j] + mlen[j], LMR_KPL_DIGEST_BYTES);
    }
}

bool lmr_kpl_open_checked(const uint8_t *data, size_t len, struct lmr_kpl_reader *rd)
{
    return lmr_kpl_open_message(data + LMR_KPL_MAGIC_BYTES, len - LMR_KPL_MAGIC_BYTES - LMR_KPL_DIGEST_BYTES, rd);
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

enum lmr_result lmr_kpl_finish_later(struct lmr_buf *out)
{
    enum lmr_result r = lmr_buf_reserve(out, LMR_KPL_DIGEST_BYTES);
    if (r)
        return r;
    memset(out->data + out->len, 0, LMR_KPL_DIGEST_BYTES);
    out->len += LMR_KPL_DIGEST_BYTES;
    out->data[out->len] = '\0';
    return LMR_OK;
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
