/*
 * AWS Signature Version 4 (header and presigned-query signing), on OpenSSL's SHA-256/HMAC.
 *
 * The signer works on a request as it will go on the wire: the path and query are given
 * exactly as sent (already percent-encoded by the caller, see lmr_aws_uri_encode), plus the
 * headers to sign (Host included). It returns what to add to the request: headers
 * (X-Amz-Security-Token, X-Amz-Date, x-amz-content-sha256, Authorization, in that order) or
 * query parameters for a presigned URL. Intermediate results (canonical request, string to
 * sign) are kept for tests and debugging; they never hold the secret key.
 *
 * URI encoding differs by service: S3 signs the path as sent, encoded once; every other
 * service normalises the path (removes "." and ".." segments and empty segments) and encodes
 * the already-encoded path a second time (so "name%3Aalias" is signed as "name%253Aalias").
 */
#ifndef LMR_AWS_SIGV4_H
#define LMR_AWS_SIGV4_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "util/buf.h"
#include "util/result.h"

/* Credentials of one principal. Never printed: error messages name only the access key id. */
struct lmr_aws_credentials {
    char access_key_id[129];
    char secret_access_key[129];
    char session_token[4097]; /* "" if none (long-term keys) */
};

struct lmr_aws_header {
    const char *name;
    const char *value;
};

enum lmr_sigv4_flags {
    LMR_SIGV4_S3 = 1u << 0,                    /* S3 rules: path encoded once, never normalised */
    LMR_SIGV4_CONTENT_SHA256_HEADER = 1u << 1, /* add and sign x-amz-content-sha256 (S3 requires it) */
    LMR_SIGV4_OMIT_SESSION_TOKEN = 1u << 2,    /* add the session token after signing (not signed) */
    LMR_SIGV4_QUERY = 1u << 3,                 /* presigned URL: signature in the query, not in headers */
    LMR_SIGV4_NO_NORMALIZE = 1u << 4,          /* non-S3 only: sign the path without removing dot segments */
};

/* The payload hash that S3 accepts for bodies not hashed up front. */
#define LMR_SIGV4_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"

struct lmr_sigv4_request {
    const char *method;                   /* Required: "GET", "PUT", ... */
    const char *path;                     /* Required: as sent, e.g. "/bucket/a%20b" */
    const char *query;                    /* Optional: as sent, without '?'; NULL or "" = none */
    const struct lmr_aws_header *headers; /* Required: at least Host */
    size_t n_headers;
    const char *payload_sha256_hex; /* Optional: hex SHA-256 of the body, or UNSIGNED-PAYLOAD;
                                       NULL = the hash of an empty body */
};

struct lmr_sigv4_params {
    const struct lmr_aws_credentials *creds; /* Required */
    const char *region;                      /* Required: "us-east-1" */
    const char *service;                     /* Required: "s3", "lambda", "kinesis" */
    time_t signing_time;                     /* Required: seconds since the epoch (UTC) */
    unsigned flags;                          /* enum lmr_sigv4_flags */
    uint32_t expires_s;                      /* Query signing: X-Amz-Expires (1..604800) */
};

#define LMR_SIGV4_MAX_ADDED_HEADERS 4

/* The result of signing. Initialise with lmr_sigv4_signed_init, free with _clean_up. */
struct lmr_sigv4_signed {
    struct lmr_buf canonical_request;
    struct lmr_buf string_to_sign;
    char signature[65]; /* hex */
    char amz_date[17];  /* "20150830T123600Z" */
    /* Header signing: headers to add to the request, in this order. Values are owned here. */
    size_t n_added;
    struct {
        const char *name;
        char *value;
    } added[LMR_SIGV4_MAX_ADDED_HEADERS];
    /* Query signing: parameters to append to the request's query (joined with '&'). */
    struct lmr_buf query_params;
};

void lmr_sigv4_signed_init(struct lmr_sigv4_signed *s);
void lmr_sigv4_signed_clean_up(struct lmr_sigv4_signed *s);

/**
 * Sign a request. On success `out` holds the headers (or query parameters) to add.
 * @return LMR_ERR_INVALID for a missing Host header, empty credentials or a bad argument.
 */
enum lmr_result lmr_sigv4_sign(const struct lmr_sigv4_params *params, const struct lmr_sigv4_request *req,
                               struct lmr_sigv4_signed *out, struct lmr_err *err);

/** Hex SHA-256 of data into out (65 bytes, NUL-terminated). */
void lmr_sha256_hex(const void *data, size_t len, char out[65]);

/**
 * Percent-encode s[0..len) as SigV4 wants: every byte except A-Z a-z 0-9 - . _ ~ becomes %XX
 * (upper-case hex); '/' is kept when keep_slash. Appends to out.
 */
enum lmr_result lmr_aws_uri_encode(struct lmr_buf *out, const char *s, size_t len, bool keep_slash);

/** Decode %XX escapes of s[0..len) (no '+' handling). Appends to out. */
enum lmr_result lmr_aws_uri_decode(struct lmr_buf *out, const char *s, size_t len);

/** Format t as "YYYYMMDDTHHMMSSZ" into out (17 bytes). */
void lmr_aws_amz_date(time_t t, char out[17]);

#endif
