/*
 * The lambdamr job API: what a MapReduce job (built-in or user plugin) implements.
 *
 * Keys and values are byte slices (struct lmr_slice): never assumed NUL-terminated, never
 * owned by the job. The map function sees one record (a line without its terminator) and
 * emits [key, value] pairs through an explicit emitter (Phoenix++'s idea). When the job has a
 * combiner, pairs are combined at emit time in the mapper's per-task hash table; the reducer
 * then sees, for each key, the combined values of every mapper.
 *
 * A plugin is a shared object exporting `const struct lmr_job_ops *lmr_job_plugin(void)`.
 */
#ifndef LAMBDAMR_JOB_H
#define LAMBDAMR_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct lmr_slice {
    const uint8_t *ptr;
    size_t len;
};

static inline struct lmr_slice lmr_slice_make(const void *ptr, size_t len)
{
    struct lmr_slice s = {(const uint8_t *)ptr, len};
    return s;
}

/* Where map, combine-output and reduce send their pairs. */
struct lmr_emitter {
    void (*emit)(struct lmr_emitter *self, struct lmr_slice key, struct lmr_slice value);
};

static inline void lmr_emit(struct lmr_emitter *out, struct lmr_slice key, struct lmr_slice value)
{
    out->emit(out, key, value);
}

/* The values of one key group, in the reducer. */
struct lmr_values {
    /* Next value into *value; false at the end of the group. */
    bool (*next)(struct lmr_values *self, struct lmr_slice *value);
};

static inline bool lmr_values_next(struct lmr_values *vals, struct lmr_slice *value)
{
    return vals->next(vals, value);
}

/* Job arguments given on the command line (--delimiter , --key 1:8 …), by name without "--". */
struct lmr_job_args;
/** @return the value of argument `name`, or NULL if not given. */
const char *lmr_job_arg(const struct lmr_job_args *args, const char *name);

/* Counters a job can bump (malformed rows, …); summed over tasks into the job report. */
struct lmr_job_counters {
    uint64_t malformed_records;
};

struct lmr_job_ops {
    const char *name;    /* "wordcount" */
    const char *summary; /* one line for --help */

    /*
     * Optional. Parse arguments and allocate job state (*state). Called once per task and in
     * the driver (to validate arguments before anything runs). Write a sentence into
     * errbuf and return non-zero on bad arguments.
     */
    int (*setup)(void **state, const struct lmr_job_args *args, char *errbuf, size_t errbuf_len);
    void (*teardown)(void *state);

    /* Required. One record (line, no terminator). Return non-zero to fail the task (strict mode errors). */
    int (*map)(void *state, struct lmr_slice record, struct lmr_emitter *out, struct lmr_job_counters *counters);

    /*
     * Optional combiner. Values of a combining job are fixed-size accumulators of
     * `value_size` bytes. combine(acc, value) merges value (value_size bytes) into acc.
     * It must be associative and commutative: it runs at emit time, at spill merges and in
     * the reducer before reduce.
     */
    size_t value_size;
    void (*combine)(void *state, uint8_t *acc, struct lmr_slice value);

    /*
     * Required unless map_only. Called once per key group in key order. For a combining job the
     * group holds exactly one value: the fully combined accumulator.
     */
    void (*reduce)(void *state, struct lmr_slice key, struct lmr_values *values, struct lmr_emitter *out);

    /* Optional. Partition for key in [0, nparts). Default: xxHash64(key) % nparts. */
    uint32_t (*partition)(void *state, struct lmr_slice key, uint32_t nparts);
    /* Optional. Key order. Default: bytewise (memcmp, then shorter first). */
    int (*compare)(struct lmr_slice a, struct lmr_slice b);

    /* Map-only job (no shuffle, no reducers): map's emits are the output records. */
    bool map_only;

    /*
     * Optional, a speed-up: map many records at once. `block` holds one or more whole lines,
     * each with its terminator ("\n" or "\r\n") except perhaps the last (the end of the input).
     * It must emit exactly the pairs that calling map on each line in turn (line without its
     * terminator) would emit, in the same order. The framework uses it where it can and calls map
     * otherwise. Return non-zero to fail the task (the error then names the block's first line,
     * not the failing row: jobs that reject rows should not provide it). Jobs without it are
     * mapped line by line.
     */
    int (*map_block)(void *state, struct lmr_slice block, struct lmr_emitter *out, struct lmr_job_counters *counters);
};

#ifdef __cplusplus
}
#endif

#endif
