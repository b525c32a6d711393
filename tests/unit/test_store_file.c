/* The file back-end and the store interface: keys cannot leave the root, create-only commits,
 * atomic visibility, ranged reads, sorted listing without hidden names, deletes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store.h"

static char root[] = "/tmp/lmr-store-XXXXXX";
static struct lmr_store *st;

static void test_keys_stay_inside(void **state)
{
    const char *bad[] = {"", "/etc/passwd", "..", "../x", "a/../../x", "a/./b", "."};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct lmr_err err = {0};
        assert_int_equal(lmr_store_put(st, bad[i], "x", 1, 0, &err), LMR_ERR_INVALID);
        assert_true(err.msg[0] != '\0');
    }
    assert_int_equal(lmr_store_check_key("a/b..c/d", NULL), LMR_OK);
    assert_int_equal(lmr_store_check_key("..a", NULL), LMR_OK);
}

static void test_create_only_first_wins(void **state)
{
    struct lmr_store_writer *w1, *w2;
    assert_int_equal(lmr_store_open_write(st, "c/commit.json", LMR_PUT_CREATE_ONLY, &w1, NULL), LMR_OK);
    assert_int_equal(lmr_store_open_write(st, "c/commit.json", LMR_PUT_CREATE_ONLY, &w2, NULL), LMR_OK);
    assert_int_equal(lmr_store_write(w1, "first", 5, NULL), LMR_OK);
    assert_int_equal(lmr_store_write(w2, "second", 6, NULL), LMR_OK);
    /* nothing is visible before a commit */
    uint64_t size;
    assert_int_equal(lmr_store_head(st, "c/commit.json", &size, NULL), LMR_ERR_NOT_FOUND);
    assert_int_equal(lmr_store_commit(w2, NULL), LMR_OK);
    assert_int_equal(lmr_store_commit(w1, NULL), LMR_ERR_EXISTS);
    struct lmr_buf b;
    lmr_buf_init(&b, 1024);
    assert_int_equal(lmr_store_get(st, "c/commit.json", 0, LMR_STORE_TO_END, &b, NULL), LMR_OK);
    assert_string_equal(b.data, "second");
    lmr_buf_clean_up(&b);
    /* a plain put replaces */
    assert_int_equal(lmr_store_put(st, "c/commit.json", "third", 5, 0, NULL), LMR_OK);
    assert_int_equal(lmr_store_get(st, "c/commit.json", 0, LMR_STORE_TO_END, &b, NULL), LMR_OK);
    assert_string_equal(b.data, "third");
    lmr_buf_clean_up(&b);
}

static void test_abort_leaves_nothing(void **state)
{
    struct lmr_store_writer *w;
    assert_int_equal(lmr_store_open_write(st, "ab/x", 0, &w, NULL), LMR_OK);
    assert_int_equal(lmr_store_write(w, "data", 4, NULL), LMR_OK);
    lmr_store_abort(w);
    char path[256];
    snprintf(path, sizeof path, "%s/ab", root);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "test -z \"$(ls -A %s)\"", path);
    assert_int_equal(system(cmd), 0); /* not even a temporary file */
}

static void test_ranges(void **state)
{
    assert_int_equal(lmr_store_put(st, "r.bin", "0123456789", 10, 0, NULL), LMR_OK);
    struct lmr_buf b;
    lmr_buf_init(&b, 1024);
    assert_int_equal(lmr_store_get(st, "r.bin", 3, 4, &b, NULL), LMR_OK);
    assert_string_equal(b.data, "3456");
    lmr_buf_reset(&b);
    assert_int_equal(lmr_store_get(st, "r.bin", 8, 100, &b, NULL), LMR_OK);
    assert_string_equal(b.data, "89");
    lmr_buf_reset(&b);
    assert_int_equal(lmr_store_get(st, "r.bin", 50, 10, &b, NULL), LMR_OK);
    assert_int_equal(b.len, 0);
    lmr_buf_clean_up(&b);
    /* a cap smaller than the object is an error, not a truncation */
    lmr_buf_init(&b, 4);
    assert_int_equal(lmr_store_get(st, "r.bin", 0, LMR_STORE_TO_END, &b, NULL), LMR_ERR_TOO_LARGE);
    lmr_buf_clean_up(&b);
    struct lmr_err err = {0};
    lmr_buf_init(&b, 4);
    assert_int_equal(lmr_store_get(st, "missing", 0, LMR_STORE_TO_END, &b, &err), LMR_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, "missing"));
    lmr_buf_clean_up(&b);
}

struct seen {
    char keys[16][64];
    size_t n;
};

static enum lmr_result collect(void *ud, const struct lmr_store_object *o)
{
    struct seen *s = ud;
    if (s->n < 16)
        snprintf(s->keys[s->n++], 64, "%s", o->key);
    return LMR_OK;
}

static void test_listing(void **state)
{
    const char *keys[] = {"l/b.txt", "l/a/z.txt", "l/a/y.txt", "l/.hidden", "l/c/.tmp/x", "lx/other"};
    for (size_t i = 0; i < 6; i++) {
        char path[256];
        snprintf(path, sizeof path, "%s/%s", root, keys[i]);
        char cmd[600];
        snprintf(cmd, sizeof cmd, "mkdir -p \"$(dirname %s)\" && echo x > %s", path, path);
        assert_int_equal(system(cmd), 0);
    }
    struct seen s = {0};
    assert_int_equal(lmr_store_list(st, "l/", collect, &s, NULL), LMR_OK);
    assert_int_equal(s.n, 3);
    assert_string_equal(s.keys[0], "l/a/y.txt");
    assert_string_equal(s.keys[1], "l/a/z.txt");
    assert_string_equal(s.keys[2], "l/b.txt");
    /* deleting removes the directories it leaves empty */
    const char *del[] = {"l/a/y.txt", "l/a/z.txt", "never-existed"};
    assert_int_equal(lmr_store_delete(st, del, 3, NULL), LMR_OK);
    char path[256];
    snprintf(path, sizeof path, "%s/l/a", root);
    struct stat sb;
    assert_int_not_equal(stat(path, &sb), 0);
}

static void test_open_uri(void **state)
{
    struct lmr_store *s;
    char *prefix;
    assert_int_equal(lmr_store_open(root, &s, &prefix, NULL), LMR_OK);
    assert_string_equal(prefix, "");
    lmr_store_destroy(s);
    free(prefix);
    char file[256];
    snprintf(file, sizeof file, "file://%s/r.bin", root);
    assert_int_equal(lmr_store_open(file, &s, &prefix, NULL), LMR_OK);
    assert_string_equal(prefix, "r.bin");
    lmr_store_destroy(s);
    free(prefix);
    struct lmr_err err = {0};
    assert_int_equal(lmr_store_open("ftp://x/y", &s, &prefix, &err), LMR_ERR_UNSUPPORTED);
    assert_int_equal(lmr_store_open("s3:///nobucket", &s, &prefix, &err), LMR_ERR_INVALID);
}

static int setup(void **state)
{
    return mkdtemp(root) && lmr_file_store_new(root, &st, NULL) == LMR_OK ? 0 : -1;
}

static int teardown(void **state)
{
    lmr_store_destroy(st);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    return system(cmd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys_stay_inside),
        cmocka_unit_test(test_create_only_first_wins),
        cmocka_unit_test(test_abort_leaves_nothing),
        cmocka_unit_test(test_ranges),
        cmocka_unit_test(test_listing),
        cmocka_unit_test(test_open_uri),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
