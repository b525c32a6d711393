/*
 * The mapper and reducer handlers called in-process (as the runtime would call them), so the
 * sanitizer build also checks them for leaks: a map task commits its object, a second attempt
 * of the same task loses the commit race and removes its own object, and the reduce task
 * writes the part from the committed frames. A reducer never adopts a part its job did not
 * write: another job's reducer finding the part fails and leaves it as it is.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "job/task.h"
#include "mapper.h"
#include "reducer.h"
#include "store/store.h"

static char dir[] = "/tmp/lmr-handlers-XXXXXX";

static void job_common(struct lmr_job_common *c, const char *root)
{
    c->job_id = strdup("J");
    c->job_name = strdup("wordcount");
    c->args = lmr_job_args_new();
    c->work.root = strdup(root);
    c->work.key = strdup("_lambdamr/work/J/");
    c->output.root = strdup(root);
    c->output.key = strdup("out/");
    c->reducers = 1;
    c->memory_mb = 128;
}

static char *map_event(const char *root, uint32_t attempt, const char *attempt_id, uint64_t size)
{
    struct lmr_map_task t = {0};
    job_common(&t.job, root);
    t.attempt = attempt;
    t.attempt_id = strdup(attempt_id);
    t.nshards = 1;
    t.shards = calloc(1, sizeof *t.shards);
    t.shards[0] = (struct lmr_shard){{strdup(root), strdup("in.txt")}, 0, size, size, LMR_CODEC_NONE};
    json_t *j = lmr_map_task_to_json(&t);
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    lmr_map_task_clean_up(&t);
    return s;
}

static json_t *call(enum lmr_result (*fn)(void *, const struct lmr_runtime_context *, const char *, size_t,
                                          struct lmr_buf *, struct lmr_err *),
                    const char *event)
{
    struct lmr_buf out;
    struct lmr_err err = {0};
    lmr_buf_init(&out, 1 << 20);
    enum lmr_result r = fn(NULL, NULL, event, strlen(event), &out, &err);
    if (r)
        fail_msg("handler failed: %s", err.msg);
    json_t *j = json_loadb(out.data, out.len, 0, NULL);
    lmr_buf_clean_up(&out);
    assert_non_null(j);
    return j;
}

static void test_map_then_reduce(void **state)
{
    struct lmr_store *s;
    assert_int_equal(lmr_file_store_new(dir, &s, NULL), LMR_OK);
    const char *text = "b a c\na b\n\tb\n";
    assert_int_equal(lmr_store_put(s, "in.txt", text, strlen(text), 0, NULL), LMR_OK);
    char *ev = map_event(s->root_uri, 1, "first", strlen(text));
    json_t *resp = call(lmr_mapper_handle, ev);
    assert_true(json_is_true(json_object_get(resp, "committed")));
    assert_int_equal(lmr_json_u64(resp, "records_in", 0), 3);
    assert_int_equal(lmr_json_u64(resp, "records_out", 0), 3);
    json_decref(resp);
    free(ev);

    /* A second delivery of the same task loses the race and removes its own object. */
    ev = map_event(s->root_uri, 2, "second", strlen(text));
    resp = call(lmr_mapper_handle, ev);
    assert_false(json_is_true(json_object_get(resp, "committed")));
    json_decref(resp);
    free(ev);
    uint64_t size;
    assert_int_equal(lmr_store_head(s, "_lambdamr/work/J/map/m-00000/second.lmr", &size, NULL), LMR_ERR_NOT_FOUND);

    /* The reducer reads the committed frame. */
    struct lmr_buf rec;
    lmr_buf_init(&rec, 1 << 20);
    assert_int_equal(lmr_store_get(s, "_lambdamr/work/J/map/m-00000/commit.json", 0, LMR_STORE_TO_END, &rec, NULL),
                     LMR_OK);
    json_t *commit = json_loads(rec.data, 0, NULL);
    lmr_buf_clean_up(&rec);
    assert_string_equal(lmr_json_str(commit, "attempt_id", ""), "first");
    json_t *f = json_array_get(json_object_get(commit, "frames"), 0);
    struct lmr_reduce_task rt = {0};
    job_common(&rt.job, s->root_uri);
    rt.attempt = 1;
    rt.attempt_id = strdup("r1");
    rt.nframes = 1;
    rt.frames = calloc(1, sizeof *rt.frames);
    rt.frames[0].key = strdup(lmr_json_str(commit, "object", ""));
    rt.frames[0].offset = (uint64_t)json_integer_value(json_array_get(f, 0));
    rt.frames[0].size_bytes = (uint64_t)json_integer_value(json_array_get(f, 1));
    json_decref(commit);
    json_t *rj = lmr_reduce_task_to_json(&rt);
    char *rev = json_dumps(rj, JSON_COMPACT);
    json_decref(rj);
    resp = call(lmr_reducer_handle, rev);
    assert_int_equal(lmr_json_u64(resp, "records_out", 0), 3);
    json_decref(resp);
    free(rev);

    /* The same task of another job (K) finds part-r-00000 there: it fails, the part stays J's. */
    free(rt.job.job_id);
    free(rt.job.work.key);
    rt.job.job_id = strdup("K");
    rt.job.work.key = strdup("_lambdamr/work/K/");
    rj = lmr_reduce_task_to_json(&rt);
    rev = json_dumps(rj, JSON_COMPACT);
    json_decref(rj);
    struct lmr_buf out;
    struct lmr_err err = {0};
    lmr_buf_init(&out, 1 << 20);
    assert_int_equal(lmr_reducer_handle(NULL, NULL, rev, strlen(rev), &out, &err), LMR_ERR_EXISTS);
    assert_non_null(strstr(err.msg, "out/part-r-00000' already exists and job K did not write it"));
    assert_int_equal(lmr_store_head(s, "_lambdamr/work/K/reduce/r-00000/commit.json", &size, NULL), LMR_ERR_NOT_FOUND);
    lmr_buf_clean_up(&out);
    free(rev);

    /* A retry of J's task whose first attempt committed the part but died before its commit record
     * adopts the part (the first attempt's claim says J wrote it). */
    const char *ck = "_lambdamr/work/J/reduce/r-00000/commit.json";
    assert_int_equal(lmr_store_delete(s, &ck, 1, NULL), LMR_OK);
    free(rt.job.job_id);
    free(rt.job.work.key);
    free(rt.attempt_id);
    rt.job.job_id = strdup("J");
    rt.job.work.key = strdup("_lambdamr/work/J/");
    rt.attempt_id = strdup("r2");
    rt.attempt = 2;
    rj = lmr_reduce_task_to_json(&rt);
    rev = json_dumps(rj, JSON_COMPACT);
    json_decref(rj);
    lmr_reduce_task_clean_up(&rt);
    resp = call(lmr_reducer_handle, rev);
    assert_false(json_is_true(json_object_get(resp, "committed")));
    json_decref(resp);
    assert_int_equal(lmr_store_head(s, ck, &size, NULL), LMR_OK);
    free(rev);

    struct lmr_buf part;
    lmr_buf_init(&part, 1 << 20);
    assert_int_equal(lmr_store_get(s, "out/part-r-00000", 0, LMR_STORE_TO_END, &part, NULL), LMR_OK);
    assert_string_equal(part.data, "a\t2\nb\t3\nc\t1\n");
    lmr_buf_clean_up(&part);
    lmr_store_destroy(s);
}

static void test_bad_event(void **state)
{
    struct lmr_buf out;
    struct lmr_err err = {0};
    lmr_buf_init(&out, 1024);
    assert_int_equal(lmr_mapper_handle(NULL, NULL, "{}", 2, &out, &err), LMR_ERR_FORMAT);
    assert_int_equal(lmr_reducer_handle(NULL, NULL, "nope", 4, &out, &err), LMR_ERR_FORMAT);
    lmr_buf_clean_up(&out);
}

static int setup(void **state)
{
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_map_then_reduce), cmocka_unit_test(test_bad_event)};
    return cmocka_run_group_tests(tests, setup, teardown);
}
