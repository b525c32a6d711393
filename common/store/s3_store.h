/*
 * The "s3" store back-end: an S3 bucket (or any S3-compatible endpoint) as the object store.
 * lmr_s3_store_new(bucket, ...) in store.h opens it with the defaults below; the options
 * can also come from the environment of a function process:
 *   LMR_S3_READ_AHEAD        ranged GETs in flight per reader (default 4)
 *   LMR_S3_READ_PART_BYTES   bytes per ranged GET (default 8M)
 *   LMR_S3_PART_BYTES        multipart upload part size (default 8M, at least 5M)
 * A reader opened with struct lmr_store_read_options (lmr_store_open_read_with) keeps at most
 * max_in_flight_bytes requested ahead (its parts shrink, down to 256 KiB, before its window
 * does) and, when sequential, requests its whole window at open.
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

/* The S3 response bodies the store parses, for lmr_s3_parse_response. */
enum lmr_s3_response {
    LMR_S3_LIST_PAGE,       /* ListObjectsV2 result: fn is called per <Contents> */
    LMR_S3_INITIATE_UPLOAD, /* CreateMultipartUpload result */
    LMR_S3_COMPLETE_UPLOAD, /* CompleteMultipartUpload result (may be an error document with status 200) */
    LMR_S3_DELETE_RESULT,   /* DeleteObjects result */
};

/**
 * Run one response body through the parser the store uses for `kind`, without any request
 * (fuzz/fuzz_s3_xml.c). fn and user_data are used for LMR_S3_LIST_PAGE only (fn may be NULL).
 * @return what the store's parser returns: LMR_ERR_FORMAT for malformed XML, else its result.
 */
enum lmr_result lmr_s3_parse_response(enum lmr_s3_response kind, const char *xml, size_t len, lmr_store_list_fn fn,
                                      void *user_data, struct lmr_err *err);

#endif
