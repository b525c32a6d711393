/*
 * lambdamr deploy / undeploy: flag parsing and printing only; the deployment logic is in
 * deploy/ (deploy.h).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "deploy.h"
#include "lambda/memory.h"
#include "util/misc.h"

static void deploy_usage(FILE *f)
{
    fprintf(f,
            "usage: lambdamr deploy --function-prefix P --zip FILE [options]\n"
            "       lambdamr deploy --function-prefix P --template FILE [options]\n"
            "       lambdamr deploy --function-prefix P --print-policy [options]\n"
            "\n"
            "Create or update the Lambda functions P-mapper, P-reducer, P-stream and P-coordinator\n"
            "(runtime provided.al2023, handler = the role) from a package built by 'lambdamr package',\n"
            "an execution role P-role with a least-privilege policy (unless --role), and a log group\n"
            "/aws/lambda/P-ROLE per function with a retention. A second deploy with the same zip and\n"
            "settings changes nothing and says so. Everything created carries the tag\n"
            "lambdamr:deployment=P; 'lambdamr undeploy --function-prefix P' removes exactly that.\n"
            "\n"
            "options:\n"
            "      --function-prefix P     the deployment's name (at most 52 characters: letters, digits, - _)\n"
            "      --zip FILE              the function package (lambdamr package)\n"
            "      --memory MB             each function's memory, 128-10240 (default 1024)\n"
            "      --timeout SECONDS       each function's timeout, 1-900 (default 900)\n"
            "      --role ARN              use this execution role instead of creating P-role\n"
            "      --bucket NAME           an S3 bucket the jobs read or write (repeatable: input, output, work)\n"
            "      --log-retention-days N  retention of the log groups (default 7)\n"
            "      --architecture A        x86_64 or arm64 (default: this build's, %s)\n"
            "      --stream ARN            also map this Kinesis stream to P-stream (event source mapping):\n"
            "        --window S              TumblingWindowInSeconds, 0-900 (default 60)\n"
            "        --batch-size N          BatchSize, 1-10000 (default 100)\n"
            "        --parallelization-factor N  1-10 (default 1)\n"
            "        --max-retry-attempts N  -1 (until the record expires) to 10000 (default -1)\n"
            "        --on-failure ARN        SQS queue or SNS topic for batches that keep failing\n"
            "        --starting-position P   TRIM_HORIZON (default) or LATEST\n"
            "      --template FILE         write the equivalent CloudFormation template (JSON, which is also\n"
            "                              YAML) instead of calling AWS; the code's S3 bucket and key are\n"
            "                              its parameters CodeBucket and CodeKey\n"
            "      --print-policy          print the IAM policy deploy would put on P-role and exit\n"
            "  -h, --help                  this help\n"
            "\n"
            "AWS credentials, region and endpoints come from the environment as for the AWS CLI\n"
            "(AWS_ENDPOINT_URL_LAMBDA, _IAM, _LOGS or AWS_ENDPOINT_URL for emulators).\n",
            lmr_deploy_build_architecture());
}

static int usage_error(const char *cmd, const char *fmt, const char *what)
{
    fprintf(stderr, "lambdamr %s: ", cmd);
    fprintf(stderr, fmt, what);
    fprintf(stderr, "\nrun 'lambdamr %s --help' for the options\n", cmd);
    return 2;
}

static int number(const char *name, const char *s, int64_t min, int64_t max, int64_t *out)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || v < min || v > max) {
        fprintf(stderr, "lambdamr deploy: --%s '%s' is not a whole number\n", name, s);
        return -1;
    }
    *out = v;
    return 0;
}

enum {
    OPT_PREFIX = 256,
    OPT_ZIP,
    OPT_MEMORY,
    OPT_TIMEOUT,
    OPT_ROLE,
    OPT_BUCKET,
    OPT_RETENTION,
    OPT_ARCH,
    OPT_STREAM,
    OPT_WINDOW,
    OPT_BATCH,
    OPT_PARALLEL,
    OPT_RETRIES,
    OPT_ONFAIL,
    OPT_START,
    OPT_TEMPLATE,
    OPT_PRINT_POLICY,
};

static int write_template(const struct lmr_deploy_options *o, const char *path)
{
    json_t *t = lmr_deploy_template(o);
    char *text = t ? json_dumps(t, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(t);
    if (!text) {
        fprintf(stderr, "lambdamr deploy: out of memory writing the template\n");
        return 1;
    }
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    bool ok = f && fputs(text, f) >= 0 && fputc('\n', f) != EOF;
    if (f && fclose(f))
        ok = false;
    if (ok && rename(tmp, path))
        ok = false;
    free(text);
    if (!ok) {
        perror("lambdamr deploy: writing the template");
        remove(tmp);
        return 1;
    }
    printf("wrote the CloudFormation template of deployment '%s' to %s; create the stack with\n"
           "  aws cloudformation create-stack --stack-name %s --template-body file://%s --capabilities "
           "CAPABILITY_NAMED_IAM \\\n"
           "    --parameters ParameterKey=CodeBucket,ParameterValue=BUCKET ParameterKey=CodeKey,ParameterValue=KEY\n",
           o->function_prefix, path, o->function_prefix, path);
    return 0;
}

int lmr_cmd_deploy(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"function-prefix", required_argument, 0, OPT_PREFIX},
        {"zip", required_argument, 0, OPT_ZIP},
        {"memory", required_argument, 0, OPT_MEMORY},
        {"timeout", required_argument, 0, OPT_TIMEOUT},
        {"role", required_argument, 0, OPT_ROLE},
        {"bucket", required_argument, 0, OPT_BUCKET},
        {"log-retention-days", required_argument, 0, OPT_RETENTION},
        {"architecture", required_argument, 0, OPT_ARCH},
        {"stream", required_argument, 0, OPT_STREAM},
        {"window", required_argument, 0, OPT_WINDOW},
        {"batch-size", required_argument, 0, OPT_BATCH},
        {"parallelization-factor", required_argument, 0, OPT_PARALLEL},
        {"max-retry-attempts", required_argument, 0, OPT_RETRIES},
        {"on-failure", required_argument, 0, OPT_ONFAIL},
        {"starting-position", required_argument, 0, OPT_START},
        {"template", required_argument, 0, OPT_TEMPLATE},
        {"print-policy", no_argument, 0, OPT_PRINT_POLICY},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    struct lmr_deploy_options o = {.progress = stdout};
    const char *buckets[LMR_DEPLOY_MAX_BUCKETS + 1];
    const char *template_path = NULL;
    bool print_policy = false;
    int c;
    int64_t v;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_PREFIX:
            o.function_prefix = optarg;
            break;
        case OPT_ZIP:
            o.zip_path = optarg;
            break;
        case OPT_MEMORY:
            if (number("memory", optarg, 0, UINT32_MAX, &v))
                return 2;
            if (!v) { /* 0 means "the default" in the options: refuse it here */
                fprintf(stderr,
                        "lambdamr deploy: ValidationException: --memory 0 is outside Lambda's %u-%u MB; give a "
                        "memory size in that range\n",
                        LMR_MEMORY_MIN_MB, LMR_MEMORY_MAX_MB);
                return 2;
            }
            o.memory_mb = (uint32_t)v;
            break;
        case OPT_TIMEOUT:
            if (number("timeout", optarg, 1, UINT32_MAX, &v))
                return 2;
            o.timeout_s = (uint32_t)v;
            break;
        case OPT_ROLE:
            o.role_arn = optarg;
            break;
        case OPT_BUCKET:
            if (o.n_buckets > LMR_DEPLOY_MAX_BUCKETS)
                return usage_error("deploy", "%s", "too many --bucket options");
            buckets[o.n_buckets++] = optarg;
            break;
        case OPT_RETENTION:
            if (number("log-retention-days", optarg, 1, UINT32_MAX, &v))
                return 2;
            o.log_retention_days = (uint32_t)v;
            break;
        case OPT_ARCH:
            o.architecture = optarg;
            break;
        case OPT_STREAM:
            o.stream_arn = optarg;
            break;
        case OPT_WINDOW:
            if (number("window", optarg, 0, UINT32_MAX, &v))
                return 2;
            o.window_s = (uint32_t)v;
            break;
        case OPT_BATCH:
            if (number("batch-size", optarg, 0, UINT32_MAX, &v))
                return 2;
            o.batch_size = v ? (uint32_t)v : UINT32_MAX;
            break;
        case OPT_PARALLEL:
            if (number("parallelization-factor", optarg, 0, UINT32_MAX, &v))
                return 2;
            o.parallelization_factor = v ? (uint32_t)v : UINT32_MAX;
            break;
        case OPT_RETRIES:
            if (number("max-retry-attempts", optarg, INT32_MIN, INT32_MAX, &v))
                return 2;
            o.max_retry_attempts = (int32_t)v;
            o.max_retry_attempts_given = true;
            break;
        case OPT_ONFAIL:
            o.on_failure_arn = optarg;
            break;
        case OPT_START:
            o.starting_position = optarg;
            break;
        case OPT_TEMPLATE:
            template_path = optarg;
            break;
        case OPT_PRINT_POLICY:
            print_policy = true;
            break;
        case 'h':
            deploy_usage(stdout);
            return 0;
        case ':':
            return usage_error("deploy", "%s needs a value", argv[optind - 1]);
        default:
            return usage_error("deploy", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return usage_error("deploy", "unexpected argument '%s'", argv[optind]);
    if (!o.function_prefix)
        return usage_error("deploy", "%s", "no --function-prefix given (the deployment's name, e.g. wc)");
    if (!o.zip_path && !template_path && !print_policy)
        return usage_error("deploy", "%s", "no --zip FILE given (build it with 'lambdamr package')");
    o.buckets = buckets;

    struct lmr_err err = {0};
    enum lmr_result r = lmr_deploy_validate(&o, &err);
    if (r) {
        fprintf(stderr, "lambdamr deploy: %s\n", err.msg);
        return 2;
    }
    if (print_policy) {
        /* The account is not known without a call: deploy fills it in from the role it creates. */
        const char *region = getenv("AWS_REGION") ? getenv("AWS_REGION") : getenv("AWS_DEFAULT_REGION");
        json_t *p = lmr_deploy_policy(&o, region && *region ? region : "us-east-1", NULL, false);
        char *text = p ? json_dumps(p, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
        if (text)
            printf("%s\n", text);
        free(text);
        json_decref(p);
        return text ? 0 : 1;
    }
    if (template_path)
        return write_template(&o, template_path);
    unsigned changes = 0;
    r = lmr_deploy(&o, &changes, &err);
    if (r) {
        fprintf(stderr, "lambdamr deploy: %s\n", err.msg);
        return 1;
    }
    if (changes)
        printf("deployment '%s': %u resource%s created or changed\n", o.function_prefix, changes,
               changes == 1 ? "" : "s");
    else
        printf("deployment '%s' is up to date: nothing changed\n", o.function_prefix);
    return 0;
}

int lmr_cmd_undeploy(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"function-prefix", required_argument, 0, OPT_PREFIX},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *prefix = NULL;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_PREFIX:
            prefix = optarg;
            break;
        case 'h':
            printf("usage: lambdamr undeploy --function-prefix P\n\n"
                   "Remove the deployment P: the event source mappings of its functions, the functions\n"
                   "P-mapper, P-reducer, P-stream, P-coordinator, their log groups and the role P-role, each\n"
                   "only if 'lambdamr deploy' created it (tag lambdamr:deployment=P). Buckets and their data\n"
                   "are never touched.\n");
            return 0;
        case ':':
            return usage_error("undeploy", "%s needs a value", argv[optind - 1]);
        default:
            return usage_error("undeploy", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return usage_error("undeploy", "unexpected argument '%s'", argv[optind]);
    if (!prefix || !*prefix)
        return usage_error("undeploy", "%s", "no --function-prefix given");
    struct lmr_err err = {0};
    unsigned removed = 0;
    enum lmr_result r = lmr_undeploy(prefix, stdout, &removed, &err);
    if (r) {
        fprintf(stderr, "lambdamr undeploy: %s\n", err.msg);
        return 1;
    }
    if (removed)
        printf("deployment '%s': %u resource%s removed\n", prefix, removed, removed == 1 ? "" : "s");
    else
        printf("deployment '%s': nothing to remove\n", prefix);
    return 0;
}
