/*
 * The Invoke API of the embedded Lambda service over real HTTP (libcurl client), with real
 * function processes: status codes, headers and AWS-shaped errors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lambda/service.h"
#include "util/buf.h"
#include "util/misc.h"

#include "test_threads.h"

static char fn_path[4096];
static struct lmr_lambda_service *svc;
static uint16_t port;
static char log_dir[64];

struct reply {
    long status;
    struct lmr_buf body;
    struct lmr_buf headers;
};

static size_t on_data(char *p, size_t s, size_t n, void *ud)
{
    return lmr_buf_append(ud, p, s * n) == LMR_OK ? s * n : 0;
}

/* POST (or method) to path with extra headers (NULL-terminated); body may be NULL. */
static void request(const char *method, const char *path, const char *const *headers, const void *body, size_t len,
                    struct reply *r)
{
    lmr_buf_init(&r->body, 16u << 20);
    lmr_buf_init(&r->headers, 1u << 20);
    CURL *c = curl_easy_init();
    char url[1024];
    snprintf(url, sizeof url, "http://127.0.0.1:%u%s", port, path);
    struct curl_slist *h = curl_slist_append(NULL, "Expect:");
    for (size_t i = 0; headers && headers[i]; i++)
        h = curl_slist_append(h, headers[i]);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r->body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r->headers);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK)
        fail_msg("%s %s: %s", method, path, curl_easy_strerror(rc));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (!r->body.data)
        lmr_buf_append(&r->body, "", 0);
    if (!r->headers.data)
        lmr_buf_append(&r->headers, "", 0);
}

static void reply_clean_up(struct reply *r)
{
    lmr_buf_clean_up(&r->body);
    lmr_buf_clean_up(&r->headers);
}

/* Value of header name (case-insensitive) into out; false if absent. */
static bool header(const struct reply *r, const char *name, char *out, size_t cap)
{
    size_t n = strlen(name);
    for (const char *line = r->headers.data; line && *line;) {
        const char *end = strstr(line, "\r\n");
        if (!end)
            break;
        if (!strncasecmp(line, name, n) && line[n] == ':') {
            const char *v = line + n + 1;
            while (*v == ' ')
                v++;
            snprintf(out, cap, "%.*s", (int)(end - v), v);
            return true;
        }
        line = end + 2;
    }
    return false;
}

static void invoke(const char *fn, const char *const *headers, const char *body, struct reply *r)
{
    char path[512];
    snprintf(path, sizeof path, "/2015-03-31/functions/%s/invocations", fn);
    request("POST", path, headers, body, strlen(body), r);
}

static void add(const char *name, const char *handler, uint32_t concurrency, double timeout_s)
{
    struct lmr_function_config cfg = {
        .name = name, .path = fn_path, .handler = handler, .concurrency = concurrency, .timeout_s = timeout_s};
    assert_int_equal(lmr_lambda_service_add_function(svc, &cfg, NULL), LMR_OK);
}

static int group_setup(void **state)
{
    const char *bin = getenv("LMR_BIN_DIR");
    snprintf(fn_path, sizeof fn_path, "%s/fn_test", bin ? bin : "build/bin");
    curl_global_init(CURL_GLOBAL_DEFAULT);
    snprintf(log_dir, sizeof log_dir, "/tmp/lmr-test-lambda-http-XXXXXX");
    assert_non_null(mkdtemp(log_dir));
    struct lmr_lambda_service_options opts = {.event_retry_delay_ms = 20, .log_dir = log_dir};
    struct lmr_err err = {0};
    assert_int_equal(lmr_lambda_service_new(&opts, &svc, &err), LMR_OK);
    add("echo", "echo", 4, 10);
    add("fail", "fail", 2, 10);
    add("sleep", "sleep", 1, 10);
    add("log", "log", 1, 10);
    add("big", "big", 1, 10);
    add("quits", "init_exit", 1, 10);
    struct lmr_function_config missing = {.name = "missing", .path = "/nonexistent/dir/bootstrap"};
    assert_int_equal(lmr_lambda_service_add_function(svc, &missing, NULL), LMR_OK);
    assert_int_equal(lmr_lambda_service_start(svc, &err), LMR_OK);
    port = lmr_lambda_service_port(svc);
    assert_true(port > 0);
    return 0;
}

static int group_teardown(void **state)
{
    lmr_lambda_service_destroy(svc);
    curl_global_cleanup();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", log_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", log_dir);
    return 0;
}

static void test_sync(void **state)
{
    struct reply r;
    invoke("echo", NULL, "{\"hello\":\"world\"}", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.data, "{\"hello\":\"world\"}");
    char v[256];
    assert_true(header(&r, "X-Amz-Executed-Version", v, sizeof v));
    assert_string_equal(v, "$LATEST");
    assert_true(header(&r, "x-amzn-RequestId", v, sizeof v));
    assert_int_equal(strlen(v), 36);
    assert_false(header(&r, "X-Amz-Function-Error", v, sizeof v));
    reply_clean_up(&r);
    /* Malformed JSON is still delivered as bytes; so is an empty payload. */
    invoke("echo", NULL, "{not json", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.data, "{not json");
    reply_clean_up(&r);
    invoke("echo", NULL, "", &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body.len, 0);
    reply_clean_up(&r);
    /* Signed requests are accepted (the signature is not checked). */
    const char *signed_h[] = {"Authorization: AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/lambda/aws4_request, "
                              "SignedHeaders=host;x-amz-date, Signature=00",
                              "X-Amz-Date: 20260101T000000Z", "X-Amz-Invocation-Type: RequestResponse", NULL};
    invoke("arn:aws:lambda:us-east-1:000000000000:function:echo", signed_h, "s", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.data, "s");
    reply_clean_up(&r);
    request("POST", "/2015-03-31/functions/echo/invocations?Qualifier=%24LATEST", NULL, "q", 1, &r);
    assert_int_equal(r.status, 200);
    reply_clean_up(&r);
}

static void test_event_and_dry_run(void **state)
{
    struct reply r;
    const char *ev[] = {"X-Amz-Invocation-Type: Event", NULL};
    invoke("echo", ev, "e", &r);
    assert_int_equal(r.status, 202);
    assert_int_equal(r.body.len, 0);
    reply_clean_up(&r);
    const char *dry[] = {"X-Amz-Invocation-Type: DryRun", NULL};
    invoke("echo", dry, "d", &r);
    assert_int_equal(r.status, 204);
    reply_clean_up(&r);
}

static void test_function_error_and_tail(void **state)
{
    struct reply r;
    const char *tail[] = {"X-Amz-Log-Type: Tail", NULL};
    invoke("fail", tail, "x", &r);
    assert_int_equal(r.status, 200);
    char v[8192];
    assert_true(header(&r, "X-Amz-Function-Error", v, sizeof v));
    assert_string_equal(v, "Unhandled");
    assert_non_null(strstr(r.body.data, "\"errorType\":\"lambdamr.Invalid\""));
    assert_true(header(&r, "X-Amz-Log-Result", v, sizeof v));
    unsigned char decoded[8192];
    int n = EVP_DecodeBlock(decoded, (const unsigned char *)v, (int)strlen(v));
    assert_true(n > 0 && n <= 4096 + 2);
    decoded[n] = '\0';
    assert_non_null(strstr((char *)decoded, "fail attempt "));
    assert_non_null(strstr((char *)decoded, "REPORT RequestId: "));
    reply_clean_up(&r);
    /* The tail is the last 4 KB even when the function logs more. */
    char big[6001];
    memset(big, 'L', 6000);
    big[6000] = '\0';
    invoke("log", tail, big, &r);
    assert_int_equal(r.status, 200);
    assert_true(header(&r, "X-Amz-Log-Result", v, sizeof v));
    n = EVP_DecodeBlock(decoded, (const unsigned char *)v, (int)strlen(v));
    while (n > 0 && strlen(v) && v[strlen(v) - 1] == '=' && decoded[n - 1] == 0)
        n--, v[strlen(v) - 1] = '\0';
    assert_true(n == 4096);
    reply_clean_up(&r);
}

static void test_errors_are_aws_shaped(void **state)
{
    struct reply r;
    char v[256];
    invoke("nope", NULL, "x", &r);
    assert_int_equal(r.status, 404);
    assert_true(header(&r, "x-amzn-ErrorType", v, sizeof v));
    assert_string_equal(v, "ResourceNotFoundException");
    assert_non_null(strstr(r.body.data, "\"Type\":\"User\""));
    assert_non_null(strstr(r.body.data, "Function not found: arn:aws:lambda:"));
    reply_clean_up(&r);

    const char *bad_type[] = {"X-Amz-Invocation-Type: Sometimes", NULL};
    invoke("echo", bad_type, "x", &r);
    assert_int_equal(r.status, 400);
    assert_true(header(&r, "x-amzn-ErrorType", v, sizeof v));
    assert_string_equal(v, "InvalidParameterValueException");
    reply_clean_up(&r);
    const char *bad_log[] = {"X-Amz-Log-Type: Everything", NULL};
    invoke("echo", bad_log, "x", &r);
    assert_int_equal(r.status, 400);
    reply_clean_up(&r);

    request("GET", "/2015-03-31/functions/echo/invocations", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 405);
    assert_true(header(&r, "x-amzn-ErrorType", v, sizeof v));
    reply_clean_up(&r);
    request("POST", "/no/such/path", NULL, "x", 1, &r);
    assert_int_equal(r.status, 404);
    assert_true(header(&r, "x-amzn-ErrorType", v, sizeof v));
    assert_string_equal(v, "UnknownOperationException");
    reply_clean_up(&r);
    request("POST", "/2015-03-31/functions/a/b/invocations", NULL, "x", 1, &r);
    assert_int_equal(r.status, 400);
    reply_clean_up(&r);
    request("POST", "/2015-03-31/functions/echo/invocations?Qualifier=7", NULL, "x", 1, &r);
    assert_int_equal(r.status, 404);
    reply_clean_up(&r);

    /* Oversize bodies: 413 after the body is read, for sync (6 MB) and Event (1 MB). */
    size_t n = LMR_LAMBDA_SYNC_PAYLOAD_MAX_BYTES + 1;
    char *big = malloc(n + 1);
    memset(big, 'b', n);
    big[n] = '\0';
    invoke("echo", NULL, big, &r);
    assert_int_equal(r.status, 413);
    assert_true(header(&r, "x-amzn-ErrorType", v, sizeof v));
    assert_string_equal(v, "RequestTooLargeException");
    assert_non_null(strstr(r.body.data, "\"message\":"));
    reply_clean_up(&r);
    big[LMR_LAMBDA_EVENT_PAYLOAD_MAX_BYTES + 1] = '\0';
    const char *ev[] = {"X-Amz-Invocation-Type: Event", NULL};
    invoke("echo", ev, big, &r);
    assert_int_equal(r.status, 413);
    reply_clean_up(&r);
    free(big);
    /* The service still answers afterwards. */
    invoke("echo", NULL, "alive", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.data, "alive");
    reply_clean_up(&r);
}

static void test_response_too_large(void **state)
{
    struct reply r;
    char n[32];
    snprintf(n, sizeof n, "%u", LMR_LAMBDA_SYNC_PAYLOAD_MAX_BYTES + 10);
    invoke("big", NULL, n, &r);
    assert_int_equal(r.status, 200);
    char v[64];
    assert_true(header(&r, "X-Amz-Function-Error", v, sizeof v));
    reply_clean_up(&r);
    invoke("big", NULL, "1000", &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body.len, 1000);
    reply_clean_up(&r);
}

static void test_broken_executables(void **state)
{
    const char *names[] = {"missing", "quits"};
    const char *types[] = {"Runtime.InvalidEntrypoint", "Runtime.ExitError"};
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 2; i++) {
            struct reply r;
            invoke(names[i], NULL, "{}", &r);
            assert_int_equal(r.status, 200);
            char v[64];
            assert_true(header(&r, "X-Amz-Function-Error", v, sizeof v));
            if (!strstr(r.body.data, types[i]))
                fail_msg("%s answered %s", names[i], r.body.data);
            reply_clean_up(&r);
        }
    }
}

static void *slow_call(void *arg)
{
    struct reply *r = arg;
    invoke("sleep", NULL, "600", r);
    return NULL;
}

static void test_throttled_429(void **state)
{
    struct reply warm;
    invoke("sleep", NULL, "1", &warm);
    assert_int_equal(warm.status, 200);
    reply_clean_up(&warm);
    struct reply slow, r;
    pthread_t t;
    pthread_create(&t, NULL, slow_call, &slow);
    lmr_sleep_ms(150);
    invoke("sleep", NULL, "1", &r);
    assert_int_equal(r.status, 429);
    char v[256];
    assert_true(header(&r, "x-amzn-ErrorType", v, sizeof v));
    assert_string_equal(v, "TooManyRequestsException");
    assert_true(header(&r, "Retry-After", v, sizeof v));
    assert_non_null(strstr(r.body.data, "\"Reason\":\"ConcurrentInvocationLimitExceeded\""));
    reply_clean_up(&r);
    /* Event invocations queue instead. */
    const char *ev[] = {"X-Amz-Invocation-Type: Event", NULL};
    invoke("sleep", ev, "1", &r);
    assert_int_equal(r.status, 202);
    reply_clean_up(&r);
    pthread_join(t, NULL);
    assert_int_equal(slow.status, 200);
    assert_string_equal(slow.body.data, "slept");
    reply_clean_up(&slow);
}

#define THREADS 8
#define CALLS 25

static void *hammer(void *arg)
{
    long bad = 0;
    for (int i = 0; i < CALLS; i++) {
        char body[64];
        snprintf(body, sizeof body, "t%lu-%d", (unsigned long)(uintptr_t)arg, i);
        struct reply r;
        invoke("echo", NULL, body, &r);
        /* With 8 callers and concurrency 4, 429s are expected; anything else must echo. */
        if (r.status == 429)
            i--;
        else if (r.status != 200 || strcmp(r.body.data, body))
            bad++;
        reply_clean_up(&r);
    }
    return (void *)bad;
}

static void test_concurrent_http(void **state)
{
    pthread_t t[THREADS];
    for (uintptr_t i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, hammer, (void *)i);
    assert_int_equal(join_sum(t, THREADS), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sync),
        cmocka_unit_test(test_event_and_dry_run),
        cmocka_unit_test(test_function_error_and_tail),
        cmocka_unit_test(test_errors_are_aws_shaped),
        cmocka_unit_test(test_response_too_large),
        cmocka_unit_test(test_broken_executables),
        cmocka_unit_test(test_throttled_429),
        cmocka_unit_test(test_concurrent_http),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
