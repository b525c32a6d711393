/*
 * Environments started ahead of their invocations (lmr_lambda_service_prestart) and the wait for
 * the service to go idle (lmr_lambda_service_wait_idle), with real function processes (fn_test,
 * tests/tools) behind real Runtime API endpoints; only the Invoke side is in-process.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lambda/invoker.h"
#include "lambda/service.h"
#include "util/misc.h"

#include "test_lambda_fixture.h"

static char fn_path[4096];

static void add(struct fixture *f, const char *name, const char *handler, uint32_t concurrency)
{
    struct lmr_function_config cfg = {
        .name = name, .path = fn_path, .handler = handler, .timeout_s = 10, .concurrency = concurrency};
    struct lmr_err err = {0};
    assert_int_equal(lmr_lambda_service_add_function(f->svc, &cfg, &err), LMR_OK);
}

static int setup(void **state)
{
    return lambda_fixture_setup(state, "lmr-test-prestart", (struct lmr_lambda_service_options){0});
}

static int teardown(void **state)
{
    return lambda_fixture_teardown(state);
}

static enum lmr_result call(struct fixture *f, const char *fn, const char *payload, struct lmr_invoke_result *res)
{
    struct lmr_err err = {0};
    lmr_invoke_result_init(res, 1u << 20);
    return lmr_invoke(f->inv, fn, payload, strlen(payload), LMR_INVOKE_SYNC, 0, res, &err);
}

static uint64_t cold_starts(struct fixture *f)
{
    struct lmr_lambda_service_stats st;
    lmr_lambda_service_get_stats(f->svc, &st);
    return st.cold_starts;
}

/* The pid part of fn_test's count answer "PID:N". */
static long answer_pid(const struct lmr_invoke_result *r)
{
    return r->payload.data ? strtol(r->payload.data, NULL, 10) : -1;
}

/* Started ahead: no new process for the invocations that follow, and the Init is still reported once each. */
static void test_prestarted_environments_take_the_invocations(void **state)
{
    struct fixture *f = *state;
    add(f, "count", "count", 3);
    struct lmr_err err = {0};
    assert_int_equal(lmr_lambda_service_prestart(f->svc, "count", 2, &err), LMR_OK);
    assert_int_equal(cold_starts(f), 2);
    /* Already alive environments count: asking again starts none. */
    assert_int_equal(lmr_lambda_service_prestart(f->svc, "count", 2, &err), LMR_OK);
    assert_int_equal(cold_starts(f), 2);
    /* An invocation right away waits for an environment's Init instead of starting a third process. */
    struct lmr_invoke_result a, b, c;
    assert_int_equal(call(f, "count", "{}", &a), LMR_OK);
    assert_string_equal(a.function_error, "");
    assert_true(a.init_duration_ms > 0); /* the environment's Init goes into its first REPORT */
    assert_int_equal(cold_starts(f), 2);
    assert_int_equal(call(f, "count", "{}", &b), LMR_OK);
    assert_int_equal(call(f, "count", "{}", &c), LMR_OK);
    assert_int_equal(cold_starts(f), 2);
    /* Three invocations on two processes: one of them ran two, and no Init was reported twice. */
    long pa = answer_pid(&a), pb = answer_pid(&b), pc = answer_pid(&c);
    assert_true(pa > 0 && pb > 0 && pc > 0);
    assert_true(pa == pb || pa == pc || pb == pc);
    int inits = (a.init_duration_ms > 0) + (b.init_duration_ms > 0) + (c.init_duration_ms > 0);
    assert_true(inits >= 1 && inits <= 2);
    lmr_invoke_result_clean_up(&a);
    lmr_invoke_result_clean_up(&b);
    lmr_invoke_result_clean_up(&c);
}

/* Never more than the function's concurrency; an unknown function is an error that names it. */
static void test_prestart_limits(void **state)
{
    struct fixture *f = *state;
    add(f, "count", "count", 2);
    struct lmr_err err = {0};
    assert_int_equal(lmr_lambda_service_prestart(f->svc, "count", 50, &err), LMR_OK);
    assert_int_equal(cold_starts(f), 2);
    assert_int_equal(lmr_lambda_service_prestart(f->svc, "nosuch", 1, &err), LMR_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, "nosuch"));
    assert_int_equal(lmr_lambda_service_prestart(f->svc, "count", 0, NULL), LMR_OK);
    assert_int_equal(cold_starts(f), 2);
}

/* An environment that cannot start ahead leaves the invocation to report why, as a cold start does. */
static void test_prestart_of_a_missing_executable(void **state)
{
    struct fixture *f = *state;
    struct lmr_function_config cfg = {.name = "gone", .path = "/nonexistent/bootstrap", .timeout_s = 5};
    struct lmr_err err = {0};
    assert_int_equal(lmr_lambda_service_add_function(f->svc, &cfg, &err), LMR_OK);
    assert_int_equal(lmr_lambda_service_prestart(f->svc, "gone", 1, &err), LMR_ERR_IO);
    assert_non_null(strstr(err.msg, "gone"));
    struct lmr_invoke_result r;
    call(f, "gone", "{}", &r);
    assert_string_equal(r.function_error, "Unhandled");
    assert_non_null(strstr(r.payload.data ? r.payload.data : "", "Runtime.InvalidEntrypoint"));
    lmr_invoke_result_clean_up(&r);
}

struct bg_call {
    struct fixture *f;
    struct lmr_invoke_result res;
    enum lmr_result rc;
};

static void *bg_main(void *arg)
{
    struct bg_call *c = arg;
    c->rc = call(c->f, "sleep", "300", &c->res);
    return NULL;
}

/* wait_idle: at once when nothing runs; false at its timeout while one runs; woken by the end. */
static void test_wait_idle(void **state)
{
    struct fixture *f = *state;
    add(f, "sleep", "sleep", 1);
    assert_true(lmr_lambda_service_wait_idle(f->svc, 0));
    struct bg_call bg = {.f = f};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, bg_main, &bg), 0);
    struct lmr_lambda_service_stats st = {0};
    for (int i = 0; i < 500 && !st.invocations_running; i++) {
        lmr_sleep_ms(2);
        lmr_lambda_service_get_stats(f->svc, &st);
    }
    assert_int_equal(st.invocations_running, 1);
    double t0 = lmr_mono_ms();
    assert_false(lmr_lambda_service_wait_idle(f->svc, 20));
    assert_true(lmr_mono_ms() - t0 >= 19);
    assert_true(lmr_lambda_service_wait_idle(f->svc, 10000));
    lmr_lambda_service_get_stats(f->svc, &st);
    assert_int_equal(st.invocations_running, 0);
    pthread_join(t, NULL);
    assert_int_equal(bg.rc, LMR_OK);
    assert_string_equal(bg.res.function_error, "");
    lmr_invoke_result_clean_up(&bg.res);
}

struct bg_prestart {
    struct fixture *f;
    const char *name;
    uint32_t count;
    enum lmr_result rc;
};

static void *prestart_main(void *arg)
{
    struct bg_prestart *p = arg;
    p->rc = lmr_lambda_service_prestart(p->f->svc, p->name, p->count, NULL);
    return NULL;
}

/* Prestarts spawn without the service's lock: four at once still start exactly the function's
 * concurrency, and invocations running meanwhile are neither throttled nor given a fourth process. */
static void test_concurrent_prestarts_keep_the_concurrency(void **state)
{
    struct fixture *f = *state;
    add(f, "count", "count", 3);
    struct bg_prestart p[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        p[i] = (struct bg_prestart){.f = f, .name = "count", .count = 10};
        assert_int_equal(pthread_create(&t[i], NULL, prestart_main, &p[i]), 0);
    }
    for (int i = 0; i < 6; i++) {
        struct lmr_invoke_result r;
        assert_int_equal(call(f, "count", "{}", &r), LMR_OK);
        assert_string_equal(r.function_error, "");
        assert_true(answer_pid(&r) > 0);
        lmr_invoke_result_clean_up(&r);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(p[i].rc, LMR_OK);
    }
    assert_int_equal(cold_starts(f), 3);
    struct lmr_lambda_service_stats st;
    lmr_lambda_service_get_stats(f->svc, &st);
    assert_int_equal(st.throttles, 0);
}

/* A synchronous invocation that comes while the only environment the concurrency allows is still
 * starting waits for it (it is neither throttled nor run on a second process). */
static void test_invoke_during_a_prestart_waits_for_it(void **state)
{
    struct fixture *f = *state;
    char names[5][8];
    for (int i = 0; i < 5; i++) {
        snprintf(names[i], sizeof names[i], "c%d", i);
        add(f, names[i], "count", 1);
    }
    for (int i = 0; i < 5; i++) {
        struct bg_prestart p = {.f = f, .name = names[i], .count = 1};
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, prestart_main, &p), 0);
        struct lmr_invoke_result r;
        assert_int_equal(call(f, names[i], "{}", &r), LMR_OK);
        assert_string_equal(r.function_error, "");
        assert_true(answer_pid(&r) > 0);
        lmr_invoke_result_clean_up(&r);
        pthread_join(t, NULL);
        assert_int_equal(p.rc, LMR_OK);
    }
    assert_int_equal(cold_starts(f), 5);
    struct lmr_lambda_service_stats st;
    lmr_lambda_service_get_stats(f->svc, &st);
    assert_int_equal(st.throttles, 0);
}

int main(void)
{
    const char *bin = getenv("LMR_BIN_DIR");
    snprintf(fn_path, sizeof fn_path, "%s/fn_test", bin ? bin : "build/bin");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_prestarted_environments_take_the_invocations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prestart_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prestart_of_a_missing_executable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wait_idle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_prestarts_keep_the_concurrency, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invoke_during_a_prestart_waits_for_it, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
