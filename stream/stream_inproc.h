/*
 * An invoker that runs the stream handler in this process, on the caller's thread: the same
 * event and response bytes as a Lambda invocation, without a function process. For tests, for
 * benchmarks of the handler itself, and as `lambdamr stream --invoker inproc`.
 */
#ifndef LMR_STREAM_INPROC_H
#define LMR_STREAM_INPROC_H

#include "lambda/invoker.h"
#include "stream_function.h"

/**
 * A "inproc" invoker for cfg (borrowed: it must outlive the invoker). Every function name
 * reaches the stream handler. A handler failure becomes a function error ("lambdamr.<result>")
 * with Lambda's error JSON as payload, as the Runtime API client reports it.
 */
enum lmr_result lmr_stream_inproc_invoker_new(const struct lmr_stream_handler_config *cfg, struct lmr_invoker **out,
                                              struct lmr_err *err);

#endif
