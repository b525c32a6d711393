/*
 * Lambda's deployment package limits, as GetAccountSettings reports them (AccountLimit,
 * in bytes): CodeSizeZipped is the largest zip CreateFunction/UpdateFunctionCode accept
 * directly (larger ones must come from S3), CodeSizeUnzipped the largest a function's code
 * may be once extracted.
 */
#ifndef LMR_LAMBDA_LIMITS_H
#define LMR_LAMBDA_LIMITS_H

#define LMR_LAMBDA_ZIP_DIRECT_MAX_BYTES 52428800ull /* 50 MiB */
#define LMR_LAMBDA_UNZIPPED_MAX_BYTES 262144000ull  /* 250 MiB */

#endif
