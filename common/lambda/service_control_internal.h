/*
 * Private to the control plane's files (service_control.c: state, operations and routing;
 * service_control_request.c: request checks; service_control_code.c: fetching and unpacking code).
 */
#ifndef LMR_LAMBDA_SERVICE_CONTROL_INTERNAL_H
#define LMR_LAMBDA_SERVICE_CONTROL_INTERNAL_H

#include <jansson.h>
#include <pthread.h>
#include <regex.h>
#include <stdbool.h>
#include <stdint.h>

#include "lambda/service_control.h"
#include "lambda/zip_unpack.h"

#define RETIRED_MAX 16

/* The configuration a function reports, plus its code directories and a staged update. */
struct lmr_svc_fn_ctl {
    char runtime[32];
    char *role;
    char *handler; /* NULL: none */
    char *description;
    uint32_t memory_mb;
    uint32_t timeout_s;
    json_t *variables; /* Environment.Variables (owned object) or NULL */
    char architecture[8];
    char code_sha256[48];
    uint64_t code_size;
    char last_modified[40];
    char revision_id[40];
    json_t *tags;                 /* owned object or NULL */
    int reserved;                 /* ReservedConcurrentExecutions, -1 = none */
    uint32_t default_concurrency; /* fn->concurrency without a reservation */
    double busy_until_ms;         /* end of the Pending / InProgress window; 0 = none */
    bool creating;                /* the window is the creation (State Pending) */
    bool claimed;                 /* an update is fetching and unpacking its code */
    bool from_cli;                /* registered with --function: its code is an executable, not a zip */
    char *code_dir;               /* STATE/functions/NAME-ID of the running code (owned), NULL for --function */
    char *staged_code_dir;        /* the code of an update in its window */
    struct lmr_svc_fn *staged;    /* an update's running fields (path, handler, memory, ...), swapped in */
    struct {
        char *dir;
        unsigned gen; /* environments with code_gen <= gen still use it */
    } retired[RETIRED_MAX];
    size_t n_retired;
};

struct lmr_svc_control {
    char *state_dir;        /* NULL until the first CreateFunction */
    char *state_dir_wanted; /* from the options, or NULL for a temp dir */
    bool state_dir_temp;
    uint32_t update_delay_ms;
    pthread_mutex_t upload_mu;
    size_t upload_bytes;          /* reserved by code uploads in flight */
    struct lmr_svc_fn *graveyard; /* deleted functions whose environments are not all reaped */
    regex_t role_re, handler_re, env_re, bucket_re;
    bool regex_ready;
};

/* An answer other than success. */
struct lmr_svc_api_err {
    unsigned status;
    const char *type;
    char msg[1024];
};

bool lmr_svc_cp_fail(struct lmr_svc_api_err *e, unsigned status, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define VALIDATION(e, ...) lmr_svc_cp_fail(e, 400, "ValidationException", __VA_ARGS__)
#define INVALID_PARAM(e, ...) lmr_svc_cp_fail(e, 400, "InvalidParameterValueException", __VA_ARGS__)
#define CONFLICT(e, ...) lmr_svc_cp_fail(e, 409, "ResourceConflictException", __VA_ARGS__)
#define SERVICE_ERROR(e, ...) lmr_svc_cp_fail(e, 500, "ServiceException", __VA_ARGS__)

/* The configuration members of CreateFunction and UpdateFunctionConfiguration. */
struct conf_patch {
    const char *runtime, *role, *handler, *description;
    bool has_memory, has_timeout, has_env;
    json_int_t memory, timeout;
    json_t *variables; /* borrowed from the request; NULL with has_env = remove all */
};

/* Where code comes from: ZipFile (base64) or S3Bucket/S3Key. */
struct code_src {
    const char *zip_b64;
    size_t zip_b64_len;
    const char *bucket, *key;
};

/* A code upload after fetch_code: its directory (code.zip, task/), digest and sizes. */
struct code_out {
    char *dir;
    char sha256[48];
    uint64_t zip_bytes;
    struct lmr_zip_summary sum;
};

/* ---- service_control_request.c ---- */

/** The request body as a JSON object, or NULL with InvalidRequestContentException in e. */
json_t *lmr_svc_cp_parse_body(const struct lmr_svc_control_request *req, struct lmr_svc_api_err *e);
/** An error for a member of the wrong JSON type (InvalidRequestContentException). @return false. */
bool lmr_svc_cp_bad_type(struct lmr_svc_api_err *e, const char *member, const char *type);
/** String member key of o (absent or null: *out = NULL) of at most max bytes; name is the model's name. */
bool lmr_svc_cp_get_string(json_t *o, const char *key, const char *name, size_t max, const char **out,
                           struct lmr_svc_api_err *e);
/** Integer member key of o within [min, max]; *present says whether it was given. */
bool lmr_svc_cp_get_int(json_t *o, const char *key, const char *name, json_int_t min, json_int_t max, bool *present,
                        json_int_t *out, struct lmr_svc_api_err *e);
/**
 * FunctionName (a name, an ARN or a partial ARN) into name; create applies CreateFunction's
 * 64-character limit. qualifier_out (optional) gets the qualifier, copied into qual_buf.
 */
bool lmr_svc_cp_parse_name(const char *raw, bool create, char name[65], const char **qualifier_out, char *qual_buf,
                           size_t qual_cap, struct lmr_svc_api_err *e);
/** The configuration members of CreateFunction / UpdateFunctionConfiguration. */
bool lmr_svc_cp_parse_conf(struct lmr_svc_control *cp, json_t *body, struct conf_patch *p, struct lmr_svc_api_err *e);
/** Tags: at most 50, keys of 1-128 and values of at most 256 characters. */
bool lmr_svc_cp_check_tags(json_t *tags, struct lmr_svc_api_err *e);
/** Architectures: one of x86_64, arm64 (*arch = NULL when absent). */
bool lmr_svc_cp_parse_architectures(json_t *body, const char **arch, struct lmr_svc_api_err *e);
/** Code (FunctionCode, or the members of UpdateFunctionCode): ZipFile or S3Bucket + S3Key. */
bool lmr_svc_cp_parse_code(struct lmr_svc_control *cp, json_t *code, struct code_src *src, struct lmr_svc_api_err *e);

/* ---- service_control_code.c ---- */

/** Fetch the code of src into a new directory below the state dir and unpack it there. */
bool lmr_svc_cp_fetch_code(struct lmr_lambda_service *svc, const char *name, const struct code_src *src,
                           struct code_out *out, struct lmr_svc_api_err *e);
/** SHA-256 (base64) and size of a file. */
bool lmr_svc_cp_hash_file(const char *path, char sha[48], uint64_t *size);

static inline bool lmr_svc_cp_regex_ok(const regex_t *re, const char *s)
{
    return regexec(re, s, 0, NULL, 0) == 0;
}

#endif
