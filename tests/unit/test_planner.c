/*
 * The planner without processes: split points, packing into map tasks, the automatic split
 * size, reducer counts, job locations and the manifest (written, read back, rejected when
 * malformed). Inputs are sparse files in a temporary directory (sizes without data).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "job/args.h"
#include "job_plan.h"
#include "util/misc.h"

#define MiB (1024ull * 1024ull)

struct dir {
    char path[64];
};

static void make_file(const struct dir *d, const char *name, uint64_t size)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", d->path, name);
    char *slash = strrchr(p, '/');
    *slash = '\0';
    assert_int_equal(lmr_mkdirs(p, NULL), LMR_OK);
    *slash = '/';
    int fd = open(p, O_CREAT | O_WRONLY | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)size), 0);
    close(fd);
}

static int setup(void **state)
{
    struct dir *d = calloc(1, sizeof *d);
    snprintf(d->path, sizeof d->path, "/tmp/lmr-planner-XXXXXX");
    assert_non_null(mkdtemp(d->path));
    *state = d;
    return 0;
}

static int teardown(void **state)
{
    struct dir *d = *state;
    assert_int_equal(lmr_remove_tree(d->path, NULL), LMR_OK);
    free(d);
    return 0;
}

/* Plan the inputs under d/in with the given options; the caller frees plan and stores. */
static enum lmr_result plan_dir(const struct dir *d, uint64_t split, bool given, uint32_t max_mappers,
                                uint32_t concurrency, struct lmr_job_plan *plan, struct lmr_store_set *stores,
                                struct lmr_err *err)
{
    char in[128];
    snprintf(in, sizeof in, "%s/in", d->path);
    char *inputs[] = {in};
    struct lmr_plan_options po = {.inputs = inputs,
                                  .ninputs = 1,
                                  .split_size_bytes = split,
                                  .split_size_given = given,
                                  .max_mappers = max_mappers,
                                  .concurrency = concurrency};
    memset(plan, 0, sizeof *plan);
    memset(stores, 0, sizeof *stores);
    return lmr_plan_inputs(&po, stores, plan, err);
}

static uint64_t planned_bytes(const struct lmr_job_plan *plan)
{
    uint64_t total = 0;
    for (size_t t = 0; t < plan->ntasks; t++)
        for (size_t s = 0; s < plan->tasks[t].nshards; s++)
            total += plan->tasks[t].shards[s].length;
    return total;
}

static void free_plan(struct lmr_job_plan *plan, struct lmr_store_set *stores)
{
    lmr_plan_tasks_free(plan);
    lmr_store_set_clean_up(stores);
}

/* Byte ranges of --split-size; compressed objects whole; '_' and '.' names skipped. */
static void test_split_points(void **state)
{
    struct dir *d = *state;
    make_file(d, "in/a.txt", 10 * MiB + 3);
    make_file(d, "in/b.gz", 5000);
    make_file(d, "in/_SUCCESS", 7);
    make_file(d, "in/.hidden", 7);
    make_file(d, "in/_tmp/c.txt", 9);
    struct lmr_job_plan plan;
    struct lmr_store_set stores;
    struct lmr_err err = {0};
    assert_int_equal(plan_dir(d, 4 * MiB, true, 0, 8, &plan, &stores, &err), LMR_OK);
    assert_int_equal(plan.input_objects, 2);
    assert_int_equal(plan.input_bytes, 10 * MiB + 3 + 5000);
    /* a.txt's last 2 MiB and b.gz fit one split together: 3 tasks. */
    assert_int_equal(plan.ntasks, 3);
    const uint64_t off[] = {0, 4 * MiB, 8 * MiB}, len[] = {4 * MiB, 4 * MiB, 2 * MiB + 3};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(plan.tasks[i].nshards, i < 2 ? 1 : 2);
        const struct lmr_shard *sh = &plan.tasks[i].shards[0];
        assert_string_equal(sh->object.key, "a.txt");
        assert_int_equal(sh->offset, off[i]);
        assert_int_equal(sh->length, len[i]);
        assert_int_equal(sh->object_size, 10 * MiB + 3);
        assert_int_equal(sh->codec, LMR_CODEC_NONE);
    }
    const struct lmr_shard *gz = &plan.tasks[2].shards[1];
    assert_int_equal(gz->offset, 0);
    assert_int_equal(gz->length, 5000);
    assert_int_equal(gz->codec, LMR_CODEC_GZIP);
    free_plan(&plan, &stores);
}

/* Small objects are packed into tasks of about one split; --mappers caps the task count. */
static void test_packing(void **state)
{
    struct dir *d = *state;
    for (int i = 0; i < 10; i++) {
        char name[32];
        snprintf(name, sizeof name, "in/f%02d", i);
        make_file(d, name, 1 * MiB);
    }
    struct lmr_job_plan plan;
    struct lmr_store_set stores;
    struct lmr_err err = {0};
    assert_int_equal(plan_dir(d, 4 * MiB, true, 0, 8, &plan, &stores, &err), LMR_OK);
    assert_int_equal(plan.ntasks, 3);
    assert_int_equal(plan.tasks[0].nshards, 4);
    assert_int_equal(plan.tasks[1].nshards, 4);
    assert_int_equal(plan.tasks[2].nshards, 2);
    assert_int_equal(planned_bytes(&plan), 10 * MiB);
    free_plan(&plan, &stores);

    assert_int_equal(plan_dir(d, 64 * MiB, true, 3, 8, &plan, &stores, &err), LMR_OK);
    assert_true(plan.ntasks >= 1 && plan.ntasks <= 3);
    assert_int_equal(planned_bytes(&plan), 10 * MiB);
    free_plan(&plan, &stores);

    /* A cap below the natural count: every shard still lands in one of the capped tasks. */
    assert_int_equal(plan_dir(d, 1 * MiB, true, 2, 8, &plan, &stores, &err), LMR_OK);
    assert_int_equal(plan.ntasks, 2);
    assert_int_equal(plan.tasks[0].nshards + plan.tasks[1].nshards, 10);
    free_plan(&plan, &stores);
}

/* Without --split-size, splits get smaller (not below 1 MiB) so every invocation slot has work. */
static void test_automatic_split(void **state)
{
    struct dir *d = *state;
    make_file(d, "in/big", 10 * MiB);
    struct lmr_job_plan plan;
    struct lmr_store_set stores;
    struct lmr_err err = {0};
    assert_int_equal(plan_dir(d, LMR_PLAN_DEFAULT_SPLIT_BYTES, false, 0, 4, &plan, &stores, &err), LMR_OK);
    assert_int_equal(plan.ntasks, 4);
    for (size_t i = 0; i < plan.ntasks; i++)
        assert_true(plan.tasks[i].shards[0].length <= (10 * MiB + 3) / 4);
    assert_int_equal(planned_bytes(&plan), 10 * MiB);
    free_plan(&plan, &stores);

    assert_int_equal(plan_dir(d, LMR_PLAN_DEFAULT_SPLIT_BYTES, false, 0, 64, &plan, &stores, &err), LMR_OK);
    assert_int_equal(plan.ntasks, 10); /* 1 MiB floor */
    free_plan(&plan, &stores);

    assert_int_equal(plan_dir(d, LMR_PLAN_DEFAULT_SPLIT_BYTES, true, 0, 64, &plan, &stores, &err), LMR_OK);
    assert_int_equal(plan.ntasks, 1); /* given: as asked */
    free_plan(&plan, &stores);
}

static void test_no_input(void **state)
{
    struct dir *d = *state;
    make_file(d, "in/_only_hidden", 10);
    struct lmr_job_plan plan;
    struct lmr_store_set stores;
    struct lmr_err err = {0};
    assert_int_equal(plan_dir(d, MiB, true, 0, 1, &plan, &stores, &err), LMR_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, "holds no input files"));
    assert_non_null(strstr(err.msg, d->path));
    free_plan(&plan, &stores);
}

static void test_reducer_count(void **state)
{
    assert_int_equal(lmr_plan_reducer_count(0, 8), 1);
    assert_int_equal(lmr_plan_reducer_count(100 * MiB, 8), 2);    /* one per 64 MiB, below the slots */
    assert_int_equal(lmr_plan_reducer_count(640 * MiB, 100), 11); /* one per 64 MiB */
    assert_int_equal(lmr_plan_reducer_count(640 * MiB, 4), 4);    /* one per slot */
    assert_int_equal(lmr_plan_reducer_count(10240 * MiB, 4), 11); /* one per GiB */
    assert_int_equal(lmr_plan_reducer_count(1ull << 40, 1000), LMR_PLAN_MAX_AUTO_REDUCERS);
}

/* The whole job: locations, reducers, the manifest written and read back identically. */
static void test_job_and_manifest(void **state)
{
    struct dir *d = *state;
    make_file(d, "in/a", 3 * MiB);
    make_file(d, "in/b.zst", 100);
    char in[128], out[128];
    snprintf(in, sizeof in, "%s/in", d->path);
    snprintf(out, sizeof out, "%s/out", d->path);
    char *inputs[] = {in};
    struct lmr_job_args *args = lmr_job_args_new();
    lmr_job_args_set(args, "delimiter", ",");
    struct lmr_plan_request req = {.job_name = "wordcount",
                                   .args = args,
                                   .inputs = inputs,
                                   .ninputs = 1,
                                   .output_uri = out,
                                   .split_size_bytes = MiB,
                                   .split_size_given = true,
                                   .memory_mb = 512,
                                   .concurrency = 2,
                                   .job_id = "20260101T000000Z-00000001"};
    struct lmr_job_plan plan;
    struct lmr_store_set stores = {0};
    struct lmr_store *out_store, *work_store;
    struct lmr_err err = {0};
    assert_int_equal(lmr_plan_job(&req, &stores, &plan, &out_store, &work_store, &err), LMR_OK);
    lmr_job_args_destroy(args); /* the plan has its own copy */
    assert_ptr_equal(out_store, work_store);
    assert_string_equal(plan.job.job_id, "20260101T000000Z-00000001");
    assert_int_equal(plan.job.reducers, 1);
    assert_int_equal(plan.job.memory_mb, 512);
    assert_int_equal(plan.ntasks, 4);
    assert_string_equal(plan.job.output.key, "");
    assert_string_equal(plan.job.work.key, "_lambdamr/work/20260101T000000Z-00000001/");
    assert_non_null(strstr(plan.job.output.root, "/out"));

    assert_int_equal(lmr_plan_write_manifest(&plan, work_store, &err), LMR_OK);
    struct lmr_buf b;
    lmr_buf_init(&b, LMR_MANIFEST_MAX_BYTES);
    assert_int_equal(lmr_store_get(work_store, "_lambdamr/work/20260101T000000Z-00000001/manifest.json", 0,
                                   LMR_STORE_TO_END, &b, &err),
                     LMR_OK);
    json_t *m = json_loadb(b.data, b.len, 0, NULL);
    lmr_buf_clean_up(&b);
    assert_non_null(m);
    assert_int_equal(lmr_json_u64(m, "version", 0), LMR_MANIFEST_VERSION);
    assert_int_equal(lmr_json_u64(m, "input_bytes", 0), 3 * MiB + 100);
    assert_int_equal(json_array_size(json_object_get(m, "map_tasks")), 4);
    assert_string_equal(json_string_value(json_array_get(json_object_get(m, "inputs"), 0)), in);
    json_t *job = json_object_get(m, "job");
    assert_string_equal(lmr_json_str(job, "name", ""), "wordcount");
    assert_string_equal(lmr_json_str(json_object_get(job, "args"), "delimiter", ""), ",");

    struct lmr_job_plan back;
    assert_int_equal(lmr_plan_from_manifest(m, &back, &err), LMR_OK);
    assert_int_equal(back.ntasks, plan.ntasks);
    assert_string_equal(back.job.job_id, plan.job.job_id);
    assert_string_equal(back.job.work.key, plan.job.work.key);
    assert_string_equal(back.output_uri, out);
    assert_int_equal(back.job.reducers, 1);
    for (size_t t = 0; t < plan.ntasks; t++) {
        assert_int_equal(back.tasks[t].nshards, plan.tasks[t].nshards);
        for (size_t s = 0; s < plan.tasks[t].nshards; s++) {
            assert_string_equal(back.tasks[t].shards[s].object.key, plan.tasks[t].shards[s].object.key);
            assert_string_equal(back.tasks[t].shards[s].object.root, plan.tasks[t].shards[s].object.root);
            assert_int_equal(back.tasks[t].shards[s].offset, plan.tasks[t].shards[s].offset);
            assert_int_equal(back.tasks[t].shards[s].length, plan.tasks[t].shards[s].length);
            assert_int_equal(back.tasks[t].shards[s].codec, plan.tasks[t].shards[s].codec);
        }
    }
    json_t *again = lmr_plan_manifest_json(&back);
    assert_true(json_equal(again, m));
    json_decref(again);
    lmr_plan_clean_up(&back);

    /* Malformed manifests are refused with the field named. */
    json_object_set_new(m, "version", json_integer(99));
    assert_int_equal(lmr_plan_from_manifest(m, &back, &err), LMR_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "version"));
    json_object_set_new(m, "version", json_integer(LMR_MANIFEST_VERSION));
    json_array_set_new(json_object_get(m, "map_tasks"), 1, json_string("x"));
    assert_int_equal(lmr_plan_from_manifest(m, &back, &err), LMR_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "map task 1"));
    json_object_del(m, "map_tasks");
    assert_int_equal(lmr_plan_from_manifest(m, &back, &err), LMR_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "map_tasks"));
    json_decref(m);
    lmr_plan_clean_up(&plan);

    /* With --work and a reducer count and map-only jobs. */
    char work[128];
    snprintf(work, sizeof work, "%s/work/base", d->path);
    req.work_uri = work;
    req.reducers = 7;
    req.args = lmr_job_args_new();
    assert_int_equal(lmr_plan_job(&req, &stores, &plan, &out_store, &work_store, &err), LMR_OK);
    assert_ptr_not_equal(out_store, work_store);
    assert_int_equal(plan.job.reducers, 7);
    assert_string_equal(plan.job.work.key, "20260101T000000Z-00000001/");
    lmr_plan_clean_up(&plan);
    req.map_only = true;
    assert_int_equal(lmr_plan_job(&req, &stores, &plan, &out_store, &work_store, &err), LMR_OK);
    assert_int_equal(plan.job.reducers, 0);
    lmr_plan_clean_up(&plan);
    lmr_job_args_destroy(req.args);
    lmr_store_set_clean_up(&stores);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_split_points, setup, teardown),
        cmocka_unit_test_setup_teardown(test_packing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_automatic_split, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_input, setup, teardown),
        cmocka_unit_test(test_reducer_count),
        cmocka_unit_test_setup_teardown(test_job_and_manifest, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
