/*
 * The documents of a deployment: the execution role's least-privilege policy, its trust
 * policy, and the CloudFormation template. Pure functions of the options (no calls), so that
 * --print-policy, --template and deploy itself show the same thing.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "aws/lambda_api.h"
#include "deploy.h"
#include "lambda/roles.h"

/* aws, aws-cn or aws-us-gov, from the region. */
static const char *partition_of(const char *region)
{
    if (!strncmp(region, "cn-", 3))
        return "aws-cn";
    if (!strncmp(region, "us-gov-", 7))
        return "aws-us-gov";
    return "aws";
}

struct arn_ctx {
    bool cfn;
    const char *partition, *region, *account;
};

/* An ARN string, or {"Fn::Sub": string} in a template. */
static json_t *arn(const struct arn_ctx *a, const char *fmt_service, const char *tail, bool regional)
{
    char s[1024];
    snprintf(s, sizeof s, "arn:%s:%s:%s:%s:%s", a->partition, fmt_service, regional ? a->region : "",
             regional ? a->account : "", tail);
    return a->cfn ? json_pack("{s:s}", "Fn::Sub", s) : json_string(s);
}

static json_t *statement(const char *sid, json_t *actions, json_t *resources)
{
    return json_pack("{s:s, s:s, s:o, s:o}", "Sid", sid, "Effect", "Allow", "Action", actions, "Resource", resources);
}

json_t *lmr_deploy_policy(const struct lmr_deploy_options *o, const char *region, const char *account,
                          bool for_template)
{
    struct arn_ctx a = {.cfn = for_template,
                        .partition = for_template ? "${AWS::Partition}" : partition_of(region),
                        .region = for_template ? "${AWS::Region}" : region,
                        .account = for_template ? "${AWS::AccountId}"
                                   : account    ? account
                                                : "*"};
    json_t *st = json_array();
    const char *p = o->function_prefix;
    char tail[512];

    /* S3: objects and listing of the named buckets only (and the template's optional bucket). */
    if (o->n_buckets || for_template) {
        json_t *objects = json_array(), *buckets = json_array();
        for (size_t i = 0; i < o->n_buckets; i++) {
            snprintf(tail, sizeof tail, "%s/*", o->buckets[i]);
            json_array_append_new(objects, arn(&a, "s3", tail, false));
            json_array_append_new(buckets, arn(&a, "s3", o->buckets[i], false));
        }
        if (for_template) {
            json_array_append_new(objects,
                                  json_pack("{s:[s,{s:s},{s:s}]}", "Fn::If", "CreateBucket", "Fn::Sub",
                                            "arn:${AWS::Partition}:s3:::${BucketName}/*", "Ref", "AWS::NoValue"));
            json_array_append_new(buckets,
                                  json_pack("{s:[s,{s:s},{s:s}]}", "Fn::If", "CreateBucket", "Fn::Sub",
                                            "arn:${AWS::Partition}:s3:::${BucketName}", "Ref", "AWS::NoValue"));
        }
        if (json_array_size(objects)) {
            json_array_append_new(st, statement("DataObjects",
                                                json_pack("[s,s,s,s]", "s3:GetObject", "s3:PutObject",
                                                          "s3:DeleteObject", "s3:AbortMultipartUpload"),
                                                objects));
            json_array_append_new(st, statement("DataBuckets", json_pack("[s]", "s3:ListBucket"), buckets));
        } else {
            json_decref(objects);
            json_decref(buckets);
        }
    }

    /* Lambda: the coordinator invokes the tasks and itself, only within the deployment. */
    snprintf(tail, sizeof tail, "function:%s-*", p);
    json_array_append_new(st, statement("InvokeDeployment", json_pack("[s]", "lambda:InvokeFunction"),
                                        json_pack("[o]", arn(&a, "lambda", tail, true))));

    /* CloudWatch Logs: write to the functions' own log groups (deploy creates them). */
    json_t *logs = json_array();
    for (int i = 0; i < LMR_DEPLOYABLE_ROLE_COUNT; i++) {
        snprintf(tail, sizeof tail, "log-group:/aws/lambda/%s-%s:*", p, lmr_deployable_roles[i]);
        json_array_append_new(logs, arn(&a, "logs", tail, true));
    }
    json_array_append_new(
        st, statement("FunctionLogs", json_pack("[s,s]", "logs:CreateLogStream", "logs:PutLogEvents"), logs));

    /* Kinesis and the on-failure destination: only with a stream. */
    if (o->stream_arn) {
        json_array_append_new(
            st, statement("ReadStream",
                          json_pack("[s,s,s,s,s,s]", "kinesis:DescribeStream", "kinesis:DescribeStreamSummary",
                                    "kinesis:GetRecords", "kinesis:GetShardIterator", "kinesis:ListShards",
                                    "kinesis:SubscribeToShard"),
                          json_pack("[s]", o->stream_arn)));
        if (o->on_failure_arn) {
            bool sqs = strstr(o->on_failure_arn, ":sqs:") != NULL;
            json_array_append_new(st, statement("OnFailureDestination",
                                                json_pack("[s]", sqs ? "sqs:SendMessage" : "sns:Publish"),
                                                json_pack("[s]", o->on_failure_arn)));
        }
    }
    return json_pack("{s:s, s:o}", "Version", "2012-10-17", "Statement", st);
}

json_t *lmr_deploy_trust_policy(void)
{
    return json_pack("{s:s, s:[{s:s, s:{s:s}, s:s}]}", "Version", "2012-10-17", "Statement", "Effect", "Allow",
                     "Principal", "Service", "lambda.amazonaws.com", "Action", "sts:AssumeRole");
}

/* "mapper" -> "Mapper" + suffix: a CloudFormation logical id. */
static void logical_id(char *out, size_t cap, const char *role, const char *suffix)
{
    snprintf(out, cap, "%s%s", role, suffix);
    out[0] = (char)toupper((unsigned char)out[0]);
}

json_t *lmr_deploy_template(const struct lmr_deploy_options *o)
{
    const char *p = o->function_prefix;
    json_t *res = json_object();
    json_t *tags = json_pack("[{s:s, s:s}]", "Key", LMR_DEPLOY_TAG, "Value", p);
    char name[256], id[128];

    json_t *role_ref;
    if (o->role_arn) {
        role_ref = json_string(o->role_arn);
    } else {
        snprintf(name, sizeof name, "%s-role", p);
        json_object_set_new(res, "ExecutionRole",
                            json_pack("{s:s, s:{s:s, s:o, s:[{s:s, s:o}], s:O}}", "Type", "AWS::IAM::Role",
                                      "Properties", "RoleName", name, "AssumeRolePolicyDocument",
                                      lmr_deploy_trust_policy(), "Policies", "PolicyName", LMR_DEPLOY_POLICY_NAME,
                                      "PolicyDocument", lmr_deploy_policy(o, "", NULL, true), "Tags", tags));
        role_ref = json_pack("{s:[s,s]}", "Fn::GetAtt", "ExecutionRole", "Arn");
    }
    json_object_set_new(res, "DataBucket",
                        json_pack("{s:s, s:s, s:s, s:{s:{s:s}, s:O}}", "Type", "AWS::S3::Bucket", "Condition",
                                  "CreateBucket", "DeletionPolicy", "Retain", "Properties", "BucketName", "Ref",
                                  "BucketName", "Tags", tags));
    for (int i = 0; i < LMR_DEPLOYABLE_ROLE_COUNT; i++) {
        const char *role = lmr_deployable_roles[i];
        char log_id[128], fn[128], group[256];
        logical_id(log_id, sizeof log_id, role, "LogGroup");
        logical_id(id, sizeof id, role, "Function");
        snprintf(fn, sizeof fn, "%s-%s", p, role);
        snprintf(group, sizeof group, "/aws/lambda/%s", fn);
        json_object_set_new(res, log_id,
                            json_pack("{s:s, s:{s:s, s:i, s:O}}", "Type", "AWS::Logs::LogGroup", "Properties",
                                      "LogGroupName", group, "RetentionInDays", (int)o->log_retention_days, "Tags",
                                      tags));
        json_t *props = json_pack("{s:s, s:s, s:s, s:O, s:{s:{s:s}, s:{s:s}}, s:i, s:i, s:[s], s:{s:{s:s}}, s:O}",
                                  "FunctionName", fn, "Runtime", LMR_LAMBDA_RUNTIME_PROVIDED_AL2023, "Handler", role,
                                  "Role", role_ref, "Code", "S3Bucket", "Ref", "CodeBucket", "S3Key", "Ref", "CodeKey",
                                  "MemorySize", (int)o->memory_mb, "Timeout", (int)o->timeout_s, "Architectures",
                                  o->architecture, "Environment", "Variables", "LMR_FUNCTION_PREFIX", p, "Tags", tags);
        json_object_set_new(
            res, id,
            json_pack("{s:s, s:[s], s:o}", "Type", "AWS::Lambda::Function", "DependsOn", log_id, "Properties", props));
    }
    if (o->stream_arn) {
        json_t *props =
            json_pack("{s:s, s:{s:s}, s:s, s:i, s:i, s:i, s:i, s:b, s:[s]}", "EventSourceArn", o->stream_arn,
                      "FunctionName", "Ref", "StreamFunction", "StartingPosition", o->starting_position, "BatchSize",
                      (int)o->batch_size, "TumblingWindowInSeconds", (int)o->window_s, "ParallelizationFactor",
                      (int)o->parallelization_factor, "MaximumRetryAttempts", (int)o->max_retry_attempts,
                      "BisectBatchOnFunctionError", 1, "FunctionResponseTypes", "ReportBatchItemFailures");
        if (o->on_failure_arn)
            json_object_set_new(props, "DestinationConfig",
                                json_pack("{s:{s:s}}", "OnFailure", "Destination", o->on_failure_arn));
        json_object_set_new(res, "StreamEventSourceMapping",
                            json_pack("{s:s, s:o}", "Type", "AWS::Lambda::EventSourceMapping", "Properties", props));
    }
    json_decref(role_ref);
    json_decref(tags);

    char desc[512];
    snprintf(desc, sizeof desc, "lambdamr deployment '%s' (written by lambdamr deploy --template)", p);
    json_t *outputs = json_object();
    for (int i = 0; i < LMR_DEPLOYABLE_ROLE_COUNT; i++) {
        char out_id[128];
        logical_id(id, sizeof id, lmr_deployable_roles[i], "Function");
        logical_id(out_id, sizeof out_id, lmr_deployable_roles[i], "FunctionArn");
        json_object_set_new(outputs, out_id, json_pack("{s:{s:[s,s]}}", "Value", "Fn::GetAtt", id, "Arn"));
    }
    return json_pack(
        "{s:s, s:s, s:{s:{s:s, s:s}, s:{s:s, s:s}, s:{s:s, s:s, s:s}}, s:{s:{s:[{s:[{s:s}, s]}]}}, s:o, s:o}",
        "AWSTemplateFormatVersion", "2010-09-09", "Description", desc, "Parameters", "CodeBucket", "Type", "String",
        "Description", "the S3 bucket holding the function package (lambdamr package)", "CodeKey", "Type", "String",
        "Description", "the key of the function package zip in CodeBucket", "BucketName", "Type", "String", "Default",
        "", "Description", "optional: the name of a bucket to create for the job's data (empty: create none)",
        "Conditions", "CreateBucket", "Fn::Not", "Fn::Equals", "Ref", "BucketName", "", "Resources", res, "Outputs",
        outputs);
}
