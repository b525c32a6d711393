/*
 * The AWS HTTP client: builds the URL for a service (custom endpoint or AWS's own, S3 path-style
 * or virtual-hosted), signs with SigV4, sends with libcurl, reads the response into capped
 * buffers and turns AWS errors (S3's XML <Error><Code>, the JSON services' __type or
 * x-amzn-ErrorType) into an enum lmr_result plus a sentence naming the resource, the AWS code
 * and message, and what to check. Retries with exponential backoff and full jitter on 5xx,
 * throttling (429, SlowDown, Throttling*, ...), timeouts and connection resets; never on other 4xx.
 *
 * One client serves many threads: it keeps a pool of libcurl easy handles, each reused (with
 * its open connections) from request to request.
 *
 * Any AWS API is a call of lmr_aws_request(): e.g. Kinesis (JSON 1.1) is
 *   { .service = LMR_AWS_KINESIS, .method = "POST", .path = "/",
 *     .headers = {{"Content-Type", "application/x-amz-json-1.1"},
 *                 {"X-Amz-Target", "Kinesis_20131202.GetRecords"}}, .body = json }
 * For several requests in flight on one thread (curl multi), use lmr_aws_call_prepare() /
 * lmr_aws_call_finish() on handles you drive yourself.
 */
#ifndef LMR_AWS_HTTP_H
#define LMR_AWS_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#include "aws/config.h"
#include "aws/sigv4.h"
#include "util/buf.h"
#include "util/result.h"

struct lmr_aws_client;

struct lmr_aws_client_options {
    const struct lmr_aws_config *config; /* Optional: copied; NULL = lmr_aws_config_load() */
    uint32_t connect_timeout_ms;         /* Optional: default 5000 */
    uint32_t low_speed_time_s;           /* Optional: abort a transfer stalled for this long; default 30 */
    uint32_t request_timeout_ms;         /* Optional: whole-request limit per attempt; default 0 = none */
    unsigned max_attempts;               /* Optional: attempts per request incl. the first; default 6 */
    uint32_t backoff_base_ms;            /* Optional: default 50 */
    uint32_t backoff_cap_ms;             /* Optional: default 5000 */
};

struct lmr_aws_request {
    enum lmr_aws_service service;         /* Required */
    const char *method;                   /* Required: GET, HEAD, PUT, POST, DELETE */
    const char *bucket;                   /* S3: the bucket (addressing chosen by the client) */
    const char *path;                     /* Required: encoded path ("/key", "/2015-03-31/functions/f/invocations") */
    const char *query;                    /* Optional: encoded query without '?' */
    const struct lmr_aws_header *headers; /* Optional: extra headers; all are signed */
    size_t n_headers;
    const void *body; /* Optional */
    size_t body_len;
    bool unsigned_payload;     /* S3: sign UNSIGNED-PAYLOAD instead of the body's hash */
    const char *resource;      /* Required: named in errors, e.g. "s3://bucket/key" */
    size_t max_response_bytes; /* Optional: cap on the buffered body; default 16 MiB */
};

struct lmr_aws_response {
    long status;            /* HTTP status of the last attempt; 0 if none arrived */
    struct lmr_buf body;    /* the response body (capped) */
    struct lmr_buf headers; /* "Name: value\r\n" lines of the final response */
    char aws_code[128];     /* AWS error code ("NoSuchKey"), "" on success */
    char aws_message[512];  /* AWS error message, "" on success */
    unsigned attempts;      /* attempts made (1 = no retry) */
};

void lmr_aws_response_init(struct lmr_aws_response *resp);
void lmr_aws_response_clean_up(struct lmr_aws_response *resp);
/** Copy the value of header `name` (case-insensitive) into out. @return out, or NULL if absent. */
const char *lmr_aws_response_header(const struct lmr_aws_response *resp, const char *name, char *out, size_t cap);

/*
 * CA certificates. The AWS CLI and SDKs read AWS_CA_BUNDLE; without it libcurl uses the file it
 * was built with (Debian's /etc/ssl/certs/ca-certificates.crt). In the function package on
 * Lambda's Amazon Linux that file does not exist: the image keeps its bundle at
 * /etc/pki/tls/certs/ca-bundle.crt. So the bundle is the first that applies of AWS_CA_BUNDLE,
 * libcurl's built-in file if it exists, and LMR_AWS_CA_CANDIDATES.
 */
#define LMR_AWS_CA_CANDIDATES                                                                                          \
    {                                                                                                                  \
        "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/certs/ca-certificates.crt", NULL                                 \
    }

/**
 * Pick the CA file: aws_ca_bundle when set and non-empty; else NULL (keep libcurl's default)
 * when builtin is given and readable; else the first readable entry of the NULL-terminated
 * candidates. @return the path, or NULL for libcurl's default (also when nothing is readable:
 * then TLS fails with libcurl's own message).
 */
const char *lmr_aws_ca_file_pick(const char *aws_ca_bundle, const char *builtin, const char *const *candidates);

/**
 * Fill resp->aws_code and aws_message from resp->body (an XML or JSON AWS error document),
 * the x-amzn-ErrorType header or the status, as the client does for a failed request.
 */
void lmr_aws_response_parse_error(struct lmr_aws_response *resp);

/**
 * Create a client. @return LMR_ERR_* from the configuration (see lmr_aws_config_load), or
 * LMR_ERR_NOT_FOUND when AWS_CA_BUNDLE names a file that cannot be read.
 */
enum lmr_result lmr_aws_client_new(const struct lmr_aws_client_options *opts, struct lmr_aws_client **out,
                                   struct lmr_err *err);
/** Free the client and its handles. NULL-safe. */
void lmr_aws_client_destroy(struct lmr_aws_client *c);
/** The resolved configuration (region, endpoints, where credentials came from). */
const struct lmr_aws_config *lmr_aws_client_config(const struct lmr_aws_client *c);

/**
 * Send one request, with retries. 2xx is LMR_OK. Otherwise resp holds the status and AWS
 * code/message and the result is: LMR_ERR_AUTH (no credentials, SignatureDoesNotMatch,
 * AccessDenied, expired token, unknown key), LMR_ERR_NOT_FOUND (NoSuchBucket, NoSuchKey,
 * ResourceNotFoundException, 404), LMR_ERR_EXISTS (412 PreconditionFailed),
 * LMR_ERR_THROTTLED, LMR_ERR_NETWORK / LMR_ERR_TIMEOUT (after retries), LMR_ERR_TOO_LARGE
 * (response over the cap), LMR_ERR_HTTP (anything else). Thread-safe.
 */
enum lmr_result lmr_aws_request(struct lmr_aws_client *c, const struct lmr_aws_request *req,
                                struct lmr_aws_response *resp, struct lmr_err *err);

/* ---- driving requests yourself (curl multi) ---------------------------------------------------------------- */

/* One attempt of a request on a pooled easy handle. */
struct lmr_aws_call {
    CURL *easy;                 /* add this to your multi handle */
    struct curl_slist *headers; /* owned */
    struct lmr_aws_response *resp;
    const struct lmr_aws_request *req;
    char errbuf[CURL_ERROR_SIZE];
};

/** Take a handle, build and sign the request into it (response into resp). Undo with lmr_aws_call_release. */
enum lmr_result lmr_aws_call_prepare(struct lmr_aws_client *c, const struct lmr_aws_request *req,
                                     struct lmr_aws_response *resp, struct lmr_aws_call *call, struct lmr_err *err);
/**
 * Judge a finished attempt (cc from curl). Sets *retry when another attempt may succeed
 * (5xx, throttling, timeouts, resets). @return LMR_OK on 2xx, else as lmr_aws_request.
 */
enum lmr_result lmr_aws_call_finish(struct lmr_aws_client *c, struct lmr_aws_call *call, CURLcode cc, bool *retry,
                                    struct lmr_err *err);
/** Return the handle to the pool and free the call's headers. */
void lmr_aws_call_release(struct lmr_aws_client *c, struct lmr_aws_call *call);
/** Backoff before attempt number `attempt` (1 = first retry), full jitter. */
uint64_t lmr_aws_client_backoff_ms(const struct lmr_aws_client *c, unsigned attempt);
/** Attempts per request configured for this client. */
unsigned lmr_aws_client_max_attempts(const struct lmr_aws_client *c);

#endif
