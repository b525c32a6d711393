/* Placeholder until the Kinesis source lands on the AWS HTTP helper (kinesis.c replaces this file). */
#include "stream/source.h"

enum lmr_result lmr_stream_kinesis_source_new(const char *stream, struct lmr_stream_source **out, struct lmr_err *err)
{
    return lmr_fail(err, LMR_ERR_UNSUPPORTED,
                    "kinesis://%s: the Kinesis source is not in this build yet; use - (standard input) or file://PATH",
                    stream);
}
