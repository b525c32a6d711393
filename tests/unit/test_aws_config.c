/* Credential, region and endpoint resolution against temporary shared files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "aws/config.h"

static char dir[256], cred_path[300], conf_path[300];

static const char *const vars[] = {"AWS_ACCESS_KEY_ID",
                                   "AWS_SECRET_ACCESS_KEY",
                                   "AWS_SESSION_TOKEN",
                                   "AWS_PROFILE",
                                   "AWS_REGION",
                                   "AWS_DEFAULT_REGION",
                                   "AWS_ENDPOINT_URL",
                                   "AWS_ENDPOINT_URL_S3",
                                   "AWS_ENDPOINT_URL_LAMBDA",
                                   "AWS_ENDPOINT_URL_KINESIS"};

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++)
        unsetenv(vars[i]);
    strcpy(dir, "/tmp/lmr_aws_config_XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(cred_path, sizeof cred_path, "%s/credentials", dir);
    snprintf(conf_path, sizeof conf_path, "%s/config", dir);
    write_file(cred_path, "[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = secret-default\n\n"
                          "# a comment\n[research]\naws_access_key_id=AKIDRESEARCH\n"
                          "aws_secret_access_key=secret-research\naws_session_token = token-research\n"
                          "[halfset]\naws_access_key_id = AKIDHALF\n");
    write_file(conf_path, "[default]\nregion = eu-west-1\n[profile research]\nregion = ap-south-1\ns3 =\n"
                          "  region = ignored-sub-setting\n[profile only-config]\nregion=us-west-2\n"
                          "aws_access_key_id = AKIDCONFIG\naws_secret_access_key = secret-config\n"
                          "[research]\nregion = not-a-config-profile\n");
    setenv("AWS_SHARED_CREDENTIALS_FILE", cred_path, 1);
    setenv("AWS_CONFIG_FILE", conf_path, 1);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(cred_path);
    unlink(conf_path);
    rmdir(dir);
    return 0;
}

static void test_default_profile(void **state)
{
    struct lmr_aws_config cfg;
    assert_int_equal(lmr_aws_config_load(&cfg, NULL), LMR_OK);
    assert_true(cfg.have_credentials);
    assert_string_equal(cfg.creds.access_key_id, "AKIDDEFAULT");
    assert_string_equal(cfg.creds.secret_access_key, "secret-default");
    assert_string_equal(cfg.creds.session_token, "");
    assert_string_equal(cfg.region, "eu-west-1");
    char url[512];
    bool custom = true;
    lmr_aws_config_endpoint(&cfg, LMR_AWS_S3, url, sizeof url, &custom);
    assert_string_equal(url, "https://s3.eu-west-1.amazonaws.com");
    assert_false(custom);
}

static void test_named_profile_and_region_order(void **state)
{
    setenv("AWS_PROFILE", "research", 1);
    struct lmr_aws_config cfg;
    assert_int_equal(lmr_aws_config_load(&cfg, NULL), LMR_OK);
    assert_string_equal(cfg.creds.access_key_id, "AKIDRESEARCH");
    assert_string_equal(cfg.creds.session_token, "token-research");
    assert_string_equal(cfg.region, "ap-south-1");
    setenv("AWS_DEFAULT_REGION", "us-east-2", 1);
    assert_int_equal(lmr_aws_config_load(&cfg, NULL), LMR_OK);
    assert_string_equal(cfg.region, "us-east-2");
    setenv("AWS_REGION", "sa-east-1", 1);
    assert_int_equal(lmr_aws_config_load(&cfg, NULL), LMR_OK);
    assert_string_equal(cfg.region, "sa-east-1");
    setenv("AWS_PROFILE", "only-config", 1);
    unsetenv("AWS_REGION");
    unsetenv("AWS_DEFAULT_REGION");
    assert_int_equal(lmr_aws_config_load(&cfg, NULL), LMR_OK);
    assert_string_equal(cfg.creds.access_key_id, "AKIDCONFIG");
    assert_string_equal(cfg.region, "us-west-2");
    unsetenv("AWS_PROFILE");
}

static void test_env_wins(void **state)
{
    setenv("AWS_PROFILE", "research", 1);
    setenv("AWS_ACCESS_KEY_ID", "AKIDENV", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "secret-env", 1);
    setenv("AWS_SESSION_TOKEN", "token-env", 1);
    struct lmr_aws_config cfg;
    assert_int_equal(lmr_aws_config_load(&cfg, NULL), LMR_OK);
    assert_string_equal(cfg.creds.access_key_id, "AKIDENV");
    assert_string_equal(cfg.creds.secret_access_key, "secret-env");
    assert_string_equal(cfg.creds.session_token, "token-env");
    assert_string_equal(cfg.region, "ap-south-1"); /* still the profile's region */
    unsetenv("AWS_SESSION_TOKEN");
    unsetenv("AWS_ACCESS_KEY_ID");
    struct lmr_err err = {0};
    assert_int_equal(lmr_aws_config_load(&cfg, &err), LMR_ERR_AUTH);
    assert_non_null(strstr(err.msg, "AWS_ACCESS_KEY_ID"));
    assert_null(strstr(err.msg, "secret-env"));
    unsetenv("AWS_SECRET_ACCESS_KEY");
    unsetenv("AWS_PROFILE");
}

static void test_errors_never_show_secrets(void **state)
{
    struct lmr_aws_config cfg;
    struct lmr_err err = {0};
    setenv("AWS_PROFILE", "missing", 1);
    assert_int_equal(lmr_aws_config_load(&cfg, &err), LMR_ERR_AUTH);
    assert_non_null(strstr(err.msg, "'missing'"));
    assert_non_null(strstr(err.msg, cred_path));
    setenv("AWS_PROFILE", "halfset", 1);
    assert_int_equal(lmr_aws_config_load(&cfg, &err), LMR_ERR_AUTH);
    assert_non_null(strstr(err.msg, "aws_secret_access_key"));
    assert_null(strstr(err.msg, "secret-"));
    unsetenv("AWS_PROFILE");
    /* No files at all: not an error here, but no credentials. */
    setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials", 1);
    setenv("AWS_CONFIG_FILE", "/nonexistent/config", 1);
    assert_int_equal(lmr_aws_config_load(&cfg, NULL), LMR_OK);
    assert_false(cfg.have_credentials);
    assert_string_equal(cfg.region, "us-east-1");
    char where[1024];
    lmr_aws_config_describe_search(&cfg, where, sizeof where);
    assert_non_null(strstr(where, "/nonexistent/credentials"));
    setenv("AWS_SHARED_CREDENTIALS_FILE", cred_path, 1);
    setenv("AWS_CONFIG_FILE", conf_path, 1);
}

static void test_endpoints(void **state)
{
    setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5000/", 1);
    setenv("AWS_ENDPOINT_URL_LAMBDA", "http://127.0.0.1:9001", 1);
    struct lmr_aws_config cfg;
    assert_int_equal(lmr_aws_config_load(&cfg, NULL), LMR_OK);
    char url[512];
    bool custom = false;
    lmr_aws_config_endpoint(&cfg, LMR_AWS_S3, url, sizeof url, &custom);
    assert_string_equal(url, "http://127.0.0.1:5000");
    assert_true(custom);
    lmr_aws_config_endpoint(&cfg, LMR_AWS_LAMBDA, url, sizeof url, &custom);
    assert_string_equal(url, "http://127.0.0.1:9001");
    lmr_aws_config_endpoint(&cfg, LMR_AWS_KINESIS, url, sizeof url, &custom);
    assert_string_equal(url, "http://127.0.0.1:5000");
    setenv("AWS_ENDPOINT_URL_S3", "localhost:9000", 1);
    assert_int_equal(lmr_aws_config_load(&cfg, NULL), LMR_ERR_INVALID);
    unsetenv("AWS_ENDPOINT_URL_S3");
    unsetenv("AWS_ENDPOINT_URL");
    unsetenv("AWS_ENDPOINT_URL_LAMBDA");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_profile), cmocka_unit_test(test_named_profile_and_region_order),
        cmocka_unit_test(test_env_wins),        cmocka_unit_test(test_errors_never_show_secrets),
        cmocka_unit_test(test_endpoints),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
