/* Which CA certificate file the AWS HTTP client uses (AWS_CA_BUNDLE, libcurl's, Amazon Linux's). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "aws/http.h"

static char dir[256], al2023[300], debian[300], missing[300];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/lmr-ca-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(al2023, sizeof al2023, "%s/ca-bundle.crt", dir);
    snprintf(debian, sizeof debian, "%s/ca-certificates.crt", dir);
    snprintf(missing, sizeof missing, "%s/absent.crt", dir);
    FILE *f = fopen(al2023, "w");
    assert_non_null(f);
    fclose(f);
    assert_non_null(f = fopen(debian, "w"));
    fclose(f);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(al2023);
    unlink(debian);
    rmdir(dir);
    return 0;
}

/* AWS_CA_BUNDLE wins over everything, as in the AWS CLI and SDKs. */
static void test_env_wins(void **state)
{
    (void)state;
    const char *const cands[] = {al2023, debian, NULL};
    assert_string_equal(lmr_aws_ca_file_pick(debian, al2023, cands), debian);
}

/* libcurl's built-in file is kept when it exists (Debian): nothing to set. */
static void test_builtin_kept(void **state)
{
    (void)state;
    const char *const cands[] = {al2023, NULL};
    assert_null(lmr_aws_ca_file_pick(NULL, debian, cands));
    assert_null(lmr_aws_ca_file_pick("", debian, cands));
}

/* On Amazon Linux libcurl's Debian path is missing: the first candidate that exists is used. */
static void test_amazon_linux(void **state)
{
    (void)state;
    const char *const cands[] = {missing, al2023, debian, NULL};
    assert_string_equal(lmr_aws_ca_file_pick(NULL, missing, cands), al2023);
    assert_string_equal(lmr_aws_ca_file_pick(NULL, NULL, cands), al2023);
    const char *const none[] = {missing, NULL};
    assert_null(lmr_aws_ca_file_pick(NULL, missing, none));
}

/* The real candidate list starts with Amazon Linux's path, then Debian's. */
static void test_candidate_order(void **state)
{
    (void)state;
    const char *const cands[] = LMR_AWS_CA_CANDIDATES;
    assert_string_equal(cands[0], "/etc/pki/tls/certs/ca-bundle.crt");
    assert_string_equal(cands[1], "/etc/ssl/certs/ca-certificates.crt");
    assert_null(cands[2]);
}

/* A client refuses an AWS_CA_BUNDLE it cannot read, naming the file. */
static void test_client_refuses_unreadable_bundle(void **state)
{
    (void)state;
    setenv("AWS_ACCESS_KEY_ID", "AKIDCATEST", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "secret", 1);
    setenv("AWS_REGION", "us-east-1", 1);
    setenv("AWS_CONFIG_FILE", "/dev/null", 1);
    setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null", 1);
    setenv("AWS_CA_BUNDLE", missing, 1);
    struct lmr_aws_client *c = NULL;
    struct lmr_err err = {0};
    assert_int_equal(lmr_aws_client_new(NULL, &c, &err), LMR_ERR_NOT_FOUND);
    assert_null(c);
    assert_non_null(strstr(err.msg, "AWS_CA_BUNDLE"));
    assert_non_null(strstr(err.msg, missing));
    setenv("AWS_CA_BUNDLE", al2023, 1);
    assert_int_equal(lmr_aws_client_new(NULL, &c, &err), LMR_OK);
    lmr_aws_client_destroy(c);
    unsetenv("AWS_CA_BUNDLE");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_env_wins),
        cmocka_unit_test(test_builtin_kept),
        cmocka_unit_test(test_amazon_linux),
        cmocka_unit_test(test_candidate_order),
        cmocka_unit_test(test_client_refuses_unreadable_bundle),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
