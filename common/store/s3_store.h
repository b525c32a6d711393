/*
 * The "s3" store back-end: an S3 bucket (or any S3-compatible endpoint) as the object store.
 * lmr_s3_store_new(bucket, ...) in store.h opens it with the defaults below; the options
 * can also come from the environment of a function process:
 *   LMR_S3_READ_AHEAD        ranged GETs in flight per reader (default 4)
 *   LMR_S3_READ_PART_BYTES   bytes per ranged GET (default 8M)
 *   LMR_S3_PART_BYTES        multipart upload part size (default 8M, at least 5M)
 */
#ifndef LMR_STORE_S3_STORE_H
#define LMR_STORE_S3_STORE_H

#include <stddef.h>

#include "aws/http.h"
#include "store/store.h"

struct lmr_s3_store_options {
    const struct lmr_aws_config *config; /* Optional: NULL = resolve from the environment */
    unsigned read_ahead;                 /* Optional: ranged GETs in flight per reader; default 4 */
    size_t read_part_bytes;              /* Optional: bytes per ranged GET; default 8 MiB */
    size_t part_size_bytes;              /* Optional: multipart part size; default 8 MiB, min 5 MiB */
};

/** Open bucket with explicit options (lmr_s3_store_new uses the environment). */
enum lmr_result lmr_s3_store_new_with(const char *bucket, const struct lmr_s3_store_options *opts,
                                      struct lmr_store **out, struct lmr_err *err);

#endif
