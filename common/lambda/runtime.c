/*
 * The AWS Lambda custom-runtime loop (Runtime API client). It speaks HTTP/1.1 over one kept-open
 * TCP connection to $AWS_LAMBDA_RUNTIME_API itself: the exchange is fixed (GET /next, POST
 * /response or /error, POST /init/error) and libcurl's per-request work (five polls and a URL
 * parse per request, no pipelining) was a third of the function's time per invocation of a
 * small batch. Responses may come with Content-Length, chunked, or delimited by the close;
 * "Connection: close" and a dropped connection reconnect. An event with a Content-Length (what
 * Lambda and lambdamr's service send) is handed to the handler where it was received: the
 * receive buffer grows to hold the whole event, so the event is never copied.
 *
 * With LMR_RUNTIME_API_PIPELINING=1 in the environment (lambdamr's embedded service sets it;
 * AWS does not) the GET /next goes out in the same write as the POST of the previous result
 * (HTTP/1.1 pipelining: the server answers them in order), so the service has the next request
 * before it answers the POST, and the function does not wake up for the POST's answer alone.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <arpa/inet.h>
#include <jansson.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "lambda/runtime.h"
#include "util/misc.h"

#define MAX_EVENT_BYTES (6u * 1024 * 1024 + 1024)
#define MAX_RESPONSE_BYTES (6u * 1024 * 1024)
#define MAX_HEADER_BYTES (64u * 1024)                 /* status line and headers of one response */
#define MAX_SMALL_BODY_BYTES (64u * 1024)             /* the answer to a POST */
#define IN_CAP_BYTES (MAX_HEADER_BYTES + 256u * 1024) /* receive buffer: more than any head; grows to hold an event */

/* Stable error types for handler failures: "lambdamr.<Name>". */
static const char *const result_type_names[LMR_RESULT_COUNT] = {
    [LMR_OK] = "Ok",
    [LMR_ERR_INVALID] = "Invalid",
    [LMR_ERR_NOMEM] = "NoMemory",
    [LMR_ERR_IO] = "IO",
    [LMR_ERR_NOT_FOUND] = "NotFound",
    [LMR_ERR_EXISTS] = "Exists",
    [LMR_ERR_TOO_LARGE] = "TooLarge",
    [LMR_ERR_FORMAT] = "Format",
    [LMR_ERR_NETWORK] = "Network",
    [LMR_ERR_HTTP] = "Http",
    [LMR_ERR_AUTH] = "Auth",
    [LMR_ERR_THROTTLED] = "Throttled",
    [LMR_ERR_TIMEOUT] = "Timeout",
    [LMR_ERR_FUNCTION] = "Function",
    [LMR_ERR_UNSUPPORTED] = "Unsupported",
    [LMR_ERR_CANCELLED] = "Cancelled",
    [LMR_ERR_INTERNAL] = "Internal",
};

struct next_headers {
    char request_id[128];
    char arn[256];
    char trace_id[256];
    uint64_t deadline_ms;
};

struct rt {
    char host[256], port[16];
    char host_header[300]; /* "Host: host:port" */
    char prefix[64];       /* "/2018-06-01/runtime/" */
    int fd;                /* -1 = not connected */
    bool pipelining;       /* LMR_RUNTIME_API_PIPELINING=1 */
    bool next_sent;        /* a GET /next went out behind the last POST on this connection */
    char *in;              /* received bytes not consumed yet: in[in_off..in_len) */
    size_t in_off, in_len, in_cap;
    struct lmr_buf event; /* body of the last GET /next when it could not stay in place (chunked, close-delimited) */
    /* The last event: in place in `in` (a Content-Length body: no copy; `in` grows to hold it) or in `event`. */
    const char *ev;
    size_t ev_len;
    char *ev_nul;         /* the byte after an in-place event, set to NUL for the handler (NULL = none) */
    char ev_nul_saved;    /* what that byte was (a pipelined byte of the next response, if any) */
    struct lmr_buf small; /* body of the last answer to a POST */
    struct next_headers hdr;
};

/* One parsed response head. */
struct http_head {
    int status;
    bool close;   /* Connection: close (or HTTP/1.0 without keep-alive) */
    bool chunked; /* Transfer-Encoding: chunked */
    bool has_length;
    uint64_t length;
};

int64_t lmr_runtime_remaining_ms(const struct lmr_runtime_context *ctx)
{
    return (int64_t)ctx->deadline_ms - (int64_t)lmr_wall_ms();
}

static void rt_disconnect(struct rt *rt)
{
    if (rt->fd >= 0)
        close(rt->fd);
    rt->fd = -1;
    rt->next_sent = false;
    rt->in_off = rt->in_len = 0;
}

/* @return 0 when connected. */
static int rt_connect(struct rt *rt)
{
    rt_disconnect(rt);
    /* A numeric IPv4 address (what Lambda and lambdamr give) needs no resolver: a package's root may have no /etc. */
    struct sockaddr_in sin4 = {.sin_family = AF_INET, .sin_port = htons((uint16_t)strtoul(rt->port, NULL, 10))};
    struct addrinfo numeric = {.ai_family = AF_INET,
                               .ai_socktype = SOCK_STREAM,
                               .ai_addr = (struct sockaddr *)&sin4,
                               .ai_addrlen = sizeof sin4};
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    bool is_numeric = inet_pton(AF_INET, rt->host, &sin4.sin_addr) == 1;
    int gai = is_numeric ? 0 : getaddrinfo(rt->host, rt->port, &hints, &res);
    if (gai) {
        fprintf(stderr, "bootstrap: cannot resolve the Runtime API host %s: %s\n", rt->host, gai_strerror(gai));
        return -1;
    }
    int fd = -1, e = 0;
    for (struct addrinfo *a = is_numeric ? &numeric : res; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            e = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        while (connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
            if (errno == EINTR)
                continue;
            e = errno;
            close(fd);
            fd = -1;
            break;
        }
    }
    if (res)
        freeaddrinfo(res);
    if (fd < 0) {
        fprintf(stderr, "bootstrap: cannot connect to the Runtime API at %s:%s: %s\n", rt->host, rt->port, strerror(e));
        return -1;
    }
    rt->fd = fd;
    return 0;
}

/* Write all of iov[0..n). @return 0 on success. */
static int send_all(int fd, struct iovec *iov, int n)
{
    while (n > 0) {
        struct msghdr m = {.msg_iov = iov, .msg_iovlen = (size_t)n};
        ssize_t w = sendmsg(fd, &m, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        size_t left = (size_t)w;
        while (n > 0 && left >= iov->iov_len) {
            left -= iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + left;
            iov->iov_len -= left;
        }
    }
    return 0;
}

/* Receive more bytes into rt->in (which holds heads and chunk-size lines, and whatever body bytes
   came with them). @return bytes received, 0 when the peer closed, -1 on an error. */
static ssize_t fill(struct rt *rt)
{
    if (rt->in_off) {
        memmove(rt->in, rt->in + rt->in_off, rt->in_len - rt->in_off);
        rt->in_len -= rt->in_off;
        rt->in_off = 0;
    }
    if (rt->in_len == rt->in_cap)
        return -1;
    for (;;) {
        ssize_t n = recv(rt->fd, rt->in + rt->in_len, rt->in_cap - rt->in_len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n > 0)
            rt->in_len += (size_t)n;
        return n;
    }
}

/* Find "\r\n" (or "\r\n\r\n" when double) in the unconsumed input, receiving more as needed.
   @return its offset from in_off, or -1 (closed, error, or longer than limit). */
static ssize_t find_line_end(struct rt *rt, bool dbl, size_t limit)
{
    const char *pat = dbl ? "\r\n\r\n" : "\r\n";
    size_t plen = dbl ? 4 : 2;
    for (;;) {
        const char *start = rt->in + rt->in_off;
        size_t avail = rt->in_len - rt->in_off;
        const char *hit = avail >= plen ? memmem(start, avail, pat, plen) : NULL;
        if (hit)
            return hit - start;
        if (avail > limit || fill(rt) <= 0)
            return -1;
    }
}

static void copy_value(char *dst, size_t cap, const char *v, size_t len)
{
    while (len && (v[len - 1] == '\r' || v[len - 1] == '\n' || v[len - 1] == ' ' || v[len - 1] == '\t'))
        len--;
    while (len && (*v == ' ' || *v == '\t'))
        v++, len--;
    if (len >= cap)
        len = cap - 1;
    memcpy(dst, v, len);
    dst[len] = '\0';
}

static bool has_token(const char *v, size_t len, const char *token)
{
    size_t tl = strlen(token);
    for (size_t i = 0; i + tl <= len; i++)
        if (!strncasecmp(v + i, token, tl))
            return true;
    return false;
}

/* Parse one response head (skipping 1xx heads). Lambda-Runtime-* headers go into hdr when non-NULL.
   @return 0, or -1 when the connection is unusable. */
static int read_head(struct rt *rt, struct http_head *h, struct next_headers *hdr)
{
    for (;;) {
        ssize_t end = find_line_end(rt, true, MAX_HEADER_BYTES);
        if (end < 0)
            return -1;
        char *p = rt->in + rt->in_off, *stop = p + end + 2; /* through the last header's CRLF */
        rt->in_off += (size_t)end + 4;
        memset(h, 0, sizeof *h);
        char *eol = memmem(p, (size_t)(stop - p), "\r\n", 2);
        /* "HTTP/1.x NNN reason" */
        if (!eol || eol - p < 12 || memcmp(p, "HTTP/1.", 7) || (p[7] != '0' && p[7] != '1') || p[8] != ' ')
            return -1;
        for (int i = 9; i < 12; i++) {
            if (p[i] < '0' || p[i] > '9')
                return -1;
            h->status = h->status * 10 + (p[i] - '0');
        }
        if (h->status < 100)
            return -1;
        h->close = p[7] == '0';
        for (char *line = eol + 2; line < stop; line = eol + 2) {
            eol = memmem(line, (size_t)(stop - line), "\r\n", 2);
            if (!eol)
                break;
            char *colon = memchr(line, ':', (size_t)(eol - line));
            if (!colon)
                continue;
            size_t klen = (size_t)(colon - line), vlen = (size_t)(eol - colon - 1);
            const char *v = colon + 1;
#define IS(name) (klen == strlen(name) && !strncasecmp(line, name, klen))
            if (IS("Content-Length")) {
                char tmp[32];
                copy_value(tmp, sizeof tmp, v, vlen);
                char *e = NULL;
                errno = 0;
                unsigned long long n = strtoull(tmp, &e, 10);
                if (!tmp[0] || *e || errno)
                    return -1;
                h->has_length = true;
                h->length = n;
            } else if (IS("Transfer-Encoding")) {
                h->chunked = has_token(v, vlen, "chunked");
            } else if (IS("Connection")) {
                if (has_token(v, vlen, "close"))
                    h->close = true;
                else if (has_token(v, vlen, "keep-alive"))
                    h->close = false;
            } else if (hdr && IS("Lambda-Runtime-Aws-Request-Id")) {
                copy_value(hdr->request_id, sizeof hdr->request_id, v, vlen);
            } else if (hdr && IS("Lambda-Runtime-Invoked-Function-Arn")) {
                copy_value(hdr->arn, sizeof hdr->arn, v, vlen);
            } else if (hdr && IS("Lambda-Runtime-Trace-Id")) {
                copy_value(hdr->trace_id, sizeof hdr->trace_id, v, vlen);
            } else if (hdr && IS("Lambda-Runtime-Deadline-Ms")) {
                char tmp[32];
                copy_value(tmp, sizeof tmp, v, vlen);
                hdr->deadline_ms = strtoull(tmp, NULL, 10);
            }
#undef IS
        }
        if (h->status >= 200)
            return 0;
    }
}

/* Move n body bytes into body: first those already received, then straight from the socket. */
static int read_exact(struct rt *rt, struct lmr_buf *body, uint64_t n)
{
    size_t have = rt->in_len - rt->in_off;
    size_t take = have < n ? have : (size_t)n;
    if (take && lmr_buf_append(body, rt->in + rt->in_off, take) != LMR_OK)
        return -1;
    rt->in_off += take;
    n -= take;
    if (n && lmr_buf_reserve(body, (size_t)n) != LMR_OK)
        return -1;
    while (n) {
        ssize_t r = recv(rt->fd, body->data + body->len, (size_t)n, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        body->len += (size_t)r;
        n -= (uint64_t)r;
    }
    if (body->data)
        body->data[body->len] = '\0';
    return 0;
}

/* Receive an n-byte body into rt->in after in_off (growing it so that the body and a NUL after it fit), where the
   caller reads it: the event is not copied out of the receive buffer. @return 0, or -1 (connection broken). */
static int read_in_place(struct rt *rt, uint64_t n)
{
    size_t need = rt->in_off + (size_t)n + 1;
    if (need > rt->in_cap) {
        /* Grow to a multiple of 64 KiB, so that events of about one size grow it once. */
        size_t cap = (need + 65535) & ~(size_t)65535;
        char *q = realloc(rt->in, cap);
        if (!q)
            return -1;
        rt->in = q;
        rt->in_cap = cap;
    }
    while (rt->in_len - rt->in_off < n) {
        ssize_t r = recv(rt->fd, rt->in + rt->in_len, rt->in_cap - rt->in_len, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        rt->in_len += (size_t)r;
    }
    return 0;
}

/* Put back the byte an in-place event's NUL replaced (before anything else reads rt->in). */
static void ev_release(struct rt *rt)
{
    if (rt->ev_nul)
        *rt->ev_nul = rt->ev_nul_saved;
    rt->ev_nul = NULL;
    rt->ev = NULL;
    rt->ev_len = 0;
}

/* Read a whole response into body (reset first); with in_place, a Content-Length body stays in rt->in instead
   (rt->ev, NUL-terminated until ev_release). @return its status, or -1 (the connection is then closed). */
static int read_response(struct rt *rt, struct lmr_buf *body, struct next_headers *hdr, bool in_place)
{
    struct http_head h;
    lmr_buf_reset(body);
    if (read_head(rt, &h, hdr))
        goto broken;
    if (in_place && h.has_length && !h.chunked && h.status != 204 && h.status != 304) {
        if (h.length > body->max_bytes || read_in_place(rt, h.length))
            goto broken;
        rt->ev = rt->in + rt->in_off;
        rt->ev_len = (size_t)h.length;
        rt->in_off += (size_t)h.length;
        rt->ev_nul = rt->in + rt->in_off;
        rt->ev_nul_saved = *rt->ev_nul;
        *rt->ev_nul = '\0';
        if (h.close) {
            /* The connection goes, the buffer stays: the event is read before the next connect. */
            if (rt->fd >= 0)
                close(rt->fd);
            rt->fd = -1;
            rt->next_sent = false;
        }
        return h.status;
    }
    if (h.status == 204 || h.status == 304) {
        /* no body */
    } else if (h.chunked) {
        for (;;) {
            ssize_t end = find_line_end(rt, false, 4096);
            if (end < 0)
                goto broken;
            char *e = NULL;
            unsigned long long size = strtoull(rt->in + rt->in_off, &e, 16);
            if (e == rt->in + rt->in_off)
                goto broken;
            rt->in_off += (size_t)end + 2;
            if (size == 0) {
                /* Trailers, up to the empty line. */
                for (;;) {
                    ssize_t te = find_line_end(rt, false, MAX_HEADER_BYTES);
                    if (te < 0)
                        goto broken;
                    rt->in_off += (size_t)te + 2;
                    if (te == 0)
                        break;
                }
                break;
            }
            if (size > body->max_bytes || read_exact(rt, body, size))
                goto broken;
            ssize_t crlf = find_line_end(rt, false, 2);
            if (crlf != 0)
                goto broken;
            rt->in_off += 2;
        }
    } else if (h.has_length) {
        if (h.length > body->max_bytes || read_exact(rt, body, h.length))
            goto broken;
    } else {
        /* Delimited by the close of the connection. */
        for (;;) {
            size_t have = rt->in_len - rt->in_off;
            if (have && lmr_buf_append(body, rt->in + rt->in_off, have) != LMR_OK)
                goto broken;
            rt->in_off = rt->in_len;
            ssize_t n = fill(rt);
            if (n < 0)
                goto broken;
            if (n == 0)
                break;
        }
        h.close = true;
    }
    if (h.close)
        rt_disconnect(rt);
    return h.status;
broken:
    rt_disconnect(rt);
    return -1;
}

static int fmt_get_next(const struct rt *rt, char *out, size_t cap)
{
    return snprintf(out, cap, "GET %sinvocation/next HTTP/1.1\r\n%s\r\n\r\n", rt->prefix, rt->host_header);
}

/*
 * POST body to prefix+path; with pipelining (and when the caller will wait for the next event
 * anyway: then_next) the GET /next goes in the same write. @return HTTP status or -1.
 */
static long rt_post(struct rt *rt, const char *path, const char *error_type, const void *body, size_t len,
                    bool then_next)
{
    char head[1024], next[512];
    int n_next = 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (rt->fd < 0 && rt_connect(rt))
            return -1;
        char et[300] = "";
        if (error_type)
            snprintf(et, sizeof et, "Lambda-Runtime-Function-Error-Type: %s\r\n", error_type);
        int n = snprintf(head, sizeof head,
                         "POST %s%s HTTP/1.1\r\n%s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n%s\r\n",
                         rt->prefix, path, rt->host_header, len, et);
        if (n < 0 || (size_t)n >= sizeof head)
            return -1;
        bool pipe_next = then_next && rt->pipelining;
        if (pipe_next)
            n_next = fmt_get_next(rt, next, sizeof next);
        struct iovec iov[3] = {
            {head, (size_t)n}, {(void *)(body ? body : ""), len}, {next, pipe_next ? (size_t)n_next : 0}};
        /* A kept connection the server closed in between fails on the write or the read: reconnect
           once (a result that did arrive the first time is refused the second time, harmlessly). */
        if (send_all(rt->fd, iov, pipe_next ? 3 : 2) == 0) {
            int status = read_response(rt, &rt->small, NULL, false);
            if (status >= 0) {
                rt->next_sent = pipe_next && rt->fd >= 0;
                return status;
            }
        }
        rt_disconnect(rt);
    }
    return -1;
}

/* GET /next into rt->ev (in place, or rt->event) and rt->hdr. @return HTTP status or -1. */
static long rt_next(struct rt *rt)
{
    ev_release(rt);
    memset(&rt->hdr, 0, sizeof rt->hdr);
    for (int attempt = 0; attempt < 2; attempt++) {
        if (rt->fd < 0 && rt_connect(rt))
            return -1;
        if (!rt->next_sent) {
            char req[512];
            int n = fmt_get_next(rt, req, sizeof req);
            struct iovec iov = {req, (size_t)n};
            if (send_all(rt->fd, &iov, 1)) {
                rt_disconnect(rt);
                continue;
            }
        }
        rt->next_sent = false;
        int status = read_response(rt, &rt->event, &rt->hdr, true);
        if (status >= 0) {
            if (!rt->ev) {
                rt->ev = rt->event.data ? rt->event.data : "";
                rt->ev_len = rt->event.len;
            }
            return status;
        }
    }
    return -1;
}

static char *error_json(const char *type, const char *message)
{
    json_t *j = json_pack("{s:s, s:s, s:[]}", "errorMessage", message, "errorType", type, "stackTrace");
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return s;
}

static int rt_open(struct rt *rt)
{
    memset(rt, 0, sizeof *rt);
    rt->fd = -1;
    const char *api = getenv("AWS_LAMBDA_RUNTIME_API");
    if (!api || !*api) {
        fprintf(stderr, "bootstrap: AWS_LAMBDA_RUNTIME_API is not set; run this program as a Lambda function (on "
                        "AWS or under 'lambdamr serve')\n");
        return 1;
    }
    /* host:port, [v6]:port, or host alone (port 80). */
    const char *colon = api[0] == '[' ? strstr(api, "]:") : strrchr(api, ':');
    size_t hlen = colon ? (size_t)(colon - api) + (api[0] == '[') : strlen(api);
    const char *hstart = api[0] == '[' ? api + 1 : api;
    if (api[0] == '[')
        hlen -= 2;
    if (hlen == 0 || hlen >= sizeof rt->host) {
        fprintf(stderr, "bootstrap: AWS_LAMBDA_RUNTIME_API=%s is not host:port\n", api);
        return 1;
    }
    memcpy(rt->host, hstart, hlen);
    rt->host[hlen] = '\0';
    snprintf(rt->port, sizeof rt->port, "%s", colon ? colon + (api[0] == '[' ? 2 : 1) : "80");
    snprintf(rt->host_header, sizeof rt->host_header, "Host: %s", api);
    snprintf(rt->prefix, sizeof rt->prefix, "/2018-06-01/runtime/");
    const char *pl = getenv("LMR_RUNTIME_API_PIPELINING");
    rt->pipelining = pl && !strcmp(pl, "1");
    /* The receive buffer exists from the start: every read of it is rt->in + rt->in_off. */
    if (!(rt->in = malloc(IN_CAP_BYTES))) {
        fprintf(stderr, "bootstrap: out of memory for the Runtime API client's %u-byte receive buffer\n", IN_CAP_BYTES);
        return 1;
    }
    rt->in_cap = IN_CAP_BYTES;
    lmr_buf_init(&rt->event, MAX_EVENT_BYTES);
    lmr_buf_init(&rt->small, MAX_SMALL_BODY_BYTES);
    return 0;
}

static void rt_close(struct rt *rt)
{
    rt_disconnect(rt);
    free(rt->in);
    lmr_buf_clean_up(&rt->event);
    lmr_buf_clean_up(&rt->small);
}

int lmr_runtime_main(lmr_handler_fn handler, void *user_data)
{
    struct rt rt;
    if (rt_open(&rt))
        return 1;
    struct lmr_buf response;
    lmr_buf_init(&response, MAX_RESPONSE_BYTES);
    const char *fname = getenv("AWS_LAMBDA_FUNCTION_NAME");
    const char *mem = getenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE");
    unsigned failures = 0;
    for (;;) {
        long status = rt_next(&rt);
        if (status != 200 || !rt.hdr.request_id[0]) {
            if (++failures >= 5) {
                fprintf(stderr,
                        "bootstrap: cannot get the next invocation from the Runtime API at %s:%s: %s (HTTP %ld)\n",
                        rt.host, rt.port, status < 0 ? "connection failed or broken" : "bad answer", status);
                break;
            }
            rt_disconnect(&rt);
            lmr_sleep_ms(10u << failures);
            continue;
        }
        failures = 0;
        struct lmr_runtime_context ctx = {
            .request_id = rt.hdr.request_id,
            .invoked_function_arn = rt.hdr.arn,
            .trace_id = rt.hdr.trace_id,
            .deadline_ms = rt.hdr.deadline_ms,
            .function_name = fname ? fname : "",
            .memory_size_mb = mem ? (uint32_t)strtoul(mem, NULL, 10) : 0,
        };
        lmr_buf_reset(&response);
        struct lmr_err err;
        lmr_err_clear(&err);
        enum lmr_result r = handler(user_data, &ctx, rt.ev, rt.ev_len, &response, &err);
        ev_release(&rt); /* the event's bytes in rt.in are not needed any more: the POST below reuses it */
        char path[256];
        long post_status;
        if (r == LMR_OK) {
            snprintf(path, sizeof path, "invocation/%s/response", rt.hdr.request_id);
            post_status = rt_post(&rt, path, NULL, response.data, response.len, true);
        } else {
            char type[64];
            snprintf(type, sizeof type, "lambdamr.%s",
                     (unsigned)r < LMR_RESULT_COUNT && result_type_names[r] ? result_type_names[r] : "Unknown");
            char *body = error_json(type, err.msg[0] ? err.msg : lmr_result_str(r));
            snprintf(path, sizeof path, "invocation/%s/error", rt.hdr.request_id);
            post_status = rt_post(&rt, path, type, body, body ? strlen(body) : 0, true);
            free(body);
        }
        if (post_status < 0)
            fprintf(stderr, "bootstrap: cannot post the result of request %s to the Runtime API\n", rt.hdr.request_id);
        else if (post_status >= 300)
            fprintf(stderr, "bootstrap: the Runtime API refused the result of request %s: HTTP %ld %.*s\n",
                    rt.hdr.request_id, post_status, (int)(rt.small.len > 300 ? 300 : rt.small.len),
                    rt.small.data ? rt.small.data : "");
    }
    lmr_buf_clean_up(&response);
    rt_close(&rt);
    return 1;
}

int lmr_runtime_init_error(const char *error_type, const char *message)
{
    struct rt rt;
    if (rt_open(&rt))
        return 1;
    char *body = error_json(error_type, message);
    rt_post(&rt, "init/error", error_type, body, body ? strlen(body) : 0, false);
    free(body);
    rt_close(&rt);
    return 1;
}
