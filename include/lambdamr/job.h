/*
 * The lambdamr job API: what a MapReduce job (built-in or user plugin) implements.
 *
 * Keys and values are byte slices (struct lmr_slice): never assumed NUL-terminated, never
 * owned by the job. The map function sees one record (a line without its terminator) and
 * emits [key, value] pairs through an explicit emitter (Phoenix++'s idea). When the job has a
 * combiner, pairs are combined at emit time in the mapper's per-task hash table; the reducer
 * then sees, for each key, the combined values of every mapper.
 *
 * A plugin is a shared object exporting `const struct lmr_job_ops *lmr_job_plugin(void)` whose
 * ops set `.abi_version = LMR_JOB_ABI_VERSION`. Build one against the installed SDK with
 *   cc -shared -fPIC $(pkg-config --cflags lambdamr) myjob.c -o myjob.so
 * The functions declared here (lmr_job_arg, lmr_job_count, lmr_job_error) are exported by the
 * `lambdamr` and function binaries that load the plugin; do not link anything for them.
 * A plugin is loaded once per process (execution environment) and stays loaded; setup and
 * teardown run once per task. See docs/JOBS.md for the whole contract.
 */
#ifndef LAMBDAMR_JOB_H
#define LAMBDAMR_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The version of this interface (struct lmr_job_ops and the functions below). It changes
 * whenever a field is added, removed or changes meaning; a plugin built for another version is
 * refused at load time with a message naming both versions.
 */
#define LMR_JOB_ABI_VERSION 1

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

/*
 * Counters a job can bump (malformed rows, …) and the task's error slot; summed over tasks into
 * the job report ("malformed_records", and "counters" for named counters).
 */
struct lmr_job_counters_private;
struct lmr_job_counters {
    uint64_t malformed_records;
    struct lmr_job_counters_private *priv; /* the framework's: named counters, error; leave alone */
};

/**
 * Add delta to the user counter `name` (1-64 bytes of [A-Za-z0-9_.-]); counters are summed over
 * every task of the job into the report's "counters" object. At most 64 names per job.
 * @return 0, or -1 when the name is not valid or 64 names are already in use (nothing counted).
 */
int lmr_job_count(struct lmr_job_counters *counters, const char *name, uint64_t delta);

/**
 * Say why map, map_block or finish is about to return non-zero: the task fails with this
 * sentence (printf format, at most 1 KiB) instead of a generic message. The last call wins.
 */
void lmr_job_error(struct lmr_job_counters *counters, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* What a task is working on, for start (see struct lmr_job_ops). Valid during the call only. */
struct lmr_task_info {
    const char *role;    /* "map" or "reduce" */
    const char *task_id; /* "m-00003" or "r-00001" */
    uint32_t attempt;    /* 1 for the first attempt */
    /* Map only: the input object of this shard (a file path or s3://bucket/key) and the byte
       range the shard owns (lines that start inside it). NULL and 0 in a reducer. */
    const char *input_uri;
    uint64_t input_offset, input_length;
    uint32_t memory_mb; /* the function's memory size; the task's budget is part of it */
};

struct lmr_job_ops {
    uint32_t abi_version; /* Required for plugins: LMR_JOB_ABI_VERSION. Keep it the first field. */
    const char *name;     /* "wordcount" */
    const char *summary;  /* one line for --help */

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

    /*
     * Optional. Called before the first record of each input shard in a mapper (a map task
     * may have several shards) and once before the first key group in a reducer. Write a
     * sentence into errbuf and return non-zero to fail the task.
     */
    int (*start)(void *state, const struct lmr_task_info *task, char *errbuf, size_t errbuf_len);
    /*
     * Optional. Called after the last record of each shard (mapper) or after the last key
     * group (reducer); may still emit (Hadoop's cleanup). In a mapper its emits go where map's
     * go; in a reducer, to the output. Return non-zero (after lmr_job_error) to fail the task.
     */
    int (*finish)(void *state, struct lmr_emitter *out, struct lmr_job_counters *counters);
};

#ifdef __cplusplus
}
#endif

#endif
