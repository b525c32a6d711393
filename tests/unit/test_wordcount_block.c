/*
 * wordcount's map_block must emit exactly what its per-line map emits over the same lines: the
 * oracle is wc_map called on each line (terminator and one trailing '\r' removed), compared word
 * by word on random text rich in whitespace of every kind, high bytes and NULs, with words that
 * cross 64-byte groups and blocks that end at a page boundary. Its reduce writes the sum of a
 * key's counts in decimal: checked against snprintf on sums from 0 to 2^64 - 1.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "job/registry.h"
#include "util/buf.h"

struct recorder {
    struct lmr_emitter emitter; /* first */
    struct lmr_buf words;       /* each word as u32 length + bytes */
    uint64_t count;
};

static void record(struct lmr_emitter *self, struct lmr_slice key, struct lmr_slice value)
{
    struct recorder *r = (struct recorder *)self;
    uint64_t v;
    assert_int_equal(value.len, 8);
    memcpy(&v, value.ptr, 8);
    assert_int_equal(v, 1);
    assert_true(key.len > 0);
    uint32_t n = (uint32_t)key.len;
    lmr_buf_append(&r->words, &n, 4);
    lmr_buf_append(&r->words, key.ptr, key.len);
    r->count++;
}

static uint64_t rng = 0x243f6a8885a308d3ull;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void check(const uint8_t *text, size_t n)
{
    const struct lmr_job_ops *ops = &lmr_job_wordcount;
    struct recorder a = {.emitter = {record}}, b = {.emitter = {record}};
    struct lmr_job_counters counters = {0};
    lmr_buf_init(&a.words, 1u << 30);
    lmr_buf_init(&b.words, 1u << 30);
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && text[i] != '\n')
            continue;
        if (i == n && start == n)
            break;
        size_t len = i - start;
        if (len && text[start + len - 1] == '\r')
            len--;
        assert_int_equal(ops->map(NULL, (struct lmr_slice){text + start, len}, &a.emitter, &counters), 0);
        start = i + 1;
    }
    assert_int_equal(ops->map_block(NULL, (struct lmr_slice){text, n}, &b.emitter, &counters), 0);
    assert_int_equal(b.count, a.count);
    assert_int_equal(b.words.len, a.words.len);
    if (a.words.len)
        assert_memory_equal(b.words.data, a.words.data, a.words.len);
    lmr_buf_clean_up(&a.words);
    lmr_buf_clean_up(&b.words);
}

static void test_random_text(void **state)
{
    static const uint8_t alphabet[] = {' ', ' ',  ' ',  '\t', '\n', '\n', '\v', '\f', '\r', 0,   8,   14,
                                       31,  0x80, 0x89, 0x8d, 0xa0, 0xff, 'a',  'b',  'c',  'Z', '0', '-'};
    /* The text ends exactly at the end of a mapping: reading past it would crash. */
    size_t page = 4096, cap = 16 * page;
    uint8_t *map = mmap(NULL, cap + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(map != MAP_FAILED);
    assert_int_equal(mprotect(map + cap, page, PROT_NONE), 0);
    for (int round = 0; round < 3000; round++) {
        size_t n = (size_t)(rnd() % (round < 2000 ? 300 : cap));
        uint8_t *text = map + cap - n;
        unsigned mode = (unsigned)(rnd() % 3); /* 0: any byte, 1: mostly letters, 2: alphabet */
        for (size_t i = 0; i < n; i++) {
            uint64_t x = rnd();
            if (mode == 0)
                text[i] = (uint8_t)x;
            else if (mode == 1)
                text[i] = (x % 8) ? (uint8_t)('a' + (x >> 8) % 26) : alphabet[(x >> 16) % sizeof alphabet];
            else
                text[i] = alphabet[(x >> 8) % sizeof alphabet];
        }
        check(text, n);
    }
    munmap(map, cap + page);
}

static void test_edges(void **state)
{
    static const char *cases[] = {"", " ", "a", "a\n", "\r\n", "word", "  two words  ", "x\r", "\n\n\na b\r\nc",
                                  /* a word across the first 64-byte group, one ending exactly at it */
                                  "0123456789012345678901234567890123456789012345678901234567890123 tail",
                                  "012345678901234567890123456789012345678901234567890123456789012 x"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check((const uint8_t *)cases[i], strlen(cases[i]));
    uint8_t big[200];
    memset(big, 'q', sizeof big); /* one word of 200 bytes, ending at the block's end */
    check(big, sizeof big);
    check(big, 128);
}

/* The values of one key: n counts. */
struct count_values {
    struct lmr_values base; /* first */
    const uint64_t *v;
    size_t n, i;
};

static bool next_count(struct lmr_values *self, struct lmr_slice *value)
{
    struct count_values *c = (struct count_values *)self;
    if (c->i == c->n)
        return false;
    *value = (struct lmr_slice){(const uint8_t *)&c->v[c->i++], 8};
    return true;
}

struct text_out {
    struct lmr_emitter emitter; /* first */
    char key[16], value[32];
};

static void keep_text(struct lmr_emitter *self, struct lmr_slice key, struct lmr_slice value)
{
    struct text_out *o = (struct text_out *)self;
    assert_true(key.len < sizeof o->key && value.len < sizeof o->value);
    memcpy(o->key, key.ptr, key.len);
    o->key[key.len] = 0;
    memcpy(o->value, value.ptr, value.len);
    o->value[value.len] = 0;
}

static void test_reduce_decimal(void **state)
{
    (void)state;
    uint64_t sums[64 + 2000];
    size_t n = 0;
    sums[n++] = 0;
    sums[n++] = UINT64_MAX;
    for (int b = 0; b < 62; b++) /* 2^b - 1: every digit count */
        sums[n++] = ((uint64_t)1 << b) - 1;
    for (int i = 0; i < 2000; i++)
        sums[n++] = i < 1000 ? (uint64_t)i : rnd() >> (rnd() % 64);
    for (size_t i = 0; i < n; i++) {
        uint64_t parts[2] = {sums[i] / 3, sums[i] - sums[i] / 3}; /* two counts of the key */
        struct count_values vals = {.base = {next_count}, .v = parts, .n = 2};
        struct text_out out = {.emitter = {keep_text}};
        lmr_job_wordcount.reduce(NULL, lmr_slice_make("w", 1), &vals.base, &out.emitter);
        char want[32];
        snprintf(want, sizeof want, "%" PRIu64, sums[i]);
        assert_string_equal(out.key, "w");
        assert_string_equal(out.value, want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_edges),
        cmocka_unit_test(test_reduce_decimal),
        cmocka_unit_test(test_random_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
