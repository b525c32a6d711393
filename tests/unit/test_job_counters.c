/*
 * Named job counters and the task error (job/counters.h, lmr_job_count / lmr_job_error), and the
 * exec child (job/exec_child.h) in-process: lines delivered across read boundaries, a child that
 * writes far more than it reads, one that never reads, exit status and signal messages.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "job/counters.h"
#include "job/exec_child.h"

static void test_counters_sum_and_caps(void **unused)
{
    struct lmr_job_counters c = {0};
    assert_int_equal(lmr_job_count(&c, "bad_rows", 2), 0);
    assert_int_equal(lmr_job_count(&c, "bad_rows", 3), 0);
    assert_int_equal(lmr_job_count(&c, "a.b-c_9", 1), 0);
    assert_int_equal(lmr_job_count(&c, "", 1), -1);
    assert_int_equal(lmr_job_count(&c, "has space", 1), -1);
    char long_name[LMR_JOB_COUNTER_NAME_MAX + 2];
    memset(long_name, 'x', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    assert_int_equal(lmr_job_count(&c, long_name, 1), -1);
    for (int i = 2; i < LMR_JOB_COUNTERS_MAX; i++) {
        char n[16];
        snprintf(n, sizeof n, "c%d", i);
        assert_int_equal(lmr_job_count(&c, n, (uint64_t)i), 0);
    }
    assert_int_equal(lmr_job_count(&c, "one_too_many", 1), -1);
    assert_int_equal(lmr_job_count(&c, "bad_rows", 1), 0); /* existing names still count */
    json_t *j = lmr_job_counters_to_json(&c);
    assert_int_equal(json_object_size(j), LMR_JOB_COUNTERS_MAX);
    assert_int_equal(json_integer_value(json_object_get(j, "bad_rows")), 6);

    json_t *acc = json_object();
    lmr_job_counters_sum_json(acc, j);
    lmr_job_counters_sum_json(acc, j);
    assert_int_equal(json_integer_value(json_object_get(acc, "bad_rows")), 12);
    json_t *extra = json_pack("{s:i}", "new_name", 1);
    lmr_job_counters_sum_json(acc, extra); /* the job-wide cap holds too */
    assert_null(json_object_get(acc, "new_name"));
    json_decref(extra);
    json_decref(acc);
    json_decref(j);

    assert_null(lmr_job_counters_error(&c));
    lmr_job_error(&c, "row %d is bad", 7);
    assert_string_equal(lmr_job_counters_error(&c), "row 7 is bad");
    lmr_job_counters_clean_up(&c);
    assert_null(c.priv);
    assert_null(lmr_job_counters_error(&c));
}

struct lines {
    uint64_t n, bytes;
    char first[64];
    const char *fail_on; /* a line that makes on_line fail */
};

static enum lmr_result on_line(void *user, struct lmr_slice line, struct lmr_err *err)
{
    struct lines *l = user;
    if (!l->n)
        snprintf(l->first, sizeof l->first, "%.*s", (int)line.len, (const char *)line.ptr);
    l->n++;
    l->bytes += line.len + 1;
    if (l->fail_on && line.len == strlen(l->fail_on) && !memcmp(line.ptr, l->fail_on, line.len))
        return lmr_fail(err, LMR_ERR_FORMAT, "did not like '%s'", l->fail_on);
    return LMR_OK;
}

static enum lmr_result run_child(const char *cmd, const void *in, size_t in_len, struct lines *l, struct lmr_err *err)
{
    struct lmr_exec_child_options o = {
        .command = cmd, .what = "mapper", .max_line_bytes = 1 << 20, .on_line = on_line, .user = l};
    struct lmr_exec_child *c = NULL;
    enum lmr_result r = lmr_exec_child_start(&o, &c, err);
    /* write in uneven pieces, as map calls would */
    for (size_t off = 0; !r && off < in_len;) {
        size_t n = in_len - off < 100003 ? in_len - off : 100003;
        r = lmr_exec_child_write(c, (const uint8_t *)in + off, n, err);
        off += n;
    }
    if (!r)
        r = lmr_exec_child_finish(c, err);
    lmr_exec_child_destroy(c);
    return r;
}

static void test_child_streams_both_ways(void **unused)
{
    size_t n = 8u << 20; /* 8 MiB in, each line out 10 times: 80 MiB through the pipes */
    char *in = malloc(n);
    assert_non_null(in);
    for (size_t i = 0; i < n; i++)
        in[i] = i % 64 == 63 ? '\n' : (char)('a' + i % 26);
    struct lines l = {0};
    struct lmr_err err = {0};
    assert_int_equal(run_child("awk '{ for (i = 0; i < 10; i++) print }'", in, n, &l, &err), LMR_OK);
    assert_int_equal(l.n, n / 64 * 10);
    assert_int_equal(l.bytes, n * 10);
    /* never reads: writes are dropped, its output counts, exit 0 is success */
    memset(&l, 0, sizeof l);
    assert_int_equal(run_child("echo only", in, n, &l, &err), LMR_OK);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.first, "only");
    /* a last line without a newline is delivered */
    memset(&l, 0, sizeof l);
    assert_int_equal(run_child("printf 'a\\nb'", NULL, 0, &l, &err), LMR_OK);
    assert_int_equal(l.n, 2);
    free(in);
}

static void test_child_errors(void **unused)
{
    struct lines l = {0};
    struct lmr_err err = {0};
    assert_int_equal(run_child("echo first >&2; echo second >&2; exit 3", "x\n", 2, &l, &err), LMR_ERR_FUNCTION);
    assert_non_null(strstr(err.msg, "exec mapper 'echo first >&2; echo second >&2; exit 3' exited with status 3"));
    assert_non_null(strstr(err.msg, "its stderr began: first | second"));
    memset(&l, 0, sizeof l);
    assert_int_equal(run_child("kill -TERM $$", "x\n", 2, &l, &err), LMR_ERR_FUNCTION);
    assert_non_null(strstr(err.msg, "was killed by signal 15"));
    memset(&l, 0, sizeof l);
    assert_int_equal(run_child("no-such-command-here", NULL, 0, &l, &err), LMR_ERR_FUNCTION);
    assert_non_null(strstr(err.msg, "status 127"));
    assert_non_null(strstr(err.msg, "provided.al2023"));
    /* an on_line error stops the child (yes never ends by itself) and names the command */
    memset(&l, 0, sizeof l);
    l.fail_on = "y";
    assert_int_equal(run_child("yes", NULL, 0, &l, &err), LMR_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "exec mapper 'yes' did not like 'y'"));
    /* a line longer than the cap */
    memset(&l, 0, sizeof l);
    assert_int_equal(run_child("head -c 3000000 /dev/zero", NULL, 0, &l, &err), LMR_ERR_TOO_LARGE);
    assert_non_null(strstr(err.msg, "longer than 1048576 bytes"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counters_sum_and_caps),
        cmocka_unit_test(test_child_streams_both_ways),
        cmocka_unit_test(test_child_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
