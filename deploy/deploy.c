/*
 * deploy and undeploy through the Lambda, IAM and CloudWatch Logs APIs. Order of deploy:
 * role (and its policy), log groups, functions, event source mapping, each compared with what
 * exists and changed only where it differs. What this run created is recorded, and removed
 * again in reverse order when a later step fails; a resource that existed before is never
 * deleted by deploy (changes made to it are not rolled back: deploy again to converge).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws/iam_api.h"
#include "aws/lambda_api.h"
#include "aws/logs_api.h"
#include "deploy.h"
#include "lambda/roles.h"
#include "util/misc.h"

#define N_ROLES LMR_DEPLOYABLE_ROLE_COUNT

struct run {
    struct lmr_deploy_options *o;
    struct lmr_aws_client *c;
    char *zip;
    size_t zip_len;
    char sha[64];
    char role_name[80], role_arn[512], account[16];
    json_t *tags; /* {"lambdamr:deployment": PREFIX} */
    json_t *env;  /* the functions' environment */
    unsigned changes;
    struct {
        bool role, role_policy, group[N_ROLES], fn[N_ROLES];
        char esm[64];
    } made;
};

static void say(FILE *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(FILE *f, const char *fmt, ...)
{
    if (!f)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fputc('\n', f);
    fflush(f);
}

static bool ours(json_t *tags, const char *prefix)
{
    const char *v = json_string_value(json_object_get(tags, LMR_DEPLOY_TAG));
    return v && !strcmp(v, prefix);
}

static void fn_name(char *out, size_t cap, const char *prefix, int i)
{
    snprintf(out, cap, "%s-%s", prefix, lmr_deployable_roles[i]);
}

static void group_name(char *out, size_t cap, const char *prefix, int i)
{
    snprintf(out, cap, "/aws/lambda/%s-%s", prefix, lmr_deployable_roles[i]);
}

/* ---- the role -------------------------------------------------------------------------------------------------- */

static enum lmr_result step_role(struct run *d, struct lmr_err *err)
{
    struct lmr_deploy_options *o = d->o;
    struct lmr_iam_role role = {0};
    enum lmr_result r;
    if (o->role_arn) {
        snprintf(d->role_name, sizeof d->role_name, "%s", lmr_iam_role_name_of_arn(o->role_arn));
        r = lmr_iam_get_role(d->c, d->role_name, &role, err);
        if (r == LMR_ERR_NOT_FOUND)
            r = lmr_fail(err, LMR_ERR_INVALID,
                         "InvalidParameterValueException: --role '%s' does not exist (IAM NoSuchEntity), so Lambda "
                         "could not assume it; give an existing role's ARN, or drop --role to let deploy create "
                         "'%s-role'",
                         o->role_arn, o->function_prefix);
        if (!r) {
            snprintf(d->role_arn, sizeof d->role_arn, "%s", o->role_arn);
            snprintf(d->account, sizeof d->account, "%s", role.account_id);
            say(o->progress, "IAM role %s: given with --role, used as it is", d->role_name);
        }
        lmr_iam_role_clean_up(&role);
        return r;
    }
    snprintf(d->role_name, sizeof d->role_name, "%s-role", o->function_prefix);
    r = lmr_iam_get_role(d->c, d->role_name, &role, err);
    if (r == LMR_ERR_NOT_FOUND) {
        json_t *trust = lmr_deploy_trust_policy();
        char *text = json_dumps(trust, JSON_COMPACT);
        char desc[256];
        snprintf(desc, sizeof desc, "execution role of the lambdamr deployment %s", o->function_prefix);
        r = text ? lmr_iam_create_role(d->c, d->role_name, text, desc, d->tags, &role, err)
                 : lmr_fail(err, LMR_ERR_NOMEM, "IAM role '%s': out of memory", d->role_name);
        free(text);
        json_decref(trust);
        if (r)
            goto out;
        d->made.role = true;
        d->changes++;
        say(o->progress, "IAM role %s: created", d->role_name);
    } else if (r) {
        goto out;
    } else if (!ours(role.tags, o->function_prefix)) {
        r = lmr_fail(err, LMR_ERR_EXISTS,
                     "EntityAlreadyExists: IAM role '%s' exists and is not one lambdamr deploy created for '%s' (no "
                     "tag %s=%s); give it with --role ARN to use it, or choose another --function-prefix",
                     d->role_name, o->function_prefix, LMR_DEPLOY_TAG, o->function_prefix);
        goto out;
    }
    snprintf(d->role_arn, sizeof d->role_arn, "%s", role.arn);
    snprintf(d->account, sizeof d->account, "%s", role.account_id);

    json_t *want = lmr_deploy_policy(o, lmr_aws_client_config(d->c)->region, d->account, false), *have = NULL;
    r = lmr_iam_get_role_policy(d->c, d->role_name, LMR_DEPLOY_POLICY_NAME, &have, err);
    bool existed = r == LMR_OK;
    if (r == LMR_ERR_NOT_FOUND)
        r = LMR_OK;
    if (!r && !(have && json_equal(have, want))) {
        char *text = json_dumps(want, JSON_COMPACT);
        r = text ? lmr_iam_put_role_policy(d->c, d->role_name, LMR_DEPLOY_POLICY_NAME, text, err)
                 : lmr_fail(err, LMR_ERR_NOMEM, "IAM role '%s': out of memory", d->role_name);
        free(text);
        if (!r) {
            d->made.role_policy = !existed;
            d->changes++;
            say(o->progress, "IAM role %s: policy %s %s", d->role_name, LMR_DEPLOY_POLICY_NAME,
                existed ? "updated" : "put");
        }
    } else if (!r && !d->made.role) {
        say(o->progress, "IAM role %s: unchanged", d->role_name);
    }
    json_decref(want);
    json_decref(have);
out:
    lmr_iam_role_clean_up(&role);
    return r;
}

/* ---- log groups ------------------------------------------------------------------------------------------------ */

static enum lmr_result step_log_group(struct run *d, int i, struct lmr_err *err)
{
    struct lmr_deploy_options *o = d->o;
    char name[256];
    group_name(name, sizeof name, o->function_prefix, i);
    bool found = false;
    uint32_t days = 0;
    enum lmr_result r = lmr_logs_describe_log_group(d->c, name, &found, &days, err);
    if (r)
        return r;
    if (!found) {
        if ((r = lmr_logs_create_log_group(d->c, name, d->tags, err)))
            return r;
        d->made.group[i] = true;
        d->changes++;
        r = lmr_logs_put_retention_policy(d->c, name, o->log_retention_days, err);
        if (!r)
            say(o->progress, "log group %s: created, retention %u days", name, o->log_retention_days);
        return r;
    }
    json_t *tags = NULL;
    if ((r = lmr_logs_list_tags(d->c, name, &tags, err)))
        return r;
    bool mine = ours(tags, o->function_prefix);
    json_decref(tags);
    if (!mine) {
        say(o->progress, "log group %s: exists and was not created by deploy; left as it is", name);
        return LMR_OK;
    }
    if (days == o->log_retention_days) {
        say(o->progress, "log group %s: unchanged", name);
        return LMR_OK;
    }
    r = lmr_logs_put_retention_policy(d->c, name, o->log_retention_days, err);
    if (!r) {
        d->changes++;
        say(o->progress, "log group %s: retention %u -> %u days", name, days, o->log_retention_days);
    }
    return r;
}

/* ---- functions ------------------------------------------------------------------------------------------------- */

static bool config_differs(const struct lmr_lambda_function_config *have, const struct lmr_lambda_function_spec *s)
{
    return strcmp(have->runtime, s->runtime) || strcmp(have->handler, s->handler) ||
           strcmp(have->role_arn, s->role_arn) || have->memory_mb != s->memory_mb || have->timeout_s != s->timeout_s ||
           !json_equal(have->environment, s->environment);
}

static enum lmr_result step_function(struct run *d, int i, struct lmr_err *err)
{
    struct lmr_deploy_options *o = d->o;
    char name[LMR_LAMBDA_FUNCTION_NAME_MAX + 1];
    fn_name(name, sizeof name, o->function_prefix, i);
    struct lmr_lambda_function_spec spec = {.name = name,
                                            .runtime = LMR_LAMBDA_RUNTIME_PROVIDED_AL2023,
                                            .handler = lmr_deployable_roles[i],
                                            .role_arn = d->role_arn,
                                            .memory_mb = o->memory_mb,
                                            .timeout_s = o->timeout_s,
                                            .architecture = o->architecture,
                                            .description = "lambdamr function (lambdamr deploy)",
                                            .environment = d->env,
                                            .tags = d->tags};
    struct lmr_lambda_function_config have = {0};
    enum lmr_result r = lmr_lambda_get_function(d->c, name, &have, err);
    if (r == LMR_ERR_NOT_FOUND) {
        r = lmr_lambda_create_function(d->c, &spec, d->zip, d->zip_len, d->made.role ? LMR_DEPLOY_ROLE_WAIT_MS : 0,
                                       NULL, err);
        if (!r) {
            d->made.fn[i] = true;
            d->changes++;
            r = lmr_lambda_wait_settled(d->c, name, 0, NULL, err);
        }
        if (!r)
            say(o->progress, "function %s: created (%s, %u MB, %u s, %s)", name, spec.runtime, spec.memory_mb,
                spec.timeout_s, spec.architecture);
        goto out;
    }
    if (r)
        goto out;
    if (!ours(have.tags, o->function_prefix)) {
        r = lmr_fail(err, LMR_ERR_EXISTS,
                     "ResourceConflictException: Lambda function '%s' exists and is not one lambdamr deploy created "
                     "for '%s' (no tag %s=%s); choose another --function-prefix",
                     name, o->function_prefix, LMR_DEPLOY_TAG, o->function_prefix);
        goto out;
    }
    bool changed = false;
    if ((r = lmr_lambda_wait_settled(d->c, name, 0, &have, err)))
        goto out;
    if (strcmp(have.code_sha256, d->sha) || strcmp(have.architecture, spec.architecture)) {
        if (!(r = lmr_lambda_update_function_code(d->c, name, d->zip, d->zip_len, spec.architecture, err)))
            r = lmr_lambda_wait_settled(d->c, name, 0, &have, err);
        if (r)
            goto out;
        changed = true;
        say(o->progress, "function %s: code updated (CodeSha256 %s)", name, d->sha);
    }
    if (config_differs(&have, &spec)) {
        if (!(r = lmr_lambda_update_function_configuration(d->c, &spec, err)))
            r = lmr_lambda_wait_settled(d->c, name, 0, &have, err);
        if (r)
            goto out;
        changed = true;
        say(o->progress, "function %s: configuration updated (%u MB, %u s)", name, spec.memory_mb, spec.timeout_s);
    }
    if (changed)
        d->changes++;
    else
        say(o->progress, "function %s: unchanged", name);
out:
    lmr_lambda_function_config_clean_up(&have);
    return r;
}

/* ---- the event source mapping ---------------------------------------------------------------------------------- */

static enum lmr_result step_mapping(struct run *d, struct lmr_err *err)
{
    struct lmr_deploy_options *o = d->o;
    char name[LMR_LAMBDA_FUNCTION_NAME_MAX + 1];
    snprintf(name, sizeof name, "%s-%s", o->function_prefix, LMR_ROLE_STREAM);
    struct lmr_lambda_esm_spec spec = {.function_name = name,
                                       .event_source_arn = o->stream_arn,
                                       .starting_position = o->starting_position,
                                       .batch_size = o->batch_size,
                                       .tumbling_window_s = o->window_s,
                                       .parallelization_factor = o->parallelization_factor,
                                       .maximum_retry_attempts = o->max_retry_attempts,
                                       .report_batch_item_failures = true,
                                       .bisect_batch_on_function_error = true,
                                       .on_failure_destination = o->on_failure_arn};
    json_t *list = NULL, *m;
    enum lmr_result r = lmr_lambda_list_event_source_mappings(d->c, name, &list, err);
    if (r)
        return r;
    size_t i;
    const char *existing = NULL;
    bool same = false;
    json_array_foreach(list, i, m)
    {
        const char *src = json_string_value(json_object_get(m, "EventSourceArn"));
        if (src && !strcmp(src, o->stream_arn)) {
            existing = json_string_value(json_object_get(m, "UUID"));
            same = lmr_lambda_esm_matches(m, &spec);
        }
    }
    if (existing && same) {
        say(o->progress, "event source mapping %s (%s -> %s): unchanged", existing, o->stream_arn, name);
    } else if (existing) {
        r = lmr_lambda_update_event_source_mapping(d->c, existing, &spec, err);
        if (!r) {
            d->changes++;
            say(o->progress, "event source mapping %s (%s -> %s): updated", existing, o->stream_arn, name);
        }
    } else {
        r = lmr_lambda_create_event_source_mapping(d->c, &spec, d->made.esm, sizeof d->made.esm, err);
        if (!r) {
            d->changes++;
            say(o->progress,
                "event source mapping %s (%s -> %s): created (window %u s, batch %u, parallelization %u, retries %d)",
                d->made.esm, o->stream_arn, name, o->window_s, o->batch_size, o->parallelization_factor,
                o->max_retry_attempts);
        }
    }
    json_decref(list);
    return r;
}

/* ---- rollback ---------------------------------------------------------------------------------------------------- */

static void rollback(struct run *d)
{
    struct lmr_err e = {0};
    FILE *f = d->o->progress;
    char name[256];
    if (d->made.esm[0] && !lmr_lambda_delete_event_source_mapping(d->c, d->made.esm, &e))
        say(f, "rolled back: event source mapping %s", d->made.esm);
    for (int i = N_ROLES - 1; i >= 0; i--) {
        fn_name(name, sizeof name, d->o->function_prefix, i);
        if (d->made.fn[i] && !lmr_lambda_delete_function(d->c, name, &e))
            say(f, "rolled back: function %s", name);
    }
    for (int i = N_ROLES - 1; i >= 0; i--) {
        group_name(name, sizeof name, d->o->function_prefix, i);
        if (d->made.group[i] && !lmr_logs_delete_log_group(d->c, name, &e))
            say(f, "rolled back: log group %s", name);
    }
    if ((d->made.role_policy || d->made.role) &&
        !lmr_iam_delete_role_policy(d->c, d->role_name, LMR_DEPLOY_POLICY_NAME, &e))
        say(f, "rolled back: policy %s of IAM role %s", LMR_DEPLOY_POLICY_NAME, d->role_name);
    if (d->made.role && !lmr_iam_delete_role(d->c, d->role_name, &e))
        say(f, "rolled back: IAM role %s", d->role_name);
}

enum lmr_result lmr_deploy(struct lmr_deploy_options *o, unsigned *changes, struct lmr_err *err)
{
    enum lmr_result r = lmr_deploy_validate(o, err);
    if (r)
        return r;
    if (!o->zip_path)
        return lmr_fail(err, LMR_ERR_INVALID, "no --zip FILE given; build the package with 'lambdamr package'");
    struct run d = {.o = o};
    if ((r = lmr_read_file(o->zip_path, LMR_LAMBDA_ZIP_DIRECT_MAX_BYTES + 1, &d.zip, &d.zip_len, err)))
        return r;
    lmr_lambda_code_sha256(d.zip, d.zip_len, d.sha, sizeof d.sha);
    d.tags = json_pack("{s:s}", LMR_DEPLOY_TAG, o->function_prefix);
    d.env = json_pack("{s:s}", "LMR_FUNCTION_PREFIX", o->function_prefix);
    if (!d.tags || !d.env)
        r = lmr_fail(err, LMR_ERR_NOMEM, "out of memory");
    if (!r)
        r = lmr_aws_client_new(NULL, &d.c, err);
    if (!r)
        r = step_role(&d, err);
    for (int i = 0; !r && i < N_ROLES; i++)
        r = step_log_group(&d, i, err);
    for (int i = 0; !r && i < N_ROLES; i++)
        r = step_function(&d, i, err);
    if (!r && o->stream_arn)
        r = step_mapping(&d, err);
    if (r && d.c) {
        lmr_err_prefix(err, "deploy of '%s' failed", o->function_prefix);
        rollback(&d);
    }
    if (changes)
        *changes = d.changes;
    lmr_aws_client_destroy(d.c);
    json_decref(d.tags);
    json_decref(d.env);
    free(d.zip);
    return r;
}

/* ---- undeploy ---------------------------------------------------------------------------------------------------- */

enum lmr_result lmr_undeploy(const char *prefix, FILE *f, unsigned *removed, struct lmr_err *err)
{
    unsigned n = 0;
    struct lmr_aws_client *c = NULL;
    enum lmr_result r = lmr_aws_client_new(NULL, &c, err);
    char name[256];
    for (int i = 0; !r && i < N_ROLES; i++) {
        fn_name(name, sizeof name, prefix, i);
        struct lmr_lambda_function_config have = {0};
        r = lmr_lambda_get_function(c, name, &have, err);
        bool mine = !r && ours(have.tags, prefix);
        lmr_lambda_function_config_clean_up(&have);
        if (r == LMR_ERR_NOT_FOUND) {
            r = LMR_OK;
            continue;
        }
        if (r)
            break;
        if (!mine) {
            say(f, "function %s: not created by lambdamr deploy for '%s' (no tag %s); left as it is", name, prefix,
                LMR_DEPLOY_TAG);
            continue;
        }
        json_t *list = NULL, *m;
        size_t k;
        r = lmr_lambda_list_event_source_mappings(c, name, &list, err);
        if (r == LMR_ERR_UNSUPPORTED) /* an endpoint without mappings (lambdamr serve) has none to delete */
            r = LMR_OK;
        json_array_foreach(list, k, m)
        {
            const char *uuid = json_string_value(json_object_get(m, "UUID"));
            if (!r && uuid && !(r = lmr_lambda_delete_event_source_mapping(c, uuid, err))) {
                n++;
                say(f, "event source mapping %s of %s: deleted", uuid, name);
            }
        }
        json_decref(list);
        if (!r && !(r = lmr_lambda_delete_function(c, name, err))) {
            n++;
            say(f, "function %s: deleted", name);
        }
    }
    for (int i = 0; !r && i < N_ROLES; i++) {
        group_name(name, sizeof name, prefix, i);
        bool found = false;
        json_t *tags = NULL;
        if ((r = lmr_logs_describe_log_group(c, name, &found, NULL, err)) || !found)
            continue;
        if ((r = lmr_logs_list_tags(c, name, &tags, err)))
            break;
        bool mine = ours(tags, prefix);
        json_decref(tags);
        if (!mine) {
            say(f, "log group %s: not created by lambdamr deploy for '%s'; left as it is", name, prefix);
            continue;
        }
        if (!(r = lmr_logs_delete_log_group(c, name, err))) {
            n++;
            say(f, "log group %s: deleted", name);
        }
    }
    if (!r) {
        struct lmr_iam_role role = {0};
        snprintf(name, sizeof name, "%s-role", prefix);
        r = lmr_iam_get_role(c, name, &role, err);
        if (!r && !ours(role.tags, prefix)) {
            say(f, "IAM role %s: not created by lambdamr deploy for '%s'; left as it is", name, prefix);
        } else if (!r) {
            r = lmr_iam_delete_role_policy(c, name, LMR_DEPLOY_POLICY_NAME, err);
            if (r == LMR_ERR_NOT_FOUND)
                r = LMR_OK;
            if (!r && !(r = lmr_iam_delete_role(c, name, err))) {
                n++;
                say(f, "IAM role %s: deleted", name);
            }
        } else if (r == LMR_ERR_NOT_FOUND) {
            r = LMR_OK;
        }
        lmr_iam_role_clean_up(&role);
    }
    if (r)
        lmr_err_prefix(err, "undeploy of '%s' stopped (%u resources removed so far; run it again)", prefix, n);
    if (removed)
        *removed = n;
    lmr_aws_client_destroy(c);
    return r;
}
