/*
 * What travels between the driver/coordinator and the functions: the job manifest and the
 * small task descriptors (Lambda events), as JSON. Data never travels in events: shards are
 * byte ranges of store objects, map output is referenced by (key, offset, size).
 */
#ifndef LMR_JOB_TASK_H
#define LMR_JOB_TASK_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "job/args.h"
#include "util/result.h"

enum lmr_codec { LMR_CODEC_NONE = 0, LMR_CODEC_GZIP, LMR_CODEC_ZSTD };

/** Codec from a key's extension (".gz", ".zst"); LMR_CODEC_NONE otherwise. */
enum lmr_codec lmr_codec_from_key(const char *key);
const char *lmr_codec_name(enum lmr_codec c);

/* A place in a store: root URI ("file:///abs" or "s3://bucket") plus a key or key prefix. */
struct lmr_location {
    char *root;
    char *key;
};

/* One byte range of one input object. A line belongs to the shard in which it starts. */
struct lmr_shard {
    struct lmr_location object;
    uint64_t offset;
    uint64_t length;
    uint64_t object_size;
    enum lmr_codec codec; /* compressed objects are one whole shard */
};

/* A map output frame for one reducer. */
struct lmr_frame {
    char *key;
    uint64_t offset, size_bytes, records, raw_bytes;
};

/* Settings shared by every task of a job. */
struct lmr_job_common {
    char *job_id;
    char *job_name; /* built-in name or plugin path */
    struct lmr_job_args *args;
    struct lmr_location work;   /* work prefix (ends in '/') in its store */
    struct lmr_location output; /* output prefix ("" or ends in '/') in its store */
    uint32_t reducers;          /* 0 for map-only jobs */
    uint32_t memory_mb;         /* each function's memory size = its budget */
};

struct lmr_map_task {
    struct lmr_job_common job;
    uint32_t task;
    uint32_t attempt;
    char *attempt_id;
    struct lmr_shard *shards;
    size_t nshards;
    /* Dynamic work rebalancing (docs/ARCHITECTURE.md, "Rebalancing"). Optional; all off by default. */
    uint64_t split_min_bytes; /* > 0: look for WORK/map/m-NNNNN/split-request while reading and cut the input
                                 there, leaving at least this many bytes to each side */
    bool check_cut;           /* read WORK/map/m-NNNNN/cut.json first: an earlier attempt may have cut the task */
    bool ask_peer;            /* when this task's input is done, ask task `peer` (of the same, last wave) to split */
    uint32_t peer;
};

/*
 * Where a cut map task's input ends: at byte `offset` of the object of shard `shard` (an index
 * into the task's shards). The task keeps the lines that start before it; its tail task gets
 * the rest. offset == the shard's offset hands the whole shard to the tail (the only cut a
 * compressed shard allows); otherwise shards[shard].offset < offset < its end.
 */
struct lmr_map_cut {
    size_t shard;
    uint64_t offset;
};

/* The default least bytes a split leaves to each side (a tail's invocation and its extra map output cost). */
#define LMR_MAP_SPLIT_MIN_BYTES (8u << 20)

/**
 * The cut of a task that has read shards [0, cur) and shard cur up to object offset pos (the
 * first byte not yet fetched; ignored for a compressed shard, which is never cut inside): half
 * of what remains plus extra_tail_bytes (which may be negative) goes to the tail (the task's own
 * finish, which a tail of less input does faster, is worth that many bytes, the tail's wait for
 * its slot that many less; 0 = an even split), at a byte offset
 * inside an uncompressed shard or at the nearer shard boundary for a compressed one. @return
 * false when what remains is less than twice min_side_bytes, or the tail would get less than
 * min_side_bytes (and, for an even split, the task too), or nothing can be cut.
 */
bool lmr_map_cut_decide(const struct lmr_shard *shards, size_t n, size_t cur, uint64_t pos, uint64_t min_side_bytes,
                        int64_t extra_tail_bytes, struct lmr_map_cut *cut);
/** Is cut a valid cut of these shards (see struct lmr_map_cut)? On failure err says why. */
enum lmr_result lmr_map_cut_check(const struct lmr_shard *shards, size_t n, const struct lmr_map_cut *cut,
                                  struct lmr_err *err);
/** The shards after cut (deep copies, malloc'd; *out_n >= 1): the tail task's input. */
enum lmr_result lmr_map_tail_shards(const struct lmr_shard *shards, size_t n, const struct lmr_map_cut *cut,
                                    struct lmr_shard **out, size_t *out_n, struct lmr_err *err);
/** How many of the shards the cut task still reads (the last one shortened to the cut when cut inside it). */
size_t lmr_map_head_shards(const struct lmr_shard *shards, size_t n, const struct lmr_map_cut *cut);
/** A cut as JSON, {"shard": i, "offset": n} (new reference), and back (false: not a cut). */
json_t *lmr_map_cut_to_json(const struct lmr_map_cut *cut);
bool lmr_map_cut_from_json(const json_t *j, struct lmr_map_cut *cut);

struct lmr_reduce_task {
    struct lmr_job_common job;
    uint32_t task;
    uint32_t attempt;
    char *attempt_id;
    struct lmr_frame *frames; /* every committed map object's frame for this partition */
    size_t nframes;
    /* Optional: the frame list is in the work store at this key (the event would be too large):
     * {"frames": [[key, offset, size], ...]}; load it with lmr_reduce_task_load_frames. */
    char *frames_key;
};

/* The most bytes of a reducer's frame list read from the store (about 100 bytes a frame). */
#define LMR_REDUCE_FRAMES_MAX_BYTES (64u << 20)

/* A merge task of the multi-stage exchange: merge the outputs of map tasks [first_map, first_map + maps). */
struct lmr_merge_task {
    struct lmr_job_common job;
    uint32_t task;
    uint32_t attempt;
    char *attempt_id;
    uint32_t first_map, maps;
};

void lmr_location_clean_up(struct lmr_location *loc);
void lmr_job_common_clean_up(struct lmr_job_common *c);
void lmr_map_task_clean_up(struct lmr_map_task *t);
void lmr_reduce_task_clean_up(struct lmr_reduce_task *t);
void lmr_merge_task_clean_up(struct lmr_merge_task *t);

json_t *lmr_job_common_to_json(const struct lmr_job_common *c);
enum lmr_result lmr_job_common_from_json(const json_t *j, struct lmr_job_common *c, struct lmr_err *err);
json_t *lmr_shard_to_json(const struct lmr_shard *s);
/** Parse a shard written by lmr_shard_to_json into sh (which then owns its strings). */
enum lmr_result lmr_shard_from_json(const json_t *j, struct lmr_shard *sh, struct lmr_err *err);

/** Serialise a task as its Lambda event (new reference). */
json_t *lmr_map_task_to_json(const struct lmr_map_task *t);
json_t *lmr_reduce_task_to_json(const struct lmr_reduce_task *t);
json_t *lmr_merge_task_to_json(const struct lmr_merge_task *t);
/** A reducer's frame list as stored at frames_key: {"frames": [[key, offset, size], ...]} (new reference). */
json_t *lmr_reduce_frames_to_json(const struct lmr_frame *frames, size_t n);
/**
 * Read the frame list of a task whose event named frames_key (from the store that holds the work
 * location, at most LMR_REDUCE_FRAMES_MAX_BYTES) into t->frames. A task without frames_key is left as is.
 */
struct lmr_store;
enum lmr_result lmr_reduce_task_load_frames(struct lmr_reduce_task *t, struct lmr_store *work, struct lmr_err *err);
/** The kind of a task event ("map", "reduce", "merge", ...) into out; "" when it is not a JSON object with one. */
void lmr_task_event_kind(const char *event, size_t len, char *out, size_t cap);
/** Parse an event; the task owns everything it points to afterwards. */
enum lmr_result lmr_map_task_from_json(const char *event, size_t len, struct lmr_map_task *t, struct lmr_err *err);
enum lmr_result lmr_reduce_task_from_json(const char *event, size_t len, struct lmr_reduce_task *t,
                                          struct lmr_err *err);
enum lmr_result lmr_merge_task_from_json(const char *event, size_t len, struct lmr_merge_task *t, struct lmr_err *err);

/* Keys inside the work prefix. Callers free the result. */
char *lmr_work_key(const struct lmr_job_common *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Keys inside the output prefix. */
char *lmr_output_key(const struct lmr_job_common *c, const char *name);

/* JSON helpers with defaults, tolerant of missing fields. */
uint64_t lmr_json_u64(const json_t *obj, const char *name, uint64_t dflt);
double lmr_json_double(const json_t *obj, const char *name, double dflt);
const char *lmr_json_str(const json_t *obj, const char *name, const char *dflt);

#endif
