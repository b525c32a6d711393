/*
 * A tumbling window's state: key -> accumulator (the job's combiner values, value_size bytes
 * each), combined at emit time in the shared combining table (shuffle/combine_table.h, the
 * map-side collector's table: entries inline in the slots).
 *
 * Between invocations the state travels inside the Lambda event and response as a JSON object
 * of strings (AWS recommends Map<String,String> for tumbling-window state):
 *   {"lmr":"1","kv":"<base64 of the packed entries>"[,"lane":"L","lanes":"N"][,"run":"R"]
 *    [,"first":"<sequence number>","n":"<records>"][,"full":"1"]}
 * packed entries: varint(key length) key accumulator, repeated. Keys may hold any bytes.
 * lane/lanes/run name the part this state becomes at its final invoke (the poller seeds them
 * into a fresh state; a state from AWS has none: lane 0 of 1, no run); first is the sequence
 * number of the first record the state took (it names an early-terminated part).
 * "full" marks a state that could not take the next record without passing the 1 MB limit:
 * the poller then terminates the window early on that shard and continues with a fresh state.
 *
 * Changes can be grouped in a transaction (begin/commit/rollback) so that one record whose
 * emits would push the encoded state over its limit is taken back as a whole.
 */
#ifndef LMR_STREAM_STATE_H
#define LMR_STREAM_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lambdamr/job.h"
#include "stream/event.h"
#include "util/buf.h"
#include "util/result.h"

struct lmr_stream_state;

#define LMR_STREAM_LANES_MAX 10 /* ParallelizationFactor */
#define LMR_STREAM_RUN_MAX 32   /* a run token: hex digits */
#define LMR_STREAM_REF_MAX 48   /* a state reference: "<environment token>-<version>" */

/* The strings a state carries besides its entries (see above). */
struct lmr_stream_state_meta {
    uint32_t lane, lanes; /* lanes 0 or 1: one lane */
    char run[LMR_STREAM_RUN_MAX + 1];
    char first[LMR_STREAM_SEQ_MAX + 1];
    uint64_t records;                 /* records taken into this state ("n") */
    char ref[LMR_STREAM_REF_MAX + 1]; /* "ref": which environment holds this state, at which version */
};

/** The state's meta strings (mutable; cleared by lmr_stream_state_clear, set by merge). */
struct lmr_stream_state_meta *lmr_stream_state_meta(struct lmr_stream_state *st);

/** A state whose accumulators are value_size bytes (> 0). @return NULL on allocation failure. */
struct lmr_stream_state *lmr_stream_state_new(size_t value_size);
void lmr_stream_state_destroy(struct lmr_stream_state *st);
/** Forget every key (keeps memory). */
void lmr_stream_state_clear(struct lmr_stream_state *st);

size_t lmr_stream_state_count(const struct lmr_stream_state *st);

/**
 * Combine value into key's accumulator (or insert key with value as its accumulator).
 * @return LMR_ERR_INVALID when value.len != value_size, LMR_ERR_NOMEM, LMR_ERR_TOO_LARGE (key > 64 KiB).
 */
enum lmr_result lmr_stream_state_add(struct lmr_stream_state *st, const struct lmr_job_ops *job, void *job_state,
                                     struct lmr_slice key, struct lmr_slice value);

/** Start recording changes so that rollback can undo them. Transactions do not nest. */
void lmr_stream_state_begin(struct lmr_stream_state *st);
/** Keep the changes since begin. */
void lmr_stream_state_commit(struct lmr_stream_state *st);
/** Undo every change since begin. */
void lmr_stream_state_rollback(struct lmr_stream_state *st);

/** Exact size of the JSON text lmr_stream_state_encode would produce (with full = false). */
size_t lmr_stream_state_encoded_bytes(const struct lmr_stream_state *st);

/*
 * The members of a state object that say how to treat it, read without decoding its entries
 * (stream/stream_function.c reads them first: a warm environment may hold the state already).
 * "byref" is written only by lambdamr's poller, never by AWS's event source mapping:
 *   "byref":"1"     answer with the state by reference only (its meta strings and "ref", no "kv");
 *   "byref":"snap"  answer with the whole state (the poller's next full copy).
 */
enum lmr_stream_state_mode { LMR_STREAM_STATE_BY_VALUE, LMR_STREAM_STATE_BY_REF, LMR_STREAM_STATE_SNAPSHOT };
struct lmr_stream_state_controls {
    char ref[LMR_STREAM_REF_MAX + 1]; /* "ref": "" when absent or not a short token */
    enum lmr_stream_state_mode mode;
    bool has_kv; /* the object carries its entries */
};

/** Read c from a state object given as JSON text (len bytes; NULL or empty: all unset). */
void lmr_stream_state_controls(const char *json_text, size_t len, struct lmr_stream_state_controls *c);

/** Append the state by reference: {"lmr":"1", its meta strings (with "ref")[, "full":"1"]}, no entries. */
enum lmr_result lmr_stream_state_encode_ref(const struct lmr_stream_state *st, bool full, struct lmr_buf *out);

/** Bytes of the packed entries (what lmr_stream_state_pack appends). */
size_t lmr_stream_state_packed_bytes(const struct lmr_stream_state *st);
/** Append the packed entries (no JSON, no base64) to out. */
enum lmr_result lmr_stream_state_pack(const struct lmr_stream_state *st, struct lmr_buf *out);
/** Merge packed entries (as lmr_stream_state_pack wrote them) into st with the job's combiner. */
enum lmr_result lmr_stream_state_merge_packed(struct lmr_stream_state *st, const struct lmr_job_ops *job,
                                              void *job_state, const uint8_t *p, size_t n, struct lmr_err *err);

/** Append the state's JSON object to out; full adds the "full":"1" marker. */
enum lmr_result lmr_stream_state_encode(const struct lmr_stream_state *st, bool full, struct lmr_buf *out);

/**
 * Merge a state object given as JSON text (len bytes; NULL, "" or {} for empty) into st with the
 * job's combiner. *full (optional) receives the "full" marker.
 */
enum lmr_result lmr_stream_state_merge(struct lmr_stream_state *st, const struct lmr_job_ops *job, void *job_state,
                                       const char *json_text, size_t len, bool *full, struct lmr_err *err);
/** Same, NUL-terminated. */
enum lmr_result lmr_stream_state_merge_text(struct lmr_stream_state *st, const struct lmr_job_ops *job, void *job_state,
                                            const char *json_text, bool *full, struct lmr_err *err);

/** Call fn for every entry in key order (job->compare, or bytewise). */
enum lmr_result lmr_stream_state_foreach_sorted(const struct lmr_stream_state *st, const struct lmr_job_ops *job,
                                                void (*fn)(void *user, struct lmr_slice key, struct lmr_slice acc),
                                                void *user);

/**
 * Reduce every key of st with job->reduce (each group holds the one combined accumulator),
 * in key order, appending "key<TAB>value\n" lines to out.
 */
enum lmr_result lmr_stream_state_reduce_lines(const struct lmr_stream_state *st, const struct lmr_job_ops *job,
                                              void *job_state, struct lmr_buf *out, struct lmr_err *err);

#endif
