/*
 * The documents of a deployment, generated without any call: the execution role's policy (only
 * the named buckets, the deployment's functions and log groups; Kinesis and the on-failure
 * destination only with a stream), the trust policy, the CloudFormation template (resources,
 * parameters, references), and deploy's checks of the settings.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "deploy.h"

static json_t *find_statement(json_t *policy, const char *sid)
{
    json_t *st;
    size_t i;
    json_array_foreach(json_object_get(policy, "Statement"), i, st)
    {
        if (!strcmp(json_string_value(json_object_get(st, "Sid")), sid))
            return st;
    }
    return NULL;
}

static const char *str_at(json_t *st, const char *key, size_t i)
{
    return json_string_value(json_array_get(json_object_get(st, key), i));
}

static void policy_is_least_privilege(void **state)
{
    (void)state;
    const char *buckets[] = {"in-bucket", "out-bucket"};
    struct lmr_deploy_options o = {.function_prefix = "wc", .buckets = buckets, .n_buckets = 2};
    assert_int_equal(lmr_deploy_validate(&o, NULL), LMR_OK);
    json_t *p = lmr_deploy_policy(&o, "eu-west-1", "111122223333", false);
    assert_non_null(p);
    assert_int_equal(json_array_size(json_object_get(p, "Statement")), 4);
    json_t *objects = find_statement(p, "DataObjects");
    assert_string_equal(str_at(objects, "Resource", 0), "arn:aws:s3:::in-bucket/*");
    assert_string_equal(str_at(objects, "Resource", 1), "arn:aws:s3:::out-bucket/*");
    assert_null(str_at(objects, "Resource", 2));
    json_t *list = find_statement(p, "DataBuckets");
    assert_string_equal(str_at(list, "Action", 0), "s3:ListBucket");
    assert_string_equal(str_at(list, "Resource", 0), "arn:aws:s3:::in-bucket");
    json_t *invoke = find_statement(p, "InvokeDeployment");
    assert_string_equal(str_at(invoke, "Action", 0), "lambda:InvokeFunction");
    assert_string_equal(str_at(invoke, "Resource", 0), "arn:aws:lambda:eu-west-1:111122223333:function:wc-*");
    json_t *logs = find_statement(p, "FunctionLogs");
    assert_string_equal(str_at(logs, "Resource", 3),
                        "arn:aws:logs:eu-west-1:111122223333:log-group:/aws/lambda/wc-coordinator:*");
    assert_null(find_statement(p, "ReadStream"));
    assert_null(find_statement(p, "OnFailureDestination"));
    json_decref(p);

    /* No bucket: no S3 statement at all; an unknown account is '*'; China's partition. */
    struct lmr_deploy_options none = {.function_prefix = "wc"};
    assert_int_equal(lmr_deploy_validate(&none, NULL), LMR_OK);
    p = lmr_deploy_policy(&none, "cn-north-1", NULL, false);
    assert_null(find_statement(p, "DataObjects"));
    assert_string_equal(str_at(find_statement(p, "InvokeDeployment"), "Resource", 0),
                        "arn:aws-cn:lambda:cn-north-1:*:function:wc-*");
    json_decref(p);
}

static void policy_with_stream(void **state)
{
    (void)state;
    struct lmr_deploy_options o = {.function_prefix = "st",
                                   .stream_arn = "arn:aws:kinesis:us-east-1:111122223333:stream/events",
                                   .on_failure_arn = "arn:aws:sns:us-east-1:111122223333:failed"};
    assert_int_equal(lmr_deploy_validate(&o, NULL), LMR_OK);
    assert_int_equal(o.window_s, 60);
    assert_int_equal(o.batch_size, 100);
    assert_int_equal(o.max_retry_attempts, -1);
    json_t *p = lmr_deploy_policy(&o, "us-east-1", "111122223333", false);
    json_t *read = find_statement(p, "ReadStream");
    assert_string_equal(str_at(read, "Resource", 0), o.stream_arn);
    assert_null(str_at(read, "Resource", 1));
    json_t *dest = find_statement(p, "OnFailureDestination");
    assert_string_equal(str_at(dest, "Action", 0), "sns:Publish");
    assert_string_equal(str_at(dest, "Resource", 0), o.on_failure_arn);
    json_decref(p);
}

static void template_has_the_resources(void **state)
{
    (void)state;
    const char *buckets[] = {"data"};
    struct lmr_deploy_options o = {.function_prefix = "cf", .buckets = buckets, .n_buckets = 1, .memory_mb = 2048};
    assert_int_equal(lmr_deploy_validate(&o, NULL), LMR_OK);
    json_t *t = lmr_deploy_template(&o);
    json_t *res = json_object_get(t, "Resources");
    assert_non_null(json_object_get(json_object_get(t, "Parameters"), "CodeBucket"));
    assert_non_null(json_object_get(json_object_get(t, "Parameters"), "CodeKey"));
    assert_string_equal(json_string_value(json_object_get(json_object_get(res, "ExecutionRole"), "Type")),
                        "AWS::IAM::Role");
    static const char *const roles[] = {"Mapper", "Reducer", "Stream", "Coordinator"};
    for (int i = 0; i < 4; i++) {
        char id[64];
        snprintf(id, sizeof id, "%sFunction", roles[i]);
        json_t *fn = json_object_get(res, id);
        assert_non_null(fn);
        json_t *props = json_object_get(fn, "Properties");
        assert_int_equal(json_integer_value(json_object_get(props, "MemorySize")), 2048);
        assert_string_equal(json_string_value(json_object_get(props, "Runtime")), "provided.al2023");
        assert_string_equal(
            json_string_value(json_object_get(json_object_get(json_object_get(props, "Code"), "S3Bucket"), "Ref")),
            "CodeBucket");
        assert_string_equal(
            json_string_value(json_array_get(json_object_get(json_object_get(props, "Role"), "Fn::GetAtt"), 0)),
            "ExecutionRole");
        snprintf(id, sizeof id, "%sLogGroup", roles[i]);
        assert_int_equal(json_integer_value(json_object_get(json_object_get(json_object_get(res, id), "Properties"),
                                                            "RetentionInDays")),
                         7);
    }
    assert_null(json_object_get(res, "StreamEventSourceMapping"));
    /* The role's policy uses the template's pseudo parameters. */
    json_t *policy = json_object_get(
        json_array_get(
            json_object_get(json_object_get(json_object_get(res, "ExecutionRole"), "Properties"), "Policies"), 0),
        "PolicyDocument");
    json_t *invoke = json_array_get(json_object_get(find_statement(policy, "InvokeDeployment"), "Resource"), 0);
    assert_string_equal(json_string_value(json_object_get(invoke, "Fn::Sub")),
                        "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:cf-*");
    json_decref(t);

    /* With --role: no role resource, the ARN is used as it is. */
    struct lmr_deploy_options given = {.function_prefix = "cf", .role_arn = "arn:aws:iam::111122223333:role/mine"};
    assert_int_equal(lmr_deploy_validate(&given, NULL), LMR_OK);
    t = lmr_deploy_template(&given);
    res = json_object_get(t, "Resources");
    assert_null(json_object_get(res, "ExecutionRole"));
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(json_object_get(res, "MapperFunction"), "Properties"), "Role")),
                        given.role_arn);
    json_decref(t);
}

static void settings_are_checked(void **state)
{
    (void)state;
    struct lmr_err err = {0};
    char prefix[54];
    memset(prefix, 'p', 53);
    prefix[53] = '\0'; /* P-coordinator would be 65 characters */
    struct lmr_deploy_options o = {.function_prefix = prefix};
    assert_int_equal(lmr_deploy_validate(&o, &err), LMR_ERR_INVALID);
    assert_non_null(strstr(err.msg, "at most 52 characters"));
    prefix[52] = '\0';
    o = (struct lmr_deploy_options){.function_prefix = prefix};
    assert_int_equal(lmr_deploy_validate(&o, &err), LMR_OK);
    o = (struct lmr_deploy_options){.function_prefix = "ok", .memory_mb = 127};
    assert_int_equal(lmr_deploy_validate(&o, &err), LMR_ERR_INVALID);
    assert_non_null(strstr(err.msg, "ValidationException"));
    o = (struct lmr_deploy_options){.function_prefix = "ok", .architecture = "sparc"};
    assert_int_equal(lmr_deploy_validate(&o, &err), LMR_ERR_INVALID);
    o = (struct lmr_deploy_options){.function_prefix = "ok", .role_arn = "not-an-arn"};
    assert_int_equal(lmr_deploy_validate(&o, &err), LMR_ERR_INVALID);
    o = (struct lmr_deploy_options){
        .function_prefix = "ok", .stream_arn = "arn:aws:kinesis:us-east-1:1:stream/s", .parallelization_factor = 11};
    assert_int_equal(lmr_deploy_validate(&o, &err), LMR_ERR_INVALID);
    assert_non_null(strstr(err.msg, "--parallelization-factor 11"));
    const char *bad_bucket[] = {"s3://b"};
    o = (struct lmr_deploy_options){.function_prefix = "ok", .buckets = bad_bucket, .n_buckets = 1};
    assert_int_equal(lmr_deploy_validate(&o, &err), LMR_ERR_INVALID);
    o = (struct lmr_deploy_options){.function_prefix = "ok-1_x"};
    assert_int_equal(lmr_deploy_validate(&o, &err), LMR_OK);
    assert_int_equal(o.memory_mb, 1024);
    assert_int_equal(o.timeout_s, 900);
    assert_int_equal(o.log_retention_days, 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(policy_is_least_privilege),
        cmocka_unit_test(policy_with_stream),
        cmocka_unit_test(template_has_the_resources),
        cmocka_unit_test(settings_are_checked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
