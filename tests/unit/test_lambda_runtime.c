/*
 * The Runtime API client (common/lambda/runtime.c) against a scripted HTTP/1.1 server on a real
 * socket: bodies framed by chunks, by Content-Length and by the close of the connection,
 * "Connection: close" (the client reconnects), a handler error (POST /error with its error type),
 * and LMR_RUNTIME_API_PIPELINING: with it the GET /next arrives in the same write as the POST,
 * before the server answered the POST; without it, only after the answer.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lambda/runtime.h"

#define NEXT_PATH "/2018-06-01/runtime/invocation/next"

static enum lmr_result echo_or_fail(void *user_data, const struct lmr_runtime_context *ctx, const char *event,
                                    size_t event_len, struct lmr_buf *response, struct lmr_err *err)
{
    (void)user_data;
    (void)ctx;
    if (event_len == 3 && !memcmp(event, "bye", 3))
        return lmr_fail(err, LMR_ERR_INVALID, "no more");
    return lmr_buf_append(response, event, event_len);
}

/* One accepted connection and the bytes received on it but not consumed. */
struct conn {
    int fd;
    char buf[65536];
    size_t len;
};

struct req {
    char method[8];
    char path[256];
    char head[4096];
    char body[4096];
    size_t body_len;
};

static void conn_accept(int lfd, struct conn *c)
{
    struct pollfd p = {.fd = lfd, .events = POLLIN};
    assert_int_equal(poll(&p, 1, 10000), 1);
    c->fd = accept(lfd, NULL, NULL);
    assert_true(c->fd >= 0);
    c->len = 0;
}

/* Receive more into c->buf; @return false on a timeout or a close. */
static bool conn_fill(struct conn *c, int timeout_ms)
{
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    if (poll(&p, 1, timeout_ms) != 1)
        return false;
    ssize_t n = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len - 1, 0);
    if (n <= 0)
        return false;
    c->len += (size_t)n;
    c->buf[c->len] = '\0';
    return true;
}

/* Read one whole request (Content-Length bodies only: the client sends nothing else). */
static void read_req(struct conn *c, struct req *r)
{
    char *end;
    while (!(end = memmem(c->buf, c->len, "\r\n\r\n", 4)))
        assert_true(conn_fill(c, 10000));
    size_t head_len = (size_t)(end - c->buf) + 4;
    assert_true(head_len < sizeof r->head);
    memcpy(r->head, c->buf, head_len);
    r->head[head_len] = '\0';
    assert_int_equal(sscanf(r->head, "%7s %255s HTTP/1.1", r->method, r->path), 2);
    size_t body_len = 0;
    const char *cl = strcasestr(r->head, "\r\nContent-Length:");
    if (cl)
        body_len = strtoul(cl + 17, NULL, 10);
    assert_true(body_len < sizeof r->body);
    while (c->len < head_len + body_len)
        assert_true(conn_fill(c, 10000));
    memcpy(r->body, c->buf + head_len, body_len);
    r->body[body_len] = '\0';
    r->body_len = body_len;
    memmove(c->buf, c->buf + head_len + body_len, c->len - head_len - body_len);
    c->len -= head_len + body_len;
    c->buf[c->len] = '\0';
}

static void send_str(struct conn *c, const char *s)
{
    size_t n = strlen(s);
    assert_int_equal(send(c->fd, s, n, MSG_NOSIGNAL), (ssize_t)n);
}

static void expect_post(struct conn *c, const char *path, const char *body)
{
    struct req r;
    read_req(c, &r);
    assert_string_equal(r.method, "POST");
    assert_string_equal(r.path, path);
    assert_string_equal(r.body, body);
    assert_non_null(strcasestr(r.head, "\r\nHost: 127.0.0.1:"));
}

static void expect_next(struct conn *c)
{
    struct req r;
    read_req(c, &r);
    assert_string_equal(r.method, "GET");
    assert_string_equal(r.path, NEXT_PATH);
}

/* After a POST was read: is a GET /next already there (pipelined), or does none come unanswered? */
static void check_pipelined(struct conn *c, bool pipelining)
{
    if (pipelining) {
        while (!memmem(c->buf, c->len, "GET " NEXT_PATH, strlen("GET " NEXT_PATH)))
            assert_true(conn_fill(c, 10000));
    } else {
        assert_false(conn_fill(c, 300)); /* the client waits for the answer to its POST */
    }
}

static void run_script(bool pipelining)
{
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sin, sizeof sin), 0);
    assert_int_equal(listen(lfd, 8), 0);
    socklen_t slen = sizeof sin;
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&sin, &slen), 0);
    char api[64];
    snprintf(api, sizeof api, "127.0.0.1:%u", (unsigned)ntohs(sin.sin_port));

    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failed assertion in the parent leaves no client behind */
        setenv("AWS_LAMBDA_RUNTIME_API", api, 1);
        setenv("LMR_RUNTIME_API_PIPELINING", pipelining ? "1" : "0", 1);
        _exit(lmr_runtime_main(echo_or_fail, NULL));
    }
    struct conn *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b), *c = calloc(1, sizeof *c);
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);

    /* 1: a chunked event (with a chunk extension); the answer closes the connection. */
    conn_accept(lfd, a);
    expect_next(a);
    send_str(a, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nLambda-Runtime-Aws-Request-Id: r1\r\n"
                "Lambda-Runtime-Deadline-Ms: 4102444800000\r\nTransfer-Encoding: chunked\r\n\r\n"
                "3\r\nhel\r\n2;x=1\r\nlo\r\n0\r\n\r\n");
    expect_post(a, "/2018-06-01/runtime/invocation/r1/response", "hello");
    check_pipelined(a, pipelining);
    send_str(a, "HTTP/1.1 202 Accepted\r\nContent-Length: 15\r\nConnection: close\r\n\r\n{\"status\":\"OK\"}");
    close(a->fd);

    /* 2: on a new connection, a Content-Length event; the answer keeps the connection. */
    conn_accept(lfd, b);
    expect_next(b);
    send_str(b, "HTTP/1.1 200 OK\r\nlambda-runtime-aws-request-id: r2\r\nContent-Length: 5\r\n\r\nworld");
    expect_post(b, "/2018-06-01/runtime/invocation/r2/response", "world");
    check_pipelined(b, pipelining);
    send_str(b, "HTTP/1.1 202 Accepted\r\nContent-Length: 15\r\n\r\n{\"status\":\"OK\"}");

    /* 3: an event delimited by the close; the handler fails on it: POST /error on a new connection. */
    expect_next(b);
    send_str(b, "HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: r3\r\nConnection: close\r\n\r\nbye");
    shutdown(b->fd, SHUT_WR);
    conn_accept(lfd, c);
    struct req r;
    read_req(c, &r);
    assert_string_equal(r.method, "POST");
    assert_string_equal(r.path, "/2018-06-01/runtime/invocation/r3/error");
    assert_non_null(strcasestr(r.head, "\r\nLambda-Runtime-Function-Error-Type: lambdamr.Invalid\r\n"));
    assert_non_null(strstr(r.body, "\"errorMessage\":\"no more\""));
    assert_non_null(strstr(r.body, "\"errorType\":\"lambdamr.Invalid\""));
    send_str(c, "HTTP/1.1 202 Accepted\r\nContent-Length: 15\r\n\r\n{\"status\":\"OK\"}");
    expect_next(c); /* and it waits for the next invocation */

    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    close(b->fd);
    close(c->fd);
    close(lfd);
    free(a);
    free(b);
    free(c);
}

static void pipelined(void **state)
{
    (void)state;
    run_script(true);
}

static void not_pipelined(void **state)
{
    (void)state;
    run_script(false);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pipelined),
        cmocka_unit_test(not_pipelined),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
