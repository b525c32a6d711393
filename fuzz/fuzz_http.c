/*
 * The embedded Lambda service's HTTP request handling (common/lambda/service_http.c over
 * libmicrohttpd): raw request bytes go over a real socket to a running service that has one
 * function ("echo", the test function fn_test beside this binary). Each input is one
 * connection: send, half-close, read the answer until the service closes. The service must
 * answer or close within seconds, never hang or crash.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lambda/service.h"
#include "util/misc.h"

static struct lmr_lambda_service *svc;
static uint16_t port;

static void talk(const uint8_t *data, size_t size, char *resp, size_t cap);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    signal(SIGPIPE, SIG_IGN);
    char *dir = lmr_self_dir();
    char path[4096];
    snprintf(path, sizeof path, "%s/fn_test", dir ? dir : ".");
    free(dir);
    struct lmr_err err = {0};
    struct lmr_lambda_service_options opts = {.event_retry_delay_ms = 10};
    struct lmr_function_config fn = {.name = "echo", .path = path, .handler = "echo", .timeout_s = 5, .concurrency = 2};
    if (lmr_lambda_service_new(&opts, &svc, &err) || lmr_lambda_service_add_function(svc, &fn, &err) ||
        lmr_lambda_service_start(svc, &err)) {
        fprintf(stderr, "fuzz_http: cannot start the service: %s\n", err.msg);
        exit(1);
    }
    port = lmr_lambda_service_port(svc);
    /* The function must work, or every input only meets its failure (the Runtime API client
       under clang's sanitizers once died at its first request, and fuzzing went on "ok"). */
    static const char invoke[] = "POST /2015-03-31/functions/echo/invocations HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                 "Content-Length: 9\r\nConnection: close\r\n\r\n{\"a\":\"b\"}";
    char resp[8192];
    talk((const uint8_t *)invoke, sizeof invoke - 1, resp, sizeof resp);
    if (strncmp(resp, "HTTP/1.1 200", 12) || strstr(resp, "X-Amz-Function-Error") || !strstr(resp, "{\"a\":\"b\"}")) {
        fprintf(stderr, "fuzz_http: a plain invoke of the echo function failed; its answer:\n%s\n", resp);
        exit(1);
    }
    return 0;
}

/* One connection: send data, half-close, read until the service closes; the first cap - 1 bytes
   of the answer go to resp (NUL-terminated) when resp is not NULL. */
static void talk(const uint8_t *data, size_t size, char *resp, size_t cap)
{
    size_t got = 0;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        abort();
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sin, sizeof sin) != 0) {
        /* A signal (the service's child processes) may interrupt connect; the connection then
         * completes in the background: wait for it and read its outcome instead of failing. */
        int e = errno, soerr = 0;
        socklen_t len = sizeof soerr;
        struct pollfd w = {.fd = fd, .events = POLLOUT};
        if (e == EINTR) {
            int rc;
            while ((rc = poll(&w, 1, 5000)) < 0 && errno == EINTR)
                ;
            e = rc == 1 && !getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) ? soerr : ETIMEDOUT;
        }
        if (e) {
            fprintf(stderr, "fuzz_http: connect: %s\n", strerror(e));
            abort();
        }
    }
    size_t off = 0;
    while (off < size) {
        ssize_t n = send(fd, data + off, size - off, MSG_NOSIGNAL);
        if (n <= 0)
            break; /* the service may close early on a bad request */
        off += (size_t)n;
    }
    shutdown(fd, SHUT_WR);
    char buf[65536];
    double deadline = lmr_mono_ms() + 15000;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int left = (int)(deadline - lmr_mono_ms());
        if (left <= 0 || poll(&p, 1, left) == 0) {
            fprintf(stderr, "fuzz_http: the service neither answered nor closed within 15 s\n");
            abort();
        }
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0)
            break;
        if (resp && got + 1 < cap) {
            size_t k = (size_t)n < cap - 1 - got ? (size_t)n : cap - 1 - got;
            memcpy(resp + got, buf, k);
            got += k;
        }
    }
    if (resp && cap)
        resp[got] = '\0';
    close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    talk(data, size, NULL, 0);
    return 0;
}
