/*
 * Deploy's checks before the first call: every refusal names the AWS error type the call
 * would have met (or, for a zip without bootstrap, the error every invocation would meet) and
 * what to change. Also the zip's directory (libzip).
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <zip.h>

#include "aws/iam_api.h"
#include "aws/lambda_api.h"
#include "aws/logs_api.h"
#include "deploy.h"
#include "lambda/memory.h"
#include "lambda/roles.h"

const char *lmr_deploy_build_architecture(void)
{
#if defined(__aarch64__)
    return "arm64";
#else
    return "x86_64";
#endif
}

enum lmr_result lmr_zip_inspect(const char *path, struct lmr_zip_info *info, struct lmr_err *err)
{
    memset(info, 0, sizeof *info);
    struct stat st;
    if (stat(path, &st))
        return lmr_fail(err, LMR_ERR_IO, "cannot read the package '%s': %m; build it with 'lambdamr package'", path);
    info->zip_bytes = (uint64_t)st.st_size;
    int zerr = 0;
    zip_t *z = zip_open(path, ZIP_RDONLY, &zerr);
    if (!z) {
        zip_error_t ze;
        zip_error_init_with_code(&ze, zerr);
        enum lmr_result r =
            lmr_fail(err, LMR_ERR_FORMAT, "the package '%s' is not a zip file (%s); build it with 'lambdamr package'",
                     path, zip_error_strerror(&ze));
        zip_error_fini(&ze);
        return r;
    }
    zip_int64_t n = zip_get_num_entries(z, 0);
    info->entries = n > 0 ? (uint64_t)n : 0;
    info->bootstrap_executable = true;
    for (zip_int64_t i = 0; i < n; i++) {
        zip_stat_t zs;
        if (zip_stat_index(z, (zip_uint64_t)i, 0, &zs))
            continue;
        if (zs.valid & ZIP_STAT_SIZE)
            info->unzipped_bytes += zs.size;
        if ((zs.valid & ZIP_STAT_NAME) && !strcmp(zs.name, "bootstrap")) {
            info->has_bootstrap = true;
            zip_uint8_t opsys;
            zip_uint32_t attr;
            if (!zip_file_get_external_attributes(z, (zip_uint64_t)i, 0, &opsys, &attr) && opsys == ZIP_OPSYS_UNIX)
                info->bootstrap_executable = ((attr >> 16) & 0111) != 0;
        }
    }
    zip_discard(z);
    return LMR_OK;
}

static bool name_chars_ok(const char *s)
{
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '-' ||
              *s == '_'))
            return false;
    return true;
}

/* An S3 bucket name: 3-63 of a-z 0-9 . -, starting and ending with a letter or digit. */
static bool bucket_ok(const char *b)
{
    size_t n = strlen(b);
    if (n < 3 || n > 63)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((b[i] >= 'a' && b[i] <= 'z') || (b[i] >= '0' && b[i] <= '9') || b[i] == '.' || b[i] == '-'))
            return false;
    return b[0] != '.' && b[0] != '-' && b[n - 1] != '.' && b[n - 1] != '-';
}

static enum lmr_result check_zip(const char *path, struct lmr_err *err)
{
    struct lmr_zip_info zi;
    enum lmr_result r = lmr_zip_inspect(path, &zi, err);
    if (r)
        return r == LMR_ERR_FORMAT ? lmr_fail(err, LMR_ERR_INVALID, "InvalidParameterValueException: %s", err->msg) : r;
    if (!zi.has_bootstrap)
        return lmr_fail(err, LMR_ERR_INVALID,
                        "refusing '%s': it has no 'bootstrap' at its root, so Lambda would accept it and every "
                        "invocation would fail with Runtime.InvalidEntrypoint; build the package with 'lambdamr "
                        "package'",
                        path);
    if (!zi.bootstrap_executable)
        return lmr_fail(err, LMR_ERR_INVALID,
                        "refusing '%s': its 'bootstrap' is not executable, so every invocation would fail with "
                        "Runtime.InvalidEntrypoint (permission denied); build the package with 'lambdamr package'",
                        path);
    if (zi.zip_bytes > LMR_LAMBDA_ZIP_DIRECT_MAX_BYTES)
        return lmr_fail(err, LMR_ERR_TOO_LARGE,
                        "RequestEntityTooLargeException: '%s' is %llu bytes, over the %llu bytes (50 MB) Lambda takes "
                        "in a direct upload; make the package smaller (fewer --plugin/--file) or deploy with "
                        "--template, which takes the code from S3",
                        path, (unsigned long long)zi.zip_bytes, LMR_LAMBDA_ZIP_DIRECT_MAX_BYTES);
    if (zi.unzipped_bytes >= LMR_LAMBDA_UNZIPPED_MAX_BYTES)
        return lmr_fail(err, LMR_ERR_TOO_LARGE,
                        "InvalidParameterValueException: '%s' unpacks to %llu bytes; Lambda's unzipped size must be "
                        "smaller than %llu bytes (250 MB); make the package smaller (fewer --plugin/--file)",
                        path, (unsigned long long)zi.unzipped_bytes, LMR_LAMBDA_UNZIPPED_MAX_BYTES);
    return LMR_OK;
}

static bool arn_of(const char *arn, const char *service)
{
    char want[64];
    snprintf(want, sizeof want, ":%s:", service);
    return !strncmp(arn, "arn:", 4) && strstr(arn, want) != NULL;
}

enum lmr_result lmr_deploy_validate(struct lmr_deploy_options *o, struct lmr_err *err)
{
    if (!o->memory_mb)
        o->memory_mb = LMR_MEMORY_DEFAULT_MB;
    if (!o->timeout_s)
        o->timeout_s = LMR_DEPLOY_DEFAULT_TIMEOUT_S;
    if (!o->log_retention_days)
        o->log_retention_days = LMR_DEPLOY_DEFAULT_RETENTION_DAYS;
    if (!o->architecture)
        o->architecture = lmr_deploy_build_architecture();
    if (o->stream_arn) {
        if (!o->window_s)
            o->window_s = 60;
        if (!o->batch_size)
            o->batch_size = 100;
        if (!o->parallelization_factor)
            o->parallelization_factor = 1;
        if (!o->max_retry_attempts_given)
            o->max_retry_attempts = -1;
        if (!o->starting_position)
            o->starting_position = "TRIM_HORIZON";
    }

    const char *p = o->function_prefix;
    if (!p || !*p)
        return lmr_fail(err, LMR_ERR_INVALID, "ValidationException: no function prefix; give --function-prefix NAME");
    size_t longest = 0;
    const char *longest_role = "";
    for (int i = 0; i < LMR_DEPLOYABLE_ROLE_COUNT; i++)
        if (strlen(lmr_deployable_roles[i]) > longest) {
            longest = strlen(lmr_deployable_roles[i]);
            longest_role = lmr_deployable_roles[i];
        }
    if (!name_chars_ok(p))
        return lmr_fail(err, LMR_ERR_INVALID,
                        "ValidationException: --function-prefix '%s' would give function names Lambda refuses: use "
                        "only letters, digits, '-' and '_'",
                        p);
    if (strlen(p) + 1 + longest > LMR_LAMBDA_FUNCTION_NAME_MAX)
        return lmr_fail(err, LMR_ERR_INVALID,
                        "ValidationException: --function-prefix '%s' gives the function name '%s-%s' of %zu "
                        "characters, over Lambda's %d; use a prefix of at most %zu characters",
                        p, p, longest_role, strlen(p) + 1 + longest, LMR_LAMBDA_FUNCTION_NAME_MAX,
                        LMR_LAMBDA_FUNCTION_NAME_MAX - 1 - longest);
    if (o->memory_mb < LMR_MEMORY_MIN_MB || o->memory_mb > LMR_MEMORY_MAX_MB)
        return lmr_fail(err, LMR_ERR_INVALID,
                        "ValidationException: --memory %u is outside Lambda's %u-%u MB; give a memory size in that "
                        "range",
                        o->memory_mb, LMR_MEMORY_MIN_MB, LMR_MEMORY_MAX_MB);
    if (o->timeout_s > LMR_LAMBDA_TIMEOUT_MAX_S)
        return lmr_fail(err, LMR_ERR_INVALID,
                        "ValidationException: --timeout %u is over Lambda's %u seconds; give 1-%u", o->timeout_s,
                        LMR_LAMBDA_TIMEOUT_MAX_S, LMR_LAMBDA_TIMEOUT_MAX_S);
    if (!lmr_logs_retention_valid(o->log_retention_days))
        return lmr_fail(err, LMR_ERR_INVALID,
                        "InvalidParameterException: --log-retention-days %u is not a retention CloudWatch Logs "
                        "accepts; use one of %s",
                        o->log_retention_days, lmr_logs_retention_values());
    if (strcmp(o->architecture, "x86_64") && strcmp(o->architecture, "arm64"))
        return lmr_fail(err, LMR_ERR_INVALID, "ValidationException: --architecture '%s' is not one of x86_64, arm64",
                        o->architecture);
    if (o->n_buckets > LMR_DEPLOY_MAX_BUCKETS)
        return lmr_fail(err, LMR_ERR_INVALID, "ValidationException: %zu --bucket options; at most %d", o->n_buckets,
                        LMR_DEPLOY_MAX_BUCKETS);
    for (size_t i = 0; i < o->n_buckets; i++)
        if (!bucket_ok(o->buckets[i]))
            return lmr_fail(err, LMR_ERR_INVALID,
                            "InvalidBucketName: --bucket '%s' is not an S3 bucket name (3-63 of a-z, 0-9, '.', '-'); "
                            "give the bucket's name, not an s3:// URI",
                            o->buckets[i]);
    if (o->role_arn && !lmr_iam_role_name_of_arn(o->role_arn))
        return lmr_fail(err, LMR_ERR_INVALID,
                        "ValidationException: --role '%s' is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)",
                        o->role_arn);
    if (!o->role_arn && strlen(p) + 5 > 64)
        return lmr_fail(err, LMR_ERR_INVALID,
                        "ValidationException: the execution role '%s-role' would be over IAM's 64 characters; use a "
                        "shorter --function-prefix or give --role ARN",
                        p);
    bool stream_flags =
        o->on_failure_arn || o->window_s || o->batch_size || o->parallelization_factor || o->max_retry_attempts_given;
    if (!o->stream_arn && stream_flags)
        return lmr_fail(err, LMR_ERR_INVALID,
                        "--window, --batch-size, --parallelization-factor, --max-retry-attempts and --on-failure "
                        "configure the event source mapping; give --stream ARN too");
    if (o->stream_arn) {
        if (!arn_of(o->stream_arn, "kinesis") || !strstr(o->stream_arn, ":stream/"))
            return lmr_fail(err, LMR_ERR_INVALID,
                            "InvalidParameterValueException: --stream '%s' is not a Kinesis stream ARN "
                            "(arn:aws:kinesis:REGION:ACCOUNT:stream/NAME)",
                            o->stream_arn);
        if (o->window_s > 900)
            return lmr_fail(err, LMR_ERR_INVALID, "ValidationException: --window %u is over Lambda's 900 seconds",
                            o->window_s);
        if (o->batch_size < 1 || o->batch_size > 10000)
            return lmr_fail(err, LMR_ERR_INVALID, "ValidationException: --batch-size %u is outside 1-10000",
                            o->batch_size);
        if (o->parallelization_factor < 1 || o->parallelization_factor > 10)
            return lmr_fail(err, LMR_ERR_INVALID, "ValidationException: --parallelization-factor %u is outside 1-10",
                            o->parallelization_factor);
        if (o->max_retry_attempts < -1 || o->max_retry_attempts > 10000)
            return lmr_fail(err, LMR_ERR_INVALID,
                            "ValidationException: --max-retry-attempts %d is outside -1 (forever) to 10000",
                            o->max_retry_attempts);
        if (o->on_failure_arn && !arn_of(o->on_failure_arn, "sqs") && !arn_of(o->on_failure_arn, "sns"))
            return lmr_fail(err, LMR_ERR_INVALID,
                            "InvalidParameterValueException: --on-failure '%s' is not an SQS queue or SNS topic ARN",
                            o->on_failure_arn);
        if (strcmp(o->starting_position, "TRIM_HORIZON") && strcmp(o->starting_position, "LATEST"))
            return lmr_fail(err, LMR_ERR_INVALID,
                            "ValidationException: starting position '%s' is not TRIM_HORIZON or LATEST",
                            o->starting_position);
    }
    if (o->zip_path)
        return check_zip(o->zip_path, err);
    return LMR_OK;
}
