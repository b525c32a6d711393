/*
 * The map side of the shuffle: what a map task's emits go into, and the ONE intermediate object
 * it leaves behind (format in docs/FORMATS.md).
 *
 * Combining jobs (ops->combine) combine at emit time into the combining table
 * (shuffle/combine_table.h: open addressing, each slot holding its entry, a software pipeline
 * that prefetches slots some emits ahead); the partition, XXH3_64bits(key) % R by default, is
 * computed per key when the table is sorted. Other jobs buffer every pair in an arena. When the memory
 * budget is reached, the buffered entries are sorted by (partition, key) and written to the store as a sorted spill
 * run; at finish the in-memory entries and all runs are merged per partition (combining again) into the intermediate
 * object, streamed through a store writer.
 */
#ifndef LMR_SHUFFLE_MAP_OUTPUT_H
#define LMR_SHUFFLE_MAP_OUTPUT_H

#include "lambdamr/job.h"
#include "shuffle/frame.h"
#include "store/store.h"
#include "util/result.h"

struct lmr_map_output_options {
    const struct lmr_job_ops *ops; /* Required */
    void *job_state;               /* Optional: passed to partition/combine */
    uint32_t partitions;           /* Required: R >= 1 */
    size_t memory_limit_bytes;     /* Required: budget for table + arenas + codec buffers (see
                                      lmr_map_output_min_memory_bytes) */
    struct lmr_store *store;       /* Required: where spills and the final object go */
    const char *spill_prefix;      /* Required: key prefix for spill runs, e.g. "work/j/map/m-00003/a-1/spill-" */
    const char *object_key;        /* Required: key of the intermediate object */
    int zstd_level;                /* Optional: 0 = lmr_shuffle_level_for (raw on a file store, else 1 / fast) */
};

/* The intermediate object's index plus the task's shuffle statistics. */
struct lmr_map_output_index {
    uint32_t partitions;
    struct lmr_partition_frame *frames; /* [partitions], malloc'd: free with lmr_map_output_index_clean_up */
    uint64_t records_in;                /* emits */
    uint64_t records_out;               /* records in the object (after combining) */
    uint64_t raw_bytes;                 /* uncompressed msgpack bytes in the object */
    uint64_t object_bytes;              /* size of the object (frames + index + footer) */
    uint64_t spills;                    /* sorted runs written before finish */
    uint64_t spill_bytes;               /* compressed bytes of those runs (and of map-side merge passes) */
    uint64_t merge_passes;              /* intermediate merge passes at finish (0 when the runs fit one merge) */
    uint64_t peak_memory_bytes;         /* largest accounted memory (table, arenas, codec contexts and buffers) */
};

struct lmr_map_output;

/** The smallest memory_limit_bytes accepted (codec contexts and a minimal table). */
size_t lmr_map_output_min_memory_bytes(void);

/** Create a map output. @return LMR_ERR_INVALID for missing options or a budget below the minimum. */
enum lmr_result lmr_map_output_new(const struct lmr_map_output_options *opts, struct lmr_map_output **out,
                                   struct lmr_err *err);
/** The emitter the map handler passes to ops->map. Valid until destroy. */
struct lmr_emitter *lmr_map_output_emitter(struct lmr_map_output *mo);
/** The sticky error of the emits so far (emit cannot return errors): LMR_OK while all is well. */
enum lmr_result lmr_map_output_status(struct lmr_map_output *mo, struct lmr_err *err);
/**
 * Merge and write the intermediate object (committed at opts->object_key, replacing any earlier
 * attempt's object), delete the spill runs, and describe the object in *index (clean it up with
 * lmr_map_output_index_clean_up). No emit may follow.
 */
enum lmr_result lmr_map_output_finish(struct lmr_map_output *mo, struct lmr_map_output_index *index,
                                      struct lmr_err *err);
/** Free the map output; deletes any spill runs left (an aborted task). NULL-safe. */
void lmr_map_output_destroy(struct lmr_map_output *mo);
/** Free index->frames. NULL-safe. */
void lmr_map_output_index_clean_up(struct lmr_map_output_index *index);

#endif
