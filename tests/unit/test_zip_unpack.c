/*
 * Deployment package unpacking (lambda/zip_unpack.h): a good package lands whole with its modes;
 * zip-slip names, absolute names, symbolic links, special files, paths through a file, too many
 * entries and too many unzipped bytes are refused, nothing is written outside the destination,
 * and the destination does not exist after a refusal. Zips are written with libzip's writer.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

#include <cmocka.h>

#include "lambda/zip_unpack.h"
#include "util/misc.h"

struct entry {
    const char *name;
    const char *data; /* NULL: a directory entry */
    size_t size;      /* 0: strlen(data) */
    uint32_t mode;    /* Unix mode with type bits; 0 = no Unix attributes */
};

static char g_tmp[256];

static int setup(void **unused)
{
    snprintf(g_tmp, sizeof g_tmp, "%s/lmr-zip-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    return mkdtemp(g_tmp) ? 0 : -1;
}

static int teardown(void **unused)
{
    lmr_remove_tree(g_tmp, NULL);
    return 0;
}

/* Write a zip of the entries to path. */
static void write_zip(const char *path, const struct entry *e, size_t n)
{
    int zerr = 0;
    zip_t *za = zip_open(path, ZIP_CREATE | ZIP_TRUNCATE, &zerr);
    assert_non_null(za);
    for (size_t i = 0; i < n; i++) {
        zip_int64_t idx;
        if (!e[i].data) {
            idx = zip_dir_add(za, e[i].name, ZIP_FL_ENC_RAW);
        } else {
            size_t size = e[i].size ? e[i].size : strlen(e[i].data);
            char *copy = size ? malloc(size) : NULL; /* libzip does not free an empty buffer */
            assert_true(copy || !size);
            for (size_t k = 0; k < size; k++)
                copy[k] = e[i].size ? (char)('a' + k % 26) : e[i].data[k];
            zip_source_t *src = zip_source_buffer(za, copy, size, size > 0);
            assert_non_null(src);
            idx = zip_file_add(za, e[i].name, src, ZIP_FL_ENC_RAW);
        }
        assert_true(idx >= 0);
        /* libzip gives new entries Unix attributes (0666); mode 0 stands for an MS-DOS archiver. */
        assert_int_equal(zip_file_set_external_attributes(za, (zip_uint64_t)idx, 0,
                                                          e[i].mode ? ZIP_OPSYS_UNIX : ZIP_OPSYS_DOS,
                                                          e[i].mode ? (zip_uint32_t)e[i].mode << 16 : 0),
                         0);
    }
    assert_int_equal(zip_close(za), 0);
}

static bool exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* Unpack entries from a file and from memory; both must give `want`. @return the file result. */
static enum lmr_result unpack_both(const struct entry *e, size_t n, const struct lmr_zip_limits *lim,
                                   struct lmr_zip_summary *sum, char *dest, size_t cap, struct lmr_err *err)
{
    char zip_path[512];
    snprintf(zip_path, sizeof zip_path, "%s/pkg.zip", g_tmp);
    write_zip(zip_path, e, n);
    snprintf(dest, cap, "%s/root", g_tmp);
    lmr_remove_tree(dest, NULL);
    enum lmr_result r = lmr_zip_unpack_file(zip_path, dest, lim, sum, err);
    if (r) {
        assert_false(exists(dest));
        char *data = NULL;
        size_t len = 0;
        assert_int_equal(lmr_read_file(zip_path, 1 << 24, &data, &len, NULL), LMR_OK);
        struct lmr_err err2 = {0};
        assert_int_equal(lmr_zip_unpack_buffer(data, len, dest, lim, NULL, &err2), r);
        assert_false(exists(dest));
        free(data);
    }
    return r;
}

static void test_good_package(void **unused)
{
    const struct entry e[] = {
        {"bootstrap", "#!/bin/sh\nexec true\n", 0, 0100755},
        {"lib/", NULL, 0, 040755},
        {"lib/libx.so", "ELF", 0, 0100644},
        {"./files//tool", "echo", 0, 0104755}, /* setuid bit is dropped, "./" and "//" normalised */
        {"plain.txt", "no unix attributes", 0, 0},
    };
    struct lmr_zip_summary sum;
    char dest[512], path[600];
    struct lmr_err err = {0};
    assert_int_equal(unpack_both(e, 5, NULL, &sum, dest, sizeof dest, &err), LMR_OK);
    assert_true(sum.has_bootstrap);
    assert_int_equal(sum.files, 4);
    assert_int_equal(sum.unzipped_bytes, strlen(e[0].data) + 3 + 4 + strlen(e[4].data));
    struct stat st;
    snprintf(path, sizeof path, "%s/bootstrap", dest);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0755);
    snprintf(path, sizeof path, "%s/files/tool", dest);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0755);
    snprintf(path, sizeof path, "%s/plain.txt", dest);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0644);
    char *data = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, "%s/lib/libx.so", dest);
    assert_int_equal(lmr_read_file(path, 100, &data, &len, NULL), LMR_OK);
    assert_int_equal(len, 3);
    assert_memory_equal(data, "ELF", 3);
    free(data);
    /* The destination must be new. */
    assert_int_equal(unpack_both(e, 1, NULL, NULL, dest, sizeof dest, &err), LMR_OK);
    char zip_path[512];
    snprintf(zip_path, sizeof zip_path, "%s/pkg.zip", g_tmp);
    assert_int_equal(lmr_zip_unpack_file(zip_path, dest, NULL, NULL, &err), LMR_ERR_EXISTS);
    assert_true(exists(dest)); /* not ours to remove */
}

static void test_no_bootstrap(void **unused)
{
    const struct entry e[] = {{"sub/bootstrap", "x", 0, 0100755}, {"main.py", "print()", 0, 0100644}};
    struct lmr_zip_summary sum;
    char dest[512];
    assert_int_equal(unpack_both(e, 2, NULL, &sum, dest, sizeof dest, NULL), LMR_OK);
    assert_false(sum.has_bootstrap);
}

static void expect_refused(const struct entry *e, size_t n, const struct lmr_zip_limits *lim, enum lmr_result want,
                           const char *in_message)
{
    char dest[512], outside[600];
    struct lmr_err err = {0};
    assert_int_equal(unpack_both(e, n, lim, NULL, dest, sizeof dest, &err), want);
    if (!strstr(err.msg, in_message))
        fail_msg("message '%s' does not say '%s'", err.msg, in_message);
    snprintf(outside, sizeof outside, "%s/evil", g_tmp);
    assert_false(exists(outside));
}

static void test_zip_slip(void **unused)
{
    const struct entry dotdot[] = {{"bootstrap", "x", 0, 0100755}, {"../evil", "pwned", 0, 0100644}};
    expect_refused(dotdot, 2, NULL, LMR_ERR_INVALID, "'..'");
    const struct entry inner[] = {{"a/b/../../../evil", "pwned", 0, 0100644}};
    expect_refused(inner, 1, NULL, LMR_ERR_INVALID, "outside the task root");
}

static void test_absolute(void **unused)
{
    char abs_name[600];
    snprintf(abs_name, sizeof abs_name, "%s/evil", g_tmp);
    const struct entry e[] = {{"bootstrap", "x", 0, 0100755}, {abs_name, "pwned", 0, 0100644}};
    expect_refused(e, 2, NULL, LMR_ERR_INVALID, "absolute path");
}

static void test_symlink(void **unused)
{
    /* A link to the parent, then a file "through" it: the link alone is refused. */
    const struct entry e[] = {{"up", "..", 0, 0120777}, {"up/evil", "pwned", 0, 0100644}};
    expect_refused(e, 2, NULL, LMR_ERR_INVALID, "symbolic link");
    const struct entry fifo[] = {{"pipe", "", 0, 0010644}};
    expect_refused(fifo, 1, NULL, LMR_ERR_INVALID, "special file");
}

static void test_path_through_file(void **unused)
{
    const struct entry e[] = {{"a", "file", 0, 0100644}, {"a/b", "under a file", 0, 0100644}};
    expect_refused(e, 2, NULL, LMR_ERR_INVALID, "not a directory");
}

static void test_over_size(void **unused)
{
    struct lmr_zip_limits lim = {.max_unzipped_bytes = 1000};
    const struct entry one[] = {{"big", "", 2000, 0100644}};
    expect_refused(one, 1, &lim, LMR_ERR_TOO_LARGE, "1000 bytes");
    const struct entry sum[] = {{"a", "", 400, 0100644}, {"b", "", 400, 0100644}, {"c", "", 400, 0100644}};
    expect_refused(sum, 3, &lim, LMR_ERR_TOO_LARGE, "unzipped size limit");
    char dest[512];
    assert_int_equal(unpack_both(sum, 2, &lim, NULL, dest, sizeof dest, NULL), LMR_OK); /* 800 fit */
    struct lmr_zip_limits few = {.max_entries = 2};
    expect_refused(sum, 3, &few, LMR_ERR_TOO_LARGE, "3 entries");
}

static void test_not_a_zip(void **unused)
{
    char dest[512];
    snprintf(dest, sizeof dest, "%s/root", g_tmp);
    struct lmr_err err = {0};
    assert_int_equal(lmr_zip_unpack_buffer("PK\3\4 not really", 15, dest, NULL, NULL, &err), LMR_ERR_FORMAT);
    assert_false(exists(dest));
    assert_int_equal(lmr_zip_unpack_buffer("", 0, dest, NULL, NULL, &err), LMR_ERR_FORMAT);
    assert_false(exists(dest));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_good_package, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_bootstrap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_zip_slip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_absolute, setup, teardown),
        cmocka_unit_test_setup_teardown(test_symlink, setup, teardown),
        cmocka_unit_test_setup_teardown(test_path_through_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_over_size, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_a_zip, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
