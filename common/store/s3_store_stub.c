/* Placeholder until the S3 back-end lands (issue 4): s3:// URIs are reported as unsupported. */
#include "store/store.h"

enum lmr_result lmr_s3_store_new(const char *bucket, struct lmr_store **out, struct lmr_err *err)
{
    (void)out;
    return lmr_fail(err, LMR_ERR_UNSUPPORTED, "s3://%s: this build has no S3 back-end yet", bucket);
}
