/*
 * Generators: determinism (same seed and size give the same bytes with any thread count,
 * another seed gives other bytes), exact and approximate sizes, atomic parts (no temporary
 * files left), refusing to overwrite, and the bdb schema (field counts, value shapes, every
 * destURL a pageURL of rankings).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "gen.h"
#include "util/misc.h"

static char root[256];

static int setup(void **unused)
{
    snprintf(root, sizeof root, "/tmp/lmr-test-datasets-XXXXXX");
    return mkdtemp(root) ? 0 : -1;
}

static int teardown(void **unused)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    return system(cmd);
}

/* All part files of dir concatenated (in name order). */
static char *slurp_dir(const char *dir, size_t *len, int *nparts)
{
    struct dirent **names;
    int n = scandir(dir, &names, NULL, alphasort);
    assert_true(n >= 0);
    char *all = NULL;
    size_t total = 0;
    *nparts = 0;
    for (int i = 0; i < n; i++) {
        if (!strncmp(names[i]->d_name, "part-", 5)) {
            char path[512];
            snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
            char *data;
            size_t dlen;
            assert_int_equal(lmr_read_file(path, 1u << 30, &data, &dlen, NULL), LMR_OK);
            all = realloc(all, total + dlen + 1);
            memcpy(all + total, data, dlen);
            total += dlen;
            free(data);
            (*nparts)++;
        } else {
            assert_true(names[i]->d_name[0] == '.' && strlen(names[i]->d_name) <= 2); /* no temp files */
        }
        free(names[i]);
    }
    free(names);
    if (!all)
        all = calloc(1, 1);
    all[total] = '\0';
    *len = total;
    return all;
}

static char *gen_text(const char *name, uint64_t seed, uint64_t size, uint32_t files, unsigned threads, size_t *len,
                      int *nparts)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/%s", root, name);
    struct lmr_gen_text_options o = {
        .size_bytes = size, .seed = seed, .vocab = 5000, .files = files, .threads = threads};
    struct lmr_gen_stats st;
    struct lmr_err err = {0};
    assert_int_equal(lmr_gen_text(dir, &o, &st, &err), LMR_OK);
    assert_int_equal(st.bytes, size);
    return slurp_dir(dir, len, nparts);
}

static void test_text_determinism_and_size(void **unused)
{
    size_t la, lb, lc;
    int pa, pb, pc;
    char *a = gen_text("t1", 7, 3000001, 5, 1, &la, &pa);
    char *b = gen_text("t2", 7, 3000001, 5, 4, &lb, &pb);
    char *c = gen_text("t3", 8, 3000001, 5, 2, &lc, &pc);
    assert_int_equal(la, 3000001);
    assert_int_equal(pa, 5);
    assert_int_equal(lb, la);
    assert_memory_equal(a, b, la);
    assert_int_equal(lc, la);
    assert_true(memcmp(a, c, la) != 0);
    /* Content: only letters and the whitespace set; every part ends with a newline. */
    size_t words = 0, upper = 0;
    for (size_t i = 0; i < la; i++) {
        char ch = a[i];
        int letter = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
        assert_true(letter || strchr(" \t\n\v\f\r", ch));
        if (letter && (i == 0 || !((a[i - 1] >= 'a' && a[i - 1] <= 'z') || (a[i - 1] >= 'A' && a[i - 1] <= 'Z')))) {
            words++;
            upper += ch >= 'A' && ch <= 'Z';
        }
    }
    assert_int_equal(a[la - 1], '\n');
    assert_true(words > la / 12);     /* mean word + separator is well under 12 bytes */
    assert_true(upper > words / 100); /* some capitalised words */
    free(a), free(b), free(c);
    /* Tiny sizes are exact too, and fail clearly below one byte per file. */
    size_t ld;
    int pd;
    char *d = gen_text("t4", 1, 7, 3, 2, &ld, &pd);
    assert_int_equal(ld, 7);
    assert_int_equal(pd, 3);
    free(d);
    struct lmr_gen_text_options o = {.size_bytes = 2, .files = 3};
    struct lmr_err err = {0};
    char dir[512];
    snprintf(dir, sizeof dir, "%s/t5", root);
    assert_int_equal(lmr_gen_text(dir, &o, NULL, &err), LMR_ERR_INVALID);
    assert_non_null(strstr(err.msg, "lower --files"));
}

static void test_refuses_to_overwrite(void **unused)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/t1", root); /* written by the first test */
    struct lmr_gen_text_options o = {.size_bytes = 1000, .files = 1};
    struct lmr_err err = {0};
    assert_int_equal(lmr_gen_text(dir, &o, NULL, &err), LMR_ERR_EXISTS);
    assert_non_null(strstr(err.msg, "--force"));
    o.force = true;
    assert_int_equal(lmr_gen_text(dir, &o, NULL, &err), LMR_OK);
    size_t len;
    int parts;
    free(slurp_dir(dir, &len, &parts));
    assert_int_equal(parts, 1); /* the 5 old parts are gone */
    assert_int_equal(len, 1000);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static size_t split_commas(char *line, char **fields, size_t max)
{
    size_t n = 0;
    for (char *p = line; n < max;) {
        fields[n++] = p;
        char *c = strchr(p, ',');
        if (!c)
            break;
        *c = '\0';
        p = c + 1;
    }
    return n;
}

static void test_bdb_schema_and_join(void **unused)
{
    char dir[512], sub[600];
    snprintf(dir, sizeof dir, "%s/bdb", root);
    struct lmr_gen_bdb_options o = {.size_bytes = 2u << 20, .seed = 5, .files = 3, .threads = 2};
    struct lmr_gen_stats st;
    struct lmr_err err = {0};
    assert_int_equal(lmr_gen_bdb(dir, &o, &st, &err), LMR_OK);
    assert_int_equal(st.files, 6);

    size_t rlen, ulen;
    int rparts, uparts;
    snprintf(sub, sizeof sub, "%s/rankings", dir);
    char *rank = slurp_dir(sub, &rlen, &rparts);
    snprintf(sub, sizeof sub, "%s/uservisits", dir);
    char *uv = slurp_dir(sub, &ulen, &uparts);
    assert_int_equal(rparts, 3);
    assert_int_equal(uparts, 3);
    assert_int_equal(rlen + ulen, st.bytes);
    /* Sizes: 10% / 90% of the request, within 5%. */
    assert_true(rlen > 0.095 * o.size_bytes && rlen < 0.105 * o.size_bytes);
    assert_true(ulen > 0.855 * o.size_bytes && ulen <= 0.9 * o.size_bytes);

    /* rankings: 3 fields, integer rank >= 1, duration 1..100, URL unique and as exposed. */
    char **urls = malloc(st.rankings_rows * sizeof *urls);
    size_t nurl = 0;
    for (char *line = strtok(rank, "\n"); line; line = strtok(NULL, "\n")) {
        char *f[4];
        assert_int_equal(split_commas(line, f, 4), 3);
        char *end;
        long r = strtol(f[1], &end, 10), d = strtol(f[2], NULL, 10);
        assert_true(*end == '\0' && r >= 1);
        assert_true(d >= 1 && d <= 100);
        assert_true(nurl < st.rankings_rows);
        char want[128];
        lmr_gen_bdb_page_url(5, nurl, want);
        assert_string_equal(f[0], want);
        urls[nurl++] = f[0];
    }
    assert_int_equal(nurl, st.rankings_rows);
    qsort(urls, nurl, sizeof *urls, cmp_str);
    for (size_t i = 1; i < nurl; i++)
        assert_true(strcmp(urls[i - 1], urls[i]) != 0);

    /* uservisits: 9 fields of the right shapes; destURL joins with rankings. */
    uint64_t rows = 0;
    char *save = NULL;
    for (char *line = strtok_r(uv, "\n", &save); line; line = strtok_r(NULL, "\n", &save), rows++) {
        char *f[10];
        assert_int_equal(split_commas(line, f, 10), 9);
        int a, b, c, d, y, m, dd;
        char tail;
        assert_int_equal(sscanf(f[0], "%d.%d.%d.%d%c", &a, &b, &c, &d, &tail), 4);
        assert_true(a >= 0 && a < 256 && d >= 0 && d < 256);
        assert_non_null(bsearch(&f[1], urls, nurl, sizeof *urls, cmp_str));
        assert_int_equal(sscanf(f[2], "%4d-%2d-%2d", &y, &m, &dd), 3);
        assert_true(y >= 1970 && y <= 2009 && m >= 1 && m <= 12 && dd >= 1 && dd <= 31);
        char *end;
        double rev = strtod(f[3], &end);
        assert_true(*end == '\0' && rev >= 0 && rev < 1000);
        assert_true(strlen(f[4]) > 10 && strlen(f[4]) <= 256);
        assert_int_equal(strlen(f[5]), 3);
        assert_int_equal(strlen(f[6]), 6);
        assert_true(!strncmp(f[6], f[5], 3) && f[6][3] == '-');
        assert_true(strlen(f[7]) >= 2 && strlen(f[7]) <= 32);
        long dur = strtol(f[8], &end, 10);
        assert_true(*end == '\0' && dur >= 1 && dur <= 100);
    }
    assert_int_equal(rows, st.uservisits_rows);
    free(urls);
    free(rank);
    free(uv);

    /* Same options, other thread count: same bytes. */
    char dir2[512];
    snprintf(dir2, sizeof dir2, "%s/bdb2", root);
    o.threads = 1;
    assert_int_equal(lmr_gen_bdb(dir2, &o, NULL, &err), LMR_OK);
    const char *tables[] = {"rankings", "uservisits"};
    for (int t = 0; t < 2; t++) {
        size_t l1, l2;
        int p1, p2;
        snprintf(sub, sizeof sub, "%s/%s", dir, tables[t]);
        char *x = slurp_dir(sub, &l1, &p1);
        snprintf(sub, sizeof sub, "%s/%s", dir2, tables[t]);
        char *y = slurp_dir(sub, &l2, &p2);
        assert_int_equal(l1, l2);
        assert_memory_equal(x, y, l1);
        free(x), free(y);
    }
    /* Another seed: other bytes. */
    snprintf(dir2, sizeof dir2, "%s/bdb3", root);
    o.seed = 6;
    assert_int_equal(lmr_gen_bdb(dir2, &o, NULL, &err), LMR_OK);
    size_t l1, l2;
    int p1, p2;
    snprintf(sub, sizeof sub, "%s/uservisits", dir);
    char *x = slurp_dir(sub, &l1, &p1);
    snprintf(sub, sizeof sub, "%s/uservisits", dir2);
    char *y = slurp_dir(sub, &l2, &p2);
    assert_true(l1 != l2 || memcmp(x, y, l1) != 0);
    free(x), free(y);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_determinism_and_size),
        cmocka_unit_test(test_refuses_to_overwrite),
        cmocka_unit_test(test_bdb_schema_and_join),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
