/* Task events: a round trip keeps every field; malformed events give LMR_ERR_FORMAT with a reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "job/task.h"

static void fill_job(struct lmr_job_common *c)
{
    c->job_id = strdup("J1");
    c->job_name = strdup("wordcount");
    c->args = lmr_job_args_new();
    lmr_job_args_set(c->args, "delimiter", ",");
    c->work.root = strdup("file:///tmp/w");
    c->work.key = strdup("_lambdamr/work/J1/");
    c->output.root = strdup("s3://bucket");
    c->output.key = strdup("out/");
    c->reducers = 7;
    c->memory_mb = 256;
}

static void test_map_round_trip(void **state)
{
    struct lmr_map_task t = {0}, back;
    fill_job(&t.job);
    t.task = 3;
    t.attempt = 2;
    t.attempt_id = strdup("m00003-a2-beef");
    t.nshards = 2;
    t.shards = calloc(2, sizeof *t.shards);
    t.shards[0] = (struct lmr_shard){{strdup("file:///in"), strdup("a.txt")}, 10, 20, 100, LMR_CODEC_NONE};
    t.shards[1] = (struct lmr_shard){{strdup("s3://b"), strdup("k/x.gz")}, 0, 55, 55, LMR_CODEC_GZIP};
    json_t *j = lmr_map_task_to_json(&t);
    char *text = json_dumps(j, JSON_COMPACT);
    struct lmr_err err = {0};
    assert_int_equal(lmr_map_task_from_json(text, strlen(text), &back, &err), LMR_OK);
    assert_string_equal(back.job.job_id, "J1");
    assert_string_equal(lmr_job_arg(back.job.args, "delimiter"), ",");
    assert_int_equal(back.job.reducers, 7);
    assert_int_equal(back.job.memory_mb, 256);
    assert_string_equal(back.job.output.root, "s3://bucket");
    assert_int_equal(back.task, 3);
    assert_int_equal(back.attempt, 2);
    assert_string_equal(back.attempt_id, "m00003-a2-beef");
    assert_int_equal(back.nshards, 2);
    assert_string_equal(back.shards[1].object.key, "k/x.gz");
    assert_int_equal(back.shards[0].offset, 10);
    assert_int_equal(back.shards[0].length, 20);
    assert_int_equal(back.shards[1].codec, LMR_CODEC_GZIP);
    json_decref(j);
    free(text);
    lmr_map_task_clean_up(&t);
    lmr_map_task_clean_up(&back);
}

static void test_reduce_round_trip(void **state)
{
    struct lmr_reduce_task t = {0}, back;
    fill_job(&t.job);
    t.task = 1;
    t.attempt = 1;
    t.attempt_id = strdup("r00001-a1-cafe");
    t.nframes = 1;
    t.frames = calloc(1, sizeof *t.frames);
    t.frames[0].key = strdup("_lambdamr/work/J1/map/m-00000/x.lmr");
    t.frames[0].offset = 123;
    t.frames[0].size_bytes = 456;
    json_t *j = lmr_reduce_task_to_json(&t);
    char *text = json_dumps(j, JSON_COMPACT);
    assert_int_equal(lmr_reduce_task_from_json(text, strlen(text), &back, NULL), LMR_OK);
    assert_int_equal(back.nframes, 1);
    assert_string_equal(back.frames[0].key, t.frames[0].key);
    assert_int_equal(back.frames[0].offset, 123);
    assert_int_equal(back.frames[0].size_bytes, 456);
    json_decref(j);
    free(text);
    lmr_reduce_task_clean_up(&t);
    lmr_reduce_task_clean_up(&back);
}

static void expect_bad_map(const char *event, const char *reason)
{
    struct lmr_map_task t;
    struct lmr_err err = {0};
    assert_int_equal(lmr_map_task_from_json(event, strlen(event), &t, &err), LMR_ERR_FORMAT);
    if (!strstr(err.msg, reason))
        fail_msg("'%s': message '%s' lacks '%s'", event, err.msg, reason);
}

#define JOB                                                                                                            \
    "\"job\":{\"job_id\":\"J\",\"name\":\"wordcount\",\"work\":{\"root\":\"file:///w\",\"key\":\"w/\"},"               \
    "\"output\":{\"root\":\"file:///o\",\"key\":\"\"}}"

static void test_malformed(void **state)
{
    expect_bad_map("not json", "not valid JSON");
    expect_bad_map("[1,2]", "not a map task");
    expect_bad_map("{\"kind\":\"reduce\"}", "not a map task");
    expect_bad_map("{\"kind\":\"map\"}", "job_id and name");
    expect_bad_map("{\"kind\":\"map\"," JOB "}", "'shards' must be an array");
    expect_bad_map("{\"kind\":\"map\"," JOB ",\"attempt_id\":\"../../etc\",\"shards\":[]}", "attempt_id");
    expect_bad_map("{\"kind\":\"map\"," JOB ",\"shards\":[{\"offset\":1}]}", "needs a root and a key");
    struct lmr_reduce_task r;
    struct lmr_err err = {0};
    const char *bad = "{\"kind\":\"reduce\"," JOB ",\"frames\":[[\"k\",\"x\",1]]}";
    assert_int_equal(lmr_reduce_task_from_json(bad, strlen(bad), &r, &err), LMR_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "[key, offset, size]"));
}

/* A number too large for its field is not cast (undefined behaviour): the field keeps its default. */
static void test_numbers_out_of_range(void **state)
{
    const char *ev = "{\"kind\":\"map\",\"job\":{\"job_id\":\"j\",\"name\":\"wordcount\",\"work\":{\"root\":"
                     "\"file:///w\",\"key\":\"w/\"},\"output\":{\"root\":\"file:///o\",\"key\":\"\"},"
                     "\"memory_mb\":1e300},\"task\":2.5,\"attempt\":1e300,\"attempt_id\":\"a\",\"shards\":[{\"root\":"
                     "\"file:///i\",\"key\":\"k\",\"offset\":1e19,\"length\":1e300}]}";
    struct lmr_map_task t;
    struct lmr_err err = {0};
    assert_int_equal(lmr_map_task_from_json(ev, strlen(ev), &t, &err), LMR_OK);
    assert_int_equal(t.task, 2);
    assert_int_equal(t.attempt, 1);
    assert_int_equal(t.job.memory_mb, 1024);
    assert_int_equal(t.shards[0].offset, 10000000000000000000ull);
    assert_int_equal(t.shards[0].length, 0);
    lmr_map_task_clean_up(&t);
}

static void test_codec_from_key(void **state)
{
    assert_int_equal(lmr_codec_from_key("a/b.gz"), LMR_CODEC_GZIP);
    assert_int_equal(lmr_codec_from_key("x.zst"), LMR_CODEC_ZSTD);
    assert_int_equal(lmr_codec_from_key("x.gzip"), LMR_CODEC_NONE);
    assert_int_equal(lmr_codec_from_key(".gz"), LMR_CODEC_NONE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_map_round_trip), cmocka_unit_test(test_reduce_round_trip),
        cmocka_unit_test(test_malformed),      cmocka_unit_test(test_numbers_out_of_range),
        cmocka_unit_test(test_codec_from_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
