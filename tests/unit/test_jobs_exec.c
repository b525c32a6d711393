/*
 * The exec job's ops in-process (leak-checked under ASan): a mapper child per shard whose
 * key<TAB>value lines become pairs, a combiner batch, a reducer fed "key<TAB>value" lines, the
 * map-only pass-through, argument errors and a child's failure reaching lmr_job_error.
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
#include "job/registry.h"
#include "test_jobs_common.h"

static const struct lmr_task_info map_info = {.role = "map",
                                              .task_id = "m-00007",
                                              .attempt = 2,
                                              .input_uri = "/data/in.txt",
                                              .input_offset = 10,
                                              .input_length = 20,
                                              .memory_mb = 128};
static const struct lmr_task_info reduce_info = {
    .role = "reduce", .task_id = "r-00001", .attempt = 1, .memory_mb = 128};

static void *setup_job(const struct lmr_job_ops *ops, struct lmr_job_args *args)
{
    void *state = NULL;
    char msg[256] = "";
    assert_int_equal(ops->setup(&state, args, msg, sizeof msg), 0);
    lmr_job_args_destroy(args);
    return state;
}

static void test_exec_map_with_combiner(void **unused)
{
    const struct lmr_job_ops *ops = &lmr_job_exec;
    void *st = setup_job(ops, make_args("mapper", "tr ' ' '\\n' | grep . | sed 's/$/\t1/'", "combiner",
                                        "awk -F '\\t' '{ n[$1] += $2 } END { for (k in n) print k \"\\t\" n[k] }'",
                                        "reducer", "cat", NULL));
    struct recorder rec;
    recorder_init(&rec);
    struct lmr_job_counters c = {0};
    char msg[256];
    assert_int_equal(ops->start(st, &map_info, msg, sizeof msg), 0);
    assert_int_equal(ops->map_block(st, str_slice("a b a\nc a\n"), &rec.base, &c), 0);
    assert_int_equal(ops->map(st, str_slice("b b"), &rec.base, &c), 0);
    assert_int_equal(ops->finish(st, &rec.base, &c), 0);
    /* the combiner merged the batch: one pair per word */
    assert_int_equal(rec.n, 3);
    int seen = 0;
    for (size_t i = 0; i < rec.n; i++) {
        if (!strcmp(rec.pairs[i].key, "a"))
            seen += !strcmp((char *)rec.pairs[i].value, "3");
        if (!strcmp(rec.pairs[i].key, "b"))
            seen += !strcmp((char *)rec.pairs[i].value, "3");
        if (!strcmp(rec.pairs[i].key, "c"))
            seen += !strcmp((char *)rec.pairs[i].value, "1");
    }
    assert_int_equal(seen, 3);
    recorder_clean_up(&rec);
    lmr_job_counters_clean_up(&c);
    ops->teardown(st);
}

static void test_exec_environment_and_reduce(void **unused)
{
    const struct lmr_job_ops *ops = &lmr_job_exec;
    void *st = setup_job(ops, make_args("mapper",
                                        "cat > /dev/null; echo \"$mapreduce_task_id,$mapreduce_task_attempt_id,"
                                        "$mapreduce_map_input_file,$mapreduce_map_input_start,"
                                        "$mapreduce_map_input_length\tv\"",
                                        "reducer", "awk -F '\\t' '{ print NR \":\" $1 \"=\" $2 }'", NULL));
    struct recorder rec;
    recorder_init(&rec);
    struct lmr_job_counters c = {0};
    char msg[256];
    assert_int_equal(ops->start(st, &map_info, msg, sizeof msg), 0);
    assert_int_equal(ops->finish(st, &rec.base, &c), 0);
    assert_int_equal(rec.n, 1);
    assert_string_equal(rec.pairs[0].key, "m-00007,m-00007_2,/data/in.txt,10,20");
    recorder_clean_up(&rec);

    recorder_init(&rec);
    assert_int_equal(ops->start(st, &reduce_info, msg, sizeof msg), 0);
    const struct lmr_slice k1[] = {str_slice("1"), str_slice("2")}, k2[] = {str_slice("3")};
    struct slice_values v1 = {{slice_values_next}, k1, 2, 0}, v2 = {{slice_values_next}, k2, 1, 0};
    ops->reduce(st, str_slice("a"), &v1.base, &rec.base);
    ops->reduce(st, str_slice("b"), &v2.base, &rec.base);
    assert_int_equal(ops->finish(st, &rec.base, &c), 0);
    assert_int_equal(rec.n, 3); /* the reducer's lines pass through as they are */
    assert_string_equal(rec.pairs[0].key, "1:a=1");
    assert_string_equal(rec.pairs[1].key, "2:a=2");
    assert_string_equal(rec.pairs[2].key, "3:b=3");
    assert_int_equal(rec.pairs[2].value_len, 0);
    recorder_clean_up(&rec);
    lmr_job_counters_clean_up(&c);
    ops->teardown(st);
}

static void test_exec_failures(void **unused)
{
    const struct lmr_job_ops *ops = &lmr_job_exec;
    void *st = setup_job(ops, make_args("mapper", "echo 'no tab here'", "reducer", "cat", NULL));
    struct recorder rec;
    recorder_init(&rec);
    struct lmr_job_counters c = {0};
    char msg[256];
    assert_int_equal(ops->start(st, &map_info, msg, sizeof msg), 0);
    assert_int_not_equal(ops->finish(st, &rec.base, &c), 0);
    const char *e = lmr_job_counters_error(&c);
    assert_non_null(e);
    assert_non_null(
        strstr(e, "exec mapper 'echo 'no tab here'' (task m-00007, attempt 2, input /data/in.txt bytes 10-30)"));
    assert_non_null(strstr(e, "without a separator (TAB): 'no tab here'"));
    lmr_job_counters_clean_up(&c);
    ops->teardown(st);

    /* a reducer that fails: reduce keeps going quietly, finish reports */
    st = setup_job(ops, make_args("mapper", "cat", "reducer", "head -c 1 > /dev/null; exit 5", NULL));
    assert_int_equal(ops->start(st, &reduce_info, msg, sizeof msg), 0);
    static char big[1 << 20];
    memset(big, 'x', sizeof big);
    const struct lmr_slice vals[] = {lmr_slice_make(big, sizeof big), lmr_slice_make(big, sizeof big)};
    for (int i = 0; i < 4; i++) {
        struct slice_values v = {{slice_values_next}, vals, 2, 0};
        ops->reduce(st, str_slice("k"), &v.base, &rec.base);
    }
    assert_int_not_equal(ops->finish(st, &rec.base, &c), 0);
    assert_non_null(strstr(lmr_job_counters_error(&c), "exec reducer 'head -c 1 > /dev/null; exit 5' (task r-00001, "
                                                       "attempt 1) exited with status 5"));
    recorder_clean_up(&rec);
    lmr_job_counters_clean_up(&c);
    ops->teardown(st);
}

static void test_exec_args(void **unused)
{
    static const struct {
        const struct lmr_job_ops *ops;
        const char *a[8];
        const char *msg;
    } cases[] = {
        {&lmr_job_exec, {"reducer", "cat"}, "--mapper CMD is required"},
        {&lmr_job_exec, {"mapper", "cat"}, "--reducer CMD is required"},
        {&lmr_job_exec_map, {"mapper", "cat", "reducer", "cat"}, "has no --combiner or --reducer"},
        {&lmr_job_exec, {"mapper", "cat", "reducer", "cat", "separator", "ab"}, "must be one byte"},
        {&lmr_job_exec, {"mapper", "cat", "reducer", "cat", "key-fields", "0"}, "not a whole number from 1 to 100"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct lmr_job_args *a = lmr_job_args_new();
        for (int j = 0; cases[i].a[j]; j += 2)
            lmr_job_args_set(a, cases[i].a[j], cases[i].a[j + 1]);
        void *st = NULL;
        char msg[256] = "";
        assert_int_not_equal(cases[i].ops->setup(&st, a, msg, sizeof msg), 0);
        assert_non_null(strstr(msg, cases[i].msg));
        assert_null(st);
        lmr_job_args_destroy(a);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exec_map_with_combiner),
        cmocka_unit_test(test_exec_environment_and_reduce),
        cmocka_unit_test(test_exec_failures),
        cmocka_unit_test(test_exec_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
