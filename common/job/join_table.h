/*
 * The in-memory side of a join: a hash table from a join key to the values of every row with
 * that key, with all its memory counted against a cap, and the loader that fills it from a
 * location (a file, a folder or an S3 prefix, read through the object store). Used by the
 * map-side (broadcast) joins, where every mapper holds the small side, and by bdb-q3.
 */
#ifndef LMR_JOB_JOIN_TABLE_H
#define LMR_JOB_JOIN_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lambdamr/job.h"
#include "util/result.h"

struct lmr_join_table;

/** A table whose keys, values and index may use at most max_bytes. NULL when out of memory. */
struct lmr_join_table *lmr_join_table_new(size_t max_bytes);
/** NULL-safe. */
void lmr_join_table_destroy(struct lmr_join_table *t);
/** Add value under key. @return LMR_ERR_TOO_LARGE when the cap would be passed, LMR_ERR_NOMEM. */
enum lmr_result lmr_join_table_add(struct lmr_join_table *t, struct lmr_slice key, struct lmr_slice value);
/** The hash the table files key under (for lmr_join_table_prefetch / _add_hashed). */
uint64_t lmr_join_table_hash(struct lmr_slice key);
/** Start loading the slot a key of hash h probes first (batched inserts hide the cache miss). */
void lmr_join_table_prefetch(const struct lmr_join_table *t, uint64_t h);
/** lmr_join_table_add with h = lmr_join_table_hash(key) already computed. */
enum lmr_result lmr_join_table_add_hashed(struct lmr_join_table *t, struct lmr_slice key, struct lmr_slice value,
                                          uint64_t h);
/** Remove every key and value, keeping the memory for reuse. */
void lmr_join_table_clear(struct lmr_join_table *t);
/** Bytes in use (what the cap counts). */
size_t lmr_join_table_bytes(const struct lmr_join_table *t);

/* The values of one key: lmr_join_table_find, then lmr_join_table_next until it returns false. */
struct lmr_join_iter {
    const struct lmr_join_table *t;
    uint32_t at; /* value index + 1; 0 at the end */
};
/** Start iterating key's values. @return false when the key is absent. */
bool lmr_join_table_find(const struct lmr_join_table *t, struct lmr_slice key, struct lmr_join_iter *it);
bool lmr_join_table_next(struct lmr_join_iter *it, struct lmr_slice *value);

/** One line (without its terminator) of the loaded location; return non-zero to stop (fails the load). */
typedef int (*lmr_join_line_fn)(void *user_data, struct lmr_slice line);

/**
 * Read every object under uri (a path, file:// or s3:// location; names starting with '_' or '.'
 * skipped, as the planner does) and call fn on each line. At most max_bytes are read in all.
 * @return LMR_ERR_TOO_LARGE naming the location when it holds more, LMR_ERR_UNSUPPORTED for
 *         compressed objects, the store's errors, LMR_ERR_INVALID when fn stopped.
 */
enum lmr_result lmr_join_load_lines(const char *uri, uint64_t max_bytes, lmr_join_line_fn fn, void *user_data,
                                    struct lmr_err *err);

/**
 * As lmr_join_load_lines, but with no cap on the total: each object is read whole into a buffer
 * of at most max_object_bytes (LMR_ERR_TOO_LARGE naming the object when one is larger), so a
 * location of any size streams through fn.
 */
enum lmr_result lmr_join_scan_lines(const char *uri, uint64_t max_object_bytes, lmr_join_line_fn fn, void *user_data,
                                    struct lmr_err *err);

/**
 * The total size of the objects under uri (as the loader would read them). Used to choose
 * between a broadcast and a reduce-side join.
 */
enum lmr_result lmr_join_location_bytes(const char *uri, uint64_t *bytes, struct lmr_err *err);

#endif
