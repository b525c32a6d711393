/*
 * The Invoke API of the embedded Lambda service over HTTP on 127.0.0.1:
 * POST /2015-03-31/functions/{FunctionName}/invocations[?Qualifier=Q]. Every other Lambda path
 * goes to the control plane (service_control.c). Errors are answered the way AWS does: JSON
 * {"Type":"User","message":...} with the x-amzn-ErrorType header. SigV4 signatures are accepted
 * and not checked. Every request must arrive whole within the request timeout, and a full
 * connection table evicts the oldest unfinished request (service_guard.c).
 */
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lambda/service_control.h"
#include "lambda/service_internal.h"

#define INVOKE_PREFIX "/2015-03-31/functions/"
#define INVOKE_SUFFIX "/invocations"
#define HTTP_CONNECTIONS_SOFT_LIMIT 512 /* beyond it a new connection evicts the oldest unfinished request */

struct http_req {
    struct lmr_buf body;
    size_t total_bytes;
    bool too_big;
    size_t reserved_bytes; /* of the service's budget for code uploads (service_control.c) */
    bool refused;          /* an upload over that budget: the body is not kept, the answer is 429 */
};

static enum MHD_Result reply_error(struct MHD_Connection *c, unsigned status, const char *code, const char *message,
                                   const char *request_id)
{
    /* The model spells the message member "Message" for some exceptions and "message" for others. */
    bool capital = !strcmp(code, "ResourceNotFoundException") || !strcmp(code, "ServiceException");
    json_t *j =
        json_pack("{s:s, s:s}", "Type", status >= 500 ? "Service" : "User", capital ? "Message" : "message", message);
    if (j && !strcmp(code, "TooManyRequestsException"))
        json_object_set_new(j, "Reason", json_string("ConcurrentInvocationLimitExceeded"));
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    const char *body = s ? s : "{}";
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    free(s);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", "application/json");
    MHD_add_response_header(r, "x-amzn-ErrorType", code);
    if (request_id && *request_id)
        MHD_add_response_header(r, "x-amzn-RequestId", request_id);
    if (status == 429)
        MHD_add_response_header(r, "Retry-After", "1");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

enum MHD_Result lmr_svc_http_reply_error(struct MHD_Connection *c, unsigned status, const char *code,
                                         const char *message, const char *request_id)
{
    return reply_error(c, status, code, message, request_id);
}

static enum MHD_Result reply_outcome(struct MHD_Connection *c, struct lmr_svc_outcome *o, bool tail)
{
    if (o->error_code)
        return reply_error(c, (unsigned)o->status, o->error_code, o->message, o->request_id);
    struct MHD_Response *r =
        MHD_create_response_from_buffer(o->payload.len, o->payload.data ? o->payload.data : "", MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", "application/json");
    MHD_add_response_header(r, "x-amzn-RequestId", o->request_id);
    if (o->status == 200) {
        MHD_add_response_header(r, "X-Amz-Executed-Version", "$LATEST");
        if (o->function_error)
            MHD_add_response_header(r, "X-Amz-Function-Error", "Unhandled");
        if (tail) {
            char b64[4 * ((LMR_LAMBDA_LOG_TAIL_BYTES + 2) / 3) + 1];
            EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)o->tail, (int)o->tail_len);
            MHD_add_response_header(r, "X-Amz-Log-Result", b64);
        }
    }
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)o->status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result handle_invoke(struct lmr_lambda_service *svc, struct MHD_Connection *c, const char *url,
                                     struct http_req *req)
{
    size_t plen = strlen(INVOKE_PREFIX), slen = strlen(INVOKE_SUFFIX), ulen = strlen(url);
    if (ulen <= plen + slen || strcmp(url + ulen - slen, INVOKE_SUFFIX))
        return reply_error(c, 404, "UnknownOperationException",
                           "Unknown operation: lambdamr serve answers Invoke and the function control "
                           "plane (see lambdamr serve --help).",
                           NULL);
    char name[256];
    size_t nlen = ulen - plen - slen;
    if (nlen >= sizeof name || memchr(url + plen, '/', nlen))
        return reply_error(c, 400, "InvalidParameterValueException", "The function name in the path is not valid.",
                           NULL);
    memcpy(name, url + plen, nlen);
    name[nlen] = '\0';

    enum lmr_invoke_type type = LMR_INVOKE_SYNC;
    const char *t = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Amz-Invocation-Type");
    if (t && !strcmp(t, "Event"))
        type = LMR_INVOKE_EVENT;
    else if (t && !strcmp(t, "DryRun"))
        type = LMR_INVOKE_DRY_RUN;
    else if (t && strcmp(t, "RequestResponse")) {
        char msg[512];
        snprintf(msg, sizeof msg,
                 "1 validation error detected: Value '%.200s' at 'invocationType' failed to satisfy constraint: "
                 "Member must satisfy enum value set: [Event, RequestResponse, DryRun]",
                 t);
        return reply_error(c, 400, "InvalidParameterValueException", msg, NULL);
    }
    bool tail = false;
    const char *lt = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Amz-Log-Type");
    if (lt && !strcmp(lt, "Tail"))
        tail = type == LMR_INVOKE_SYNC;
    else if (lt && strcmp(lt, "None")) {
        char msg[512];
        snprintf(msg, sizeof msg,
                 "1 validation error detected: Value '%.200s' at 'logType' failed to satisfy constraint: Member must "
                 "satisfy enum value set: [None, Tail]",
                 lt);
        return reply_error(c, 400, "InvalidParameterValueException", msg, NULL);
    }
    const char *cc = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Amz-Client-Context");
    if (cc && strlen(cc) > 3583)
        return reply_error(c, 400, "InvalidRequestContentException",
                           "Client context must be a valid Base64-encoded JSON object of at most 3583 bytes.", NULL);
    size_t limit = type == LMR_INVOKE_EVENT ? LMR_LAMBDA_EVENT_PAYLOAD_MAX_BYTES : LMR_LAMBDA_SYNC_PAYLOAD_MAX_BYTES;
    if (req->too_big || req->total_bytes > limit) {
        char msg[256];
        snprintf(msg, sizeof msg, "Request must be smaller than %zu bytes for the InvokeFunction operation", limit);
        return reply_error(c, 413, "RequestTooLargeException", msg, NULL);
    }
    const char *qualifier = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "Qualifier");
    struct lmr_svc_outcome o;
    lmr_svc_outcome_init(&o);
    /* The client connection is the caller's key: its invocations prefer the environment it used last. */
    lmr_svc_invoke(svc, name, qualifier, req->body.data ? req->body.data : "", req->body.len, type,
                   tail ? LMR_INVOKE_LOG_TAIL : 0, (uint64_t)(uintptr_t)c, &o);
    enum MHD_Result ret = reply_outcome(c, &o, tail);
    lmr_svc_outcome_clean_up(&o);
    return ret;
}

static enum MHD_Result http_handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                    const char *version, const char *upload_data, size_t *upload_data_size,
                                    void **con_cls)
{
    struct lmr_lambda_service *svc = cls;
    if (!*con_cls) {
        struct http_req *req = calloc(1, sizeof *req);
        if (!req)
            return MHD_NO;
        /* Code uploads may be larger than an Invoke payload; they draw on a budget of their own. */
        size_t cap = lmr_svc_control_body_cap(method, url);
        if (cap > LMR_LAMBDA_SYNC_PAYLOAD_MAX_BYTES) {
            if (lmr_svc_control_reserve(svc, cap))
                req->reserved_bytes = cap;
            else
                req->refused = true, cap = 0;
        }
        lmr_buf_init(&req->body, cap ? cap : LMR_LAMBDA_SYNC_PAYLOAD_MAX_BYTES);
        *con_cls = req;
        return MHD_YES;
    }
    struct http_req *req = *con_cls;
    if (*upload_data_size) {
        /* Keep up to the largest limit; count the rest so an oversize body gets a 413, not a hang. */
        req->total_bytes += *upload_data_size;
        if (!req->too_big && lmr_buf_append(&req->body, upload_data, *upload_data_size) != LMR_OK) {
            req->too_big = true;
            lmr_buf_clean_up(&req->body);
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    lmr_svc_guard_request_received(svc->guard, c);
    enum MHD_Result ret;
    struct lmr_svc_control_request creq = {method, url, &req->body, req->total_bytes, req->too_big, req->refused};
    if (lmr_svc_control_route(svc, c, &creq, &ret))
        return ret;
    if (strncmp(url, INVOKE_PREFIX, strlen(INVOKE_PREFIX)))
        return reply_error(c, 404, "UnknownOperationException",
                           "Unknown operation: lambdamr serve answers Invoke and the function control "
                           "plane (see lambdamr serve --help).",
                           NULL);
    if (strcmp(method, "POST"))
        return reply_error(c, 405, "UnknownOperationException", "Invoke needs the POST method.", NULL);
    return handle_invoke(svc, c, url, req);
}

static void http_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    struct lmr_lambda_service *svc = cls;
    lmr_svc_guard_request_done(svc->guard, c);
    struct http_req *req = *con_cls;
    if (req) {
        lmr_svc_control_release(cls, req->reserved_bytes);
        lmr_buf_clean_up(&req->body);
        free(req);
        *con_cls = NULL;
    }
}

enum lmr_result lmr_svc_http_start(struct lmr_lambda_service *svc, struct lmr_err *err)
{
    if (svc->http)
        return LMR_OK;
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons(svc->port_wanted);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (!svc->guard && lmr_svc_guard_new(svc->request_timeout_ms, HTTP_CONNECTIONS_SOFT_LIMIT, &svc->guard) != LMR_OK)
        return lmr_fail(err, LMR_ERR_NOMEM, "out of memory starting the Lambda Invoke API");
    /* libmicrohttpd's own limit is the hard one; the guard evicts slow requests before it is reached. */
    svc->http = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL, svc->port_wanted,
        lmr_svc_guard_accept, svc->guard, http_handler, svc, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sin,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)(2 * HTTP_CONNECTIONS_SOFT_LIMIT), MHD_OPTION_NOTIFY_CONNECTION, lmr_svc_guard_notify, svc->guard,
        MHD_OPTION_NOTIFY_COMPLETED, http_completed, svc, MHD_OPTION_END);
    if (!svc->http)
        return lmr_fail(err, LMR_ERR_NETWORK,
                        "cannot listen on 127.0.0.1:%u for the Lambda Invoke API; the port may be in use, pick "
                        "another with --port or use 0",
                        svc->port_wanted);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(svc->http, MHD_DAEMON_INFO_BIND_PORT);
    svc->port = info ? info->port : svc->port_wanted;
    return LMR_OK;
}
