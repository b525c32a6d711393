/*
 * Test helpers shared by test_lambda_service.c and test_lambda_prestart.c: a cmocka fixture
 * holding an embedded Lambda service (its function logs in a fresh temporary directory, removed
 * again by the teardown) and a local invoker on it. Include after <cmocka.h>.
 */
#ifndef LMR_TEST_LAMBDA_FIXTURE_H
#define LMR_TEST_LAMBDA_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>

#include "lambda/invoker.h"
#include "lambda/service.h"

struct fixture {
    struct lmr_lambda_service *svc;
    struct lmr_invoker *inv;
    char log_dir[64];
};

/* cmocka setup: *state gets a struct fixture whose service (opts, log_dir set here) logs into a
   new /tmp/<prefix>-XXXXXX. */
static inline int lambda_fixture_setup(void **state, const char *prefix, struct lmr_lambda_service_options opts)
{
    struct fixture *f = calloc(1, sizeof *f);
    snprintf(f->log_dir, sizeof f->log_dir, "/tmp/%s-XXXXXX", prefix);
    assert_non_null(mkdtemp(f->log_dir));
    opts.log_dir = f->log_dir;
    struct lmr_err err = {0};
    assert_int_equal(lmr_lambda_service_new(&opts, &f->svc, &err), LMR_OK);
    assert_int_equal(lmr_local_invoker_new(f->svc, &f->inv, &err), LMR_OK);
    *state = f;
    return 0;
}

/* cmocka teardown of lambda_fixture_setup: stops the service and removes its log directory. */
static inline int lambda_fixture_teardown(void **state)
{
    struct fixture *f = *state;
    lmr_invoker_destroy(f->inv);
    lmr_lambda_service_destroy(f->svc);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->log_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", f->log_dir);
    free(f);
    return 0;
}

#endif
