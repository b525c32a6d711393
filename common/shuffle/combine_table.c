/*
 * The combining hash table (see combine_table.h).
 *
 * Slot (stride bytes, 32 or 64; a slot never straddles a cache line):
 *     0  u32 key length + 1 (0: empty)
 *     4  u32 the hash's low 32 bits (the slot index is hash & mask, so a growth re-places slots
 *        from these bits without rehashing keys; tables stay below 2^32 slots)
 *     8  key of at most SHORT_KEY bytes, zero-padded to 16 bytes; or a longer key's first 8
 *        bytes (as loaded, little-endian) and at 16 a pointer to its bytes in the arena
 *    24  the accumulator (acc_bytes <= INLINE_ACC_MAX), or a pointer to it in the arena
 *
 * Short keys are handled as two zero-padded 64-bit words: the hash, the comparison and the copy
 * are a few instructions without a branch on the length (word lengths vary at random: such
 * branches mispredict).
 */
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "shuffle/combine_table.h"
#include "shuffle/item_sort.h"
#include "util/big_alloc.h"
#include "util/chunk_arena.h"

#define MAX_CHUNK_BYTES LMR_CHUNK_ARENA_MAX_CHUNK_BYTES
#define UNLIMITED_CHUNK_BYTES ((size_t)64 * 1024)
#define INITIAL_SLOTS ((size_t)1024)
#define MAX_SLOTS ((size_t)1 << 32)
#define SHORT_KEY LMR_SHORT_KEY_BYTES
#define INLINE_ACC_MAX 40

/* The emit pipeline: RING pending pairs; a pair is combined LAG emits after its slot was
   prefetched; a long key's arena bytes are prefetched KEY_LAG emits after the slot. */
#define RING 64
#ifndef LAG
#define LAG 24
#endif
#define KEY_LAG (LAG / 2)
#define PIPE_MIN_SLOTS ((size_t)1 << 15) /* smaller tables stay in cache: no pipelining */
#define PIPE_KEY_MAX 48                  /* longer keys bypass the pipeline */
#define PIPE_VALUE_MAX INLINE_ACC_MAX

struct __attribute__((aligned(64))) pending { /* 128 bytes: a shift indexes the ring */
    uint64_t h;
    uint64_t key[PIPE_KEY_MAX / 8]; /* a short key as its two zero-padded words, or the key */
    uint32_t klen;
    uint8_t value[PIPE_VALUE_MAX];
};

struct lmr_combine_table {
    struct lmr_emitter emitter; /* first: the emit callback casts back */
    const struct lmr_job_ops *ops;
    void *state;
    size_t vs, acc_bytes, stride;
    unsigned stride_shift; /* stride == 1 << stride_shift */
    bool acc_inline;
    void (*combine)(void *state, uint8_t *acc, struct lmr_slice value);
    /* The fast path's value size: vs while the fast path is open (no error, not drained, an
       accumulator the ring and the slot hold), else SIZE_MAX; see update_fast. */
    size_t fast_vs;
    bool pipelined; /* cap >= PIPE_MIN_SLOTS: emits go through the ring */
    size_t limit;   /* SIZE_MAX: none */
    lmr_combine_table_full_fn full;
    void *full_user;
    bool in_full; /* inside the full callback: no flushing (the pending pairs go in after it) */
    bool drained; /* sorted in place: must be cleared before use */

    uint8_t *slots;
    size_t cap, mask, count;
    size_t home_mask; /* mask without the slot-in-line bits: a key's home is the start of a cache line */

    struct lmr_chunk_arena arena;
    size_t peak;

    struct pending ring[RING];
    size_t head, tail; /* pending: ring[head % RING] .. ring[(tail - 1) % RING] */
    uint64_t emits;

    enum lmr_result status;
    struct lmr_err err;
};

/* ---- memory ------------------------------------------------------------------------------------------------ */

static inline size_t mem_bytes(const struct lmr_combine_table *t)
{
    return t->arena.bytes + t->cap * t->stride;
}

static inline void note_peak(struct lmr_combine_table *t, size_t m)
{
    if (m > t->peak)
        t->peak = m;
}

/* n bytes (a multiple of 8) from the arena; NULL when the budget (unless force) or malloc says no. */
static uint8_t *arena_alloc(struct lmr_combine_table *t, size_t n, bool force)
{
    uint8_t *p = lmr_chunk_arena_take(&t->arena, n);
    if (p)
        return p;
    if (!force && mem_bytes(t) + lmr_chunk_arena_growth_bytes(&t->arena, n) > t->limit)
        return NULL;
    if ((p = lmr_chunk_arena_grow(&t->arena, n)))
        note_peak(t, mem_bytes(t));
    return p;
}

static inline const char *job_name(const struct lmr_combine_table *t)
{
    return t->ops && t->ops->name ? t->ops->name : "?";
}

/* ---- keys and slots ---------------------------------------------------------------------------------------- */

static inline uint64_t load64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline uint32_t load32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline void store64(uint8_t *p, uint64_t v)
{
    memcpy(p, &v, 8);
}

static inline void store32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, 4);
}

/* Key p[0, n), n <= SHORT_KEY, zero-padded into w[0..1] (see combine_table.h). */
static inline void load_short(const uint8_t *p, size_t n, uint64_t w[2])
{
    lmr_short_key_words(p, n, w);
}

/*
 * A short key's hash: its two words (and length) in one 64x64->128 multiply, folded, then the high
 * half folded into the low (the slot index uses the low bits). One multiply, not two: it sits on
 * the path from a key to its slot's prefetch. Longer keys use XXH3.
 */
static inline uint64_t short_hash(const uint64_t w[2], size_t n)
{
    __uint128_t m = (__uint128_t)(w[0] ^ 0x9e3779b97f4a7c15ull) * (w[1] ^ 0xd6e8feb86659fd93ull ^ n);
    uint64_t x = (uint64_t)m ^ (uint64_t)(m >> 64);
    return x ^ (x >> 32);
}

/* The first (up to) 8 bytes of a long key as the slot stores them. */
static inline uint64_t long_prefix(const uint8_t *p)
{
    return load64(p);
}

static inline uint8_t *slot_at(const struct lmr_combine_table *t, size_t i)
{
    return t->slots + (i << t->stride_shift);
}

static inline void update_fast(struct lmr_combine_table *t)
{
    bool open = t->status == LMR_OK && t->combine && !t->drained && t->vs <= PIPE_VALUE_MAX && t->acc_inline;
    t->fast_vs = open ? t->vs : SIZE_MAX;
    t->pipelined = t->cap >= PIPE_MIN_SLOTS;
}

static inline uint32_t slot_klen(const uint8_t *s)
{
    return load32(s) - 1;
}

static inline struct lmr_slice slot_key(const uint8_t *s)
{
    uint32_t n = slot_klen(s);
    if (n <= SHORT_KEY)
        return (struct lmr_slice){s + 8, n};
    return (struct lmr_slice){(const uint8_t *)(uintptr_t)load64(s + 16), n};
}

static inline uint8_t *slot_acc(const struct lmr_combine_table *t, uint8_t *s)
{
    return t->acc_inline ? s + 24 : (uint8_t *)(uintptr_t)load64(s + 24);
}

static inline bool long_equal(const uint8_t *a, const uint8_t *b, size_t n)
{
    return memcmp(a, b, n) == 0;
}

/* The slot holding short key w (length n), or the empty slot where it would go: *found tells. */
static inline uint8_t *probe_short(const struct lmr_combine_table *t, uint64_t h, const uint64_t w[2], size_t n,
                                   bool *found)
{
    size_t i = h & t->home_mask;
    uint32_t want = (uint32_t)n + 1;
    for (;;) {
        uint8_t *s = slot_at(t, i);
        uint32_t kl1 = load32(s);
        if (!kl1) {
            *found = false;
            return s;
        }
        if (((kl1 ^ want) | (load64(s + 8) ^ w[0]) | (load64(s + 16) ^ w[1])) == 0) {
            *found = true;
            return s;
        }
        i = (i + 1) & t->mask;
    }
}

static inline uint8_t *probe_long(const struct lmr_combine_table *t, uint64_t h, const uint8_t *key, size_t n,
                                  bool *found)
{
    size_t i = h & t->home_mask;
    uint32_t want = (uint32_t)n + 1, tag = (uint32_t)h;
    uint64_t prefix = long_prefix(key);
    for (;;) {
        uint8_t *s = slot_at(t, i);
        uint32_t kl1 = load32(s);
        if (!kl1) {
            *found = false;
            return s;
        }
        if (kl1 == want && load32(s + 4) == tag && load64(s + 8) == prefix &&
            long_equal((const uint8_t *)(uintptr_t)load64(s + 16), key, n)) {
            *found = true;
            return s;
        }
        i = (i + 1) & t->mask;
    }
}

/* Hash of any key; short keys also get their words in w. */
static inline uint64_t key_hash(struct lmr_slice key, uint64_t w[2])
{
    if (key.len <= SHORT_KEY) {
        load_short(key.ptr, key.len, w);
        return short_hash(w, key.len);
    }
    return XXH3_64bits(key.ptr, key.len);
}

static inline uint8_t *probe(const struct lmr_combine_table *t, uint64_t h, struct lmr_slice key, const uint64_t *w,
                             bool *found)
{
    return key.len <= SHORT_KEY ? probe_short(t, h, w, key.len, found) : probe_long(t, h, key.ptr, key.len, found);
}

/* Double the slot array if the budget allows. @return false when it does not. */
static bool grow(struct lmr_combine_table *t)
{
    size_t ncap = t->cap * 2;
    if (ncap > MAX_SLOTS || mem_bytes(t) + ncap * t->stride > t->limit)
        return false;
    uint8_t *n = lmr_big_alloc(ncap * t->stride);
    if (!n)
        return false;
    note_peak(t, mem_bytes(t) + ncap * t->stride);
    size_t nmask = ncap - 1, nhome = nmask & ~(size_t)(64 / t->stride - 1);
    for (size_t i = 0; i < t->cap; i++) {
        const uint8_t *s = slot_at(t, i);
        if (!load32(s))
            continue;
        size_t j = load32(s + 4) & nhome;
        while (load32(n + j * t->stride))
            j = (j + 1) & nmask;
        memcpy(n + j * t->stride, s, t->stride);
    }
    lmr_big_free(t->slots, t->cap * t->stride);
    t->slots = n;
    t->cap = ncap;
    t->mask = nmask;
    t->home_mask = nhome;
    update_fast(t);
    return true;
}

static void fill_slot(struct lmr_combine_table *t, uint8_t *s, uint64_t h, struct lmr_slice key, const uint64_t *w,
                      uint8_t *mem)
{
    store32(s, (uint32_t)key.len + 1);
    store32(s + 4, (uint32_t)h);
    if (!t->acc_inline) {
        store64(s + 24, (uint64_t)(uintptr_t)mem);
        mem += t->acc_bytes;
    }
    if (key.len <= SHORT_KEY) {
        store64(s + 8, w[0]);
        store64(s + 16, w[1]);
    } else {
        memcpy(mem, key.ptr, key.len);
        store64(s + 8, long_prefix(key.ptr));
        store64(s + 16, (uint64_t)(uintptr_t)mem);
    }
}

/*
 * Insert a key known to be absent (s: the empty slot the probe ended on). Grows the table or,
 * past the budget, calls the full callback (which empties it) first.
 * @return the new slot, or NULL with err filled in.
 */
static uint8_t *insert_new(struct lmr_combine_table *t, uint8_t *s, uint64_t h, struct lmr_slice key, const uint64_t *w,
                           struct lmr_err *err)
{
    size_t need = (t->acc_inline ? 0 : t->acc_bytes) + (key.len > SHORT_KEY ? (key.len + 7) & ~(size_t)7 : 0);
    for (int attempt = 0;; attempt++) {
        bool moved = false, ok = true;
        if ((t->count + 1) * 2 > t->cap) {
            ok = grow(t);
            moved = ok;
        }
        uint8_t *mem = NULL;
        if (ok && need && !(mem = arena_alloc(t, need, t->count == 0)))
            ok = false;
        if (ok) {
            if (moved) {
                bool found;
                s = probe(t, h, key, w, &found);
            }
            fill_slot(t, s, h, key, w, mem);
            t->count++;
            return s;
        }
        if (t->count == 0 || attempt > 0)
            break;
        if (!t->full) {
            lmr_fail(err, LMR_ERR_NOMEM,
                     "The combining table of job %s reached its memory budget of %zu bytes with %zu keys; give the "
                     "task more memory.",
                     job_name(t), t->limit, t->count);
            return NULL;
        }
        t->in_full = true;
        enum lmr_result rc = t->full(t->full_user, t, err);
        t->in_full = false;
        if (rc != LMR_OK)
            return NULL;
        bool found;
        s = probe(t, h, key, w, &found);
    }
    lmr_fail(err, LMR_ERR_NOMEM, "Out of memory in the combining table of job %s (%zu keys, a %zu-byte key).",
             job_name(t), t->count, key.len);
    return NULL;
}

static inline enum lmr_result check_key(const struct lmr_combine_table *t, struct lmr_slice key, struct lmr_err *err)
{
    if (key.len > LMR_COMBINE_TABLE_MAX_KEY_BYTES)
        return lmr_fail(err, LMR_ERR_TOO_LARGE, "A key of %zu bytes is larger than the combining table's limit of %zu.",
                        key.len, LMR_COMBINE_TABLE_MAX_KEY_BYTES);
    if (t->drained)
        return lmr_fail(err, LMR_ERR_INTERNAL, "The combining table was sorted in place and not cleared.");
    return LMR_OK;
}

/* ---- public: lifecycle ------------------------------------------------------------------------------------- */

static void emit_cb(struct lmr_emitter *self, struct lmr_slice key, struct lmr_slice value);
static void emit_cb_add_u64(struct lmr_emitter *self, struct lmr_slice key, struct lmr_slice value);

static size_t stride_for(size_t acc_bytes)
{
    if (acc_bytes > INLINE_ACC_MAX)
        return 32;
    return 24 + acc_bytes <= 32 ? 32 : 64;
}

size_t lmr_combine_table_initial_bytes(size_t value_size)
{
    return INITIAL_SLOTS * stride_for((value_size + 7) & ~(size_t)7);
}

enum lmr_result lmr_combine_table_new(const struct lmr_combine_table_options *o, struct lmr_combine_table **out,
                                      struct lmr_err *err)
{
    if (!o || o->value_size == 0 || (o->ops && !o->ops->combine))
        return lmr_fail(err, LMR_ERR_INVALID, "A combining table needs a value_size and a job with a combiner.");
    struct lmr_combine_table *t = calloc(1, sizeof *t);
    if (!t)
        return lmr_fail(err, LMR_ERR_NOMEM, "Out of memory creating a combining table.");
    t->ops = o->ops;
    t->state = o->job_state;
    t->vs = o->value_size;
    t->emitter.emit = o->ops && o->ops->combine == lmr_combine_add_u64 && t->vs == 8 ? emit_cb_add_u64 : emit_cb;
    t->acc_bytes = (t->vs + 7) & ~(size_t)7;
    t->acc_inline = t->acc_bytes <= INLINE_ACC_MAX;
    t->stride = stride_for(t->acc_bytes);
    t->stride_shift = (unsigned)__builtin_ctzll(t->stride);
    t->combine = o->ops ? o->ops->combine : NULL;
    t->limit = o->memory_limit_bytes ? o->memory_limit_bytes : SIZE_MAX;
    t->full = o->full;
    t->full_user = o->full_user;
    if (o->memory_limit_bytes) {
        t->arena.chunk_bytes = o->memory_limit_bytes / 16;
        if (t->arena.chunk_bytes > MAX_CHUNK_BYTES)
            t->arena.chunk_bytes = MAX_CHUNK_BYTES;
        if (t->arena.chunk_bytes < 4096)
            t->arena.chunk_bytes = 4096;
    } else {
        t->arena.chunk_bytes = UNLIMITED_CHUNK_BYTES;
    }
    t->arena.chunk_bytes &= ~(size_t)7;
    t->cap = INITIAL_SLOTS;
    t->mask = t->cap - 1;
    t->home_mask = t->mask & ~(size_t)(64 / t->stride - 1);
    t->slots = lmr_big_alloc(t->cap * t->stride);
    if (!t->slots) {
        free(t);
        return lmr_fail(err, LMR_ERR_NOMEM, "Out of memory creating a combining table.");
    }
    note_peak(t, mem_bytes(t));
    if (!t->ops) /* upsert/find/remove only */
        t->status = lmr_fail(&t->err, LMR_ERR_INVALID, "This combining table has no combiner: use upsert.");
    update_fast(t);
    *out = t;
    return LMR_OK;
}

void lmr_combine_table_destroy(struct lmr_combine_table *t)
{
    if (!t)
        return;
    lmr_chunk_arena_free(&t->arena);
    lmr_big_free(t->slots, t->cap * t->stride);
    free(t);
}

void lmr_combine_table_clear(struct lmr_combine_table *t)
{
    if (t->count || t->drained)
        memset(t->slots, 0, t->cap * t->stride);
    t->count = 0;
    t->drained = false;
    update_fast(t);
    lmr_chunk_arena_reset(&t->arena);
    if (!t->in_full)
        t->head = t->tail = 0;
}

size_t lmr_combine_table_count(const struct lmr_combine_table *t)
{
    return t->count;
}

size_t lmr_combine_table_memory_bytes(const struct lmr_combine_table *t)
{
    return mem_bytes(t);
}

size_t lmr_combine_table_peak_bytes(const struct lmr_combine_table *t)
{
    return t->peak;
}

/* ---- public: synchronous ----------------------------------------------------------------------------------- */

enum lmr_result lmr_combine_table_upsert(struct lmr_combine_table *t, struct lmr_slice key, uint8_t **acc,
                                         bool *inserted, struct lmr_err *err)
{
    struct lmr_err local;
    if (!err)
        err = &local;
    enum lmr_result rc = check_key(t, key, err);
    if (rc != LMR_OK)
        return rc;
    uint64_t w[2];
    uint64_t h = key_hash(key, w);
    bool found;
    uint8_t *s = probe(t, h, key, w, &found);
    if (!found && !(s = insert_new(t, s, h, key, w, err)))
        return err->code ? err->code : LMR_ERR_NOMEM;
    *acc = slot_acc(t, s);
    *inserted = !found;
    return LMR_OK;
}

enum lmr_result lmr_combine_table_add(struct lmr_combine_table *t, struct lmr_slice key, struct lmr_slice value,
                                      struct lmr_err *err)
{
    if (!t->ops)
        return lmr_fail(err, LMR_ERR_INVALID, "This combining table has no combiner: use upsert.");
    if (value.len != t->vs)
        return lmr_fail(err, LMR_ERR_INVALID,
                        "Job %s emitted a %zu-byte value but declares value_size %zu; a combining job's values must "
                        "all have value_size bytes.",
                        job_name(t), value.len, t->vs);
    uint8_t *acc;
    bool inserted;
    struct lmr_err local;
    enum lmr_result rc = lmr_combine_table_upsert(t, key, &acc, &inserted, err ? err : &local);
    if (rc != LMR_OK)
        return rc;
    if (inserted)
        memcpy(acc, value.ptr, t->vs);
    else
        t->combine(t->state, acc, value);
    return LMR_OK;
}

uint8_t *lmr_combine_table_find(struct lmr_combine_table *t, struct lmr_slice key)
{
    if (key.len > LMR_COMBINE_TABLE_MAX_KEY_BYTES || t->drained)
        return NULL;
    uint64_t w[2];
    uint64_t h = key_hash(key, w);
    bool found;
    uint8_t *s = probe(t, h, key, w, &found);
    return found ? slot_acc(t, s) : NULL;
}

bool lmr_combine_table_remove(struct lmr_combine_table *t, struct lmr_slice key)
{
    if (key.len > LMR_COMBINE_TABLE_MAX_KEY_BYTES || t->drained)
        return false;
    uint64_t w[2];
    uint64_t h = key_hash(key, w);
    bool found;
    uint8_t *s = probe(t, h, key, w, &found);
    if (!found)
        return false;
    /* Backward-shift deletion: linear probing stays valid without tombstones. */
    size_t hole = (size_t)(s - t->slots) >> t->stride_shift;
    for (size_t j = (hole + 1) & t->mask;; j = (j + 1) & t->mask) {
        uint8_t *sj = slot_at(t, j);
        if (!load32(sj))
            break;
        size_t home = load32(sj + 4) & t->home_mask;
        /* Move j into the hole unless its home lies cyclically in (hole, j]. */
        bool in_between = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (!in_between) {
            memcpy(slot_at(t, hole), sj, t->stride);
            hole = j;
        }
    }
    memset(slot_at(t, hole), 0, t->stride);
    t->count--;
    return true;
}

/* ---- public: the pipeline ---------------------------------------------------------------------------------- */

static inline void fail_sticky(struct lmr_combine_table *t, enum lmr_result rc)
{
    if (t->status == LMR_OK)
        t->status = rc;
    update_fast(t);
}

/* A new key from an emit (s: the empty slot its probe ended on), its accumulator a copy of value. */
static __attribute__((noinline)) void insert_emitted(struct lmr_combine_table *t, uint8_t *s, uint64_t h,
                                                     struct lmr_slice key, const uint64_t *w, const uint8_t *value)
{
    if (t->status != LMR_OK)
        return;
    s = insert_new(t, s, h, key, w, &t->err);
    if (!s) {
        fail_sticky(t, t->err.code ? t->err.code : LMR_ERR_NOMEM);
        return;
    }
    memcpy(slot_acc(t, s), value, t->vs);
}

/* Combine one pair whose hash (and, short, words) are known: any key, any accumulator. */
static __attribute__((noinline)) void combine_hashed(struct lmr_combine_table *t, uint64_t h, struct lmr_slice key,
                                                     const uint64_t *w, const uint8_t *value)
{
    if (t->status != LMR_OK)
        return;
    bool found;
    uint8_t *s = probe(t, h, key, w, &found);
    if (found)
        t->combine(t->state, slot_acc(t, s), (struct lmr_slice){value, t->vs});
    else
        insert_emitted(t, s, h, key, w, value);
}

/*
 * The fast path's combine: a short key (words w0, w1, length n, hash h) and an inline
 * accumulator. A hit (the common case, Zipf's hot keys) is checked before the empty slot.
 */
static inline __attribute__((always_inline)) void combine_short(struct lmr_combine_table *t, uint64_t h, uint64_t w0,
                                                                uint64_t w1, uint32_t n, const uint8_t *value,
                                                                bool add_u64)
{
    size_t i = h & t->home_mask;
    uint32_t want = n + 1;
    for (;;) {
        uint8_t *s = slot_at(t, i);
        uint32_t kl1 = load32(s);
        if (((kl1 ^ want) | (load64(s + 8) ^ w0) | (load64(s + 16) ^ w1)) == 0) {
            if (add_u64) /* the job's combiner is lmr_combine_add_u64: the same sum, inline */
                store64(s + 24, load64(s + 24) + load64(value));
            else
                t->combine(t->state, s + 24, (struct lmr_slice){value, t->vs});
            return;
        }
        if (!kl1) {
            uint64_t w[2] = {w0, w1};
            insert_emitted(t, s, h, (struct lmr_slice){(const uint8_t *)w, n}, w, value);
            return;
        }
        i = (i + 1) & t->mask;
    }
}

static inline void combine_pending(struct lmr_combine_table *t, const struct pending *q)
{
    if (q->klen <= SHORT_KEY && t->fast_vs == t->vs)
        combine_short(t, q->h, q->key[0], q->key[1], q->klen, q->value, false);
    else
        combine_hashed(t, q->h, (struct lmr_slice){(const uint8_t *)q->key, q->klen}, q->key, q->value);
}

/* Everything but the fast path: errors, long keys, large accumulators, a drained table. */
static __attribute__((noinline)) void emit_slow(struct lmr_combine_table *t, struct lmr_slice key,
                                                struct lmr_slice value)
{
    if (t->status != LMR_OK)
        return;
    if (value.len != t->vs) {
        fail_sticky(t, lmr_fail(&t->err, LMR_ERR_INVALID,
                                "Job %s emitted a %zu-byte value but declares value_size %zu; a combining job's "
                                "values must all have value_size bytes.",
                                job_name(t), value.len, t->vs));
        return;
    }
    if (check_key(t, key, &t->err) != LMR_OK) {
        fail_sticky(t, t->err.code);
        return;
    }
    t->emits++;
    uint64_t w[2];
    uint64_t h = key_hash(key, w);
    if (!t->pipelined || t->vs > PIPE_VALUE_MAX || key.len > PIPE_KEY_MAX) {
        combine_hashed(t, h, key, w, value.ptr); /* pending pairs come later: the order does not matter */
        return;
    }
    size_t k = t->tail++;
    struct pending *p = &t->ring[k % RING];
    p->h = h;
    p->klen = (uint32_t)key.len;
    if (key.len <= SHORT_KEY) {
        p->key[0] = w[0];
        p->key[1] = w[1];
    } else {
        memcpy(p->key, key.ptr, key.len);
    }
    memcpy(p->value, value.ptr, t->vs);
    __builtin_prefetch(slot_at(t, h & t->home_mask));
    if (k >= t->head + KEY_LAG) { /* a long key's bytes in the arena, once its slot is in cache */
        const struct pending *q = &t->ring[(k - KEY_LAG) % RING];
        if (q->klen > SHORT_KEY) {
            const uint8_t *qs = slot_at(t, q->h & t->home_mask);
            if (load32(qs) > SHORT_KEY + 1)
                __builtin_prefetch((const void *)(uintptr_t)load64(qs + 16));
        }
    }
    if (k >= t->head + LAG)
        combine_pending(t, &t->ring[t->head++ % RING]);
}

/*
 * The fast path (see the header): a short key with an accumulator-sized value. Hash; in a table
 * too large for the caches, stash the pair in the ring and prefetch its slot, then combine the
 * pair stashed LAG emits ago, whose slot is in cache by now; in a small table, combine at once.
 * One compare (value.len against fast_vs) stands for every condition of the fast path.
 */
static inline __attribute__((always_inline)) void emit_fast(struct lmr_emitter *self, struct lmr_slice key,
                                                            struct lmr_slice value, bool add_u64)
{
    struct lmr_combine_table *t = (struct lmr_combine_table *)self;
    if (__builtin_expect(value.len != t->fast_vs || key.len > SHORT_KEY, 0)) {
        emit_slow(t, key, value);
        return;
    }
    t->emits++;
    uint64_t w[2];
    load_short(key.ptr, key.len, w);
    uint64_t h = short_hash(w, key.len);
    if (!t->pipelined) {
        combine_short(t, h, w[0], w[1], (uint32_t)key.len, value.ptr, add_u64);
        return;
    }
    size_t k = t->tail++;
    struct pending *p = &t->ring[k % RING];
    p->h = h;
    p->klen = (uint32_t)key.len;
    p->key[0] = w[0];
    p->key[1] = w[1];
    if (value.len == 8)
        memcpy(p->value, value.ptr, 8);
    else
        memcpy(p->value, value.ptr, value.len);
    __builtin_prefetch(slot_at(t, h & t->home_mask));
    if (k >= t->head + LAG) {
        const struct pending *q = &t->ring[t->head++ % RING];
        if (__builtin_expect(q->klen <= SHORT_KEY, 1))
            combine_short(t, q->h, q->key[0], q->key[1], q->klen, q->value, add_u64);
        else
            combine_hashed(t, q->h, (struct lmr_slice){(const uint8_t *)q->key, q->klen}, q->key, q->value);
    }
}

static void emit_cb(struct lmr_emitter *self, struct lmr_slice key, struct lmr_slice value)
{
    emit_fast(self, key, value, false);
}

/* The emitter of a table whose combiner is lmr_combine_add_u64 (word count's): no call per hit. */
static void emit_cb_add_u64(struct lmr_emitter *self, struct lmr_slice key, struct lmr_slice value)
{
    emit_fast(self, key, value, true);
}

/*
 * Many keys with one value (lmr_emit_keys): emit_fast's pipeline as one loop over the keys, with
 * the table's geometry and the ring's ends in locals instead of reloaded (and the emitter called)
 * per key: about a sixth fewer instructions per word count emit. The same ring and the same
 * prefetch distance as emit_fast (a two-pass batch, every slot of 64 keys prefetched before the
 * first is combined, ran fewer instructions but was slower: the burst of misses). Whatever calls
 * out of the loop and may change the table (a new key's insert: growth, a spill, an error; a
 * long key stashed by emit_slow) leaves it (the gotos), writes the ring's ends back first, and
 * the loop starts over with the table as it is then; a key the fast path does not take goes
 * through emit_fast.
 */
static inline __attribute__((always_inline)) void emit_keys_fast(struct lmr_combine_table *t,
                                                                 const struct lmr_slice *keys, size_t n,
                                                                 struct lmr_slice value, bool add_u64)
{
    const struct lmr_slice *end = keys + n;
    uint64_t v8 = 0; /* add_u64: the value, when it has the fast path's 8 bytes */
    if (add_u64 && value.len == 8)
        memcpy(&v8, value.ptr, 8);
    while (keys < end) {
        if (value.len != t->fast_vs || !t->pipelined || keys->len > SHORT_KEY) {
            emit_fast(&t->emitter, *keys++, value, add_u64);
            continue;
        }
        uint8_t *const slots = t->slots;
        const size_t home_mask = t->home_mask;
        const unsigned shift = add_u64 ? 5 : t->stride_shift; /* add_u64: 8-byte accumulators, 32-byte slots */
        size_t head = t->head, tail = t->tail;
        const struct lmr_slice *first = keys;
        const struct pending *q;
        uint8_t *s;
        while (keys < end) {
            struct lmr_slice key = *keys;
            if (key.len > SHORT_KEY)
                break;
            keys++;
            uint64_t w[2];
            load_short(key.ptr, key.len, w);
            uint64_t h = short_hash(w, key.len);
            struct pending *p = &t->ring[tail % RING];
            p->h = h;
            p->klen = (uint32_t)key.len;
            p->key[0] = w[0];
            p->key[1] = w[1];
            if (add_u64)
                memcpy(p->value, &v8, 8);
            else
                memcpy(p->value, value.ptr, value.len);
            __builtin_prefetch(slots + ((h & home_mask) << shift));
            tail++;
            if (tail <= head + LAG)
                continue;
            q = &t->ring[head++ % RING];
            if (__builtin_expect(q->klen > SHORT_KEY, 0)) /* stashed by emit_slow */
                goto long_key;
            size_t j = q->h & home_mask;
            uint32_t want = q->klen + 1;
            uint64_t w0 = q->key[0], w1 = q->key[1];
            for (;;) {
                s = slots + (j << shift);
                uint32_t kl1 = load32(s);
                if (((kl1 ^ want) | (load64(s + 8) ^ w0) | (load64(s + 16) ^ w1)) == 0) {
                    if (add_u64)
                        store64(s + 24, load64(s + 24) + load64(q->value));
                    else
                        t->combine(t->state, s + 24, (struct lmr_slice){q->value, t->vs});
                    break;
                }
                if (!kl1)
                    goto new_key;
                j = (j + 1) & t->mask;
            }
        }
        t->emits += (size_t)(keys - first);
        t->head = head;
        t->tail = tail;
        continue;
    long_key:
        t->emits += (size_t)(keys - first);
        t->head = head;
        t->tail = tail;
        combine_hashed(t, q->h, (struct lmr_slice){(const uint8_t *)q->key, q->klen}, q->key, q->value);
        continue;
    new_key:
        t->emits += (size_t)(keys - first);
        t->head = head;
        t->tail = tail;
        {
            uint64_t qw[2] = {q->key[0], q->key[1]};
            insert_emitted(t, s, q->h, (struct lmr_slice){(const uint8_t *)qw, q->klen}, qw, q->value);
        }
    }
}

static __attribute__((noinline)) void emit_keys_cb(struct lmr_emitter *self, const struct lmr_slice *keys, size_t n,
                                                   struct lmr_slice value)
{
    emit_keys_fast((struct lmr_combine_table *)self, keys, n, value, false);
}

static __attribute__((noinline)) void emit_keys_add_u64(struct lmr_emitter *self, const struct lmr_slice *keys,
                                                        size_t n, struct lmr_slice value)
{
    emit_keys_fast((struct lmr_combine_table *)self, keys, n, value, true);
}

void lmr_emit_keys(struct lmr_emitter *out, const struct lmr_slice *keys, size_t n, struct lmr_slice value)
{
    if (out->emit == emit_cb_add_u64)
        emit_keys_add_u64(out, keys, n, value);
    else if (out->emit == emit_cb)
        emit_keys_cb(out, keys, n, value);
    else
        for (size_t i = 0; i < n; i++)
            out->emit(out, keys[i], value);
}

void lmr_combine_add_u64(void *state, uint8_t *acc, struct lmr_slice value)
{
    (void)state;
    store64(acc, load64(acc) + load64(value.ptr));
}

void lmr_combine_table_emit(struct lmr_combine_table *t, struct lmr_slice key, struct lmr_slice value)
{
    t->emitter.emit(&t->emitter, key, value);
}

struct lmr_emitter *lmr_combine_table_emitter(struct lmr_combine_table *t)
{
    return &t->emitter;
}

uint64_t lmr_combine_table_emits(const struct lmr_combine_table *t)
{
    return t->emits;
}

enum lmr_result lmr_combine_table_flush(struct lmr_combine_table *t, struct lmr_err *err)
{
    if (!t->in_full) {
        while (t->head != t->tail)
            combine_pending(t, &t->ring[t->head++ % RING]);
        t->head = t->tail = 0;
    }
    if (t->status != LMR_OK && err)
        *err = t->err;
    return t->status;
}

/* ---- public: iteration ------------------------------------------------------------------------------------- */

void lmr_combine_table_foreach(struct lmr_combine_table *t, void (*fn)(void *user, struct lmr_slice key, uint8_t *acc),
                               void *user)
{
    lmr_combine_table_flush(t, NULL);
    if (t->drained)
        return;
    for (size_t i = 0; i < t->cap; i++) {
        uint8_t *s = slot_at(t, i);
        if (load32(s))
            fn(user, slot_key(s), slot_acc(t, s));
    }
}

struct lmr_slice lmr_combine_item_key(const struct lmr_combine_table *t, const struct lmr_combine_item *it)
{
    (void)t;
    return slot_key(it->slot);
}

uint8_t *lmr_combine_item_acc(const struct lmr_combine_table *t, const struct lmr_combine_item *it)
{
    return slot_acc(t, it->slot);
}

static int bytewise(struct lmr_slice a, struct lmr_slice b)
{
    size_t n = a.len < b.len ? a.len : b.len;
    int c = n ? memcmp(a.ptr, b.ptr, n) : 0;
    return c ? c : (a.len > b.len) - (a.len < b.len);
}

/* The order of two items with equal sort keys: the sort's compare on their keys. */
struct tie_order {
    int (*compare)(struct lmr_slice a, struct lmr_slice b);
};

static int slot_tie(void *user, const struct lmr_combine_item *a, const struct lmr_combine_item *b)
{
    const struct tie_order *o = user;
    return o->compare(slot_key(a->slot), slot_key(b->slot));
}

/* The key's first 8 bytes, big-endian, zero padded. */
static inline uint64_t prefix_sortkey(const uint8_t *s)
{
    uint64_t first = load64(s + 8); /* short: zero-padded; long: the first 8 bytes */
    return __builtin_bswap64(first);
}

enum lmr_result lmr_combine_table_sorted(struct lmr_combine_table *t, const struct lmr_combine_sort *how,
                                         struct lmr_combine_item **items, size_t *n, struct lmr_err *err)
{
    *items = NULL;
    *n = 0;
    lmr_combine_table_flush(t, NULL);
    if (t->drained)
        return lmr_fail(err, LMR_ERR_INTERNAL, "The combining table was sorted in place and not cleared.");
    size_t count = t->count;
    struct lmr_combine_item *it, *scratch = NULL;
    void *scratch_heap = NULL;
    if (how->in_place) {
        /*
         * Compact the slots to the front of the slot array, then build the items in its back:
         * the table is at most half full and a slot is at least 32 bytes, so count slots plus
         * count 16-byte items fit in cap slots without overlapping.
         */
        size_t j = 0;
        for (size_t i = 0; i < t->cap; i++) {
            uint8_t *s = slot_at(t, i);
            if (!load32(s))
                continue;
            if (i != j)
                memcpy(slot_at(t, j), s, t->stride);
            j++;
        }
        it = (struct lmr_combine_item *)(t->slots + t->cap * t->stride) - count;
        for (size_t i = 0; i < count; i++)
            it[i].slot = slot_at(t, i);
        /* The radix sort's scratch goes between the slots and the items: at most half full with slots of at
           least 32 bytes, count slots + 2 * count items fit in cap slots. */
        scratch = (struct lmr_combine_item *)(t->slots + count * t->stride);
        if (scratch + count > it)
            scratch = NULL;
        t->drained = true;
        update_fast(t);
    } else {
        it = malloc((count ? count : 1) * sizeof *it);
        if (!it)
            return lmr_fail(err, LMR_ERR_NOMEM, "Out of memory sorting %zu keys of a combining table.", count);
        size_t j = 0;
        for (size_t i = 0; i < t->cap; i++) {
            uint8_t *s = slot_at(t, i);
            if (load32(s))
                it[j++].slot = s;
        }
        scratch = scratch_heap = malloc((count ? count : 1) * sizeof *it); /* NULL: the comparison sort */
    }
    for (size_t i = 0; i < count; i++) {
        const uint8_t *s = it[i].slot;
        if (how->sortkey)
            it[i].sortkey = how->sortkey(how->user, slot_key(s));
        else
            it[i].sortkey = prefix_sortkey(s);
    }
    struct tie_order order = {how->compare ? how->compare : bytewise};
    lmr_item_sort(it, count, scratch, slot_tie, &order);
    free(scratch_heap);
    *items = it;
    *n = count;
    return LMR_OK;
}
