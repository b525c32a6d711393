/*
 * Map output: emit-time combining table / pair buffer, sorted spill runs, final merge (see map_output.h).
 *
 * Combining jobs emit straight into the combining table (shuffle/combine_table: entries inline in
 * the slots, the prefetch pipeline); its `full` callback is this file's spill. Other jobs buffer
 * their pairs here, in an arena, with an item array pointing at them.
 *
 * Memory accounting. The budget covers the frame writer (zstd context + buffers), the table
 * (or the item array of a non-combining job) and the arena chunks. Buffered entries are spilled
 * as soon as the next allocation would cross the budget. At finish, when runs exist, the table
 * is spilled too and freed, and the runs are merged with as many frame readers as the budget
 * allows (more runs than that: intermediate merge passes).
 *
 * Sorting. Entries are sorted through 16-byte items {sort key, entry pointer} (shuffle/item_sort:
 * a radix sort on the sort key, the entries compared only for ties). The sort key has the
 * partition in its top bits and, for the default key order, the key's first bytes (big-endian,
 * zero padded) below it, so most items never touch their entries. A combining job's partition is
 * computed here, once per key and spill, not stored in the table; its sort runs in the table's
 * memory (the scratch between the compacted slots and the items). A non-combining job's scratch is
 * malloc'd when the budget has room for it (else the comparison sort).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "shuffle/combine_table.h"
#include "shuffle/item_sort.h"
#include "shuffle/map_output.h"
#include "shuffle/merge.h"
#include "util/big_alloc.h"
#include "util/chunk_arena.h"

#define MIN_TABLE_BYTES ((size_t)256 * 1024)
#define INITIAL_ITEMS 1024

/* Items (struct lmr_combine_item, shared with the table's sorted view): {sort key, entry}. */

struct run {
    char *key;
    struct lmr_partition_frame *frames;
};

struct lmr_map_output {
    struct lmr_emitter emitter; /* first: emit callbacks cast back */
    const struct lmr_job_ops *ops;
    void *state;
    uint32_t R;
    unsigned pbits; /* bits of the partition number in a sort key */
    bool combining;
    size_t vs; /* value_size */
    struct lmr_store *store;
    char *spill_prefix, *object_key;
    int zstd_level;

    size_t limit, table_limit;
    /* Combining jobs */
    struct lmr_combine_table *table;
    /* Non-combining jobs: an arena of entries and an item array pointing at them */
    struct lmr_chunk_arena arena;
    struct lmr_combine_item *items;
    size_t items_cap;
    size_t count; /* entries buffered */

    struct lmr_frame_writer *fw;
    struct run *runs;
    size_t nruns, runs_cap, spill_seq;

    enum lmr_result status;
    struct lmr_err err;
    bool finished;
    uint64_t records_in, spills, spill_bytes, merge_passes, peak;
};

/* ---- accounting ------------------------------------------------------------------------------------------------- */

static size_t table_bytes(const struct lmr_map_output *mo)
{
    return mo->arena.bytes + mo->items_cap * sizeof(struct lmr_combine_item) +
           (mo->table ? lmr_combine_table_memory_bytes(mo->table) : 0);
}

static void note_peak(struct lmr_map_output *mo, size_t extra)
{
    uint64_t fw = lmr_frame_writer_memory_bytes(mo->zstd_level), m = table_bytes(mo) + fw + extra;
    if (mo->table && lmr_combine_table_peak_bytes(mo->table) + fw > m)
        m = lmr_combine_table_peak_bytes(mo->table) + fw;
    if (m > mo->peak)
        mo->peak = m;
}

static void free_items(struct lmr_map_output *mo)
{
    free(mo->items);
    mo->items = NULL;
    mo->items_cap = 0;
}

/* n bytes (multiple of 8) from the arena; NULL when the budget (or malloc) says no. */
static uint8_t *arena_alloc(struct lmr_map_output *mo, size_t n)
{
    uint8_t *p = lmr_chunk_arena_take(&mo->arena, n);
    if (p)
        return p;
    /* A record larger than the whole budget still goes through (alone): the task cannot do better. */
    if (table_bytes(mo) + lmr_chunk_arena_growth_bytes(&mo->arena, n) > mo->table_limit && mo->count > 0)
        return NULL;
    return lmr_chunk_arena_grow(&mo->arena, n);
}

/* ---- entries ------------------------------------------------------------------------------------------------ */
/* Non-combining entry: u32 key_len, u32 value_len, u32 partition, u32 unused, key, value. */

static inline uint32_t e_klen(const uint8_t *e)
{
    uint32_t v;
    memcpy(&v, e, 4);
    return v;
}

static inline struct lmr_slice e_key(const struct lmr_map_output *mo, const uint8_t *e)
{
    (void)mo;
    return (struct lmr_slice){e + 16, e_klen(e)};
}

static inline struct lmr_slice e_value(const struct lmr_map_output *mo, const uint8_t *e)
{
    (void)mo;
    uint32_t vlen;
    memcpy(&vlen, e + 4, 4);
    return (struct lmr_slice){e + 16 + e_klen(e), vlen};
}

static inline uint64_t sort_key(const struct lmr_map_output *mo, uint32_t part, struct lmr_slice key)
{
    uint64_t sk = mo->pbits ? (uint64_t)part << (64 - mo->pbits) : 0;
    if (!mo->ops->compare) {
        /* the key's first 8 bytes as a big-endian word (zeros after a shorter key) */
        uint64_t prefix = 0;
        if (key.len >= 8) {
            memcpy(&prefix, key.ptr, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
            prefix = __builtin_bswap64(prefix);
#endif
        } else {
            for (size_t i = 0; i < key.len; i++)
                prefix |= (uint64_t)key.ptr[i] << (56 - 8 * i);
        }
        sk |= prefix >> mo->pbits;
    }
    return sk;
}

/* ---- sorting ------------------------------------------------------------------------------------------------ */

/* Equal sort keys imply the same partition: the job's key order decides. */
static int entry_tie(void *user, const struct lmr_combine_item *a, const struct lmr_combine_item *b)
{
    const struct lmr_map_output *mo = user;
    return lmr_shuffle_compare(mo->ops, e_key(mo, a->slot), e_key(mo, b->slot));
}

static inline bool partition_of(struct lmr_map_output *mo, struct lmr_slice key, uint64_t h, uint32_t *part);

/* A combining job's key: its sort key, with the partition computed here (0 and the map output failed if the job's
   partition function returned one out of range). */
static uint64_t combine_sortkey(void *user, struct lmr_slice key)
{
    struct lmr_map_output *mo = user;
    uint32_t part;
    if (!partition_of(mo, key, mo->ops->partition ? 0 : XXH3_64bits(key.ptr, key.len), &part))
        return 0;
    return sort_key(mo, part, key);
}

/*
 * The buffered entries in (partition, key) order into *items, *n: for a combining job the
 * table's sorted view, built in the table's own memory (clear_buffered must follow).
 */
static enum lmr_result sort_buffered(struct lmr_map_output *mo, struct lmr_combine_item **items, size_t *n,
                                     struct lmr_err *err)
{
    if (mo->combining) {
        struct lmr_combine_sort how = {combine_sortkey, mo, mo->ops->compare, true};
        enum lmr_result rc = lmr_combine_table_sorted(mo->table, &how, items, n, err);
        if (rc == LMR_OK && mo->status != LMR_OK) {
            rc = mo->status;
            if (err)
                *err = mo->err;
        }
        return rc;
    }
    /* The radix sort's scratch when the budget has room for it, else the comparison sort. */
    struct lmr_combine_item *scratch = NULL;
    size_t scratch_bytes = mo->count * sizeof *scratch;
    if (mo->count && table_bytes(mo) + scratch_bytes <= mo->table_limit && (scratch = malloc(scratch_bytes)))
        note_peak(mo, scratch_bytes);
    lmr_item_sort(mo->items, mo->count, scratch, entry_tie, mo);
    free(scratch);
    *items = mo->items;
    *n = mo->count;
    return LMR_OK;
}

/* Empty the buffer after a spill (keeps the slot or item array and the first arena chunk). */
static void clear_buffered(struct lmr_map_output *mo)
{
    if (mo->combining)
        lmr_combine_table_clear(mo->table);
    mo->count = 0;
    lmr_chunk_arena_reset(&mo->arena);
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

/* Write sorted items[0, n) as a shuffle object at key. frames receives R entries. */
static enum lmr_result write_sorted(struct lmr_map_output *mo, const struct lmr_combine_item *items, size_t n,
                                    const char *key, struct lmr_partition_frame *frames, uint64_t *object_bytes,
                                    struct lmr_err *err)
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
        while (idx < n && (mo->pbits ? items[idx].sortkey >> (64 - mo->pbits) : 0) == r && rc == LMR_OK) {
            if (idx + 8 < n)
                __builtin_prefetch(items[idx + 8].slot);
            const struct lmr_combine_item *it = &items[idx++];
            if (mo->combining)
                rc = lmr_frame_writer_add(mo->fw, lmr_combine_item_key(mo->table, it),
                                          (struct lmr_slice){lmr_combine_item_acc(mo->table, it), mo->vs}, err);
            else
                rc = lmr_frame_writer_add(mo->fw, e_key(mo, it->slot), e_value(mo, it->slot), err);
        }
        if (rc == LMR_OK)
            rc = lmr_frame_writer_end(mo->fw, &frames[r], err);
    }
    if (rc == LMR_OK && idx != n)
        rc = lmr_fail(err, LMR_ERR_INTERNAL, "Map output: %zu entries were not written (partition order broken).",
                      n - idx);
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
    struct lmr_combine_item *items;
    size_t n;
    enum lmr_result rc = sort_buffered(mo, &items, &n, err);
    if (rc != LMR_OK)
        return lmr_err_prefix(err, "sorting a map-side spill run");
    char *key;
    struct lmr_partition_frame *frames;
    if ((rc = new_run_key(mo, &key, &frames, err)) != LMR_OK)
        return rc;
    uint64_t bytes = 0;
    rc = write_sorted(mo, items, n, key, frames, &bytes, err);
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

static bool grow_items(struct lmr_map_output *mo)
{
    size_t ncap = mo->items_cap * 2;
    if (table_bytes(mo) + ncap * sizeof(struct lmr_combine_item) > mo->table_limit)
        return false;
    struct lmr_combine_item *n = realloc(mo->items, ncap * sizeof *n);
    if (!n)
        return false;
    note_peak(mo, mo->items_cap * sizeof(struct lmr_combine_item));
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
    mo->items[mo->count++] = (struct lmr_combine_item){sort_key(mo, part, key), e};
}

/* The combining table's budget is reached: spill it (the table is empty afterwards). */
static enum lmr_result table_full(void *user, struct lmr_combine_table *t, struct lmr_err *err)
{
    (void)t;
    return spill(user, err);
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
    mo->store = o->store;
    mo->spill_prefix = strdup(o->spill_prefix);
    mo->object_key = strdup(o->object_key);
    mo->zstd_level = o->zstd_level > 0 ? o->zstd_level : 1;
    mo->limit = o->memory_limit_bytes;
    mo->table_limit = mo->limit - lmr_frame_writer_memory_bytes(mo->zstd_level);
    mo->arena.chunk_bytes = mo->table_limit / 16;
    if (mo->arena.chunk_bytes > LMR_CHUNK_ARENA_MAX_CHUNK_BYTES)
        mo->arena.chunk_bytes = LMR_CHUNK_ARENA_MAX_CHUNK_BYTES;
    mo->arena.chunk_bytes &= ~(size_t)7;
    mo->emitter.emit = emit_buffer;
    enum lmr_result rc = LMR_OK;
    if (mo->combining) {
        struct lmr_combine_table_options to = {.value_size = mo->vs,
                                               .ops = mo->ops,
                                               .job_state = mo->state,
                                               .memory_limit_bytes = mo->table_limit,
                                               .full = table_full,
                                               .full_user = mo};
        rc = lmr_combine_table_new(&to, &mo->table, err);
    } else {
        mo->items_cap = INITIAL_ITEMS;
        mo->items = malloc(mo->items_cap * sizeof(struct lmr_combine_item));
    }
    if (rc == LMR_OK && (!mo->spill_prefix || !mo->object_key || (!mo->combining && !mo->items)))
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
    /* A combining job emits straight into the table's pipeline: no call in between. */
    return mo->combining ? lmr_combine_table_emitter(mo->table) : &mo->emitter;
}

/* Combine the table's pending emits; the first error of the table or of the map output into mo->status. */
static void flush_table(struct lmr_map_output *mo)
{
    if (!mo->table || mo->status != LMR_OK)
        return;
    enum lmr_result rc = lmr_combine_table_flush(mo->table, &mo->err);
    if (rc != LMR_OK)
        mo->status = rc;
}

enum lmr_result lmr_map_output_status(struct lmr_map_output *mo, struct lmr_err *err)
{
    flush_table(mo);
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
    if (mo->table ? lmr_combine_table_count(mo->table) > 0 : mo->count > 0)
        rc = spill(mo, err);
    if (rc != LMR_OK)
        return rc;
    /* The table is no longer needed: its memory goes to the readers. */
    note_peak(mo, 0);
    if (mo->table)
        mo->records_in = lmr_combine_table_emits(mo->table);
    lmr_combine_table_destroy(mo->table);
    mo->table = NULL;
    free_items(mo);
    lmr_chunk_arena_free(&mo->arena);
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
    flush_table(mo);
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
        struct lmr_combine_item *items;
        size_t n;
        rc = sort_buffered(mo, &items, &n, err);
        if (rc == LMR_OK)
            rc = write_sorted(mo, items, n, mo->object_key, index->frames, &object_bytes, err);
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
    index->records_in = mo->table ? lmr_combine_table_emits(mo->table) : mo->records_in;
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
    lmr_combine_table_destroy(mo->table);
    free_items(mo);
    lmr_chunk_arena_free(&mo->arena);
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
