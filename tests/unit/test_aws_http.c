/*
 * The AWS HTTP client against a scripted local server (libmicrohttpd on 127.0.0.1): which
 * answers are retried (5xx, SlowDown, throttling, connection resets) and which are not (other
 * 4xx), how AWS errors map to results and messages, response caps, and the signed headers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <microhttpd.h>
#include <pthread.h>

#include "aws/http.h"

static struct MHD_Daemon *daemon_;
static unsigned port;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned hits;        /* requests seen for the current script */
static unsigned connections; /* TCP connections accepted */
static char last_auth[1024], last_sha[128], last_token[128], last_host[256], last_url[512];

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *body, const char *hname,
                             const char *hvalue)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    if (hname)
        MHD_add_response_header(r, hname, hvalue);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

#define XML_ERR(code, msg) "<?xml version=\"1.0\"?><Error><Code>" code "</Code><Message>" msg "</Message></Error>"

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                               const char *version, const char *upload_data, size_t *upload_data_size, void **ptr)
{
    if (!*ptr) {
        *ptr = (void *)1;
        return MHD_YES;
    }
    if (*upload_data_size) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    pthread_mutex_lock(&mu);
    unsigned n = ++hits;
    const char *v;
    snprintf(last_auth, sizeof last_auth, "%s",
             (v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization")) ? v : "");
    snprintf(last_sha, sizeof last_sha, "%s",
             (v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "x-amz-content-sha256")) ? v : "");
    snprintf(last_token, sizeof last_token, "%s",
             (v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Amz-Security-Token")) ? v : "");
    snprintf(last_host, sizeof last_host, "%s", (v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host")) ? v : "");
    snprintf(last_url, sizeof last_url, "%s", url);
    pthread_mutex_unlock(&mu);
    if (strstr(url, "/slowdown-then-ok"))
        return n <= 2 ? reply(c, 503, XML_ERR("SlowDown", "Please reduce your request rate."), NULL, NULL)
                      : reply(c, 200, "ok", NULL, NULL);
    if (strstr(url, "/500-forever"))
        return reply(c, 500, XML_ERR("InternalError", "We encountered an internal error."), NULL, NULL);
    if (strstr(url, "/403-sig"))
        return reply(c, 403, XML_ERR("SignatureDoesNotMatch", "The request signature we calculated does not match."),
                     NULL, NULL);
    if (strstr(url, "/404-json"))
        return reply(c, 404,
                     "{\"__type\":\"com.amazon.coral#ResourceNotFoundException\",\"message\":\"Function not found\"}",
                     NULL, NULL);
    if (strstr(url, "/throttle-then-ok"))
        return n == 1 ? reply(c, 400, "{\"message\":\"Rate exceeded\"}", "x-amzn-ErrorType",
                              "ThrottlingException:http://internal.amazon.com/coral/")
                      : reply(c, 200, "{}", NULL, NULL);
    if (strstr(url, "/redirect"))
        return reply(c, 301,
                     XML_ERR("PermanentRedirect",
                             "The bucket you are attempting to access must be addressed using the specified endpoint."),
                     "x-amz-bucket-region", "eu-west-1");
    if (strstr(url, "/400-bad"))
        return reply(c, 400, XML_ERR("InvalidArgument", "Bad argument."), NULL, NULL);
    if (strstr(url, "/expired"))
        return reply(c, 400, XML_ERR("ExpiredToken", "The provided token has expired."), NULL, NULL);
    if (strstr(url, "/nosuchbucket"))
        return reply(c, 404, XML_ERR("NoSuchBucket", "The specified bucket does not exist"), NULL, NULL);
    if (strstr(url, "/precondition"))
        return reply(c, 412,
                     XML_ERR("PreconditionFailed", "At least one of the pre-conditions you specified did not hold"),
                     NULL, NULL);
    if (strstr(url, "/big")) {
        static char big[2 << 20];
        memset(big, 'x', sizeof big - 1);
        return reply(c, 200, big, NULL, NULL);
    }
    if (strstr(url, "/reset-then-ok"))
        return n == 1 ? MHD_NO : reply(c, 200, "ok", NULL, NULL); /* MHD_NO drops the connection */
    return reply(c, 200, "ok", NULL, NULL);
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        pthread_mutex_lock(&mu);
        connections++;
        pthread_mutex_unlock(&mu);
    }
}

static struct lmr_aws_config cfg;

static int setup(void **state)
{
    (void)state;
    daemon_ = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0, NULL, NULL, handler,
                               NULL, MHD_OPTION_NOTIFY_CONNECTION, on_connection, NULL, MHD_OPTION_END);
    if (!daemon_)
        return -1;
    port = MHD_get_daemon_info(daemon_, MHD_DAEMON_INFO_BIND_PORT)->port;
    memset(&cfg, 0, sizeof cfg);
    strcpy(cfg.creds.access_key_id, "AKIDUNITTEST");
    strcpy(cfg.creds.secret_access_key, "unit-test-secret");
    cfg.have_credentials = true;
    strcpy(cfg.region, "us-east-1");
    strcpy(cfg.profile, "default");
    strcpy(cfg.creds_source, "the test");
    for (int s = 0; s < LMR_AWS_SERVICE_COUNT; s++)
        snprintf(cfg.endpoint[s], sizeof cfg.endpoint[s], "http://127.0.0.1:%u", port);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    MHD_stop_daemon(daemon_);
    return 0;
}

/* One request on a fresh client (3 attempts, tiny backoff). */
static enum lmr_result run(const struct lmr_aws_config *c, enum lmr_aws_service svc, const char *path, size_t max_resp,
                           struct lmr_aws_response *resp, struct lmr_err *err)
{
    pthread_mutex_lock(&mu);
    hits = 0;
    pthread_mutex_unlock(&mu);
    struct lmr_aws_client_options o = {.config = c, .max_attempts = 3, .backoff_base_ms = 1, .backoff_cap_ms = 5};
    struct lmr_aws_client *client;
    assert_int_equal(lmr_aws_client_new(&o, &client, err), LMR_OK);
    struct lmr_aws_request req = {.service = svc,
                                  .method = "GET",
                                  .bucket = svc == LMR_AWS_S3 ? "bkt" : NULL,
                                  .path = path,
                                  .resource = "test-resource",
                                  .max_response_bytes = max_resp};
    lmr_aws_response_init(resp);
    memset(err, 0, sizeof *err);
    enum lmr_result r = lmr_aws_request(client, &req, resp, err);
    lmr_aws_client_destroy(client);
    return r;
}

static void test_retries(void **state)
{
    struct lmr_aws_response resp;
    struct lmr_err err;
    assert_int_equal(run(&cfg, LMR_AWS_S3, "/slowdown-then-ok", 0, &resp, &err), LMR_OK);
    assert_int_equal(resp.attempts, 3);
    assert_string_equal(resp.body.data, "ok");
    lmr_aws_response_clean_up(&resp);

    assert_int_equal(run(&cfg, LMR_AWS_S3, "/500-forever", 0, &resp, &err), LMR_ERR_HTTP);
    assert_int_equal(resp.attempts, 3);
    assert_non_null(strstr(err.msg, "InternalError"));
    assert_non_null(strstr(err.msg, "test-resource"));
    lmr_aws_response_clean_up(&resp);

    assert_int_equal(run(&cfg, LMR_AWS_KINESIS, "/throttle-then-ok", 0, &resp, &err), LMR_OK);
    assert_int_equal(resp.attempts, 2);
    lmr_aws_response_clean_up(&resp);

    assert_int_equal(run(&cfg, LMR_AWS_S3, "/reset-then-ok", 0, &resp, &err), LMR_OK);
    assert_int_equal(resp.attempts, 2);
    lmr_aws_response_clean_up(&resp);
}

static void test_no_retry_on_4xx(void **state)
{
    struct lmr_aws_response resp;
    struct lmr_err err;
    assert_int_equal(run(&cfg, LMR_AWS_S3, "/403-sig", 0, &resp, &err), LMR_ERR_AUTH);
    assert_int_equal(resp.attempts, 1);
    assert_string_equal(resp.aws_code, "SignatureDoesNotMatch");
    assert_non_null(strstr(err.msg, "SignatureDoesNotMatch"));
    assert_non_null(strstr(err.msg, "AKIDUNITTEST"));
    assert_null(strstr(err.msg, "unit-test-secret"));
    lmr_aws_response_clean_up(&resp);

    assert_int_equal(run(&cfg, LMR_AWS_S3, "/400-bad", 0, &resp, &err), LMR_ERR_HTTP);
    assert_int_equal(resp.attempts, 1);
    assert_non_null(strstr(err.msg, "InvalidArgument"));
    lmr_aws_response_clean_up(&resp);

    assert_int_equal(run(&cfg, LMR_AWS_S3, "/expired", 0, &resp, &err), LMR_ERR_AUTH);
    assert_int_equal(resp.attempts, 1);
    assert_non_null(strstr(err.msg, "expired"));
    lmr_aws_response_clean_up(&resp);

    assert_int_equal(run(&cfg, LMR_AWS_LAMBDA, "/404-json", 0, &resp, &err), LMR_ERR_NOT_FOUND);
    assert_string_equal(resp.aws_code, "ResourceNotFoundException");
    assert_non_null(strstr(err.msg, "Function not found"));
    lmr_aws_response_clean_up(&resp);

    assert_int_equal(run(&cfg, LMR_AWS_S3, "/nosuchbucket", 0, &resp, &err), LMR_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, "'bkt' does not exist"));
    lmr_aws_response_clean_up(&resp);

    assert_int_equal(run(&cfg, LMR_AWS_S3, "/redirect", 0, &resp, &err), LMR_ERR_INVALID);
    assert_int_equal(resp.attempts, 1);
    assert_non_null(strstr(err.msg, "set AWS_REGION=eu-west-1"));
    lmr_aws_response_clean_up(&resp);

    assert_int_equal(run(&cfg, LMR_AWS_S3, "/precondition", 0, &resp, &err), LMR_ERR_EXISTS);
    lmr_aws_response_clean_up(&resp);
}

static void test_caps_and_signing(void **state)
{
    struct lmr_aws_response resp;
    struct lmr_err err;
    assert_int_equal(run(&cfg, LMR_AWS_S3, "/big", 1 << 20, &resp, &err), LMR_ERR_TOO_LARGE);
    assert_int_equal(resp.attempts, 1);
    lmr_aws_response_clean_up(&resp);

    /* S3: path-style on a custom endpoint, x-amz-content-sha256 signed. */
    assert_int_equal(run(&cfg, LMR_AWS_S3, "/k%20ey", 0, &resp, &err), LMR_OK);
    assert_string_equal(last_url, "/bkt/k ey");
    assert_string_equal(last_sha, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert_non_null(strstr(last_auth, "Credential=AKIDUNITTEST/"));
    assert_non_null(strstr(last_auth, "/us-east-1/s3/aws4_request"));
    assert_non_null(strstr(last_auth, "SignedHeaders=host;x-amz-content-sha256;x-amz-date"));
    char host[64];
    snprintf(host, sizeof host, "127.0.0.1:%u", port);
    assert_string_equal(last_host, host);
    lmr_aws_response_clean_up(&resp);

    /* Session credentials: the token is sent and signed; other services get no content hash header. */
    struct lmr_aws_config tok = cfg;
    strcpy(tok.creds.session_token, "session-token-1");
    assert_int_equal(run(&tok, LMR_AWS_KINESIS, "/", 0, &resp, &err), LMR_OK);
    assert_string_equal(last_token, "session-token-1");
    assert_string_equal(last_sha, "");
    assert_non_null(strstr(last_auth, "SignedHeaders=host;x-amz-date;x-amz-security-token"));
    lmr_aws_response_clean_up(&resp);

    /* No credentials: refused before sending, naming where they were looked for. */
    struct lmr_aws_config none = cfg;
    memset(&none.creds, 0, sizeof none.creds);
    none.have_credentials = false;
    assert_int_equal(run(&none, LMR_AWS_S3, "/x", 0, &resp, &err), LMR_ERR_AUTH);
    assert_non_null(strstr(err.msg, "no AWS credentials"));
    assert_int_equal(hits, 0);
    lmr_aws_response_clean_up(&resp);

    /* Unreachable endpoint: a network error after the retries. */
    struct lmr_aws_config down = cfg;
    strcpy(down.endpoint[LMR_AWS_S3], "http://127.0.0.1:1");
    assert_int_equal(run(&down, LMR_AWS_S3, "/x", 0, &resp, &err), LMR_ERR_NETWORK);
    assert_int_equal(resp.attempts, 3);
    assert_non_null(strstr(err.msg, "cannot reach S3 at http://127.0.0.1:1"));
    lmr_aws_response_clean_up(&resp);
}

/* Sequential requests of one client (from one or several threads) reuse one connection. */
static void test_connection_reuse(void **state)
{
    struct lmr_aws_client_options o = {.config = &cfg};
    struct lmr_aws_client *client;
    struct lmr_err err = {0};
    assert_int_equal(lmr_aws_client_new(&o, &client, &err), LMR_OK);
    pthread_mutex_lock(&mu);
    connections = 0;
    pthread_mutex_unlock(&mu);
    for (int i = 0; i < 5; i++) {
        struct lmr_aws_request req = {.service = LMR_AWS_S3,
                                      .method = i % 2 ? "PUT" : "GET",
                                      .bucket = "bkt",
                                      .path = "/k",
                                      .body = i % 2 ? "data" : NULL,
                                      .body_len = i % 2 ? 4 : 0,
                                      .resource = "reuse"};
        struct lmr_aws_response resp;
        lmr_aws_response_init(&resp);
        assert_int_equal(lmr_aws_request(client, &req, &resp, &err), LMR_OK);
        lmr_aws_response_clean_up(&resp);
    }
    assert_int_equal(connections, 1);
    lmr_aws_client_destroy(client);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_retries),
        cmocka_unit_test(test_no_retry_on_4xx),
        cmocka_unit_test(test_caps_and_signing),
        cmocka_unit_test(test_connection_reuse),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
