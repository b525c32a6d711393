/*
 * Shard reading: whatever the split points, every line of the object is handed over exactly
 * once, by the shard in which it starts. The oracle is a plain split of the whole file.
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
#include <zlib.h>
#include <zstd.h>

#include "shard_reader.h"
#include "store/store.h"
#include "util/buf.h"

static char tmpdir[] = "/tmp/lmr-shard-XXXXXX";
static struct lmr_store *store;

struct collected {
    struct lmr_buf text; /* lines joined with '\n' */
    uint64_t lines;
};

static enum lmr_result collect(void *ud, struct lmr_slice line, uint64_t offset, struct lmr_err *err)
{
    struct collected *c = ud;
    lmr_buf_append(&c->text, line.ptr, line.len);
    lmr_buf_append(&c->text, "\n", 1);
    c->lines++;
    return LMR_OK;
}

/* The expected lines: split on '\n', drop one trailing '\r' per line, last line may lack '\n'. */
static void oracle(const char *data, size_t n, struct lmr_buf *out, uint64_t *lines)
{
    size_t start = 0;
    *lines = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n && start == n)
            break;
        if (i == n || data[i] == '\n') {
            size_t len = i - start;
            if (len && data[start + len - 1] == '\r')
                len--;
            lmr_buf_append(out, data + start, len);
            lmr_buf_append(out, "\n", 1);
            (*lines)++;
            start = i + 1;
        }
    }
}

/* Block mode: split each block back into lines (as the line callback would get them). */
static enum lmr_result collect_block(void *ud, struct lmr_slice block, uint64_t lines, uint64_t offset,
                                     struct lmr_err *err)
{
    uint64_t seen = 0;
    size_t start = 0;
    assert_true(block.len > 0 && block.ptr[block.len - 1] == '\n');
    for (size_t i = 0; i < block.len; i++) {
        if (block.ptr[i] != '\n')
            continue;
        size_t len = i - start;
        if (len && block.ptr[start + len - 1] == '\r')
            len--;
        collect(ud, (struct lmr_slice){block.ptr + start, len}, offset, err);
        seen++;
        start = i + 1;
    }
    assert_int_equal(seen, lines);
    return LMR_OK;
}

static void put_object(const char *key, const void *data, size_t n)
{
    assert_int_equal(lmr_store_put(store, key, data, n, 0, NULL), LMR_OK);
}

static void read_split(const char *key, size_t n, uint64_t split, enum lmr_codec codec, size_t max_line,
                       struct collected *c)
{
    lmr_buf_init(&c->text, 1u << 30);
    c->lines = 0;
    uint64_t step = codec == LMR_CODEC_NONE ? split : n;
    for (uint64_t off = 0; off < n || (n == 0 && off == 0); off += step) {
        struct lmr_shard sh = {.object = {.root = store->root_uri, .key = (char *)key},
                               .offset = off,
                               .length = off + step > n ? n - off : step,
                               .object_size = n,
                               .codec = codec};
        struct lmr_shard_stats st = {0};
        struct lmr_err err = {0};
        size_t before = c->text.len;
        uint64_t lines_before = c->lines;
        enum lmr_result r = lmr_shard_read_lines(store, &sh, max_line, collect, c, &st, &err);
        if (r)
            fail_msg("shard at %llu: %s", (unsigned long long)off, err.msg);
        assert_int_equal(st.records, c->lines - lines_before);
        /* The block reader hands over the same lines (as blocks plus single lines). */
        struct collected b;
        struct lmr_shard_stats bst = {0};
        lmr_buf_init(&b.text, 1u << 30);
        b.lines = 0;
        r = lmr_shard_read_blocks(store, &sh, max_line, collect_block, collect, &b, &bst, &err);
        if (r)
            fail_msg("shard at %llu (blocks): %s", (unsigned long long)off, err.msg);
        assert_int_equal(b.lines, c->lines - lines_before);
        assert_int_equal(bst.records, st.records);
        assert_int_equal(b.text.len, c->text.len - before);
        if (b.text.len)
            assert_memory_equal(b.text.data, c->text.data + before, b.text.len);
        lmr_buf_clean_up(&b.text);
        if (n == 0)
            break;
    }
}

static void check_all_splits(const char *data, size_t n, const uint64_t *splits, size_t nsplits)
{
    struct lmr_buf expect;
    uint64_t lines;
    lmr_buf_init(&expect, 1u << 30);
    oracle(data, n, &expect, &lines);
    put_object("obj.txt", data, n);
    for (size_t s = 0; s < nsplits; s++) {
        struct collected c;
        read_split("obj.txt", n, splits[s], LMR_CODEC_NONE, 8u << 20, &c);
        assert_int_equal(c.lines, lines);
        assert_int_equal(c.text.len, expect.len);
        assert_memory_equal(c.text.data ? c.text.data : "", expect.data ? expect.data : "", expect.len);
        lmr_buf_clean_up(&c.text);
    }
    lmr_buf_clean_up(&expect);
}

static void test_every_boundary(void **state)
{
    const char *data = "alpha beta\ngamma\n\n\ndelta epsilon zeta\r\nx\nlast line without newline";
    uint64_t splits[40];
    for (int i = 0; i < 40; i++)
        splits[i] = (uint64_t)i + 1;
    check_all_splits(data, strlen(data), splits, 40);
}

static void test_trailing_newline_and_crlf(void **state)
{
    const char *data = "a\r\nb\r\n\r\nc\r\n";
    uint64_t splits[] = {1, 2, 3, 4, 5, 100};
    check_all_splits(data, strlen(data), splits, 6);
}

static void test_binary_bytes(void **state)
{
    char data[3000];
    srand(7);
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (char)(rand() % 5 == 0 ? '\n' : rand() % 256);
    uint64_t splits[] = {1, 7, 64, 999, 4096};
    check_all_splits(data, sizeof data, splits, 5);
}

static void test_long_line_and_small_splits(void **state)
{
    size_t n = 3u << 20; /* one 3 MiB line between short ones, read with 64 KiB splits */
    char *data = malloc(n);
    memset(data, 'q', n);
    memcpy(data, "head\n", 5);
    memcpy(data + n - 6, "\ntail\n", 6);
    uint64_t splits[] = {65536, 1u << 20};
    check_all_splits(data, n, splits, 2);
    free(data);
}

static void test_line_too_long_is_an_error(void **state)
{
    size_t n = 3u << 20;
    char *data = malloc(n);
    memset(data, 'z', n);
    put_object("long.txt", data, n);
    struct lmr_shard sh = {.object = {.root = store->root_uri, .key = "long.txt"}, .length = n, .object_size = n};
    struct lmr_shard_stats st = {0};
    struct lmr_err err = {0};
    struct collected c;
    lmr_buf_init(&c.text, 1u << 30);
    assert_int_equal(lmr_shard_read_lines(store, &sh, 1u << 20, collect, &c, &st, &err), LMR_ERR_TOO_LARGE);
    assert_non_null(strstr(err.msg, "long.txt"));
    lmr_buf_clean_up(&c.text);
    free(data);
}

static void test_empty_object(void **state)
{
    put_object("empty.txt", "", 0);
    struct collected c;
    read_split("empty.txt", 0, 10, LMR_CODEC_NONE, 1u << 20, &c);
    assert_int_equal(c.lines, 0);
    lmr_buf_clean_up(&c.text);
}

static void test_compressed(void **state)
{
    const char *text = "one two\nthree\r\nfour five six\nseven";
    size_t n = strlen(text);
    struct lmr_buf expect;
    uint64_t lines;
    lmr_buf_init(&expect, 1u << 20);
    oracle(text, n, &expect, &lines);

    /* zstd */
    size_t zcap = ZSTD_compressBound(n);
    char *z = malloc(zcap);
    size_t zn = ZSTD_compress(z, zcap, text, n, 3);
    put_object("t.zst", z, zn);
    struct collected c;
    read_split("t.zst", zn, 4, LMR_CODEC_ZSTD, 1u << 20, &c);
    assert_int_equal(c.lines, lines);
    assert_memory_equal(c.text.data, expect.data, expect.len);
    lmr_buf_clean_up(&c.text);

    /* gzip, two concatenated members (as `cat a.gz b.gz` makes) */
    char gz[4096];
    size_t gn = 0;
    for (int member = 0; member < 2; member++) {
        z_stream zs = {0};
        deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
        zs.next_in = (Bytef *)text;
        zs.avail_in = (uInt)n;
        zs.next_out = (Bytef *)gz + gn;
        zs.avail_out = (uInt)(sizeof gz - gn);
        deflate(&zs, Z_FINISH);
        gn = sizeof gz - zs.avail_out;
        deflateEnd(&zs);
    }
    put_object("t.gz", gz, gn);
    read_split("t.gz", gn, 4, LMR_CODEC_GZIP, 1u << 20, &c);
    /* the first member's last line has no newline, so it joins the second member's first line */
    struct lmr_buf twice, expect2;
    lmr_buf_init(&twice, 1u << 20);
    lmr_buf_append(&twice, text, n);
    lmr_buf_append(&twice, text, n);
    lmr_buf_init(&expect2, 1u << 20);
    oracle(twice.data, twice.len, &expect2, &lines);
    assert_int_equal(c.lines, lines);
    assert_memory_equal(c.text.data, expect2.data, expect2.len);
    lmr_buf_clean_up(&c.text);
    lmr_buf_clean_up(&twice);
    lmr_buf_clean_up(&expect2);
    lmr_buf_clean_up(&expect);
    free(z);
}

static void test_corrupt_compressed(void **state)
{
    put_object("bad.zst", "definitely not zstd", 19);
    struct lmr_shard sh = {.object = {.root = store->root_uri, .key = "bad.zst"},
                           .length = 19,
                           .object_size = 19,
                           .codec = LMR_CODEC_ZSTD};
    struct lmr_shard_stats st = {0};
    struct lmr_err err = {0};
    struct collected c;
    lmr_buf_init(&c.text, 1u << 20);
    assert_int_equal(lmr_shard_read_lines(store, &sh, 1u << 20, collect, &c, &st, &err), LMR_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "bad.zst"));
    lmr_buf_clean_up(&c.text);
}

/* The error names the byte where the long line starts, not where reading stopped. */
static void test_line_too_long_names_its_start(void **state)
{
    size_t head = 2000, n = head + (3u << 20);
    char *data = malloc(n);
    for (size_t i = 0; i < head; i += 2)
        memcpy(data + i, "a\n", 2);
    memset(data + head, 'z', n - head);
    put_object("long2.txt", data, n);
    struct lmr_shard sh = {.object = {.root = store->root_uri, .key = "long2.txt"}, .length = n, .object_size = n};
    struct lmr_shard_stats st = {0};
    struct lmr_err err = {0};
    struct collected c;
    lmr_buf_init(&c.text, 1u << 30);
    assert_int_equal(lmr_shard_read_lines(store, &sh, 1u << 20, collect, &c, &st, &err), LMR_ERR_TOO_LARGE);
    assert_non_null(strstr(err.msg, "starts at byte 2000 of 'long2.txt'"));
    lmr_buf_clean_up(&c.text);

    /* A shard that starts inside that line holds no line of its own: nothing to read, no error
     * (the shard where the line starts reports it). */
    struct lmr_shard mid = {.object = {.root = store->root_uri, .key = "long2.txt"},
                            .offset = 1u << 20,
                            .length = 1u << 20,
                            .object_size = n};
    lmr_buf_init(&c.text, 1u << 30);
    c.lines = 0;
    assert_int_equal(lmr_shard_read_lines(store, &mid, 1u << 20, collect, &c, &st, &err), LMR_OK);
    assert_int_equal(c.lines, 0);
    lmr_buf_clean_up(&c.text);
    free(data);
}

static size_t gzip_of(const char *text, size_t n, unsigned char *out, size_t cap)
{
    z_stream zs = {0};
    deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
    zs.next_in = (Bytef *)text;
    zs.avail_in = (uInt)n;
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
    size_t len = cap - zs.avail_out;
    deflateEnd(&zs);
    return len;
}

static size_t zstd_of(const char *text, size_t n, unsigned char *out, size_t cap)
{
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(cc, ZSTD_c_checksumFlag, 1);
    size_t len = ZSTD_compress2(cc, out, cap, text, n);
    assert_false(ZSTD_isError(len));
    ZSTD_freeCCtx(cc);
    return len;
}

/* Read a whole compressed object; it must fail with LMR_ERR_FORMAT naming the key and a byte. */
static void expect_damaged(const char *key, const void *data, size_t n, enum lmr_codec codec, const char *what)
{
    put_object(key, data, n);
    struct lmr_shard sh = {
        .object = {.root = store->root_uri, .key = (char *)key}, .length = n, .object_size = n, .codec = codec};
    struct lmr_shard_stats st = {0};
    struct lmr_err err = {0};
    struct collected c;
    lmr_buf_init(&c.text, 1u << 26);
    c.lines = 0;
    enum lmr_result r = lmr_shard_read_lines(store, &sh, 1u << 20, collect, &c, &st, &err);
    if (r != LMR_ERR_FORMAT || !strstr(err.msg, key) || !strstr(err.msg, "byte") || !strstr(err.msg, what))
        fail_msg("%s: result %d, message '%s' (want LMR_ERR_FORMAT naming the key, a byte and '%s')", key, r, err.msg,
                 what);
    lmr_buf_clean_up(&c.text);
}

static void test_truncated_compressed(void **state)
{
    size_t n = 400000;
    char *text = malloc(n + 1); /* + the last snprintf's NUL */
    for (size_t i = 0; i < n; i += 8)
        snprintf(text + i, 9, "w%06zu\n", (i / 8) % 1000000);
    size_t cap = n + 1024;
    unsigned char *gz = malloc(cap), *zs = malloc(cap), *bad = malloc(cap);
    size_t gn = gzip_of(text, n, gz, cap), zn = zstd_of(text, n, zs, cap);

    expect_damaged("cut.gz", gz, gn / 2, LMR_CODEC_GZIP, "truncated");       /* cut in the deflate data */
    expect_damaged("notrailer.gz", gz, gn - 8, LMR_CODEC_GZIP, "truncated"); /* no CRC-32/ISIZE */
    expect_damaged("halftrailer.gz", gz, gn - 3, LMR_CODEC_GZIP, "truncated");
    memcpy(bad, gz, gn);
    bad[gn - 8] ^= 1; /* CRC-32 */
    expect_damaged("crc.gz", bad, gn, LMR_CODEC_GZIP, "incorrect data check");
    memcpy(bad, gz, gn);
    bad[gn - 1] ^= 1; /* ISIZE */
    expect_damaged("isize.gz", bad, gn, LMR_CODEC_GZIP, "incorrect length check");
    /* a whole member followed by a second one cut short */
    memcpy(bad, gz, gn);
    memcpy(bad + gn, gz, 100);
    expect_damaged("second.gz", bad, gn + 100, LMR_CODEC_GZIP, "truncated");

    expect_damaged("cut.zst", zs, zn / 2, LMR_CODEC_ZSTD, "truncated");
    expect_damaged("nochecksum.zst", zs, zn - 4, LMR_CODEC_ZSTD, "truncated");
    memcpy(bad, zs, zn);
    bad[zn - 1] ^= 0xff; /* the content checksum */
    expect_damaged("checksum.zst", bad, zn, LMR_CODEC_ZSTD, "checksum");

    /* the undamaged objects still read whole */
    struct collected c;
    put_object("whole.gz", gz, gn);
    read_split("whole.gz", gn, 0, LMR_CODEC_GZIP, 1u << 20, &c);
    assert_int_equal(c.lines, n / 8);
    assert_memory_equal(c.text.data, text, n);
    lmr_buf_clean_up(&c.text);
    put_object("whole.zst", zs, zn);
    read_split("whole.zst", zn, 0, LMR_CODEC_ZSTD, 1u << 20, &c);
    assert_int_equal(c.lines, n / 8);
    assert_memory_equal(c.text.data, text, n);
    lmr_buf_clean_up(&c.text);
    free(text);
    free(gz);
    free(zs);
    free(bad);
}

static int setup(void **state)
{
    if (!mkdtemp(tmpdir))
        return -1;
    return lmr_file_store_new(tmpdir, &store, NULL) == LMR_OK ? 0 : -1;
}

static int teardown(void **state)
{
    lmr_store_destroy(store);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    return system(cmd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_boundary),
        cmocka_unit_test(test_trailing_newline_and_crlf),
        cmocka_unit_test(test_binary_bytes),
        cmocka_unit_test(test_long_line_and_small_splits),
        cmocka_unit_test(test_line_too_long_is_an_error),
        cmocka_unit_test(test_empty_object),
        cmocka_unit_test(test_compressed),
        cmocka_unit_test(test_corrupt_compressed),
        cmocka_unit_test(test_line_too_long_names_its_start),
        cmocka_unit_test(test_truncated_compressed),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
