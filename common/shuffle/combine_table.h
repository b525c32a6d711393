/*
 * The combining hash table: key -> fixed-size accumulator, combined at insert time with the
 * job's combiner (Phoenix++'s idea). ONE implementation, used by the map-side collector
 * (shuffle/map_output: the prefetch pipeline, a memory budget, sorted spills) and by the stream
 * window state (stream/state: transactions, the 1 MB state limit, packing on top of it).
 *
 * Layout (combine_table.c). Open addressing with linear probing, at most half full. Every slot
 * holds its entry inline, so a probe never follows a pointer: u32 key length + 1 (0 = empty),
 * u32 the hash's low 32 bits, 16 key bytes, then the accumulator. A key of at most 16 bytes is
 * stored zero-padded in the slot; a longer one stores its first 8 bytes and a pointer to its
 * bytes in the table's arena. Accumulators of up to 40 bytes live in the slot (a 32- or 64-byte
 * slot, one cache line); larger ones in the arena, the slot holding a pointer. A slot array of
 * 2 MiB or more gets transparent huge pages (the TLB misses of random probes would otherwise cost
 * as much as the cache misses).
 *
 * Two ways in:
 * - lmr_combine_table_add / _upsert: synchronous, the accumulator is updated when they return.
 * - lmr_combine_table_emit: through a software pipeline. The slot of a key is prefetched when it
 *   arrives and the key is combined some emits later, when the slot is in cache, so the cache
 *   and TLB misses of many keys overlap. Combining is commutative and associative, so the delay
 *   cannot be observed once lmr_combine_table_flush ran (every other function flushes first).
 *   Errors of emits are sticky: lmr_combine_table_flush returns them. lmr_emit_keys hands the
 *   pipeline many keys with one value in one call (word count's words), without a call per key.
 *
 * Memory. slots + arena stay within memory_limit_bytes (0: no limit; a growth counts both slot
 * arrays). When a new key would pass it, the `full` callback runs (the collector spills the
 * table sorted and clears it); without a callback the insert fails with LMR_ERR_NOMEM. A single
 * key larger than the whole budget still goes into an empty table.
 */
#ifndef LMR_SHUFFLE_COMBINE_TABLE_H
#define LMR_SHUFFLE_COMBINE_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "lambdamr/job.h"
#include "util/result.h"

struct lmr_combine_table;

/*
 * Called when a new key would pass the budget. It must empty the table (typically: sort it in
 * place, write it out, lmr_combine_table_clear) and return LMR_OK, or return an error (with err
 * filled in) that fails the insert.
 */
typedef enum lmr_result (*lmr_combine_table_full_fn)(void *user, struct lmr_combine_table *t, struct lmr_err *err);

struct lmr_combine_table_options {
    size_t value_size;              /* Required: accumulator bytes, > 0 */
    const struct lmr_job_ops *ops;  /* Required: ops->combine(job_state, acc, value) merges a value */
    void *job_state;                /* Optional: passed to combine */
    size_t memory_limit_bytes;      /* Optional: slots + arena; 0 = no limit */
    lmr_combine_table_full_fn full; /* Optional: see above; NULL = inserts past the budget fail */
    void *full_user;                /* Optional: passed to full */
};

/**
 * Double a slot array of cap slots (stride bytes each: 32 or 64; u32 at 0 non-zero when occupied,
 * u32 at 4 the hash bits; a key's home is hash & mask rounded down to its cache line, probing
 * forward and wrapping) in place into 2 x cap slots, the new half already zero: what the
 * table's growth inside its reservation does (exposed for its tests). The old slots are visited
 * once, starting after an empty one (so each cluster from its start), each taken out and put back
 * from its new home (its old home, or that + cap): probing from the old home only meets slots
 * already visited (the same old cluster, before it) or the new half, and a probe that would wrap
 * past the new end (and could meet slots not yet visited) is deferred and placed at the end. Only
 * the new half's pages are faulted in, where a copy into a fresh array faults old + new (on this
 * VM a fresh page costs far more than writing it: Query 2's table doubles to 32 MiB per task).
 * @return false when the array had no empty slot (nothing moved) or when memory for a long list
 * of deferred slots ran out (some slot may then not be found: the table must fail).
 */
bool lmr_combine_slots_double_in_place(uint8_t *slots, size_t cap, size_t stride);

/** Create a table. @return LMR_ERR_INVALID (value_size 0, no combiner), LMR_ERR_NOMEM. */
enum lmr_result lmr_combine_table_new(const struct lmr_combine_table_options *opts, struct lmr_combine_table **out,
                                      struct lmr_err *err);
/** Free the table. NULL-safe. */
void lmr_combine_table_destroy(struct lmr_combine_table *t);
/** Forget every key (pending emits too); keeps the slot array and the first arena chunk. */
void lmr_combine_table_clear(struct lmr_combine_table *t);
/** Keys in the table (pending emits not counted: flush first). */
size_t lmr_combine_table_count(const struct lmr_combine_table *t);
/** Bytes the table holds now (slot array + arena chunks). */
size_t lmr_combine_table_memory_bytes(const struct lmr_combine_table *t);
/** The largest memory the table has held (both slot arrays during a growth included). */
size_t lmr_combine_table_peak_bytes(const struct lmr_combine_table *t);
/** The memory of a new, empty table for accumulators of value_size bytes (for budgets). */
size_t lmr_combine_table_initial_bytes(size_t value_size);
/** The longest key the table takes (larger: LMR_ERR_TOO_LARGE). */
#define LMR_COMBINE_TABLE_MAX_KEY_BYTES ((size_t)UINT32_MAX - 1)

/**
 * Combine value (value_size bytes) into key's accumulator; a new key's accumulator starts as a
 * copy of value. @return LMR_ERR_INVALID (value.len != value_size), LMR_ERR_TOO_LARGE, LMR_ERR_NOMEM,
 * or the full callback's error; err (optional) says which.
 */
enum lmr_result lmr_combine_table_add(struct lmr_combine_table *t, struct lmr_slice key, struct lmr_slice value,
                                      struct lmr_err *err);
/**
 * Find key's accumulator, inserting key (accumulator uninitialised: the caller writes it) when
 * absent. *acc stays valid until the next insert, remove or clear. *inserted tells which.
 * @return as lmr_combine_table_add.
 */
enum lmr_result lmr_combine_table_upsert(struct lmr_combine_table *t, struct lmr_slice key, uint8_t **acc,
                                         bool *inserted, struct lmr_err *err);
/** key's accumulator, or NULL. Valid until the next insert, remove or clear. */
uint8_t *lmr_combine_table_find(struct lmr_combine_table *t, struct lmr_slice key);
/** Remove key (backward-shift deletion; a long key's arena bytes stay until clear). @return false if absent. */
bool lmr_combine_table_remove(struct lmr_combine_table *t, struct lmr_slice key);

/**
 * Combine through the prefetch pipeline (see above): the fast path of a map task's emits. Errors
 * (wrong value size, a failed spill) are sticky and come back from lmr_combine_table_flush.
 */
void lmr_combine_table_emit(struct lmr_combine_table *t, struct lmr_slice key, struct lmr_slice value);
/**
 * An emitter whose emit is lmr_combine_table_emit (what a map task's job writes into, with no
 * call in between). Valid until destroy.
 */
struct lmr_emitter *lmr_combine_table_emitter(struct lmr_combine_table *t);
/**
 * Emit keys[0, n), each with the same value, into out: the same pairs in the same order as n
 * calls of lmr_emit. Into a combining table's emitter without a call per key; any other emitter
 * gets the n calls.
 */
void lmr_emit_keys(struct lmr_emitter *out, const struct lmr_slice *keys, size_t n, struct lmr_slice value);
/**
 * A combiner for 8-byte unsigned counts in the machine's byte order: acc += value (mod 2^64).
 * A job whose combine is this function (word count's) gets a table that adds in place of the
 * call, on its fast path; any other combiner is called per combined pair.
 */
void lmr_combine_add_u64(void *state, uint8_t *acc, struct lmr_slice value);
/* A key of at most LMR_SHORT_KEY_BYTES bytes as the table hashes and stores it: two 64-bit words,
   zero-padded (lmr_short_key_words). */
#define LMR_SHORT_KEY_BYTES 16

#if defined(__SANITIZE_ADDRESS__)
#define LMR_SHORT_KEY_OVERREAD 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LMR_SHORT_KEY_OVERREAD 0
#endif
#endif
#ifndef LMR_SHORT_KEY_OVERREAD
#define LMR_SHORT_KEY_OVERREAD (__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__)
#endif

/* The masks that keep a key's n bytes of its two words (n = 0..16): a table, not a branch on n
   (word lengths vary at random, so such a branch mispredicts). */
#define LMR_SKM_(n) ((n) >= 8 ? ~(uint64_t)0 : ((uint64_t)1 << (8 * ((n)&7))) - 1) /* (n)&7 == n where used */
#define LMR_SKM(n)                                                                                                     \
    {                                                                                                                  \
        LMR_SKM_(n), (n) > 8 ? LMR_SKM_((n) > 8 ? (n)-8 : 0) : 0                                                       \
    }
static const uint64_t lmr_short_key_masks[LMR_SHORT_KEY_BYTES + 1][2] = {
    LMR_SKM(0), LMR_SKM(1),  LMR_SKM(2),  LMR_SKM(3),  LMR_SKM(4),  LMR_SKM(5),  LMR_SKM(6),  LMR_SKM(7), LMR_SKM(8),
    LMR_SKM(9), LMR_SKM(10), LMR_SKM(11), LMR_SKM(12), LMR_SKM(13), LMR_SKM(14), LMR_SKM(15), LMR_SKM(16)};
#undef LMR_SKM
#undef LMR_SKM_

/**
 * Key p[0, n), n <= LMR_SHORT_KEY_BYTES, zero-padded into w[0..1] (the key's bytes in memory
 * order: w is the key followed by zeros). Two whole-word loads when they stay inside p's page (so
 * they cannot fault), the bytes past the key masked off; sanitizer builds always copy exactly.
 */
static inline void lmr_short_key_words(const uint8_t *p, size_t n, uint64_t w[2])
{
    if (LMR_SHORT_KEY_OVERREAD && ((uintptr_t)p & 4095) <= 4096 - 16) {
        uint64_t a, b;
        memcpy(&a, p, 8);
        memcpy(&b, p + 8, 8);
        w[0] = a & lmr_short_key_masks[n][0];
        w[1] = b & lmr_short_key_masks[n][1];
        return;
    }
    w[0] = w[1] = 0;
    if (n)
        memcpy(w, p, n);
}

/** Emits taken so far (lmr_combine_table_emit and the emitter; not add/upsert). */
uint64_t lmr_combine_table_emits(const struct lmr_combine_table *t);
/** Combine every pending emit. @return the first error of any emit so far (err filled in), or LMR_OK. */
enum lmr_result lmr_combine_table_flush(struct lmr_combine_table *t, struct lmr_err *err);

/** Call fn for every key and its accumulator, in no particular order (flushes first). */
void lmr_combine_table_foreach(struct lmr_combine_table *t, void (*fn)(void *user, struct lmr_slice key, uint8_t *acc),
                               void *user);

/* One entry of a sorted view (lmr_combine_table_sorted). */
struct lmr_combine_item {
    uint64_t sortkey;
    uint8_t *slot;
};
/** The key of a sorted view's item. */
struct lmr_slice lmr_combine_item_key(const struct lmr_combine_table *t, const struct lmr_combine_item *it);
/** The accumulator (value_size bytes) of a sorted view's item. */
uint8_t *lmr_combine_item_acc(const struct lmr_combine_table *t, const struct lmr_combine_item *it);

struct lmr_combine_sort {
    /*
     * Optional: the primary sort key of a key (the collector: partition in the top bits, the
     * key's first bytes below). Its order must agree with compare: sortkey(a) < sortkey(b) only if
     * a sorts before b. NULL: the key's first 8 bytes, big-endian, zero padded (bytewise order;
     * use a constant function with a custom compare).
     */
    uint64_t (*sortkey)(void *user, struct lmr_slice key);
    void *user;
    /* Optional: the order of keys with equal sort keys. NULL: bytewise, then shorter first. */
    int (*compare)(struct lmr_slice a, struct lmr_slice b);
    /*
     * true: the view is built inside the table's own memory (no allocation) and the table can no
     * longer be probed: call lmr_combine_table_clear before the next insert (a spill).
     * false: the view is malloc'd (free it) and the table stays usable; the view is valid until
     * the next insert, remove or clear.
     */
    bool in_place;
};

/** The table's entries sorted as `how` says into *items (count in *n; flushes first). */
enum lmr_result lmr_combine_table_sorted(struct lmr_combine_table *t, const struct lmr_combine_sort *how,
                                         struct lmr_combine_item **items, size_t *n, struct lmr_err *err);

#endif
