/*
 * fn_test: a Lambda function (custom runtime) for the tests of the embedded Lambda service.
 * _HANDLER picks the behaviour:
 *   echo      return the event
 *   fail      handler error (errorType lambdamr.Invalid); logs "fail attempt <request id>"
 *   sleep     sleep <event> milliseconds, return "slept"
 *   alloc     allocate and touch <event> MB gradually, return "allocated"; event "MB@MS": stay
 *             quiet (sleep) MS milliseconds first
 *   fork_alloc event "MB@MS": sleep MS milliseconds, then fork a child that does alloc MB and
 *             exits; wait for it, return "allocated" (or an error if the child failed)
 *   crash     abort() the process
 *   exit      exit(7) inside the handler
 *   env       return "NAME=VALUE\n" for each comma-separated name in the event
 *   log       print "<event>" to stdout and stderr, return "logged"
 *   big       return <event> bytes of 'x'
 *   count     return "<pid>:<invocations so far in this process>"
 *   context   return "<request id>|<arn>|<remaining ms>|<function name>|<memory MB>"
 *   init_exit     exit(2) before reaching the Runtime API
 *   init_error    POST /runtime/init/error (Runtime.TestInitError) and exit
 *   init_slow     sleep 200 ms, then behave like echo
 *   abandon   event "abandon": send a GET /next of its own on a second connection, close it
 *             unanswered after 200 ms, return "abandoned"; other events: echo
 *   spy       connect to the Runtime API at <event> (HOST:PORT, a neighbour's), send GET /next
 *             and wait up to 1 s: return "refused" (closed unanswered), "answered:<first line>"
 *             or "timeout"
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lambda/runtime.h"
#include "util/misc.h"

static char mode[64];
static unsigned long count;

static unsigned long number(const char *event, size_t len)
{
    char tmp[32];
    if (len >= sizeof tmp)
        len = sizeof tmp - 1;
    memcpy(tmp, event, len);
    tmp[len] = '\0';
    return strtoul(tmp, NULL, 10);
}

/* A TCP connection to "HOST:PORT" (numeric IPv4) carrying a GET /next; -1 on failure. */
static int send_next(const char *hostport)
{
    char host[64];
    snprintf(host, sizeof host, "%s", hostport);
    char *colon = strrchr(host, ':');
    if (!colon)
        return -1;
    *colon = '\0';
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || inet_pton(AF_INET, host, &sin.sin_addr) != 1 || connect(fd, (struct sockaddr *)&sin, sizeof sin)) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    static const char req[] = "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n";
    if (send(fd, req, sizeof req - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof req - 1)) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Where "alloc" leaves its blocks (volatile: the stores, and so the touched pages, stay). */
static char *volatile alloc_sink;

/* Touch mb MB in 4 MB blocks, 1 ms apart (the blocks stay allocated). @return false if malloc fails. */
static bool alloc_mb(unsigned long mb)
{
    for (unsigned long i = 0; i < mb; i += 4) {
        char *p = malloc(4u << 20);
        if (!p)
            return false;
        memset(p, (int)i, 4u << 20);
        /* p escapes: a compiler may drop an allocation nothing reads (clang's fuzz build did) */
        alloc_sink = p;
        lmr_sleep_ms(1);
    }
    return true;
}

/* The MS of an "MB@MS" event (0 when there is none). */
static unsigned long quiet_ms(const char *event, size_t len)
{
    const char *at = memchr(event, '@', len);
    return at ? number(at + 1, len - (size_t)(at + 1 - event)) : 0;
}

static enum lmr_result handle(void *user_data, const struct lmr_runtime_context *ctx, const char *event,
                              size_t event_len, struct lmr_buf *response, struct lmr_err *err)
{
    count++;
    if (!strcmp(mode, "echo") || !strcmp(mode, "init_slow"))
        return lmr_buf_append(response, event, event_len);
    if (!strcmp(mode, "fail")) {
        fprintf(stderr, "fail attempt %s\n", ctx->request_id);
        return lmr_fail(err, LMR_ERR_INVALID, "failing on purpose for request %s", ctx->request_id);
    }
    if (!strcmp(mode, "sleep")) {
        lmr_sleep_ms(number(event, event_len));
        return lmr_buf_append_str(response, "slept");
    }
    if (!strcmp(mode, "alloc")) {
        lmr_sleep_ms(quiet_ms(event, event_len));
        if (!alloc_mb(number(event, event_len)))
            return lmr_fail(err, LMR_ERR_NOMEM, "malloc failed");
        return lmr_buf_append_str(response, "allocated");
    }
    if (!strcmp(mode, "fork_alloc")) {
        lmr_sleep_ms(quiet_ms(event, event_len));
        fflush(NULL);
        pid_t child = fork();
        if (child < 0)
            return lmr_fail(err, LMR_ERR_IO, "fork failed");
        if (child == 0)
            _exit(alloc_mb(number(event, event_len)) ? 0 : 1);
        int status = 0;
        while (waitpid(child, &status, 0) < 0)
            ;
        if (!WIFEXITED(status) || WEXITSTATUS(status))
            return lmr_fail(err, LMR_ERR_IO, "the allocating child failed (status %d)", status);
        return lmr_buf_append_str(response, "allocated");
    }
    if (!strcmp(mode, "crash"))
        abort();
    if (!strcmp(mode, "exit"))
        exit(7);
    if (!strcmp(mode, "env")) {
        char names[1024];
        size_t n = event_len < sizeof names - 1 ? event_len : sizeof names - 1;
        memcpy(names, event, n);
        names[n] = '\0';
        char *save = NULL;
        for (char *name = strtok_r(names, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
            const char *v = getenv(name);
            lmr_buf_printf(response, "%s=%s\n", name, v ? v : "<unset>");
        }
        return LMR_OK;
    }
    if (!strcmp(mode, "log")) {
        printf("%.*s (stdout)\n", (int)event_len, event);
        fflush(stdout);
        fprintf(stderr, "%.*s (stderr)\n", (int)event_len, event);
        return lmr_buf_append_str(response, "logged");
    }
    if (!strcmp(mode, "big")) {
        unsigned long n = number(event, event_len);
        enum lmr_result r = lmr_buf_reserve(response, n);
        if (r)
            return lmr_fail(err, r, "cannot build a response of %lu bytes", n);
        memset(response->data, 'x', n);
        response->len = n;
        response->data[n] = '\0';
        return LMR_OK;
    }
    if (!strcmp(mode, "abandon")) {
        if (event_len != 7 || memcmp(event, "abandon", 7))
            return lmr_buf_append(response, event, event_len);
        int fd = send_next(getenv("AWS_LAMBDA_RUNTIME_API"));
        if (fd < 0)
            return lmr_fail(err, LMR_ERR_NETWORK, "fn_test abandon: cannot reach the Runtime API");
        lmr_sleep_ms(200); /* the service is now waiting to answer it */
        close(fd);
        return lmr_buf_append_str(response, "abandoned");
    }
    if (!strcmp(mode, "spy")) {
        char target[64];
        snprintf(target, sizeof target, "%.*s", (int)(event_len < 63 ? event_len : 63), event);
        int fd = send_next(target);
        if (fd < 0)
            return lmr_buf_append_str(response, "refused");
        struct pollfd p = {.fd = fd, .events = POLLIN};
        char line[128] = "";
        ssize_t n = poll(&p, 1, 1000) == 1 ? recv(fd, line, sizeof line - 1, 0) : -2;
        close(fd);
        if (n == -2)
            return lmr_buf_append_str(response, "timeout");
        if (n <= 0)
            return lmr_buf_append_str(response, "refused");
        line[n] = '\0';
        line[strcspn(line, "\r\n")] = '\0';
        return lmr_buf_printf(response, "answered:%s", line);
    }
    if (!strcmp(mode, "count"))
        return lmr_buf_printf(response, "%d:%lu", (int)getpid(), count);
    if (!strcmp(mode, "context"))
        return lmr_buf_printf(response, "%s|%s|%lld|%s|%u", ctx->request_id, ctx->invoked_function_arn,
                              (long long)lmr_runtime_remaining_ms(ctx), ctx->function_name, ctx->memory_size_mb);
    return lmr_fail(err, LMR_ERR_INVALID, "fn_test: unknown mode %s", mode);
}

int main(void)
{
    const char *h = getenv("_HANDLER");
    snprintf(mode, sizeof mode, "%s", h ? h : "echo");
    if (!strcmp(mode, "init_exit"))
        return 2;
    if (!strcmp(mode, "init_error"))
        return lmr_runtime_init_error("Runtime.TestInitError", "init failed on purpose");
    if (!strcmp(mode, "init_slow"))
        lmr_sleep_ms(200);
    return lmr_runtime_main(handle, NULL);
}
