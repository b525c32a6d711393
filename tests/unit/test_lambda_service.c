/*
 * The embedded Lambda service through the local invoker: real function processes (fn_test,
 * tests/tools) with real Runtime API endpoints; only the Invoke side is in-process.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lambda/invoker.h"
#include "lambda/service.h"
#include "util/misc.h"

#include "test_lambda_fixture.h"

#include "test_threads.h"

static char fn_path[4096];

static void add(struct fixture *f, const char *name, const char *handler, uint32_t memory_mb, double timeout_s,
                uint32_t concurrency)
{
    struct lmr_function_config cfg = {
        .name = name,
        .path = fn_path,
        .handler = handler,
        .memory_mb = memory_mb,
        .timeout_s = timeout_s,
        .concurrency = concurrency,
    };
    struct lmr_err err = {0};
    assert_int_equal(lmr_lambda_service_add_function(f->svc, &cfg, &err), LMR_OK);
}

static int setup(void **state)
{
    return lambda_fixture_setup(state, "lmr-test-lambda",
                                (struct lmr_lambda_service_options){.event_retry_delay_ms = 20});
}

static int teardown(void **state)
{
    return lambda_fixture_teardown(state);
}

static enum lmr_result call(struct fixture *f, const char *fn, const char *payload, enum lmr_invoke_type type,
                            unsigned flags, struct lmr_invoke_result *res)
{
    struct lmr_err err = {0};
    lmr_invoke_result_init(res, 8u << 20);
    return lmr_invoke(f->inv, fn, payload, strlen(payload), type, flags, res, &err);
}

static char *read_log(struct fixture *f, const char *fn)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.log", lmr_lambda_service_log_dir(f->svc), fn);
    char *data = NULL;
    size_t len = 0;
    if (lmr_read_file(path, 64u << 20, &data, &len, NULL) != LMR_OK)
        return strdup("");
    return data;
}

static int count_occurrences(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(text, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

static void test_cold_then_warm(void **state)
{
    struct fixture *f = *state;
    add(f, "count", "count", 256, 10, 2);
    struct lmr_invoke_result a, b;
    assert_int_equal(call(f, "count", "{}", LMR_INVOKE_SYNC, 0, &a), LMR_OK);
    assert_int_equal(a.status_code, 200);
    assert_string_equal(a.function_error, "");
    assert_true(a.init_duration_ms > 0);
    assert_true(a.duration_ms > 0);
    /* A cold start bills Init + Duration, rounded up to 1 ms, as AWS does. */
    double d = a.duration_ms + a.init_duration_ms;
    assert_true(a.billed_duration_ms >= d && a.billed_duration_ms < d + 1.0001);
    assert_int_equal(a.memory_size_mb, 256);
    assert_true(a.max_memory_used_mb > 0);
    assert_true(strlen(a.request_id) == 36);
    assert_int_equal(call(f, "count", "{}", LMR_INVOKE_SYNC, 0, &b), LMR_OK);
    assert_true(b.init_duration_ms == 0);
    /* Same process (pid), second invocation in it. */
    char pid_a[32];
    snprintf(pid_a, sizeof pid_a, "%.*s", (int)(strchr(a.payload.data, ':') - a.payload.data), a.payload.data);
    char expect[64];
    snprintf(expect, sizeof expect, "%s:2", pid_a);
    assert_string_equal(b.payload.data, expect);
    assert_string_not_equal(a.request_id, b.request_id);
    /* The REPORT lines in the log carry the same figures. */
    char *log = read_log(f, "count");
    assert_int_equal(count_occurrences(log, "REPORT RequestId: "), 2);
    assert_int_equal(count_occurrences(log, "Init Duration: "), 1);
    struct lmr_invoke_result parsed;
    lmr_invoke_result_init(&parsed, 0);
    assert_true(lmr_invoke_result_parse_report(&parsed, strstr(log, "REPORT RequestId: ")));
    assert_string_equal(parsed.request_id, a.request_id);
    assert_int_equal(parsed.memory_size_mb, 256);
    assert_true(parsed.init_duration_ms > 0);
    assert_true(parsed.duration_ms > 0 && parsed.billed_duration_ms == a.billed_duration_ms);
    free(log);
    lmr_invoke_result_clean_up(&parsed);
    lmr_invoke_result_clean_up(&a);
    lmr_invoke_result_clean_up(&b);
}

static void test_function_error(void **state)
{
    struct fixture *f = *state;
    add(f, "fail", "fail", 0, 0, 0);
    struct lmr_invoke_result r;
    assert_int_equal(call(f, "fail", "x", LMR_INVOKE_SYNC, 0, &r), LMR_OK);
    assert_int_equal(r.status_code, 200);
    assert_string_equal(r.function_error, "Unhandled");
    assert_non_null(strstr(r.payload.data, "\"errorType\":\"lambdamr.Invalid\""));
    assert_non_null(strstr(r.payload.data, "failing on purpose"));
    assert_non_null(strstr(r.payload.data, "\"stackTrace\":[]"));
    lmr_invoke_result_clean_up(&r);
}

static void test_timeout_replaces_environment(void **state)
{
    struct fixture *f = *state;
    add(f, "sleep", "sleep", 0, 0.5, 1);
    struct lmr_invoke_result r;
    double t0 = lmr_mono_ms();
    assert_int_equal(call(f, "sleep", "5000", LMR_INVOKE_SYNC, 0, &r), LMR_OK);
    double took = lmr_mono_ms() - t0;
    assert_string_equal(r.function_error, "Unhandled");
    assert_non_null(strstr(r.payload.data, "Task timed out after 0.50 seconds"));
    assert_non_null(strstr(r.payload.data, "Sandbox.Timedout"));
    assert_true(took < 3000);
    assert_true(r.duration_ms >= 500);
    lmr_invoke_result_clean_up(&r);
    /* A new environment answers the next invocation. */
    assert_int_equal(call(f, "sleep", "1", LMR_INVOKE_SYNC, 0, &r), LMR_OK);
    assert_string_equal(r.function_error, "");
    assert_string_equal(r.payload.data, "slept");
    assert_true(r.init_duration_ms > 0);
    lmr_invoke_result_clean_up(&r);
}

static void test_memory_limit(void **state)
{
    struct fixture *f = *state;
    add(f, "alloc", "alloc", 128, 30, 1);
    struct lmr_invoke_result r;
    assert_int_equal(call(f, "alloc", "1024", LMR_INVOKE_SYNC, 0, &r), LMR_OK);
    assert_string_equal(r.function_error, "Unhandled");
    assert_non_null(strstr(r.payload.data, "Runtime.OutOfMemory"));
    assert_non_null(strstr(r.payload.data, "out of memory"));
    assert_true(r.max_memory_used_mb > 128);
    lmr_invoke_result_clean_up(&r);
    /* Under the limit it works, and Max Memory Used covers what was touched. */
    assert_int_equal(call(f, "alloc", "48", LMR_INVOKE_SYNC, 0, &r), LMR_OK);
    assert_string_equal(r.function_error, "");
    assert_true(r.max_memory_used_mb >= 48);
    lmr_invoke_result_clean_up(&r);
}

/* The monitor samples a process far below its memory size rarely: one that stays small for a while
 * and then grows fast, and one whose child (forked after a quiet start) grows, are still ended. */
static void test_memory_limit_after_quiet_start(void **state)
{
    struct fixture *f = *state;
    add(f, "late", "alloc", 128, 30, 1);
    add(f, "child", "fork_alloc", 128, 30, 1);
    const char *fns[] = {"late", "child"};
    for (int i = 0; i < 2; i++) {
        struct lmr_invoke_result r;
        assert_int_equal(call(f, fns[i], "1024@300", LMR_INVOKE_SYNC, 0, &r), LMR_OK);
        assert_string_equal(r.function_error, "Unhandled");
        assert_non_null(strstr(r.payload.data, "Runtime.OutOfMemory"));
        assert_true(r.max_memory_used_mb > 128);
        assert_true(r.duration_ms >= 300);
        lmr_invoke_result_clean_up(&r);
    }
}

/* Memory that grows over many short invocations (fn_test's alloc keeps its blocks) is caught
 * too, though the environment is idle between them: within 40 calls of 8 MB each. */
static void test_memory_limit_short_invocations(void **state)
{
    struct fixture *f = *state;
    add(f, "steps", "alloc", 128, 30, 1);
    int calls = 0;
    bool oom = false;
    while (!oom && calls < 40) {
        struct lmr_invoke_result r;
        assert_int_equal(call(f, "steps", "8", LMR_INVOKE_SYNC, 0, &r), LMR_OK);
        calls++;
        oom = r.payload.data && strstr(r.payload.data, "Runtime.OutOfMemory");
        if (!oom)
            assert_string_equal(r.function_error, "");
        lmr_invoke_result_clean_up(&r);
    }
    assert_true(oom);
    assert_true(calls >= 10); /* not before it held ~80 MB of the 128 */
}

static void test_crash_and_exit(void **state)
{
    struct fixture *f = *state;
    add(f, "crash", "crash", 0, 10, 1);
    add(f, "exit", "exit", 0, 10, 1);
    struct lmr_invoke_result r;
    assert_int_equal(call(f, "crash", "x", LMR_INVOKE_SYNC, 0, &r), LMR_OK);
    assert_string_equal(r.function_error, "Unhandled");
    assert_non_null(strstr(r.payload.data, "Runtime.ExitError"));
    assert_non_null(strstr(r.payload.data, "signal"));
    lmr_invoke_result_clean_up(&r);
    assert_int_equal(call(f, "exit", "x", LMR_INVOKE_SYNC, 0, &r), LMR_OK);
    assert_non_null(strstr(r.payload.data, "Runtime.ExitError"));
    assert_non_null(strstr(r.payload.data, "exit status 7"));
    lmr_invoke_result_clean_up(&r);
    /* Replaced: the crashed environment was not reused. */
    assert_int_equal(call(f, "crash", "x", LMR_INVOKE_SYNC, 0, &r), LMR_OK);
    assert_true(r.init_duration_ms > 0);
    lmr_invoke_result_clean_up(&r);
}

static void test_bad_executables(void **state)
{
    struct fixture *f = *state;
    struct lmr_function_config missing = {.name = "missing", .path = "/nonexistent/bootstrap"};
    assert_int_equal(lmr_lambda_service_add_function(f->svc, &missing, NULL), LMR_OK);
    add(f, "init_exit", "init_exit", 0, 5, 1);
    add(f, "init_error", "init_error", 0, 5, 1);
    struct lmr_invoke_result r;
    assert_int_equal(call(f, "missing", "x", LMR_INVOKE_SYNC, 0, &r), LMR_OK);
    assert_string_equal(r.function_error, "Unhandled");
    assert_non_null(strstr(r.payload.data, "Runtime.InvalidEntrypoint"));
    assert_non_null(strstr(r.payload.data, "No such file"));
    lmr_invoke_result_clean_up(&r);
    assert_int_equal(call(f, "init_exit", "x", LMR_INVOKE_SYNC, 0, &r), LMR_OK);
    assert_non_null(strstr(r.payload.data, "Runtime.ExitError"));
    assert_non_null(strstr(r.payload.data, "exit status 2"));
    lmr_invoke_result_clean_up(&r);
    assert_int_equal(call(f, "init_error", "x", LMR_INVOKE_SYNC, 0, &r), LMR_OK);
    assert_string_equal(r.function_error, "Unhandled");
    assert_non_null(strstr(r.payload.data, "Runtime.TestInitError"));
    lmr_invoke_result_clean_up(&r);
    /* And again: each attempt gets an answer, never a hang. */
    assert_int_equal(call(f, "init_error", "x", LMR_INVOKE_SYNC, 0, &r), LMR_OK);
    assert_non_null(strstr(r.payload.data, "Runtime.TestInitError"));
    lmr_invoke_result_clean_up(&r);
}

/* Issue 11 item 6: a neighbour cannot use an environment's Runtime API. */
static void test_runtime_api_refuses_neighbours(void **state)
{
    struct fixture *f = *state;
    add(f, "victim", "env", 0, 5, 1);
    add(f, "spy", "spy", 0, 5, 1);
    struct lmr_invoke_result r;
    assert_int_equal(call(f, "victim", "AWS_LAMBDA_RUNTIME_API", LMR_INVOKE_SYNC, 0, &r), LMR_OK);
    const char *api = strstr(r.payload.data, "=127.0.0.1:");
    assert_non_null(api);
    char target[64];
    snprintf(target, sizeof target, "%.*s", (int)strcspn(api + 1, "\n"), api + 1);
    lmr_invoke_result_clean_up(&r);

    /* Another function's process, now waiting idle in its own environment. */
    assert_int_equal(call(f, "spy", target, LMR_INVOKE_SYNC, 0, &r), LMR_OK);
    assert_string_equal(r.function_error, "");
    assert_string_equal(r.payload.data, "refused");
    lmr_invoke_result_clean_up(&r);

    /* A plain client: this test process (the service's own, not the environment's). */
    int port = atoi(strchr(target, ':') + 1);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    static const char req[] = "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(send(fd, req, sizeof req - 1, MSG_NOSIGNAL), (ssize_t)(sizeof req - 1));
    struct pollfd p = {.fd = fd, .events = POLLIN};
    assert_int_equal(poll(&p, 1, 2000), 1); /* closed at once, not left waiting for an invocation */
    char buf[64];
    assert_true(recv(fd, buf, sizeof buf, 0) <= 0);
    close(fd);

    /* The environment itself still gets its next invocation and answers it. */
    assert_int_equal(call(f, "victim", "AWS_LAMBDA_FUNCTION_NAME", LMR_INVOKE_SYNC, 0, &r), LMR_OK);
    assert_string_equal(r.function_error, "");
    assert_string_equal(r.payload.data, "AWS_LAMBDA_FUNCTION_NAME=victim\n");
    lmr_invoke_result_clean_up(&r);
    char *log = read_log(f, "victim");
    assert_int_equal(count_occurrences(log, "refused a connection to the Runtime API"), 2);
    free(log);
}

struct bg_call {
    struct fixture *f;
    const char *fn, *payload;
    struct lmr_invoke_result res;
    enum lmr_result rc;
};

static void *bg_main(void *arg)
{
    struct bg_call *c = arg;
    c->rc = call(c->f, c->fn, c->payload, LMR_INVOKE_SYNC, 0, &c->res);
    return NULL;
}

/*
 * Issue 11 item 6: a GET /next whose client left does not swallow the next invocation. The
 * function opens a second GET /next while it runs and closes it unanswered; an Event queued
 * meanwhile is handed out the moment the first invocation ends, when that abandoned request is
 * the only one waiting. It must still reach the runtime's real GET /next at once.
 */
static void test_abandoned_next_does_not_swallow(void **state)
{
    struct fixture *f = *state;
    add(f, "abandon", "abandon", 0, 3, 1);
    struct lmr_invoke_result r;
    assert_int_equal(call(f, "abandon", "warm", LMR_INVOKE_SYNC, 0, &r), LMR_OK);
    lmr_invoke_result_clean_up(&r);
    struct bg_call first = {.f = f, .fn = "abandon", .payload = "abandon"};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, bg_main, &first), 0);
    lmr_sleep_ms(50); /* the first invocation runs (its handler takes 200 ms) */
    assert_int_equal(call(f, "abandon", "second", LMR_INVOKE_EVENT, 0, &r), LMR_OK);
    lmr_invoke_result_clean_up(&r);
    pthread_join(t, NULL);
    assert_int_equal(first.rc, LMR_OK);
    assert_string_equal(first.res.payload.data, "abandoned");
    lmr_invoke_result_clean_up(&first.res);
    struct lmr_lambda_service_stats st;
    double t0 = lmr_mono_ms();
    do {
        lmr_sleep_ms(10);
        lmr_lambda_service_get_stats(f->svc, &st);
    } while (st.invocations_completed < 3 && lmr_mono_ms() - t0 < 2000);
    assert_int_equal(st.invocations_completed, 3); /* well before the 3 s timeout */
    assert_int_equal(st.function_errors, 0);
    char *log = read_log(f, "abandon");
    assert_null(strstr(log, "Task timed out"));
    free(log);
}

static void test_throttle_retried(void **state)
{
    struct fixture *f = *state;
    add(f, "sleep", "sleep", 0, 10, 1);
    /* Warm the single environment so the background call starts at once. */
    struct lmr_invoke_result r;
    assert_int_equal(call(f, "sleep", "1", LMR_INVOKE_SYNC, 0, &r), LMR_OK);
    lmr_invoke_result_clean_up(&r);
    struct bg_call bg = {.f = f, .fn = "sleep", .payload = "400"};
    pthread_t t;
    pthread_create(&t, NULL, bg_main, &bg);
    lmr_sleep_ms(100);
    assert_int_equal(call(f, "sleep", "1", LMR_INVOKE_SYNC, 0, &r), LMR_OK);
    assert_string_equal(r.payload.data, "slept");
    assert_true(r.throttle_retries > 0);
    pthread_join(t, NULL);
    assert_int_equal(bg.rc, LMR_OK);
    assert_int_equal(bg.res.throttle_retries, 0);
    lmr_invoke_result_clean_up(&bg.res);
    lmr_invoke_result_clean_up(&r);
}

/* A chain of invocations (lmr_invoke_chain): what next() saw, where it ran, what it asks for next. */
struct chain_seen {
    const char *const *payloads; /* what next() invokes after call i (NULL ends the chain) */
    int calls;
    pthread_t caller;
    int off_caller;       /* next() calls on a thread other than the caller's */
    int kill_at;          /* 1-based call of next() that kills the environment ("pid:count" answers) first; 0 = none */
    char answers[8][128]; /* payload or "error:<function error>:<payload start>" */
};

static bool chain_next(void *user, enum lmr_result r, struct lmr_invoke_result *res, struct lmr_err *err,
                       const void **payload, size_t *len)
{
    struct chain_seen *c = user;
    assert_int_equal(r, LMR_OK);
    (void)err;
    if (c->calls < 8)
        snprintf(c->answers[c->calls], sizeof c->answers[0], "%s%s%s%.*s", res->function_error[0] ? "error:" : "",
                 res->function_error, res->function_error[0] ? ":" : "",
                 (int)(res->payload.len > 60 ? 60 : res->payload.len), res->payload.data ? res->payload.data : "");
    c->off_caller += !pthread_equal(pthread_self(), c->caller);
    if (c->kill_at && c->calls + 1 == c->kill_at) {
        /* The environment dies while next() runs: what it asks for then must run in another one. */
        long pid = strtol(c->answers[c->calls], NULL, 10);
        assert_true(pid > 1);
        kill((pid_t)pid, SIGKILL);
        lmr_sleep_ms(300); /* its reaper marks it dead meanwhile */
    }
    const char *next = c->payloads[c->calls++];
    if (!next)
        return false;
    *payload = next;
    *len = strlen(next);
    return true;
}

/* The invoke_chain slot left out: lmr_invoke_chain's loop over lmr_invoke_for (the AWS invoker's path). */
static enum lmr_result plain_invoke(struct lmr_invoker *inv, const char *function, const void *payload, size_t len,
                                    enum lmr_invoke_type type, unsigned flags, struct lmr_invoke_result *res,
                                    struct lmr_err *err)
{
    struct lmr_invoker *real = inv->impl;
    return lmr_invoke(real, function, payload, len, type, flags, res, err);
}

static void test_invoke_chain(void **state)
{
    struct fixture *f = *state;
    add(f, "chained", "count", 256, 10, 2);
    struct lmr_lambda_service_stats before, after;
    lmr_lambda_service_get_stats(f->svc, &before);
    static const char *const five[] = {"{}", "{}", "{}", "{}", NULL};
    struct chain_seen c = {.payloads = five, .caller = pthread_self()};
    struct lmr_invoke_result res;
    struct lmr_err err = {0};
    lmr_invoke_result_init(&res, 1u << 20);
    assert_int_equal(lmr_invoke_chain(f->inv, 7, "chained", "{}", 2, 0, &res, chain_next, &c, &err), LMR_OK);
    /* Every outcome seen once, in order, all in one warm environment (one cold start). */
    assert_int_equal(c.calls, 5);
    char pid[32];
    snprintf(pid, sizeof pid, "%.*s", (int)strcspn(c.answers[0], ":"), c.answers[0]);
    for (int i = 0; i < 5; i++) {
        char want[64];
        snprintf(want, sizeof want, "%s:%d", pid, i + 1);
        assert_string_equal(c.answers[i], want);
    }
    assert_int_equal(res.status_code, 200);
    assert_int_equal((int)res.payload.len, (int)strlen(c.answers[4]));
    /* The service ran next() where the results arrived (its Runtime API thread), not on the caller's. */
    assert_int_equal(c.off_caller, 5);
    lmr_lambda_service_get_stats(f->svc, &after);
    assert_int_equal((int)(after.cold_starts - before.cold_starts), 1);
    assert_int_equal((int)(after.invocations_completed - before.invocations_completed), 5);
    assert_int_equal((int)after.invocations_running, 0);

    /* Without the back-end's chain: the same outcomes, next() on the caller's thread. */
    struct lmr_invoker_vtable vt = {.name = "plain", .invoke = plain_invoke};
    struct lmr_invoker plain = {&vt, f->inv};
    static const char *const two[] = {"{}", NULL};
    struct chain_seen d = {.payloads = two, .caller = pthread_self()};
    assert_int_equal(lmr_invoke_chain(&plain, 7, "chained", "{}", 2, 0, &res, chain_next, &d, &err), LMR_OK);
    assert_int_equal(d.calls, 2);
    assert_int_equal(d.off_caller, 0);
    assert_non_null(strchr(d.answers[1], ':'));

    /* The environment dies between two links of a chain: the next link runs in a new environment. */
    static const char *const three[] = {"{}", "{}", NULL};
    struct chain_seen k = {.payloads = three, .caller = pthread_self(), .kill_at = 1};
    lmr_lambda_service_get_stats(f->svc, &before);
    assert_int_equal(lmr_invoke_chain(f->inv, 9, "chained", "{}", 2, 0, &res, chain_next, &k, &err), LMR_OK);
    assert_int_equal(k.calls, 3);
    char pid2[32];
    snprintf(pid2, sizeof pid2, "%.*s", (int)strcspn(k.answers[1], ":"), k.answers[1]);
    assert_string_not_equal(pid2, pid);
    assert_string_not_equal(k.answers[1], "");
    assert_non_null(strstr(k.answers[2], pid2)); /* the last link warm in the new environment */
    lmr_lambda_service_get_stats(f->svc, &after);
    assert_true(after.cold_starts - before.cold_starts >= 1);

    /* An invocation that times out kills its environment: next() sees the error, and the payload it gives
       then runs in a new environment. */
    add(f, "sleepy", "sleep", 256, 0.5, 1);
    static const char *const naps[] = {"900", "1", NULL};
    struct chain_seen e = {.payloads = naps, .caller = pthread_self()};
    lmr_lambda_service_get_stats(f->svc, &before);
    assert_int_equal(lmr_invoke_chain(f->inv, 8, "sleepy", "1", 1, 0, &res, chain_next, &e, &err), LMR_OK);
    assert_int_equal(e.calls, 3);
    assert_string_equal(e.answers[0], "slept");
    assert_non_null(strstr(e.answers[1], "error:Unhandled:"));
    assert_non_null(strstr(e.answers[1], "Sandbox.Timedout"));
    assert_string_equal(e.answers[2], "slept");
    assert_string_equal(res.function_error, "");
    lmr_lambda_service_get_stats(f->svc, &after);
    assert_int_equal((int)(after.cold_starts - before.cold_starts), 2);
    lmr_invoke_result_clean_up(&res);
}

/* The stats say when an invocation runs (what `serve --idle-exit` watches), and when none does. */
static void test_stats_running(void **state)
{
    struct fixture *f = *state;
    add(f, "sleep", "sleep", 0, 10, 2);
    struct lmr_lambda_service_stats st;
    lmr_lambda_service_get_stats(f->svc, &st);
    assert_int_equal(st.invocations_running, 0);
    struct bg_call bg = {.f = f, .fn = "sleep", .payload = "400"};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, bg_main, &bg), 0);
    bool seen = false;
    for (int i = 0; i < 100 && !seen; i++) {
        lmr_sleep_ms(10);
        lmr_lambda_service_get_stats(f->svc, &st);
        seen = st.invocations_running == 1;
    }
    assert_true(seen);
    pthread_join(t, NULL);
    assert_int_equal(bg.rc, LMR_OK);
    lmr_invoke_result_clean_up(&bg.res);
    lmr_lambda_service_get_stats(f->svc, &st);
    assert_int_equal(st.invocations_running, 0);
    assert_int_equal(st.events_queued, 0);
    assert_true(st.invocations_completed >= 1);
}

static bool wait_for_log(struct fixture *f, const char *fn, const char *needle, int count, int timeout_ms)
{
    for (int waited = 0; waited < timeout_ms; waited += 20) {
        char *log = read_log(f, fn);
        int n = count_occurrences(log, needle);
        free(log);
        if (n >= count)
            return true;
        lmr_sleep_ms(20);
    }
    return false;
}

static void test_event_and_dry_run(void **state)
{
    struct fixture *f = *state;
    add(f, "log", "log", 0, 10, 2);
    add(f, "fail", "fail", 0, 10, 2);
    struct lmr_invoke_result r;
    assert_int_equal(call(f, "log", "event-marker-1", LMR_INVOKE_EVENT, 0, &r), LMR_OK);
    assert_int_equal(r.status_code, 202);
    assert_int_equal(r.payload.len, 0);
    char needle[128];
    snprintf(needle, sizeof needle, "REPORT RequestId: %s", r.request_id);
    assert_true(wait_for_log(f, "log", needle, 1, 10000));
    assert_true(wait_for_log(f, "log", "event-marker-1 (stdout)", 1, 100));
    assert_true(wait_for_log(f, "log", "event-marker-1 (stderr)", 1, 100));
    lmr_invoke_result_clean_up(&r);
    /* Event retries: a failing event is attempted three times in all (same request id). */
    assert_int_equal(call(f, "fail", "x", LMR_INVOKE_EVENT, 0, &r), LMR_OK);
    snprintf(needle, sizeof needle, "fail attempt %s", r.request_id);
    assert_true(wait_for_log(f, "fail", needle, 3, 15000));
    lmr_sleep_ms(300);
    char *log = read_log(f, "fail");
    assert_int_equal(count_occurrences(log, needle), 3);
    free(log);
    lmr_invoke_result_clean_up(&r);
    /* DryRun validates only. */
    assert_int_equal(call(f, "log", "dry", LMR_INVOKE_DRY_RUN, 0, &r), LMR_OK);
    assert_int_equal(r.status_code, 204);
    lmr_invoke_result_clean_up(&r);
    assert_int_equal(call(f, "nope", "dry", LMR_INVOKE_DRY_RUN, 0, &r), LMR_ERR_NOT_FOUND);
    lmr_invoke_result_clean_up(&r);
}

static void test_many_events_queue(void **state)
{
    struct fixture *f = *state;
    add(f, "echo", "echo", 0, 10, 2);
    struct lmr_invoke_result r;
    for (int i = 0; i < 200; i++) {
        assert_int_equal(call(f, "echo", "e", LMR_INVOKE_EVENT, 0, &r), LMR_OK);
        assert_int_equal(r.status_code, 202);
        assert_int_equal(r.throttle_retries, 0);
        lmr_invoke_result_clean_up(&r);
    }
    assert_true(wait_for_log(f, "echo", "REPORT RequestId:", 200, 20000));
}

static void test_payload_limits_and_names(void **state)
{
    struct fixture *f = *state;
    add(f, "echo", "echo", 0, 10, 2);
    struct lmr_err err = {0};
    struct lmr_invoke_result r;
    size_t big = LMR_LAMBDA_SYNC_PAYLOAD_MAX_BYTES;
    char *p = malloc(big + 2);
    memset(p, 'a', big + 1);
    p[big + 1] = '\0';
    lmr_invoke_result_init(&r, 8u << 20);
    assert_int_equal(lmr_invoke(f->inv, "echo", p, big + 1, LMR_INVOKE_SYNC, 0, &r, &err), LMR_ERR_TOO_LARGE);
    assert_int_equal(r.status_code, 413);
    assert_non_null(strstr(err.msg, "RequestTooLargeException"));
    /* Exactly the limit goes through, both ways. */
    assert_int_equal(lmr_invoke(f->inv, "echo", p, big, LMR_INVOKE_SYNC, 0, &r, &err), LMR_OK);
    assert_int_equal(r.payload.len, big);
    assert_string_equal(r.function_error, "");
    assert_int_equal(
        lmr_invoke(f->inv, "echo", p, LMR_LAMBDA_EVENT_PAYLOAD_MAX_BYTES + 1, LMR_INVOKE_EVENT, 0, &r, &err),
        LMR_ERR_TOO_LARGE);
    assert_int_equal(r.status_code, 413);
    assert_int_equal(lmr_invoke(f->inv, "echo", p, LMR_LAMBDA_EVENT_PAYLOAD_MAX_BYTES, LMR_INVOKE_EVENT, 0, &r, &err),
                     LMR_OK);
    assert_int_equal(r.status_code, 202);
    lmr_invoke_result_clean_up(&r);
    free(p);
    /* Names: ARN, partial ARN, $LATEST qualifier; unknown name and unknown version are 404. */
    const char *ok[] = {"echo", "echo:$LATEST", "arn:aws:lambda:us-east-1:000000000000:function:echo",
                        "000000000000:function:echo:$LATEST"};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(call(f, ok[i], "n", LMR_INVOKE_SYNC, 0, &r), LMR_OK);
        assert_string_equal(r.payload.data, "n");
        lmr_invoke_result_clean_up(&r);
    }
    assert_int_equal(call(f, "nope", "n", LMR_INVOKE_SYNC, 0, &r), LMR_ERR_NOT_FOUND);
    assert_int_equal(r.status_code, 404);
    lmr_invoke_result_clean_up(&r);
    assert_int_equal(call(f, "echo:v7", "n", LMR_INVOKE_SYNC, 0, &r), LMR_ERR_NOT_FOUND);
    lmr_invoke_result_clean_up(&r);
    assert_int_equal(call(f, "bad name!", "n", LMR_INVOKE_SYNC, 0, &r), LMR_ERR_INVALID);
    lmr_invoke_result_clean_up(&r);
}

static void test_environment_variables_and_context(void **state)
{
    struct fixture *f = *state;
    setenv("AWS_ACCESS_KEY_ID", "AKIDTESTPASSTHROUGH", 1);
    setenv("LMR_TEST_MARKER", "marker-42", 1);
    const char *extra[] = {"EXTRA_SETTING=on", "AWS_LAMBDA_FUNCTION_NAME=spoofed", NULL};
    struct lmr_function_config cfg = {.name = "env", .path = fn_path, .handler = "env", .memory_mb = 512, .env = extra};
    assert_int_equal(lmr_lambda_service_add_function(f->svc, &cfg, NULL), LMR_OK);
    add(f, "context", "context", 256, 7, 1);
    struct lmr_invoke_result r;
    assert_int_equal(
        call(f, "env",
             "AWS_LAMBDA_FUNCTION_NAME,AWS_LAMBDA_FUNCTION_MEMORY_SIZE,AWS_LAMBDA_FUNCTION_VERSION,_HANDLER,"
             "AWS_ACCESS_KEY_ID,LMR_TEST_MARKER,EXTRA_SETTING,AWS_REGION",
             LMR_INVOKE_SYNC, 0, &r),
        LMR_OK);
    const char *want[] = {"AWS_LAMBDA_FUNCTION_NAME=env\n",
                          "AWS_LAMBDA_FUNCTION_MEMORY_SIZE=512\n",
                          "AWS_LAMBDA_FUNCTION_VERSION=$LATEST\n",
                          "_HANDLER=env\n",
                          "AWS_ACCESS_KEY_ID=AKIDTESTPASSTHROUGH\n",
                          "LMR_TEST_MARKER=marker-42\n",
                          "EXTRA_SETTING=on\n",
                          "AWS_REGION="};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!strstr(r.payload.data, want[i]))
            fail_msg("missing %s in %s", want[i], r.payload.data);
    lmr_invoke_result_clean_up(&r);
    assert_int_equal(
        call(f, "env", "AWS_LAMBDA_RUNTIME_API,LAMBDA_TASK_ROOT,AWS_LAMBDA_LOG_STREAM_NAME", LMR_INVOKE_SYNC, 0, &r),
        LMR_OK);
    assert_non_null(strstr(r.payload.data, "AWS_LAMBDA_RUNTIME_API=127.0.0.1:"));
    assert_non_null(strstr(r.payload.data, "[$LATEST]"));
    char root[4096];
    snprintf(root, sizeof root, "LAMBDA_TASK_ROOT=%s\n", getenv("LMR_BIN_DIR"));
    char *abs = lmr_abspath(getenv("LMR_BIN_DIR"));
    snprintf(root, sizeof root, "LAMBDA_TASK_ROOT=%s\n", abs);
    free(abs);
    assert_non_null(strstr(r.payload.data, root));
    lmr_invoke_result_clean_up(&r);
    assert_int_equal(call(f, "context", "", LMR_INVOKE_SYNC, 0, &r), LMR_OK);
    char id[64], arn[256], name[64];
    long long remaining = 0;
    unsigned mem = 0;
    assert_int_equal(sscanf(r.payload.data, "%63[^|]|%255[^|]|%lld|%63[^|]|%u", id, arn, &remaining, name, &mem), 5);
    assert_string_equal(id, r.request_id);
    assert_non_null(strstr(arn, ":function:context"));
    assert_true(remaining > 5000 && remaining <= 7000);
    assert_string_equal(name, "context");
    assert_int_equal(mem, 256);
    lmr_invoke_result_clean_up(&r);
}

static void test_log_tail(void **state)
{
    struct fixture *f = *state;
    add(f, "log", "log", 0, 10, 1);
    struct lmr_invoke_result r;
    assert_int_equal(call(f, "log", "tail-marker", LMR_INVOKE_SYNC, LMR_INVOKE_LOG_TAIL, &r), LMR_OK);
    assert_string_equal(r.payload.data, "logged");
    assert_non_null(strstr(r.log_tail, "tail-marker (stdout)"));
    assert_non_null(strstr(r.log_tail, "tail-marker (stderr)"));
    assert_non_null(strstr(r.log_tail, "START RequestId: "));
    struct lmr_invoke_result parsed;
    lmr_invoke_result_init(&parsed, 0);
    assert_true(lmr_invoke_result_parse_report(&parsed, r.log_tail));
    assert_string_equal(parsed.request_id, r.request_id);
    assert_true(parsed.init_duration_ms > 0);
    lmr_invoke_result_clean_up(&r);
    /* Only this invocation's lines: the first one's marker is not in the second tail. */
    assert_int_equal(call(f, "log", "second", LMR_INVOKE_SYNC, LMR_INVOKE_LOG_TAIL, &r), LMR_OK);
    assert_null(strstr(r.log_tail, "tail-marker"));
    assert_non_null(strstr(r.log_tail, "second (stdout)"));
    assert_true(lmr_invoke_result_parse_report(&parsed, r.log_tail));
    assert_true(parsed.init_duration_ms == 0);
    lmr_invoke_result_clean_up(&r);
}

#define THREADS 12
#define CALLS_PER_THREAD 40

static void *hammer(void *arg)
{
    struct fixture *f = arg;
    long bad = 0;
    for (int i = 0; i < CALLS_PER_THREAD; i++) {
        char payload[64];
        snprintf(payload, sizeof payload, "{\"thread\":%lu,\"i\":%d}", (unsigned long)pthread_self() % 100000, i);
        struct lmr_invoke_result r;
        if (call(f, "echo", payload, LMR_INVOKE_SYNC, 0, &r) != LMR_OK || strcmp(r.payload.data, payload))
            bad++;
        lmr_invoke_result_clean_up(&r);
    }
    return (void *)bad;
}

static void test_concurrent_threads(void **state)
{
    struct fixture *f = *state;
    add(f, "echo", "echo", 0, 30, 4);
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, hammer, f);
    assert_int_equal(join_sum(t, THREADS), 0);
    char *log = read_log(f, "echo");
    assert_int_equal(count_occurrences(log, "REPORT RequestId:"), THREADS * CALLS_PER_THREAD);
    assert_true(count_occurrences(log, "Init Duration:") <= 4);
    free(log);
}

/* The pid part of a "count" answer ("<pid>:<n>") for client `client`. */
static long count_pid(struct fixture *f, uint64_t client)
{
    struct lmr_invoke_result r;
    struct lmr_err err = {0};
    lmr_invoke_result_init(&r, 1024);
    assert_int_equal(lmr_invoke_for(f->inv, client, "count", "{}", 2, LMR_INVOKE_SYNC, 0, &r, &err), LMR_OK);
    assert_int_equal(r.status_code, 200);
    long pid = strtol(r.payload.data ? r.payload.data : "", NULL, 10);
    lmr_invoke_result_clean_up(&r);
    return pid;
}

struct pair_arg {
    struct fixture *f;
    uint64_t client;
    pthread_barrier_t *go;
    long pid;
};

static void *pair_main(void *arg)
{
    struct pair_arg *a = arg;
    pthread_barrier_wait(a->go);
    a->pid = count_pid(a->f, a->client);
    return NULL;
}

/* A client's invocations go to the idle environment it used last (a stream lane keeps its state). */
static void test_environment_affinity(void **state)
{
    struct fixture *f = *state;
    add(f, "count", "count", 0, 10, 2);
    /* Two clients at once: two environments (the second finds the first busy with its cold start). */
    long pid_a = 0, pid_b = 0;
    for (int attempt = 0; attempt < 10 && (!pid_a || pid_a == pid_b); attempt++) {
        pthread_barrier_t go;
        pthread_barrier_init(&go, NULL, 2);
        struct pair_arg a = {f, 11, &go, 0}, b = {f, 22, &go, 0};
        pthread_t ta, tb;
        pthread_create(&ta, NULL, pair_main, &a);
        pthread_create(&tb, NULL, pair_main, &b);
        pthread_join(ta, NULL);
        pthread_join(tb, NULL);
        pthread_barrier_destroy(&go);
        pid_a = a.pid;
        pid_b = b.pid;
    }
    assert_true(pid_a > 0 && pid_b > 0 && pid_a != pid_b);
    /* An irregular order: without the preference, the environment idle longest would serve them in turn. */
    const uint64_t order[] = {11, 11, 22, 11, 22, 22, 11, 11, 22};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
        assert_int_equal(count_pid(f, order[i]), order[i] == 11 ? pid_a : pid_b);
    /* No client: the environment idle the longest (here a's, used before b's last call). */
    assert_int_equal(count_pid(f, 0), pid_a);
}

static void test_config_validation(void **state)
{
    struct fixture *f = *state;
    struct lmr_err err = {0};
    struct lmr_function_config bad_name = {.name = "has space", .path = fn_path};
    assert_int_equal(lmr_lambda_service_add_function(f->svc, &bad_name, &err), LMR_ERR_INVALID);
    struct lmr_function_config bad_mem = {.name = "m", .path = fn_path, .memory_mb = 64};
    assert_int_equal(lmr_lambda_service_add_function(f->svc, &bad_mem, &err), LMR_ERR_INVALID);
    struct lmr_function_config bad_timeout = {.name = "t", .path = fn_path, .timeout_s = 901};
    assert_int_equal(lmr_lambda_service_add_function(f->svc, &bad_timeout, &err), LMR_ERR_INVALID);
    add(f, "dup", "echo", 0, 0, 0);
    struct lmr_function_config dup = {.name = "dup", .path = fn_path};
    assert_int_equal(lmr_lambda_service_add_function(f->svc, &dup, &err), LMR_ERR_EXISTS);
}

static void test_parse_report(void **state)
{
    struct lmr_invoke_result r;
    lmr_invoke_result_init(&r, 0);
    assert_false(lmr_invoke_result_parse_report(&r, "START RequestId: x\nEND RequestId: x\n"));
    assert_true(lmr_invoke_result_parse_report(
        &r, "junk\nREPORT RequestId: 6f5c1a2b-0000-4c4c-9d9d-abcdefabcdef\tDuration: 12.34 ms\tBilled Duration: 13 "
            "ms\tMemory Size: 512 MB\tMax Memory Used: 77 MB\tInit Duration: 150.02 ms\t\nmore"));
    assert_string_equal(r.request_id, "6f5c1a2b-0000-4c4c-9d9d-abcdefabcdef");
    assert_true(r.duration_ms > 12.33 && r.duration_ms < 12.35);
    assert_true(r.billed_duration_ms == 13);
    assert_int_equal(r.memory_size_mb, 512);
    assert_int_equal(r.max_memory_used_mb, 77);
    assert_true(r.init_duration_ms > 150.01 && r.init_duration_ms < 150.03);
    assert_true(lmr_invoke_result_parse_report(
        &r, "REPORT RequestId: abc Duration: 1.00 ms Billed Duration: 1 ms Memory Size: 128 MB Max Memory Used: 9 MB"));
    assert_true(r.init_duration_ms == 0);
    assert_int_equal(r.max_memory_used_mb, 9);
    lmr_invoke_result_clean_up(&r);
}

int main(void)
{
    const char *bin = getenv("LMR_BIN_DIR");
    snprintf(fn_path, sizeof fn_path, "%s/fn_test", bin ? bin : "build/bin");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_report),
        cmocka_unit_test_setup_teardown(test_config_validation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cold_then_warm, setup, teardown),
        cmocka_unit_test_setup_teardown(test_function_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_replaces_environment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_memory_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_memory_limit_after_quiet_start, setup, teardown),
        cmocka_unit_test_setup_teardown(test_memory_limit_short_invocations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_and_exit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_executables, setup, teardown),
        cmocka_unit_test_setup_teardown(test_throttle_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_event_and_dry_run, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_events_queue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_payload_limits_and_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_environment_variables_and_context, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_tail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_environment_affinity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_runtime_api_refuses_neighbours, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abandoned_next_does_not_swallow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stats_running, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invoke_chain, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
