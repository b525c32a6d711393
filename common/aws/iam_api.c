/* The IAM API for execution roles (query protocol, XML answers). */
#include "aws/iam_api.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws/xml.h"

#define IAM_VERSION "2010-05-08"
#define MAX_IAM_RESPONSE_BYTES (1u << 20)
#define MAX_IAM_FORM_BYTES (256u << 10)

void lmr_iam_role_clean_up(struct lmr_iam_role *role)
{
    if (!role)
        return;
    json_decref(role->tags);
    json_decref(role->assume_role_policy);
    role->tags = role->assume_role_policy = NULL;
}

const char *lmr_iam_role_name_of_arn(const char *arn)
{
    if (strncmp(arn, "arn:", 4) || !strstr(arn, ":iam::") || !strstr(arn, ":role/"))
        return NULL;
    const char *slash = strrchr(arn, '/');
    return slash && slash[1] ? slash + 1 : NULL;
}

/*
 * Append "&NAME=VALUE" to the form, VALUE encoded as the AWS SDKs encode query-protocol bodies
 * (application/x-www-form-urlencoded: unreserved bytes as they are, space as '+', the rest %XX).
 */
static enum lmr_result form_add(struct lmr_buf *form, const char *name, const char *value)
{
    enum lmr_result r = lmr_buf_printf(form, "%s%s=", form->len ? "&" : "", name);
    for (const char *v = value; !r && *v;) {
        size_t run = strcspn(v, " ");
        r = lmr_aws_uri_encode(form, v, run, false);
        v += run;
        if (!r && *v == ' ') {
            r = lmr_buf_append(form, "+", 1);
            v++;
        }
    }
    return r;
}

/* URL-decode (IAM returns policy documents percent-encoded) into a new string. */
static char *url_decode(const char *s)
{
    size_t n = strlen(s);
    char *out = malloc(n + 1), *o = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n && isxdigit((unsigned char)s[i + 1]) && isxdigit((unsigned char)s[i + 2])) {
            char hex[3] = {s[i + 1], s[i + 2], 0};
            *o++ = (char)strtol(hex, NULL, 16);
            i += 2;
        } else {
            *o++ = s[i] == '+' ? ' ' : s[i];
        }
    }
    *o = '\0';
    return out;
}

static json_t *parse_document(const char *text)
{
    char *plain = url_decode(text);
    json_t *j = plain ? json_loads(plain, 0, NULL) : NULL;
    free(plain);
    return j;
}

struct role_parse {
    struct lmr_iam_role *role;
    const char *root; /* "GetRoleResponse/GetRoleResult/Role" */
    char tag_key[256];
};

static enum lmr_result on_role(void *ud, const char *path, const char *text, size_t len)
{
    struct role_parse *p = ud;
    size_t rl = strlen(p->root);
    if (strncmp(path, p->root, rl) || (path[rl] != '/'))
        return LMR_OK;
    const char *rest = path + rl + 1;
    if (!strcmp(rest, "Arn")) {
        snprintf(p->role->arn, sizeof p->role->arn, "%s", text);
        const char *a = strstr(text, ":iam::");
        if (a)
            snprintf(p->role->account_id, sizeof p->role->account_id, "%.*s", (int)strcspn(a + 6, ":"), a + 6);
    } else if (!strcmp(rest, "RoleName")) {
        snprintf(p->role->name, sizeof p->role->name, "%s", text);
    } else if (!strcmp(rest, "AssumeRolePolicyDocument")) {
        json_decref(p->role->assume_role_policy);
        p->role->assume_role_policy = parse_document(text);
    } else if (!strcmp(rest, "Tags/member/Key")) {
        snprintf(p->tag_key, sizeof p->tag_key, "%s", text);
    } else if (!strcmp(rest, "Tags/member/Value")) {
        json_object_set_new(p->role->tags, p->tag_key, json_stringn(text, len));
    }
    return LMR_OK;
}

static enum lmr_result iam_call(struct lmr_aws_client *c, struct lmr_buf *form, const char *resource,
                                struct lmr_aws_response *resp, struct lmr_err *err)
{
    enum lmr_result r = form_add(form, "Version", IAM_VERSION);
    if (r)
        return lmr_fail(err, LMR_ERR_NOMEM, "%s: the IAM request is too large", resource);
    struct lmr_aws_header hs[] = {{"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"}};
    struct lmr_aws_request req = {.service = LMR_AWS_IAM,
                                  .method = "POST",
                                  .path = "/",
                                  .headers = hs,
                                  .n_headers = 1,
                                  .body = form->data,
                                  .body_len = form->len,
                                  .resource = resource,
                                  .max_response_bytes = MAX_IAM_RESPONSE_BYTES};
    return lmr_aws_request(c, &req, resp, err);
}

static enum lmr_result parse_role(const struct lmr_aws_response *resp, const char *root, struct lmr_iam_role *out,
                                  struct lmr_err *err)
{
    lmr_iam_role_clean_up(out);
    memset(out, 0, sizeof *out);
    out->tags = json_object();
    struct role_parse p = {.role = out, .root = root};
    enum lmr_result r = lmr_aws_xml_parse(resp->body.data ? resp->body.data : "", resp->body.len, on_role, &p, err);
    if (!r && !out->arn[0])
        r = lmr_fail(err, LMR_ERR_FORMAT, "IAM answered without the role's Arn (%s)", root);
    return r;
}

enum lmr_result lmr_iam_create_role(struct lmr_aws_client *c, const char *name, const char *assume_role_policy,
                                    const char *description, json_t *tags, struct lmr_iam_role *out,
                                    struct lmr_err *err)
{
    char resource[128];
    snprintf(resource, sizeof resource, "IAM role '%s'", name);
    struct lmr_buf form;
    lmr_buf_init(&form, MAX_IAM_FORM_BYTES);
    enum lmr_result r = form_add(&form, "Action", "CreateRole");
    if (!r)
        r = form_add(&form, "RoleName", name);
    if (!r)
        r = form_add(&form, "AssumeRolePolicyDocument", assume_role_policy);
    if (!r && description)
        r = form_add(&form, "Description", description);
    const char *key;
    json_t *v;
    int i = 1;
    json_object_foreach(tags, key, v)
    {
        char n[64];
        snprintf(n, sizeof n, "Tags.member.%d.Key", i);
        if (!r)
            r = form_add(&form, n, key);
        snprintf(n, sizeof n, "Tags.member.%d.Value", i++);
        if (!r)
            r = form_add(&form, n, json_string_value(v) ? json_string_value(v) : "");
    }
    struct lmr_aws_response resp;
    lmr_aws_response_init(&resp);
    if (!r)
        r = iam_call(c, &form, resource, &resp, err);
    if (r && !strcmp(resp.aws_code, "EntityAlreadyExists"))
        r = lmr_fail(err, LMR_ERR_EXISTS, "%s already exists (EntityAlreadyExists: %s)", resource, resp.aws_message);
    if (!r && out)
        r = parse_role(&resp, "CreateRoleResponse/CreateRoleResult/Role", out, err);
    lmr_aws_response_clean_up(&resp);
    lmr_buf_clean_up(&form);
    return r;
}

/* A request naming only the role (and a policy). */
static enum lmr_result simple(struct lmr_aws_client *c, const char *action, const char *role, const char *policy,
                              const char *document, struct lmr_aws_response *resp, struct lmr_err *err)
{
    char resource[256];
    if (policy)
        snprintf(resource, sizeof resource, "inline policy '%s' of IAM role '%s'", policy, role);
    else
        snprintf(resource, sizeof resource, "IAM role '%s'", role);
    struct lmr_buf form;
    lmr_buf_init(&form, MAX_IAM_FORM_BYTES);
    enum lmr_result r = form_add(&form, "Action", action);
    if (!r)
        r = form_add(&form, "RoleName", role);
    if (!r && policy)
        r = form_add(&form, "PolicyName", policy);
    if (!r && document)
        r = form_add(&form, "PolicyDocument", document);
    if (!r)
        r = iam_call(c, &form, resource, resp, err);
    else
        r = lmr_fail(err, LMR_ERR_TOO_LARGE, "%s: the request is over %u bytes", resource, MAX_IAM_FORM_BYTES);
    if (r && !strcmp(resp->aws_code, "NoSuchEntity"))
        r = lmr_fail(err, LMR_ERR_NOT_FOUND, "%s does not exist (NoSuchEntity: %s)", resource, resp->aws_message);
    lmr_buf_clean_up(&form);
    return r;
}

enum lmr_result lmr_iam_get_role(struct lmr_aws_client *c, const char *name, struct lmr_iam_role *out,
                                 struct lmr_err *err)
{
    struct lmr_aws_response resp;
    lmr_aws_response_init(&resp);
    enum lmr_result r = simple(c, "GetRole", name, NULL, NULL, &resp, err);
    if (r == LMR_ERR_NOT_FOUND && strcmp(resp.aws_code, "NoSuchEntity")) /* simple words those with the code */
        r = lmr_fail(err, LMR_ERR_NOT_FOUND, "IAM role '%s' does not exist (NoSuchEntity: %s)", name, resp.aws_message);
    if (!r)
        r = parse_role(&resp, "GetRoleResponse/GetRoleResult/Role", out, err);
    lmr_aws_response_clean_up(&resp);
    return r;
}

enum lmr_result lmr_iam_delete_role(struct lmr_aws_client *c, const char *name, struct lmr_err *err)
{
    struct lmr_aws_response resp;
    lmr_aws_response_init(&resp);
    enum lmr_result r = simple(c, "DeleteRole", name, NULL, NULL, &resp, err);
    if (r && !strcmp(resp.aws_code, "DeleteConflict"))
        r = lmr_fail(err, LMR_ERR_EXISTS,
                     "IAM role '%s' cannot be deleted: something else is still attached to it (DeleteConflict: %s); "
                     "detach it and run undeploy again",
                     name, resp.aws_message);
    lmr_aws_response_clean_up(&resp);
    return r;
}

enum lmr_result lmr_iam_put_role_policy(struct lmr_aws_client *c, const char *role, const char *policy_name,
                                        const char *document, struct lmr_err *err)
{
    struct lmr_aws_response resp;
    lmr_aws_response_init(&resp);
    enum lmr_result r = simple(c, "PutRolePolicy", role, policy_name, document, &resp, err);
    lmr_aws_response_clean_up(&resp);
    return r;
}

struct doc_parse {
    char *text;
};

static enum lmr_result on_doc(void *ud, const char *path, const char *text, size_t len)
{
    struct doc_parse *p = ud;
    if (!strcmp(path, "GetRolePolicyResponse/GetRolePolicyResult/PolicyDocument")) {
        free(p->text);
        p->text = strndup(text, len);
        if (!p->text)
            return LMR_ERR_NOMEM;
    }
    return LMR_OK;
}

enum lmr_result lmr_iam_get_role_policy(struct lmr_aws_client *c, const char *role, const char *policy_name,
                                        json_t **document, struct lmr_err *err)
{
    struct lmr_aws_response resp;
    lmr_aws_response_init(&resp);
    enum lmr_result r = simple(c, "GetRolePolicy", role, policy_name, NULL, &resp, err);
    struct doc_parse p = {0};
    if (!r)
        r = lmr_aws_xml_parse(resp.body.data ? resp.body.data : "", resp.body.len, on_doc, &p, err);
    if (!r) {
        *document = p.text ? parse_document(p.text) : NULL;
        if (!*document)
            r = lmr_fail(err, LMR_ERR_FORMAT,
                         "inline policy '%s' of IAM role '%s': IAM answered without a JSON "
                         "PolicyDocument",
                         policy_name, role);
    }
    free(p.text);
    lmr_aws_response_clean_up(&resp);
    return r;
}

enum lmr_result lmr_iam_delete_role_policy(struct lmr_aws_client *c, const char *role, const char *policy_name,
                                           struct lmr_err *err)
{
    struct lmr_aws_response resp;
    lmr_aws_response_init(&resp);
    enum lmr_result r = simple(c, "DeleteRolePolicy", role, policy_name, NULL, &resp, err);
    lmr_aws_response_clean_up(&resp);
    return r;
}
