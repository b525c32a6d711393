/*
 * Joins (common/job/join.c): the pieces the join jobs share.
 *
 * Reduce-side join with a secondary sort: a mapper emits each row under the composite key
 * JOINKEY + one byte, the index of its side (its tag), and partitions on JOINKEY alone, so one
 * reducer gets every side of a join key and, in key order, side 0's rows before side 1's and so
 * on. The reducer keeps the rows of all but the last side of the current key (in memory up to
 * its cap, in a temporary file beyond it: a join group larger than the budget still completes)
 * and streams the last side's rows against them: it never holds a whole group. Join keys must
 * not contain bytes below the number of sides (they could interleave groups); such rows count
 * as malformed.
 */
#ifndef LMR_JOB_JOIN_H
#define LMR_JOB_JOIN_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "lambdamr/job.h"

/* The most sides a join takes. */
#define LMR_JOIN_MAX_SIDES 8u

/** Emit value under the composite key (joinkey, side) through out using buf (grown; caller frees *buf).
 *  @return false when the join key holds a byte below nsides (malformed) or memory ran out. */
bool lmr_join_emit_tagged(struct lmr_emitter *out, struct lmr_slice joinkey, uint32_t side, uint32_t nsides,
                          struct lmr_slice value, uint8_t **buf, size_t *cap);

/** The partition of a composite key: XXH3_64bits(joinkey) % nparts. */
uint32_t lmr_join_partition(struct lmr_slice composite, uint32_t nparts);

/* The rows of one buffered side of the current key: memory, then a temporary file. */
struct lmr_join_side_buffer {
    uint8_t *mem; /* records: u32 length, bytes */
    size_t len, cap;
    FILE *spill; /* rows past the memory cap */
    uint64_t rows;
};

/* The reduce side's state for one task. */
struct lmr_join_reducer {
    uint32_t nsides;
    size_t memory_cap_bytes; /* for all buffered sides together */
    uint8_t *key;            /* the current join key */
    size_t key_len, key_cap;
    bool have_key;
    struct lmr_join_side_buffer sides[LMR_JOIN_MAX_SIDES];
    uint64_t spilled_rows;
    bool failed; /* out of memory or a temporary file error: finish fails the task */
    char error[256];
};

/*
 * Called once per joined combination: key, and one value per side (vals[0..nsides)).
 */
typedef void (*lmr_join_match_fn)(void *user_data, struct lmr_slice key, const struct lmr_slice *vals, uint32_t nsides,
                                  struct lmr_emitter *out);

/** Initialise for nsides sides with memory_cap_bytes for the buffered rows. */
void lmr_join_reducer_init(struct lmr_join_reducer *jr, uint32_t nsides, size_t memory_cap_bytes);
/** One reduce group (a composite key and its values): buffer or stream, calling match per combination. */
void lmr_join_reducer_group(struct lmr_join_reducer *jr, struct lmr_slice composite, struct lmr_values *values,
                            lmr_join_match_fn match, void *user_data, struct lmr_emitter *out);
/** Free the buffers and close the temporary files. */
void lmr_join_reducer_clean_up(struct lmr_join_reducer *jr);

/** Cut a path-like location to the form the mapper's task info names inputs in (absolute path, or s3://). Caller frees.
 */
char *lmr_join_normalize_location(const char *uri);
/** Whether input (a task's input_uri) lies at or under location (normalized). */
bool lmr_join_location_contains(const char *location, const char *input);

#endif
