/*
 * The planner's sampling step for range-partitioned jobs (sort): read a bounded sample of the
 * input with ranged GETs, map it with the job to get its keys, and choose the reducers' key
 * ranges from the sample's quantiles. The boundaries go into the job's arguments ("ranges"),
 * which the manifest and every task event carry, so every mapper partitions alike.
 *
 * Balance: with S sampled keys, a partition's share of the input is off its quantile by about
 * sqrt(p(1-p)/S); LMR_SAMPLE_MAX_GETS GETs of LMR_SAMPLE_GET_BYTES give S in the hundreds of
 * thousands for 100-byte records, and the GETs are spread evenly over the input so sorted or
 * clustered inputs are sampled everywhere. Keys that repeat cannot be split: a key holding a
 * fraction f of the input makes its partition at least f.
 */
#ifndef LMR_COORDINATOR_SAMPLE_H
#define LMR_COORDINATOR_SAMPLE_H

#include "coordinator.h"
#include "store/store_set.h"

/* The most GETs the sample makes, their size, and the most key bytes it keeps. */
#define LMR_SAMPLE_MAX_GETS 64u
#define LMR_SAMPLE_GET_BYTES (256u * 1024)
#define LMR_SAMPLE_MAX_KEY_BYTES (64u << 20)
/* A boundary is cut to at most this many bytes, and to less with many reducers: all of them
 * fit one job argument (LMR_RANGE_MAX_TEXT_BYTES; 5 bytes each at 5,000 reducers). A cut
 * boundary still orders correctly; it only balances less finely. */
#define LMR_SAMPLE_MAX_BOUND_BYTES 256u

struct lmr_sample_stats {
    uint32_t gets;
    uint64_t bytes_read;
    uint64_t records; /* lines mapped */
    uint64_t keys;    /* keys sampled */
};

/**
 * Sample plan's input (its shards' stores come from stores) and, with two or more reducers, set plan->job.args "ranges"
 * for plan->job.reducers partitions; when every sampled line ends in "\r\n" and "line-end" is not given, also
 * "line-end" = "crlf". Compressed shards are not sampled; with no sample at all no ranges are set (everything goes to
 * the first reducer, still in order).
 * @return LMR_OK, or the store's or the job's error naming the object.
 */
enum lmr_result lmr_plan_sample_ranges(struct lmr_job_plan *plan, const struct lmr_job_ops *ops,
                                       struct lmr_store_set *stores, struct lmr_sample_stats *stats,
                                       struct lmr_err *err);

#endif
