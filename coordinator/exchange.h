/*
 * The shape of the shuffle (docs/ARCHITECTURE.md, "The exchange"): direct (every reducer reads
 * its frame of every map output: M x R frame reads) or through a merge stage (ceil(M/G) merge
 * tasks each merge G map outputs into one object with R frames; reducers read those:
 * about 2M + ceil(M/G) x (R + 2) requests). Part of the planner library: pure functions of the
 * plan's counts, so the estimate (--dry-run) and the run agree.
 */
#ifndef LMR_COORDINATOR_EXCHANGE_H
#define LMR_COORDINATOR_EXCHANGE_H

#include <stdbool.h>
#include <stdint.h>

#include "util/result.h"

enum lmr_exchange_mode { LMR_EXCHANGE_AUTO = 0, LMR_EXCHANGE_DIRECT, LMR_EXCHANGE_MERGE };

/*
 * The request budget of a direct shuffle: S3 serves about 5,500 GET requests per second per
 * prefix (AWS's documented rate) and a job's intermediate data shares one prefix, so a direct
 * shuffle is kept to what that rate serves in LMR_EXCHANGE_BUDGET_S seconds.
 */
#define LMR_EXCHANGE_GET_RATE_PER_S 5500u
#define LMR_EXCHANGE_BUDGET_S 10u
#define LMR_EXCHANGE_REQUEST_BUDGET ((uint64_t)LMR_EXCHANGE_GET_RATE_PER_S * LMR_EXCHANGE_BUDGET_S)
/* What one merge invocation is worth in requests when the two shapes are compared (an
 * invocation of a few hundred ms at 1 GB costs about as much as 50 S3 GETs). */
#define LMR_EXCHANGE_REQUESTS_PER_INVOCATION 50u
/* Memory a merge task gives each of its sources: a frame reader and the store reader's
 * read-ahead over an object of a few MiB. The fan-in is at most the shuffle budget / this. */
#define LMR_MERGE_SOURCE_MEMORY_BYTES (8ull << 20)

/* The most frames the reducers of one job may read in all (R x the shuffle's sources): the
 * coordinator holds every reducer's frame list (about 110 bytes a frame) while it plans them. */
#define LMR_EXCHANGE_MAX_FRAMES 10000000ull

/** Requests of a direct shuffle's reduce side: one frame read per map output and reducer. */
uint64_t lmr_exchange_direct_requests(uint64_t maps, uint64_t reducers);

/**
 * Requests a merge stage of fan-in G adds and the reduce side then makes: each merge task reads
 * its G commit records and G objects (one sequential read each) and writes one object and one
 * commit record; the coordinator reads ceil(M/G) commit records; each reducer reads ceil(M/G)
 * frames: 2M + ceil(M/G) x (R + 3).
 */
uint64_t lmr_exchange_merge_requests(uint64_t maps, uint64_t reducers, uint32_t fan_in);

/** The largest fan-in a function of memory_mb supports (at least 2, at most LMR_MERGE_FAN_IN_MAX). */
uint32_t lmr_exchange_max_fan_in(uint32_t memory_mb);

/**
 * The default fan-in for M map outputs: ceil(sqrt(M)), which balances a merge task's reads (G
 * objects) against a reducer's (M/G frames), so no task reads more than about sqrt(M) objects;
 * at least 2, at most lmr_exchange_max_fan_in(memory_mb).
 */
uint32_t lmr_exchange_default_fan_in(uint64_t maps, uint32_t memory_mb);

/**
 * Choose the shape: *fan_in = 0 for direct, else the merge stage's fan-in. AUTO merges when the
 * direct shuffle's requests exceed LMR_EXCHANGE_REQUEST_BUDGET and the merge stage's requests
 * plus its invocations (LMR_EXCHANGE_REQUESTS_PER_INVOCATION each) are at most half of them.
 * MERGE always merges (when there are at least two map tasks and a reduce phase). fan_in_given
 * (0 = default) is checked: 2 .. LMR_MERGE_FAN_IN_MAX, else LMR_ERR_INVALID. AUTO also merges
 * when a direct shuffle would be over LMR_EXCHANGE_MAX_FRAMES; a shape that is still over it is
 * LMR_ERR_TOO_LARGE, naming the flags to change.
 */
enum lmr_result lmr_exchange_plan(enum lmr_exchange_mode mode, uint32_t fan_in_given, uint64_t maps, uint64_t reducers,
                                  uint32_t memory_mb, uint32_t *fan_in, struct lmr_err *err);

/** Merge tasks of a merge stage: ceil(maps / fan_in) (0 when fan_in is 0). */
static inline uint64_t lmr_exchange_merge_tasks(uint64_t maps, uint32_t fan_in)
{
    return fan_in ? (maps + fan_in - 1) / fan_in : 0;
}

/** Parse "auto", "direct" or "merge". @return false for anything else. */
bool lmr_exchange_mode_parse(const char *s, enum lmr_exchange_mode *mode);
const char *lmr_exchange_mode_name(enum lmr_exchange_mode mode);

#endif
