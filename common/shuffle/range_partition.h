/*
 * The range partitioner of a total-order job (sort): R-1 ascending boundary keys split the key
 * space into R ranges, and a key goes to the number of boundaries that are <= it, so partition
 * i holds keys in [bound[i-1], bound[i]) and concatenating the partitions in order gives the
 * keys in order. The boundaries come from a sample of the input (coordinator/sample.c) and
 * travel to every mapper in the job's arguments ("ranges": hex-encoded boundaries separated by
 * ','), so the collector needs nothing but the job's partition hook to use them.
 */
#ifndef LMR_SHUFFLE_RANGE_PARTITION_H
#define LMR_SHUFFLE_RANGE_PARTITION_H

#include <stddef.h>
#include <stdint.h>

#include "lambdamr/job.h"
#include "util/result.h"

/* The most boundaries (R - 1) and the most bytes of their text form (it travels as one job
 * argument, at most 64 KiB: common/job/args.c). */
#define LMR_RANGE_MAX_BOUNDS 10000u
#define LMR_RANGE_MAX_TEXT_BYTES (60u * 1024)

struct lmr_range_partitioner {
    uint32_t nbounds;
    struct lmr_slice *bounds; /* [nbounds], ascending, pointing into bytes */
    uint8_t *bytes;
};

/**
 * Parse the text form ("" for no boundaries). @return LMR_ERR_FORMAT with a sentence when it is
 * not hex pairs separated by ',', or the boundaries are not ascending, or there are more than
 * LMR_RANGE_MAX_BOUNDS.
 */
enum lmr_result lmr_range_partitioner_parse(struct lmr_range_partitioner *rp, const char *text, struct lmr_err *err);
/** Free what parse allocated. NULL-safe, idempotent. */
void lmr_range_partitioner_clean_up(struct lmr_range_partitioner *rp);

/**
 * The partition of key in [0, nparts): the number of boundaries <= key (bytewise order: memcmp,
 * then shorter first), capped at nparts - 1.
 */
uint32_t lmr_range_partition(const struct lmr_range_partitioner *rp, struct lmr_slice key, uint32_t nparts);

/** Bytewise key order: memcmp, then the shorter first (the framework's default order). */
int lmr_range_key_compare(struct lmr_slice a, struct lmr_slice b);

/**
 * The most bytes a boundary may keep so that nparts - 1 boundaries (2 hex digits a byte and a
 * comma each) fit LMR_RANGE_MAX_TEXT_BYTES, capped at max_bytes; at least 1.
 */
size_t lmr_range_bound_bytes(uint32_t nparts, size_t max_bytes);

/**
 * Choose nparts - 1 boundaries from sorted (ascending, bytewise) samples: the keys at the
 * quantiles i * nsamples / nparts, each cut to at most max_key_bytes (a prefix of a boundary
 * still splits the order monotonically). Written to *text (malloc'd, the text form).
 * @return LMR_ERR_INVALID when nparts - 1 > LMR_RANGE_MAX_BOUNDS, LMR_ERR_NOMEM.
 */
enum lmr_result lmr_range_bounds_format(const struct lmr_slice *sorted, size_t nsamples, uint32_t nparts,
                                        size_t max_key_bytes, char **text, struct lmr_err *err);

#endif
