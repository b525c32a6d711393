/*
 * Map output: emit-time combining table / pair buffer, sorted spill runs, final merge (see map_output.h).
 *
 * Memory accounting. The budget covers the frame writer (zstd context + buffers), the table
 * (slot array, or the item array of a non-combining job) and the arena chunks. Buffered entries
 * are spilled as soon as the next allocation would cross the budget. At finish, when runs
 * exist, the table is spilled too and freed, and the runs are merged with as many frame readers
 * as the budget allows (more runs than that: intermediate merge passes).
 *
 * Sorting. Entries are sorted through 16-byte items {sort key, entry pointer}. The sort key has
 * the partition in its top bits and, for the default key order, the key's first bytes
 * (big-endian, zero padded) below it, so most comparisons never touch the entries.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "shuffle/map_output.h"
#include "shuffle/merge.h"

#define MIN_TABLE_BYTES ((size_t)256 * 1024)
#define HUGE_BYTES ((size_t)2 << 20) /* allocations of this size or more get 2 MiB-aligned (THP) pages */
#define MAX_CHUNK_BYTES (HUGE_BYTES - sizeof(struct chunk)) /* a chunk and its header: exactly one huge page */
#define INITIAL_SLOTS 1024

struct item {
    uint64_t sortkey; /* in the hash table: the key's hash */
    uint8_t *entry;   /* NULL: empty slot */
};

struct chunk {
    struct chunk *next;
    size_t cap;
    uint8_t data[];
};

struct run {
    char *key;
    struct lmr_partition_frame *frames;
};

/* The emit pipeline (see emit_combine): RING pending pairs, the entry prefetched ENTRY_LAG emits
   after the slot, combined COMBINE_LAG emits after the slot. */
#define RING 64
#define ENTRY_LAG 16
#define COMBINE_LAG 32
#define BATCH_VALUE_MAX 16
#define BATCH_MIN_SLOTS ((size_t)1 << 15) /* smaller tables stay in cache: no pipelining */

#define BATCH_KEY_MAX 48 /* longer keys bypass the pipeline */

struct pending {
    uint64_t h;
    uint64_t key[BATCH_KEY_MAX / 8]; /* a short key zero-padded to two words (see load_short), or the key */
    uint32_t klen;
    uint8_t value[BATCH_VALUE_MAX];
};

struct lmr_map_output {
    struct lmr_emitter emitter; /* first: emit callbacks cast back */
    const struct lmr_job_ops *ops;
    void *state;
    uint32_t R;
    unsigned pbits; /* bits of the partition number in a sort key */
    bool combining;
    size_t vs, acc_bytes; /* value_size, rounded up to 8 */
    struct lmr_store *store;
    char *spill_prefix, *object_key;
    int zstd_level;

    size_t limit, table_limit;
    /* Arena */
    struct chunk *chunks, *cur;
    size_t cur_used, arena_bytes, chunk_bytes;
    /* Combining: hash table of items {hash, entry}; non-combining: item array */
    struct item *items;
    size_t items_cap; /* slots (power of two) or array capacity */
    size_t count;     /* entries buffered */

    struct lmr_frame_writer *fw;
    struct run *runs;
    size_t nruns, runs_cap, spill_seq;

    struct pending ring[RING];
    size_t ring_head, ring_tail; /* pending pairs: ring[head % RING] .. ring[(tail - 1) % RING] */

    enum lmr_result status;
    struct lmr_err err;
    bool finished;
    uint64_t records_in, spills, spill_bytes, merge_passes, peak;
};

/* ---- memory ------------------------------------------------------------------------------------------------ */

/*
 * Large zeroed blocks (the slot array, arena chunks) come from mmap, 2 MiB-aligned and marked
 * MADV_HUGEPAGE: a table of a few hundred thousand keys spans thousands of 4 KiB pages, and the
 * TLB misses of random probes would otherwise cost as much as the cache misses.
 */
static void *big_alloc(size_t n)
{
    if (n < HUGE_BYTES)
        return calloc(1, n);
    size_t len = (n + HUGE_BYTES - 1) & ~(HUGE_BYTES - 1);
    uint8_t *raw = mmap(NULL, len + HUGE_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED)
        return NULL;
    uintptr_t start = ((uintptr_t)raw + HUGE_BYTES - 1) & ~(uintptr_t)(HUGE_BYTES - 1);
    size_t head = start - (uintptr_t)raw, tail = HUGE_BYTES - head;
    if (head)
        munmap(raw, head);
    if (tail)
        munmap((uint8_t *)start + len, tail);
    madvise((void *)start, len, MADV_HUGEPAGE);
    return (void *)start;
}

static void big_free(void *p, size_t n)
{
    if (!p)
        return;
    if (n < HUGE_BYTES)
        free(p);
    else
        munmap(p, (n + HUGE_BYTES - 1) & ~(HUGE_BYTES - 1));
}

/* ---- accounting ------------------------------------------------------------------------------------------------- */

static size_t table_bytes(const struct lmr_map_output *mo)
{
    return mo->arena_bytes + mo->items_cap * sizeof(struct item);
}

static void note_peak(struct lmr_map_output *mo, size_t extra)
{
    uint64_t m = table_bytes(mo) + lmr_frame_writer_memory_bytes(mo->zstd_level) + extra;
    if (m > mo->peak)
        mo->peak = m;
}

static void free_items(struct lmr_map_output *mo)
{
    if (mo->combining)
        big_free(mo->items, mo->items_cap * sizeof(struct item));
    else
        free(mo->items);
    mo->items = NULL;
}

static void arena_reset(struct lmr_map_output *mo)
{
    if (!mo->chunks)
        return;
    struct chunk *c = mo->chunks->next;
    while (c) {
        struct chunk *n = c->next;
        mo->arena_bytes -= c->cap + sizeof *c;
        big_free(c, c->cap + sizeof *c);
        c = n;
    }
    mo->chunks->next = NULL;
    mo->cur = mo->chunks;
    mo->cur_used = 0;
}

static void arena_free(struct lmr_map_output *mo)
{
    arena_reset(mo);
    if (mo->chunks) {
        mo->arena_bytes -= mo->chunks->cap + sizeof *mo->chunks;
        big_free(mo->chunks, mo->chunks->cap + sizeof *mo->chunks);
    }
    mo->chunks = mo->cur = NULL;
    mo->cur_used = 0;
}

/* n bytes (multiple of 8) from the arena; NULL when the budget (or malloc) says no. */
static uint8_t *arena_alloc(struct lmr_map_output *mo, size_t n)
{
    if (mo->cur && n <= mo->cur->cap - mo->cur_used) {
        uint8_t *p = mo->cur->data + mo->cur_used;
        mo->cur_used += n;
        return p;
    }
    size_t cap = n > mo->chunk_bytes ? n : mo->chunk_bytes;
    /* A record larger than the whole budget still goes through (alone): the task cannot do better. */
    if (table_bytes(mo) + cap + sizeof(struct chunk) > mo->table_limit && mo->count > 0)
        return NULL;
    struct chunk *c = big_alloc(sizeof *c + cap);
    if (!c)
        return NULL;
    c->next = NULL;
    c->cap = cap;
    if (mo->cur)
        mo->cur->next = c;
    else
        mo->chunks = c;
    mo->cur = c;
    mo->cur_used = n;
    mo->arena_bytes += cap + sizeof *c;
    return c->data;
}

/* ---- entries ------------------------------------------------------------------------------------------------ */
/* Combining entry:     u32 key_len, u32 partition, accumulator (acc_bytes), key (short keys: zero-padded
                       to SHORT_KEY bytes; longer ones to a multiple of 8).
   Non-combining entry: u32 key_len, u32 value_len, u32 partition, u32 unused, key, value. */

static inline uint32_t e_klen(const uint8_t *e)
{
    uint32_t v;
    memcpy(&v, e, 4);
    return v;
}

static inline uint32_t e_part(const struct lmr_map_output *mo, const uint8_t *e)
{
    uint32_t v;
    memcpy(&v, e + (mo->combining ? 4 : 8), 4);
    return v;
}

static inline struct lmr_slice e_key(const struct lmr_map_output *mo, const uint8_t *e)
{
    return (struct lmr_slice){e + (mo->combining ? 8 + mo->acc_bytes : 16), e_klen(e)};
}

static inline struct lmr_slice e_value(const struct lmr_map_output *mo, const uint8_t *e)
{
    if (mo->combining)
        return (struct lmr_slice){e + 8, mo->vs};
    uint32_t vlen;
    memcpy(&vlen, e + 4, 4);
    return (struct lmr_slice){e + 16 + e_klen(e), vlen};
}

static inline uint64_t sort_key(const struct lmr_map_output *mo, uint32_t part, struct lmr_slice key)
{
    uint64_t sk = mo->pbits ? (uint64_t)part << (64 - mo->pbits) : 0;
    if (!mo->ops->compare) {
        uint64_t prefix = 0;
        size_t n = key.len < 8 ? key.len : 8;
        for (size_t i = 0; i < n; i++)
            prefix |= (uint64_t)key.ptr[i] << (56 - 8 * i);
        sk |= prefix >> mo->pbits;
    }
    return sk;
}

/* ---- sorting ------------------------------------------------------------------------------------------------ */

static inline int item_cmp(const struct lmr_map_output *mo, const struct item *a, const struct item *b)
{
    if (a->sortkey != b->sortkey)
        return a->sortkey < b->sortkey ? -1 : 1;
    /* Equal sort keys imply the same partition. */
    return lmr_shuffle_compare(mo->ops, e_key(mo, a->entry), e_key(mo, b->entry));
}

static void sort_items(const struct lmr_map_output *mo, struct item *a, size_t n)
{
    while (n > 16) {
        /* median of three as the pivot value */
        struct item *x = &a[0], *y = &a[n / 2], *z = &a[n - 1], *m;
        if (item_cmp(mo, x, y) < 0)
            m = item_cmp(mo, y, z) < 0 ? y : (item_cmp(mo, x, z) < 0 ? z : x);
        else
            m = item_cmp(mo, x, z) < 0 ? x : (item_cmp(mo, y, z) < 0 ? z : y);
        struct item p = *m;
        size_t i = (size_t)-1, j = n;
        for (;;) {
            do
                i++;
            while (item_cmp(mo, &a[i], &p) < 0);
            do
                j--;
            while (item_cmp(mo, &a[j], &p) > 0);
            if (i >= j)
                break;
            struct item t = a[i];
            a[i] = a[j];
            a[j] = t;
        }
        /* [0, j] and [j+1, n): recurse into the smaller part, loop on the larger */
        size_t left = j + 1, right = n - left;
        if (left < right) {
            sort_items(mo, a, left);
            a += left;
            n = right;
        } else {
            sort_items(mo, a + left, right);
            n = left;
        }
    }
    for (size_t i = 1; i < n; i++) {
        struct item t = a[i];
        size_t k = i;
        while (k > 0 && item_cmp(mo, &t, &a[k - 1]) < 0) {
            a[k] = a[k - 1];
            k--;
        }
        a[k] = t;
    }
}

/* Bring the buffered entries to items[0, count) in (partition, key) order. */
static void sort_buffered(struct lmr_map_output *mo)
{
    if (mo->combining) {
        size_t j = 0;
        for (size_t i = 0; i < mo->items_cap; i++) {
            uint8_t *e = mo->items[i].entry;
            if (e)
                mo->items[j++] = (struct item){sort_key(mo, e_part(mo, e), e_key(mo, e)), e};
        }
        mo->count = j;
    }
    sort_items(mo, mo->items, mo->count);
}

/* Empty the table after a spill (keeps the slot array and the first arena chunk). */
static void clear_buffered(struct lmr_map_output *mo)
{
    if (mo->combining && mo->items)
        memset(mo->items, 0, mo->items_cap * sizeof(struct item));
    mo->count = 0;
    arena_reset(mo);
}

/* ---- writing objects ---------------------------------------------------------------------------------------- */

/*
 * Finish a shuffle object whose R frames end at object offset off: if rc is LMR_OK, write the index
 * and commit (*object_bytes gets the object's whole size); otherwise, or if that fails, abort sw.
 * @return rc, or the index/commit failure.
 */
static enum lmr_result finish_object(struct lmr_map_output *mo, struct lmr_store_writer *sw, enum lmr_result rc,
                                     uint64_t off, const struct lmr_partition_frame *frames, uint64_t *object_bytes,
                                     struct lmr_err *err)
{
    if (rc == LMR_OK)
        rc = lmr_shuffle_write_index(sw, &off, frames, mo->R, err);
    if (rc != LMR_OK) {
        lmr_store_abort(sw);
        return rc;
    }
    rc = lmr_store_commit(sw, err);
    if (rc == LMR_OK && object_bytes)
        *object_bytes = off;
    return rc;
}

/* Write sorted items[0, count) as a shuffle object at key. frames receives R entries. */
static enum lmr_result write_sorted(struct lmr_map_output *mo, const char *key, struct lmr_partition_frame *frames,
                                    uint64_t *object_bytes, struct lmr_err *err)
{
    struct lmr_store_writer *sw;
    enum lmr_result rc = lmr_store_open_write(mo->store, key, 0, &sw, err);
    if (rc != LMR_OK)
        return rc;
    uint64_t off = 0;
    size_t idx = 0;
    for (uint32_t r = 0; r < mo->R && rc == LMR_OK; r++) {
        lmr_frame_writer_begin(mo->fw, sw, &off);
        /* The partition is in the sort key's top bits; entries are prefetched a few items ahead. */
        while (idx < mo->count && (mo->pbits ? mo->items[idx].sortkey >> (64 - mo->pbits) : 0) == r && rc == LMR_OK) {
            if (idx + 8 < mo->count)
                __builtin_prefetch(mo->items[idx + 8].entry);
            const uint8_t *e = mo->items[idx++].entry;
            rc = lmr_frame_writer_add(mo->fw, e_key(mo, e), e_value(mo, e), err);
        }
        if (rc == LMR_OK)
            rc = lmr_frame_writer_end(mo->fw, &frames[r], err);
    }
    if (rc == LMR_OK && idx != mo->count)
        rc = lmr_fail(err, LMR_ERR_INTERNAL, "Map output: %zu entries were not written (partition order broken).",
                      mo->count - idx);
    return finish_object(mo, sw, rc, off, frames, object_bytes, err);
}

static enum lmr_result add_run(struct lmr_map_output *mo, char **key, struct lmr_partition_frame **frames,
                               struct lmr_err *err)
{
    if (mo->nruns == mo->runs_cap) {
        size_t cap = mo->runs_cap ? mo->runs_cap * 2 : 8;
        struct run *nr = realloc(mo->runs, cap * sizeof *nr);
        if (!nr)
            return lmr_fail(err, LMR_ERR_NOMEM, "Out of memory recording spill runs.");
        mo->runs = nr;
        mo->runs_cap = cap;
    }
    mo->runs[mo->nruns++] = (struct run){*key, *frames};
    *key = NULL;
    *frames = NULL;
    return LMR_OK;
}

static enum lmr_result new_run_key(struct lmr_map_output *mo, char **key, struct lmr_partition_frame **frames,
                                   struct lmr_err *err)
{
    size_t n = strlen(mo->spill_prefix) + 24;
    *key = malloc(n);
    *frames = calloc(mo->R, sizeof **frames);
    if (!*key || !*frames) {
        free(*key);
        free(*frames);
        return lmr_fail(err, LMR_ERR_NOMEM, "Out of memory naming a spill run.");
    }
    snprintf(*key, n, "%s%05zu", mo->spill_prefix, mo->spill_seq++);
    return LMR_OK;
}

static enum lmr_result spill(struct lmr_map_output *mo, struct lmr_err *err)
{
    note_peak(mo, 0);
    sort_buffered(mo);
    char *key;
    struct lmr_partition_frame *frames;
    enum lmr_result rc = new_run_key(mo, &key, &frames, err);
    if (rc != LMR_OK)
        return rc;
    uint64_t bytes = 0;
    rc = write_sorted(mo, key, frames, &bytes, err);
    if (rc == LMR_OK)
        rc = add_run(mo, &key, &frames, err);
    if (rc != LMR_OK) {
        if (key)
            lmr_store_delete(mo->store, (const char *const *)&key, 1, NULL);
        free(key);
        free(frames);
        return lmr_err_prefix(err, "writing a map-side spill run");
    }
    mo->spills++;
    mo->spill_bytes += bytes;
    clear_buffered(mo);
    return LMR_OK;
}

static void fail_sticky(struct lmr_map_output *mo, enum lmr_result rc)
{
    if (mo->status == LMR_OK)
        mo->status = rc;
}

/* Equal bytes? Short keys (the common case) with overlapping word loads, never past either end. */
static inline bool keys_equal(const uint8_t *a, const uint8_t *b, size_t n)
{
    uint64_t x, y, u, v;
    uint32_t x4, y4, u4, v4;
    if (n >= 8 && n <= 16) {
        memcpy(&x, a, 8);
        memcpy(&y, b, 8);
        memcpy(&u, a + n - 8, 8);
        memcpy(&v, b + n - 8, 8);
        return ((x ^ y) | (u ^ v)) == 0;
    }
    if (n >= 4 && n < 8) {
        memcpy(&x4, a, 4);
        memcpy(&y4, b, 4);
        memcpy(&u4, a + n - 4, 4);
        memcpy(&v4, b + n - 4, 4);
        return ((x4 ^ y4) | (u4 ^ v4)) == 0;
    }
    if (n < 4) {
        for (size_t i = 0; i < n; i++)
            if (a[i] != b[i])
                return false;
        return true;
    }
    return memcmp(a, b, n) == 0;
}

/* ---- emit --------------------------------------------------------------------------------------------------- */

/*
 * The partition of key into *part (h: the key's hash, unused with the job's partition function).
 * @return false, with the map output failed, if the job's function returned one out of range.
 */
static inline bool partition_of(struct lmr_map_output *mo, struct lmr_slice key, uint64_t h, uint32_t *part)
{
    *part = mo->ops->partition ? mo->ops->partition(mo->state, key, mo->R) : (uint32_t)(h % mo->R);
    if (*part < mo->R)
        return true;
    fail_sticky(mo, lmr_fail(&mo->err, LMR_ERR_INVALID, "Job %s's partition function returned %u for %u partitions.",
                             mo->ops->name ? mo->ops->name : "?", *part, mo->R));
    return false;
}

/* Double the slot array if the budget allows. @return false when it does not (then spill). */
static bool grow_table(struct lmr_map_output *mo)
{
    size_t ncap = mo->items_cap * 2;
    if (table_bytes(mo) + ncap * sizeof(struct item) > mo->table_limit)
        return false;
    struct item *n = big_alloc(ncap * sizeof *n);
    if (!n)
        return false;
    note_peak(mo, ncap * sizeof(struct item));
    size_t mask = ncap - 1;
    for (size_t i = 0; i < mo->items_cap; i++) {
        if (!mo->items[i].entry)
            continue;
        size_t j = mo->items[i].sortkey & mask;
        while (n[j].entry)
            j = (j + 1) & mask;
        n[j] = mo->items[i];
    }
    big_free(mo->items, mo->items_cap * sizeof *n);
    mo->items = n;
    mo->items_cap = ncap;
    return true;
}

static void combine_one(struct lmr_map_output *mo, struct lmr_slice key, struct lmr_slice value, uint64_t h,
                        const uint64_t *w);

/*
 * Short keys (at most SHORT_KEY bytes, nearly every word) are handled as two zero-padded 64-bit
 * words: the hash, the key comparison and the copies are then a few instructions without a branch
 * on the length (word lengths vary at random: such branches mispredict), and their entries hold
 * the key zero-padded to SHORT_KEY bytes.
 */
#define SHORT_KEY 16

#if defined(__SANITIZE_ADDRESS__)
#define OVERREAD_OK 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define OVERREAD_OK 0
#endif
#endif
#ifndef OVERREAD_OK
#define OVERREAD_OK (__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__)
#endif

static inline uint64_t low_bytes_mask(size_t n)
{
    return n >= 8 ? ~(uint64_t)0 : ((uint64_t)1 << (8 * n)) - 1;
}

/* Key p[0, n), n <= SHORT_KEY, zero-padded into w[0..1] (little-endian byte order in memory). */
static inline void load_short(const uint8_t *p, size_t n, uint64_t w[2])
{
    /* Two whole words when they stay inside p's page (so the read cannot fault); the bytes past
       the key are masked off. Sanitizer builds always take the exact copy. */
    if (OVERREAD_OK && ((uintptr_t)p & 4095) <= 4096 - 16) {
        uint64_t a, b;
        memcpy(&a, p, 8);
        memcpy(&b, p + 8, 8);
        w[0] = a & low_bytes_mask(n);
        w[1] = n > 8 ? b & low_bytes_mask(n - 8) : 0;
        return;
    }
    w[0] = w[1] = 0;
    if (n)
        memcpy(w, p, n);
}

/*
 * The table's hash (not the partition hash, which stays XXH3_64bits): a short key's two words mixed
 * with 64x64->128 multiplies; longer keys use XXH3.
 */
static inline uint64_t short_hash(const uint64_t w[2], size_t n)
{
    __uint128_t m = (__uint128_t)(w[0] ^ 0x9e3779b97f4a7c15ull) * (w[1] ^ 0xd6e8feb86659fd93ull ^ n);
    m = (__uint128_t)((uint64_t)m ^ (uint64_t)(m >> 64) ^ 0xa0761d6478bd642full) * 0xe7037ed1a0b428dbull;
    return (uint64_t)m ^ (uint64_t)(m >> 64);
}

/* Combine every pending pair of the emit pipeline (in emit order). */
static void flush_batch(struct lmr_map_output *mo)
{
    while (mo->ring_head != mo->ring_tail) {
        struct pending *p = &mo->ring[mo->ring_head++ % RING];
        combine_one(mo, (struct lmr_slice){(const uint8_t *)p->key, p->klen}, (struct lmr_slice){p->value, mo->vs},
                    p->h, p->klen <= SHORT_KEY ? p->key : NULL);
    }
    mo->ring_head = mo->ring_tail = 0;
}

/* ring[t] was just filled: prefetch its slot, prefetch the entry of ring[t - ENTRY_LAG], combine
   ring[t - COMBINE_LAG]. */
static inline void pipeline_step(struct lmr_map_output *mo, size_t t)
{
    size_t mask = mo->items_cap - 1;
    __builtin_prefetch(&mo->items[mo->ring[t % RING].h & mask]);
    if (t >= mo->ring_head + ENTRY_LAG) {
        const struct pending *q = &mo->ring[(t - ENTRY_LAG) % RING];
        const uint8_t *e = mo->items[q->h & mask].entry;
        if (e) { /* the header and the key's end: an entry may straddle two cache lines */
            __builtin_prefetch(e);
            __builtin_prefetch(e + 7 + mo->acc_bytes + (q->klen <= SHORT_KEY ? SHORT_KEY : q->klen));
        }
    }
    if (t >= mo->ring_head + COMBINE_LAG) {
        struct pending *q = &mo->ring[mo->ring_head++ % RING];
        combine_one(mo, (struct lmr_slice){(const uint8_t *)q->key, q->klen}, (struct lmr_slice){q->value, mo->vs},
                    q->h, q->klen <= SHORT_KEY ? q->key : NULL);
    }
}

/*
 * Emits go through a software pipeline: hash the key, copy it (short) with the value into a ring
 * of pending pairs and prefetch its slot; ENTRY_LAG emits later the slot is in cache, and the
 * entry it points to is prefetched; COMBINE_LAG emits later both are in cache and the pair is
 * combined. The cache and TLB misses of many keys then overlap, and each has a steady head start
 * instead of a batch that stalls on its first members. That is what a table larger than the CPU
 * caches spends its time on. Combining is commutative and associative, so the delay changes
 * nothing that can be observed; finish and status flush first. Tables that fit in the caches
 * (below BATCH_MIN_SLOTS slots) skip the pipeline: there it costs more than it saves.
 */
static void emit_combine(struct lmr_emitter *self, struct lmr_slice key, struct lmr_slice value)
{
    struct lmr_map_output *mo = (struct lmr_map_output *)self;
    if (__builtin_expect(mo->status != LMR_OK || value.len != mo->vs || key.len > SHORT_KEY, 0)) {
        if (mo->status != LMR_OK)
            return;
        if (value.len != mo->vs) {
            fail_sticky(mo, lmr_fail(&mo->err, LMR_ERR_INVALID,
                                     "Job %s emitted a %zu-byte value but declares value_size %zu; a combining job's "
                                     "values must all have value_size bytes.",
                                     mo->ops->name ? mo->ops->name : "?", value.len, mo->vs));
            return;
        }
        if (key.len > UINT32_MAX) {
            fail_sticky(mo, lmr_fail(&mo->err, LMR_ERR_TOO_LARGE, "A key of %zu bytes is larger than the 4 GiB limit.",
                                     key.len));
            return;
        }
        mo->records_in++;
        uint64_t h = XXH3_64bits(key.ptr, key.len);
        if (mo->items_cap < BATCH_MIN_SLOTS || mo->vs > BATCH_VALUE_MAX || key.len > BATCH_KEY_MAX) {
            combine_one(mo, key, value, h, NULL); /* pending pairs come later: the order does not matter */
            return;
        }
        size_t t = mo->ring_tail++;
        struct pending *p = &mo->ring[t % RING];
        p->h = h;
        p->klen = (uint32_t)key.len;
        memcpy(p->key, key.ptr, key.len);
        memcpy(p->value, value.ptr, mo->vs);
        pipeline_step(mo, t);
        return;
    }
    mo->records_in++;
    uint64_t w[2];
    load_short(key.ptr, key.len, w);
    uint64_t h = short_hash(w, key.len);
    if (mo->items_cap < BATCH_MIN_SLOTS || mo->vs > BATCH_VALUE_MAX) {
        combine_one(mo, key, value, h, w);
        return;
    }
    size_t t = mo->ring_tail++;
    struct pending *p = &mo->ring[t % RING];
    p->h = h;
    p->klen = (uint32_t)key.len;
    p->key[0] = w[0];
    p->key[1] = w[1];
    if (mo->vs == 8)
        memcpy(p->value, value.ptr, 8);
    else
        memcpy(p->value, value.ptr, mo->vs);
    pipeline_step(mo, t);
}

/*
 * Combine one pair into the table. Short keys (at most SHORT_KEY bytes) come with w, their
 * zero-padded words, and h = short_hash(w); longer keys with w = NULL and h = XXH3_64bits(key).
 */
static void combine_one(struct lmr_map_output *mo, struct lmr_slice key, struct lmr_slice value, uint64_t h,
                        const uint64_t *w)
{
    if (mo->status != LMR_OK)
        return;
    size_t mask = mo->items_cap - 1, i = h & mask;
    for (;;) {
        struct item *s = &mo->items[i];
        if (!s->entry)
            break;
        if (s->sortkey == h) {
            const uint8_t *e = s->entry, *ek = e + 8 + mo->acc_bytes;
            bool same;
            if (w) {
                uint64_t a, b;
                memcpy(&a, ek, 8);
                memcpy(&b, ek + 8, 8);
                same = ((a ^ w[0]) | (b ^ w[1]) | (e_klen(e) ^ key.len)) == 0;
            } else {
                same = e_klen(e) == key.len && keys_equal(ek, key.ptr, key.len);
            }
            if (same) {
                mo->ops->combine(mo->state, s->entry + 8, value);
                return;
            }
        }
        i = (i + 1) & mask;
    }
    /* A new key. */
    uint32_t part;
    if (!partition_of(mo, key, mo->ops->partition ? 0 : XXH3_64bits(key.ptr, key.len), &part))
        return;
    size_t need = 8 + mo->acc_bytes + (w ? SHORT_KEY : (key.len + 7) & ~(size_t)7);
    bool rehash = false;
    if ((mo->count + 1) * 2 > mo->items_cap) {
        if (!grow_table(mo)) {
            enum lmr_result rc = spill(mo, &mo->err);
            if (rc != LMR_OK) {
                fail_sticky(mo, rc);
                return;
            }
        }
        rehash = true;
    }
    uint8_t *e = arena_alloc(mo, need);
    if (!e) {
        enum lmr_result rc =
            mo->count ? spill(mo, &mo->err) : lmr_fail(&mo->err, LMR_ERR_NOMEM, "Out of memory buffering map output.");
        if (rc != LMR_OK) {
            fail_sticky(mo, rc);
            return;
        }
        rehash = true;
        e = arena_alloc(mo, need);
        if (!e) {
            fail_sticky(mo, lmr_fail(&mo->err, LMR_ERR_NOMEM, "Out of memory buffering a %zu-byte map key.", key.len));
            return;
        }
    }
    uint32_t kl = (uint32_t)key.len;
    memcpy(e, &kl, 4);
    memcpy(e + 4, &part, 4);
    memcpy(e + 8, value.ptr, mo->vs);
    if (w)
        memcpy(e + 8 + mo->acc_bytes, w, SHORT_KEY);
    else if (key.len)
        memcpy(e + 8 + mo->acc_bytes, key.ptr, key.len);
    if (rehash) {
        mask = mo->items_cap - 1;
        i = h & mask;
        while (mo->items[i].entry)
            i = (i + 1) & mask;
    }
    mo->items[i] = (struct item){h, e};
    mo->count++;
}

static bool grow_items(struct lmr_map_output *mo)
{
    size_t ncap = mo->items_cap * 2;
    if (table_bytes(mo) + ncap * sizeof(struct item) > mo->table_limit)
        return false;
    struct item *n = realloc(mo->items, ncap * sizeof *n);
    if (!n)
        return false;
    note_peak(mo, mo->items_cap * sizeof(struct item));
    mo->items = n;
    mo->items_cap = ncap;
    return true;
}

static void emit_buffer(struct lmr_emitter *self, struct lmr_slice key, struct lmr_slice value)
{
    struct lmr_map_output *mo = (struct lmr_map_output *)self;
    if (mo->status != LMR_OK)
        return;
    if (key.len > UINT32_MAX || value.len > UINT32_MAX) {
        fail_sticky(mo, lmr_fail(&mo->err, LMR_ERR_TOO_LARGE, "A key or value is larger than the 4 GiB limit."));
        return;
    }
    mo->records_in++;
    uint64_t h = mo->ops->partition ? 0 : XXH3_64bits(key.ptr, key.len);
    uint32_t part;
    if (!partition_of(mo, key, h, &part))
        return;
    size_t need = (16 + key.len + value.len + 7) & ~(size_t)7;
    enum lmr_result rc;
    if (mo->count == mo->items_cap && !grow_items(mo) && (rc = spill(mo, &mo->err)) != LMR_OK) {
        fail_sticky(mo, rc);
        return;
    }
    uint8_t *e = arena_alloc(mo, need);
    if (!e) {
        if ((rc = spill(mo, &mo->err)) != LMR_OK) {
            fail_sticky(mo, rc);
            return;
        }
        e = arena_alloc(mo, need);
        if (!e) {
            fail_sticky(mo, lmr_fail(&mo->err, LMR_ERR_NOMEM, "Out of memory buffering a %zu-byte map record.",
                                     key.len + value.len));
            return;
        }
    }
    uint32_t kl = (uint32_t)key.len, vl = (uint32_t)value.len, zero = 0;
    memcpy(e, &kl, 4);
    memcpy(e + 4, &vl, 4);
    memcpy(e + 8, &part, 4);
    memcpy(e + 12, &zero, 4);
    if (key.len)
        memcpy(e + 16, key.ptr, key.len);
    if (value.len)
        memcpy(e + 16 + key.len, value.ptr, value.len);
    mo->items[mo->count++] = (struct item){sort_key(mo, part, key), e};
}

/* ---- lifecycle ---------------------------------------------------------------------------------------------- */

size_t lmr_map_output_min_memory_bytes(void)
{
    return lmr_frame_writer_memory_bytes(1) + 2 * lmr_frame_reader_memory_bytes() + MIN_TABLE_BYTES;
}

enum lmr_result lmr_map_output_new(const struct lmr_map_output_options *o, struct lmr_map_output **out,
                                   struct lmr_err *err)
{
    if (!o || !o->ops || !o->store || !o->spill_prefix || !o->object_key || o->partitions == 0)
        return lmr_fail(err, LMR_ERR_INVALID,
                        "Map output needs a job, a store, a spill prefix, an object key and at least one partition.");
    if (o->partitions > LMR_SHUFFLE_MAX_PARTITIONS)
        return lmr_fail(err, LMR_ERR_INVALID, "%u partitions is more than the supported %u; use fewer reducers.",
                        o->partitions, LMR_SHUFFLE_MAX_PARTITIONS);
    if (o->ops->combine && o->ops->value_size == 0)
        return lmr_fail(err, LMR_ERR_INVALID, "Job %s has a combiner but value_size 0; set value_size.",
                        o->ops->name ? o->ops->name : "?");
    size_t min = lmr_map_output_min_memory_bytes() - lmr_frame_writer_memory_bytes(1) +
                 lmr_frame_writer_memory_bytes(o->zstd_level);
    if (o->memory_limit_bytes < min)
        return lmr_fail(
            err, LMR_ERR_INVALID,
            "A map task's shuffle budget of %zu bytes is below the minimum of %zu bytes; give the task more "
            "memory.",
            o->memory_limit_bytes, min);
    struct lmr_map_output *mo = calloc(1, sizeof *mo);
    if (!mo)
        return lmr_fail(err, LMR_ERR_NOMEM, "Out of memory creating the map output.");
    mo->ops = o->ops;
    mo->state = o->job_state;
    mo->R = o->partitions;
    mo->pbits = o->partitions > 1 ? 64 - (unsigned)__builtin_clzll((unsigned long long)(o->partitions - 1)) : 0;
    mo->combining = o->ops->combine != NULL;
    mo->vs = o->ops->value_size;
    mo->acc_bytes = (mo->vs + 7) & ~(size_t)7;
    mo->store = o->store;
    mo->spill_prefix = strdup(o->spill_prefix);
    mo->object_key = strdup(o->object_key);
    mo->zstd_level = o->zstd_level > 0 ? o->zstd_level : 1;
    mo->limit = o->memory_limit_bytes;
    mo->table_limit = mo->limit - lmr_frame_writer_memory_bytes(mo->zstd_level);
    mo->chunk_bytes = mo->table_limit / 16;
    if (mo->chunk_bytes > MAX_CHUNK_BYTES)
        mo->chunk_bytes = MAX_CHUNK_BYTES;
    mo->chunk_bytes &= ~(size_t)7;
    mo->items_cap = INITIAL_SLOTS;
    mo->items =
        mo->combining ? big_alloc(mo->items_cap * sizeof(struct item)) : malloc(mo->items_cap * sizeof(struct item));
    mo->emitter.emit = mo->combining ? emit_combine : emit_buffer;
    enum lmr_result rc = LMR_OK;
    if (!mo->spill_prefix || !mo->object_key || !mo->items)
        rc = lmr_fail(err, LMR_ERR_NOMEM, "Out of memory creating the map output.");
    if (rc == LMR_OK)
        rc = lmr_frame_writer_new(mo->zstd_level, &mo->fw, err);
    if (rc != LMR_OK) {
        lmr_map_output_destroy(mo);
        return rc;
    }
    *out = mo;
    return LMR_OK;
}

struct lmr_emitter *lmr_map_output_emitter(struct lmr_map_output *mo)
{
    return &mo->emitter;
}

enum lmr_result lmr_map_output_status(struct lmr_map_output *mo, struct lmr_err *err)
{
    if (mo->ring_tail != mo->ring_head)
        flush_batch(mo);
    if (mo->status != LMR_OK && err)
        *err = mo->err;
    return mo->status;
}

static void delete_runs(struct lmr_map_output *mo, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++) {
        if (mo->runs[i].key)
            lmr_store_delete(mo->store, (const char *const *)&mo->runs[i].key, 1, NULL);
        free(mo->runs[i].key);
        free(mo->runs[i].frames);
        mo->runs[i].key = NULL;
        mo->runs[i].frames = NULL;
    }
}

/*
 * Merge runs[from, to) into one object at key, per partition, with merger m. frames gets R entries.
 */
static enum lmr_result merge_runs(struct lmr_map_output *mo, struct lmr_merger *m, size_t from, size_t to,
                                  const char *key, struct lmr_partition_frame *frames, uint64_t *object_bytes,
                                  struct lmr_err *err)
{
    struct lmr_merge_source *src = calloc(to - from, sizeof *src);
    if (!src)
        return lmr_fail(err, LMR_ERR_NOMEM, "Out of memory merging spill runs.");
    struct lmr_store_writer *sw;
    enum lmr_result rc = lmr_store_open_write(mo->store, key, 0, &sw, err);
    if (rc != LMR_OK) {
        free(src);
        return rc;
    }
    uint64_t off = 0, recs = 0;
    for (uint32_t r = 0; r < mo->R && rc == LMR_OK; r++) {
        size_t n = 0;
        for (size_t i = from; i < to; i++)
            if (mo->runs[i].frames[r].size_bytes)
                src[n++] = (struct lmr_merge_source){mo->runs[i].key, mo->runs[i].frames[r].offset,
                                                     mo->runs[i].frames[r].size_bytes};
        lmr_frame_writer_begin(mo->fw, sw, &off);
        rc = lmr_merger_open(m, mo->store, src, n, err);
        if (rc == LMR_OK)
            rc = lmr_merger_drain(m, mo->ops, mo->state, mo->fw, &recs, err);
        lmr_merger_close(m);
        if (rc == LMR_OK)
            rc = lmr_frame_writer_end(mo->fw, &frames[r], err);
    }
    free(src);
    return finish_object(mo, sw, rc, off, frames, object_bytes, err);
}

static enum lmr_result finish_from_runs(struct lmr_map_output *mo, struct lmr_map_output_index *index,
                                        uint64_t *object_bytes, struct lmr_err *err)
{
    enum lmr_result rc = LMR_OK;
    if (mo->count)
        rc = spill(mo, err);
    if (rc != LMR_OK)
        return rc;
    /* The table is no longer needed: its memory goes to the readers. */
    free_items(mo);
    mo->items = NULL;
    mo->items_cap = 0;
    arena_free(mo);
    size_t avail = mo->limit - lmr_frame_writer_memory_bytes(mo->zstd_level);
    size_t fan_in = avail / lmr_frame_reader_memory_bytes();
    if (fan_in < 2)
        fan_in = 2;
    struct lmr_merger *m;
    if ((rc = lmr_merger_new(mo->ops, fan_in, &m, err)) != LMR_OK)
        return rc;
    /* Intermediate passes: merge the oldest fan_in runs into a new run until one merge is enough. */
    size_t first = 0;
    while (rc == LMR_OK && mo->nruns - first > fan_in) {
        char *key;
        struct lmr_partition_frame *frames;
        if ((rc = new_run_key(mo, &key, &frames, err)) != LMR_OK)
            break;
        uint64_t bytes = 0;
        note_peak(mo, fan_in * lmr_frame_reader_memory_bytes());
        rc = merge_runs(mo, m, first, first + fan_in, key, frames, &bytes, err);
        if (rc == LMR_OK)
            rc = add_run(mo, &key, &frames, err);
        free(key);
        free(frames);
        if (rc != LMR_OK)
            break;
        delete_runs(mo, first, first + fan_in);
        first += fan_in;
        mo->merge_passes++;
        mo->spill_bytes += bytes;
    }
    if (rc == LMR_OK) {
        note_peak(mo, (mo->nruns - first) * lmr_frame_reader_memory_bytes());
        rc = merge_runs(mo, m, first, mo->nruns, mo->object_key, index->frames, object_bytes, err);
    }
    lmr_merger_destroy(m);
    return rc;
}

enum lmr_result lmr_map_output_finish(struct lmr_map_output *mo, struct lmr_map_output_index *index,
                                      struct lmr_err *err)
{
    memset(index, 0, sizeof *index);
    if (mo->ring_tail != mo->ring_head)
        flush_batch(mo);
    if (mo->status != LMR_OK) {
        if (err)
            *err = mo->err;
        return mo->status;
    }
    if (mo->finished)
        return lmr_fail(err, LMR_ERR_INVALID, "Map output finished twice.");
    mo->finished = true;
    index->partitions = mo->R;
    index->frames = calloc(mo->R, sizeof *index->frames);
    if (!index->frames)
        return lmr_fail(err, LMR_ERR_NOMEM, "Out of memory for the index of %u partitions.", mo->R);
    uint64_t object_bytes = 0;
    enum lmr_result rc;
    if (mo->nruns == 0) {
        note_peak(mo, 0);
        sort_buffered(mo);
        rc = write_sorted(mo, mo->object_key, index->frames, &object_bytes, err);
    } else {
        rc = finish_from_runs(mo, index, &object_bytes, err);
    }
    if (rc != LMR_OK) {
        mo->status = rc;
        if (err)
            mo->err = *err;
        lmr_map_output_index_clean_up(index);
        return lmr_err_prefix(err, "writing map output %s", mo->object_key);
    }
    delete_runs(mo, 0, mo->nruns);
    mo->nruns = 0;
    index->records_in = mo->records_in;
    for (uint32_t r = 0; r < mo->R; r++) {
        index->records_out += index->frames[r].records;
        index->raw_bytes += index->frames[r].raw_bytes;
    }
    index->object_bytes = object_bytes;
    index->spills = mo->spills;
    index->spill_bytes = mo->spill_bytes;
    index->merge_passes = mo->merge_passes;
    index->peak_memory_bytes = mo->peak;
    return LMR_OK;
}

void lmr_map_output_destroy(struct lmr_map_output *mo)
{
    if (!mo)
        return;
    if (mo->runs)
        delete_runs(mo, 0, mo->nruns);
    free(mo->runs);
    free_items(mo);
    arena_free(mo);
    lmr_frame_writer_destroy(mo->fw);
    free(mo->spill_prefix);
    free(mo->object_key);
    free(mo);
}

void lmr_map_output_index_clean_up(struct lmr_map_output_index *index)
{
    if (!index)
        return;
    free(index->frames);
    index->frames = NULL;
}
