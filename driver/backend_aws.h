/*
 * `run --backend aws`: what the driver checks before it plans a job on deployed functions.
 * Every location must be s3:// (a Lambda function cannot read this machine's files), and the
 * task memory is the deployed functions' (GetFunctionConfiguration of PREFIX-mapper and
 * PREFIX-reducer), never a flag that could disagree with it.
 */
#ifndef LMR_DRIVER_BACKEND_AWS_H
#define LMR_DRIVER_BACKEND_AWS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/result.h"

struct lmr_backend_aws_options {
    const char *function_prefix; /* Required: the deployment (PREFIX-mapper, PREFIX-reducer) */
    char *const *inputs;         /* Required: the --input locations */
    size_t ninputs;
    const char *output; /* Required */
    const char *work;   /* Optional */
    bool memory_given;  /* --memory was on the command line */
};

/**
 * Refuse local locations, then read the deployed memory. *memory_mb is --memory's value on
 * entry (when memory_given) and the deployed functions' memory on success. @return
 * LMR_ERR_INVALID for a local path or a --memory that disagrees (the message says which to
 * change), LMR_ERR_NOT_FOUND when a function is not deployed, else the API's error.
 */
enum lmr_result lmr_backend_aws_prepare(const struct lmr_backend_aws_options *o, uint32_t *memory_mb,
                                        struct lmr_err *err);

#endif
