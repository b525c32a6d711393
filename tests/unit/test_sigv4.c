#define _GNU_SOURCE /* strptime */
/*
 * SigV4 against the official signing suite (a copy in tests/data/aws-sigv4-suite, with its licence notice):
 * every case, header and presigned-query signing, canonical request, string to sign, signature
 * and the signed request compared byte for byte. Plus S3's single encoding and Lambda's
 * double encoding against values computed independently (AWS's documented S3 example and
 * botocore's signer).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <dirent.h>
#include <jansson.h>
#include <sys/stat.h>

#include "aws/sigv4.h"
#include "util/misc.h"

static char suite_dir[4096];

static char *read_case_file(const char *name, const char *file, size_t *len)
{
    char path[8192];
    snprintf(path, sizeof path, "%s/%s/%s", suite_dir, name, file);
    char *data = NULL;
    size_t n = 0;
    if (lmr_read_file(path, 1 << 20, &data, &n, NULL) != LMR_OK) {
        fail_msg("cannot read %s", path);
    }
    if (len)
        *len = n;
    return data;
}

struct parsed_request {
    char *method, *path, *query, *request_line_rest; /* " HTTP/1.1" */
    struct lmr_aws_header headers[32];
    size_t n_headers;
    char *header_block; /* the header lines exactly as in the file, each ending in '\n' */
    const char *body;
    size_t body_len;
    char *text;
};

static void parse_request(char *text, size_t len, struct parsed_request *pr)
{
    memset(pr, 0, sizeof *pr);
    pr->text = text;
    char *eol = strchr(text, '\n');
    assert_non_null(eol);
    *eol = '\0';
    char *sp1 = strchr(text, ' ');
    char *sp2 = strrchr(text, ' ');
    assert_true(sp1 && sp2 && sp1 != sp2);
    *sp1 = '\0';
    pr->method = strdup(text);
    pr->request_line_rest = strdup(sp2);
    *sp2 = '\0';
    char *target = sp1 + 1;
    char *q = strchr(target, '?');
    if (q) {
        *q = '\0';
        pr->query = strdup(q + 1);
    }
    pr->path = strdup(target);

    char *p = eol + 1, *end = text + len;
    char *block_start = p;
    size_t block_len = 0;
    char *values[32];
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *line_end = nl ? nl : end;
        if (line_end == p) { /* blank line: the body follows */
            p = nl ? nl + 1 : end;
            break;
        }
        block_len = (size_t)((nl ? nl + 1 : end) - block_start);
        size_t ll = (size_t)(line_end - p);
        if (*p == ' ' || *p == '\t') { /* continuation of the previous header's value */
            assert_true(pr->n_headers > 0);
            char *prev = values[pr->n_headers - 1];
            size_t pl = strlen(prev);
            prev = realloc(prev, pl + ll + 2);
            prev[pl] = '\n';
            memcpy(prev + pl + 1, p, ll);
            prev[pl + 1 + ll] = '\0';
            values[pr->n_headers - 1] = prev;
        } else {
            char *colon = memchr(p, ':', ll);
            assert_non_null(colon);
            assert_true(pr->n_headers < 32);
            pr->headers[pr->n_headers].name = strndup(p, (size_t)(colon - p));
            values[pr->n_headers] = strndup(colon + 1, (size_t)(line_end - colon - 1));
            pr->n_headers++;
        }
        p = nl ? nl + 1 : end;
    }
    for (size_t i = 0; i < pr->n_headers; i++)
        pr->headers[i].value = values[i];
    pr->header_block = strndup(block_start, block_len);
    if (block_len && pr->header_block[block_len - 1] != '\n') {
        pr->header_block = realloc(pr->header_block, block_len + 2);
        strcpy(pr->header_block + block_len, "\n");
    }
    pr->body = p < end ? p : "";
    pr->body_len = p < end ? (size_t)(end - p) : 0;
}

static void free_request(struct parsed_request *pr)
{
    free(pr->method);
    free(pr->path);
    free(pr->query);
    free(pr->request_line_rest);
    for (size_t i = 0; i < pr->n_headers; i++) {
        free((char *)pr->headers[i].name);
        free((char *)pr->headers[i].value);
    }
    free(pr->header_block);
    free(pr->text);
}

static void expect_file(const char *name, const char *file, const char *got, size_t got_len)
{
    size_t len;
    char *want = read_case_file(name, file, &len);
    if (len != got_len || memcmp(want, got, len)) {
        fprintf(stderr, "%s/%s differs.\n--- expected (%zu bytes)\n%s\n--- got (%zu bytes)\n%.*s\n---\n", name, file,
                len, want, got_len, (int)got_len, got);
        free(want);
        fail_msg("%s/%s differs", name, file);
    }
    free(want);
}

static void run_case(const char *name, bool query_mode)
{
    size_t ctx_len;
    char *ctx_text = read_case_file(name, "context.json", &ctx_len);
    json_error_t jerr;
    json_t *ctx = json_loadb(ctx_text, ctx_len, 0, &jerr);
    free(ctx_text);
    assert_non_null(ctx);
    json_t *c = json_object_get(ctx, "credentials");
    struct lmr_aws_credentials creds = {0};
    snprintf(creds.access_key_id, sizeof creds.access_key_id, "%s",
             json_string_value(json_object_get(c, "access_key_id")));
    snprintf(creds.secret_access_key, sizeof creds.secret_access_key, "%s",
             json_string_value(json_object_get(c, "secret_access_key")));
    const char *token = json_string_value(json_object_get(c, "token"));
    if (token)
        snprintf(creds.session_token, sizeof creds.session_token, "%s", token);
    struct tm tm = {0};
    const char *ts = json_string_value(json_object_get(ctx, "timestamp"));
    assert_non_null(strptime(ts, "%Y-%m-%dT%H:%M:%SZ", &tm));

    struct lmr_sigv4_params params = {
        .creds = &creds,
        .region = json_string_value(json_object_get(ctx, "region")),
        .service = json_string_value(json_object_get(ctx, "service")),
        .signing_time = timegm(&tm),
        .expires_s = (uint32_t)json_integer_value(json_object_get(ctx, "expiration_in_seconds")),
    };
    if (query_mode)
        params.flags |= LMR_SIGV4_QUERY;
    if (!json_is_true(json_object_get(ctx, "normalize")))
        params.flags |= LMR_SIGV4_NO_NORMALIZE;
    if (json_is_true(json_object_get(ctx, "omit_session_token")))
        params.flags |= LMR_SIGV4_OMIT_SESSION_TOKEN;
    bool sign_body = json_is_true(json_object_get(ctx, "sign_body"));
    if (sign_body && !query_mode)
        params.flags |= LMR_SIGV4_CONTENT_SHA256_HEADER;

    size_t req_len;
    char *req_text = read_case_file(name, "request.txt", &req_len);
    struct parsed_request pr;
    parse_request(req_text, req_len, &pr);
    char body_hash[65];
    lmr_sha256_hex(pr.body, pr.body_len, body_hash);
    struct lmr_sigv4_request req = {
        .method = pr.method,
        .path = pr.path,
        .query = pr.query,
        .headers = pr.headers,
        .n_headers = pr.n_headers,
        .payload_sha256_hex = body_hash,
    };
    struct lmr_sigv4_signed out;
    lmr_sigv4_signed_init(&out);
    struct lmr_err err = {0};
    enum lmr_result r = lmr_sigv4_sign(&params, &req, &out, &err);
    if (r)
        fail_msg("%s: %s", name, err.msg);

    const char *pfx = query_mode ? "query-" : "header-";
    char file[64];
    snprintf(file, sizeof file, "%scanonical-request.txt", pfx);
    expect_file(name, file, out.canonical_request.data, out.canonical_request.len);
    snprintf(file, sizeof file, "%sstring-to-sign.txt", pfx);
    expect_file(name, file, out.string_to_sign.data, out.string_to_sign.len);
    snprintf(file, sizeof file, "%ssignature.txt", pfx);
    expect_file(name, file, out.signature, strlen(out.signature));

    /* The signed request: the original with the signer's additions. */
    struct lmr_buf sreq;
    lmr_buf_init(&sreq, 1 << 20);
    if (query_mode) {
        lmr_buf_printf(&sreq, "%s %s?", pr.method, pr.path);
        if (pr.query && *pr.query)
            lmr_buf_printf(&sreq, "%s&", pr.query);
        lmr_buf_printf(&sreq, "%s%s\n%s", out.query_params.data, pr.request_line_rest, pr.header_block);
    } else {
        lmr_buf_printf(&sreq, "%s %s%s%s%s\n%s", pr.method, pr.path, pr.query ? "?" : "", pr.query ? pr.query : "",
                       pr.request_line_rest, pr.header_block);
        for (size_t i = 0; i < out.n_added; i++)
            lmr_buf_printf(&sreq, "%s:%s\n", out.added[i].name, out.added[i].value);
    }
    lmr_buf_append(&sreq, "\n", 1);
    lmr_buf_append(&sreq, pr.body, pr.body_len);
    snprintf(file, sizeof file, "%ssigned-request.txt", pfx);
    expect_file(name, file, sreq.data, sreq.len);

    lmr_buf_clean_up(&sreq);
    lmr_sigv4_signed_clean_up(&out);
    free_request(&pr);
    json_decref(ctx);
}

static void test_header_case(void **state)
{
    run_case(*state, false);
}

static void test_query_case(void **state)
{
    run_case(*state, true);
}

/* AWS's documented S3 example (GET /test.txt with a Range header, examplebucket, 2013-05-24). */
static void test_s3_documented_get(void **state)
{
    (void)state;
    struct lmr_aws_credentials creds = {0};
    strcpy(creds.access_key_id, "AKIAIOSFODNN7EXAMPLE");
    strcpy(creds.secret_access_key, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
    struct tm tm = {.tm_year = 113, .tm_mon = 4, .tm_mday = 24};
    struct lmr_sigv4_params params = {.creds = &creds,
                                      .region = "us-east-1",
                                      .service = "s3",
                                      .signing_time = timegm(&tm),
                                      .flags = LMR_SIGV4_S3 | LMR_SIGV4_CONTENT_SHA256_HEADER};
    struct lmr_aws_header h[] = {{"Host", "examplebucket.s3.amazonaws.com"}, {"Range", "bytes=0-9"}};
    struct lmr_sigv4_request req = {.method = "GET", .path = "/test.txt", .headers = h, .n_headers = 2};
    struct lmr_sigv4_signed out;
    lmr_sigv4_signed_init(&out);
    assert_int_equal(lmr_sigv4_sign(&params, &req, &out, NULL), LMR_OK);
    assert_string_equal(out.signature, "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
    lmr_sigv4_signed_clean_up(&out);
}

/*
 * S3 encodes the path once, other services twice. Expected canonical paths from botocore's
 * rules (quote(path, safe='/~') over the path as sent, for non-S3 services).
 */
static void test_uri_encoding_per_service(void **state)
{
    (void)state;
    struct lmr_aws_credentials creds = {0};
    strcpy(creds.access_key_id, "AKID");
    strcpy(creds.secret_access_key, "secret");
    struct lmr_aws_header h[] = {{"Host", "localhost"}};
    struct lmr_sigv4_params params = {
        .creds = &creds, .region = "us-east-1", .service = "lambda", .signing_time = 1700000000};
    struct lmr_sigv4_request req = {
        .method = "POST", .path = "/2015-03-31/functions/my-fn%3Aprod/invocations", .headers = h, .n_headers = 1};
    struct lmr_sigv4_signed out;
    lmr_sigv4_signed_init(&out);
    assert_int_equal(lmr_sigv4_sign(&params, &req, &out, NULL), LMR_OK);
    assert_non_null(strstr(out.canonical_request.data, "\n/2015-03-31/functions/my-fn%253Aprod/invocations\n"));
    lmr_sigv4_signed_clean_up(&out);

    params.service = "s3";
    params.flags = LMR_SIGV4_S3 | LMR_SIGV4_CONTENT_SHA256_HEADER;
    req.method = "GET";
    req.path = "/bucket/dir/a%20b%2Bc~d";
    req.query = "prefix=in%2Fput&list-type=2&continuation-token=ab%2B%3D";
    req.payload_sha256_hex = LMR_SIGV4_UNSIGNED_PAYLOAD;
    lmr_sigv4_signed_init(&out);
    assert_int_equal(lmr_sigv4_sign(&params, &req, &out, NULL), LMR_OK);
    assert_non_null(strstr(out.canonical_request.data,
                           "GET\n/bucket/dir/a%20b%2Bc~d\ncontinuation-token=ab%2B%3D&list-type=2&prefix=in%2Fput\n"));
    assert_non_null(strstr(out.canonical_request.data, "x-amz-content-sha256:UNSIGNED-PAYLOAD\n"));
    assert_string_equal(out.added[out.n_added - 2].value, "UNSIGNED-PAYLOAD");
    lmr_sigv4_signed_clean_up(&out);
}

static void test_encode_decode(void **state)
{
    (void)state;
    struct lmr_buf b;
    lmr_buf_init(&b, 1024);
    assert_int_equal(lmr_aws_uri_encode(&b, "a b/c:~\xe1\x88\xb4", 10, true), LMR_OK);
    assert_string_equal(b.data, "a%20b/c%3A~%E1%88%B4");
    lmr_buf_reset(&b);
    assert_int_equal(lmr_aws_uri_encode(&b, "a/b", 3, false), LMR_OK);
    assert_string_equal(b.data, "a%2Fb");
    lmr_buf_reset(&b);
    assert_int_equal(lmr_aws_uri_decode(&b, "a%2Fb%e1%88%B4%", 15), LMR_OK);
    assert_string_equal(b.data, "a/b\xe1\x88\xb4%");
    lmr_buf_clean_up(&b);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(void)
{
    const char *src = getenv("LMR_SOURCE_DIR");
    if (!src) {
        fprintf(stderr, "test_sigv4: LMR_SOURCE_DIR is not set (run through ctest)\n");
        return 1;
    }
    snprintf(suite_dir, sizeof suite_dir, "%s/tests/data/aws-sigv4-suite", src);
    DIR *d = opendir(suite_dir);
    if (!d) {
        fprintf(stderr, "test_sigv4: the SigV4 test suite is missing at %s: it must be present for this test\n",
                suite_dir);
        return 1;
    }
    char *names[256];
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < 256) {
        char p[8192];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s/request.txt", suite_dir, de->d_name);
        if (de->d_name[0] != '.' && stat(p, &st) == 0)
            names[n++] = strdup(de->d_name);
    }
    closedir(d);
    if (n < 30) {
        fprintf(stderr, "test_sigv4: only %zu cases found in %s; the suite looks incomplete\n", n, suite_dir);
        return 1;
    }
    qsort(names, n, sizeof *names, cmp_str);
    struct CMUnitTest *tests = calloc(2 * n + 3, sizeof *tests);
    char **test_names = calloc(2 * n, sizeof *test_names);
    size_t t = 0;
    for (size_t i = 0; i < n; i++) {
        for (int q = 0; q < 2; q++) {
            test_names[2 * i + q] = malloc(strlen(names[i]) + 16);
            sprintf(test_names[2 * i + q], "%s[%s]", names[i], q ? "query" : "header");
            tests[t].name = test_names[2 * i + q];
            tests[t].test_func = q ? test_query_case : test_header_case;
            tests[t].initial_state = names[i];
            t++;
        }
    }
    tests[t++] = (struct CMUnitTest)cmocka_unit_test(test_s3_documented_get);
    tests[t++] = (struct CMUnitTest)cmocka_unit_test(test_uri_encoding_per_service);
    tests[t++] = (struct CMUnitTest)cmocka_unit_test(test_encode_decode);
    int failed = _cmocka_run_group_tests("sigv4", tests, t, NULL, NULL);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    for (size_t i = 0; i < 2 * n; i++)
        free(test_names[i]);
    free(test_names);
    free(tests);
    return failed;
}
