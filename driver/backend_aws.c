/* run --backend aws: s3:// locations only, and the task memory of the deployed functions. */
#include "backend_aws.h"

#include <stdio.h>
#include <string.h>

#include "aws/lambda_api.h"
#include "lambda/roles.h"
#include "util/log.h"

static enum lmr_result check_location(const char *flag, const char *uri, struct lmr_err *err)
{
    if (!strncmp(uri, "s3://", 5))
        return LMR_OK;
    return lmr_fail(err, LMR_ERR_INVALID,
                    "%s '%s' is not in S3: with --backend aws the tasks run in AWS Lambda, which cannot read or "
                    "write this machine's files; upload the data (aws s3 cp) and give an s3://BUCKET/PREFIX location",
                    flag, uri);
}

enum lmr_result lmr_backend_aws_prepare(const struct lmr_backend_aws_options *o, uint32_t *memory_mb,
                                        struct lmr_err *err)
{
    enum lmr_result r = LMR_OK;
    for (size_t i = 0; !r && i < o->ninputs; i++)
        r = check_location("--input", o->inputs[i], err);
    if (!r)
        r = check_location("--output", o->output, err);
    if (!r && o->work)
        r = check_location("--work", o->work, err);
    if (r)
        return r;

    struct lmr_aws_client *c = NULL;
    if ((r = lmr_aws_client_new(NULL, &c, err)))
        return r;
    static const char *const roles[] = {LMR_ROLE_MAPPER, LMR_ROLE_REDUCER};
    uint32_t deployed[2] = {0, 0};
    char names[2][128];
    for (int i = 0; !r && i < 2; i++) {
        snprintf(names[i], sizeof names[i], "%s-%s", o->function_prefix, roles[i]);
        struct lmr_lambda_function_config cfg = {0};
        r = lmr_lambda_get_function_configuration(c, names[i], &cfg, err);
        if (r == LMR_ERR_NOT_FOUND)
            lmr_err_prefix(err,
                           "the deployment '%s' is incomplete or missing (deploy it with 'lambdamr deploy "
                           "--function-prefix %s --zip FILE')",
                           o->function_prefix, o->function_prefix);
        deployed[i] = cfg.memory_mb;
        lmr_lambda_function_config_clean_up(&cfg);
    }
    lmr_aws_client_destroy(c);
    if (r)
        return r;
    if (deployed[0] != deployed[1])
        return lmr_fail(err, LMR_ERR_INVALID,
                        "the deployed functions disagree on memory: %s has %u MB and %s %u MB; deploy them again with "
                        "one size ('lambdamr deploy --function-prefix %s --memory MB')",
                        names[0], deployed[0], names[1], deployed[1], o->function_prefix);
    if (o->memory_given && *memory_mb != deployed[0])
        return lmr_fail(err, LMR_ERR_INVALID,
                        "--memory %u disagrees with the deployed %s, which has %u MB (the tasks get what Lambda "
                        "gives the function); drop --memory to use %u MB, or redeploy with 'lambdamr deploy "
                        "--function-prefix %s --memory %u'",
                        *memory_mb, names[0], deployed[0], deployed[0], o->function_prefix, *memory_mb);
    LMR_INFO("using the deployed memory of %s and %s: %u MB", names[0], names[1], deployed[0]);
    *memory_mb = deployed[0];
    return LMR_OK;
}
