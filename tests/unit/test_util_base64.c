/* Base64 (util/base64.h): RFC 4648 vectors, round trips, the strict decoder, the buffer cap. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "util/base64.h"

static void test_base64_vectors(void **unused)
{
    /* RFC 4648 section 10 test vectors. */
    static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const enc[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (size_t i = 0; i < 7; i++) {
        struct lmr_buf b;
        lmr_buf_init(&b, 100);
        assert_int_equal(lmr_base64_append(&b, plain[i], strlen(plain[i])), LMR_OK);
        assert_string_equal(b.len ? b.data : "", enc[i]);
        uint8_t out[16];
        size_t n;
        assert_int_equal(lmr_base64_decode(enc[i], strlen(enc[i]), out, &n), LMR_OK);
        assert_int_equal(n, strlen(plain[i]));
        assert_memory_equal(out, plain[i], n);
        lmr_buf_clean_up(&b);
    }
    uint8_t out[16];
    size_t n;
    assert_int_equal(lmr_base64_decode("Zm9", 3, out, &n), LMR_ERR_FORMAT);
    assert_int_equal(lmr_base64_decode("Zm=v", 4, out, &n), LMR_ERR_FORMAT);
    assert_int_equal(lmr_base64_decode("Z!9v", 4, out, &n), LMR_ERR_FORMAT);
}

/* The 64 sextets 0..63 in order encode to the alphabet itself (RFC 4648 table 1). */
static void test_whole_alphabet(void **unused)
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    uint8_t bytes[48];
    for (size_t i = 0; i < 64; i += 4) { /* four sextets i..i+3 make three bytes */
        uint32_t v = (uint32_t)i << 18 | (uint32_t)(i + 1) << 12 | (uint32_t)(i + 2) << 6 | (uint32_t)(i + 3);
        bytes[i / 4 * 3] = (uint8_t)(v >> 16);
        bytes[i / 4 * 3 + 1] = (uint8_t)(v >> 8);
        bytes[i / 4 * 3 + 2] = (uint8_t)v;
    }
    struct lmr_buf b;
    lmr_buf_init(&b, 1000);
    assert_int_equal(lmr_base64_append(&b, bytes, sizeof bytes), LMR_OK);
    assert_string_equal(b.data, alphabet);
    uint8_t out[48];
    size_t n;
    assert_int_equal(lmr_base64_decode(alphabet, 64, out, &n), LMR_OK);
    assert_int_equal(n, sizeof bytes);
    assert_memory_equal(out, bytes, n);
    lmr_buf_clean_up(&b);
}

static bool is_alphabet(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

/* Random bytes of every length 0..300 (each decode into a buffer of exactly n/4*3 bytes, for ASan). */
static void test_roundtrip(void **unused)
{
    srand(7);
    uint8_t in[300];
    for (size_t len = 0; len <= sizeof in; len++) {
        for (size_t i = 0; i < len; i++)
            in[i] = (uint8_t)rand();
        struct lmr_buf b;
        lmr_buf_init(&b, 1000);
        assert_int_equal(lmr_buf_append_str(&b, "prefix:"), LMR_OK);
        assert_int_equal(lmr_base64_append(&b, in, len), LMR_OK);
        assert_int_equal(b.len, 7 + lmr_base64_len(len));
        assert_int_equal(strlen(b.data), b.len);
        assert_memory_equal(b.data, "prefix:", 7);
        const char *enc = b.data + 7;
        size_t elen = b.len - 7, pad = (3 - len % 3) % 3;
        for (size_t i = 0; i < elen; i++)
            assert_true(i >= elen - pad ? enc[i] == '=' : is_alphabet(enc[i]));
        uint8_t *out = malloc(elen / 4 * 3 + 1); /* +1: malloc(0) may return NULL */
        assert_non_null(out);
        size_t n = 12345;
        assert_int_equal(lmr_base64_decode(enc, elen, out, &n), LMR_OK);
        assert_int_equal(n, len);
        assert_memory_equal(out, in, len);
        free(out);
        lmr_buf_clean_up(&b);
    }
}

/* OpenSSL alone would accept these (padding read as zeros, whitespace trimmed); we must not. */
static void test_strict(void **unused)
{
    static const char *const bad[] = {
        "====",       "Z===",     "Zg=a",         "=Zg=",          "Zm9vYg==Zm9v", "Zm9vY===",
        " Zm9v   ",   "Zm9v    ", "Zm9v\n\n\n\n", "\nZm9vZm9vZm9", "Zm9v Zm9",     "Zm9\tZm9v",
        "Zm9v\r\n==", "Zm-v",     "Zm_v",         "Zm.v",          "Zm9v\x80Zm9",  "Zm\0v",
    };
    uint8_t out[16];
    size_t n;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t len = i == sizeof bad / sizeof bad[0] - 1 ? 4 : strlen(bad[i]);
        assert_int_equal(len % 4, 0);
        if (lmr_base64_decode(bad[i], len, out, &n) != LMR_ERR_FORMAT)
            fail_msg("accepted bad input %zu", i);
    }
    /* Padding after one and after two characters of a group is fine. */
    assert_int_equal(lmr_base64_decode("+/8=", 4, out, &n), LMR_OK);
    assert_int_equal(n, 2);
    assert_memory_equal(out, "\xfb\xff", 2);
    assert_int_equal(lmr_base64_decode("+/+/", 4, out, &n), LMR_OK);
    assert_int_equal(n, 3);
    assert_memory_equal(out, "\xfb\xff\xbf", 3);
}

/* A bit at a time, as RFC 4648 describes it: the reference the table and vector codecs are held to. */
static size_t ref_encode(char *out, const uint8_t *in, size_t n)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        acc = acc << 8 | in[i];
        bits += 8;
        while (bits >= 6) {
            out[o++] = a[(acc >> (bits - 6)) & 63];
            bits -= 6;
        }
    }
    if (bits)
        out[o++] = a[(acc << (6 - bits)) & 63];
    while (o % 4)
        out[o++] = '=';
    return o;
}

/* Every length 0..1000 and a long buffer (the vector codec's runs of 24 bytes / 32 characters and their tails) encode
   exactly as the reference and decode back; one character outside the alphabet anywhere in a long text is refused. */
static void test_against_reference(void **unused)
{
    size_t big = 100003;
    uint8_t *in = malloc(big), *out = malloc(big);
    char *enc = malloc(big / 3 * 4 + 8), *ref = malloc(big / 3 * 4 + 8);
    assert_true(in && out && enc && ref);
    srand(15);
    for (size_t i = 0; i < big; i++)
        in[i] = (uint8_t)rand();
    for (size_t len = 0; len <= big; len = len < 1000 ? len + 1 : big) {
        size_t elen = lmr_base64_encode_to(enc, in, len);
        assert_int_equal(elen, ref_encode(ref, in, len));
        assert_memory_equal(enc, ref, elen);
        assert_int_equal(enc[elen], '\0');
        size_t n = 0;
        assert_int_equal(lmr_base64_decode(enc, elen, out, &n), LMR_OK);
        assert_int_equal(n, len);
        assert_memory_equal(out, in, len);
        if (len == big)
            break;
    }
    size_t elen = lmr_base64_encode_to(enc, in, 300); /* 400 characters: runs of 32 and a tail */
    for (size_t pos = 0; pos < elen; pos = pos + 7 < elen || pos == elen - 1 ? pos + 7 : elen - 1) {
        for (int c = 0; c < 256; c++) {
            if (is_alphabet((char)c) || (c == '=' && pos >= elen - 2)) /* '=' there is padding */
                continue;
            char saved = enc[pos];
            enc[pos] = (char)c;
            size_t n;
            if (lmr_base64_decode(enc, elen, out, &n) != LMR_ERR_FORMAT)
                fail_msg("accepted byte 0x%02x at %zu", c, pos);
            enc[pos] = saved;
        }
    }
    free(in);
    free(out);
    free(enc);
    free(ref);
}

/* Appending past max_bytes fails and leaves the buffer as it was. */
static void test_cap(void **unused)
{
    struct lmr_buf b;
    lmr_buf_init(&b, 10);
    assert_int_equal(lmr_buf_append_str(&b, "ab"), LMR_OK);
    assert_int_equal(lmr_base64_append(&b, "foobar", 6), LMR_OK); /* 2 + 8 = 10 */
    assert_string_equal(b.data, "abZm9vYmFy");
    assert_int_equal(lmr_base64_append(&b, "f", 1), LMR_ERR_TOO_LARGE);
    assert_int_equal(b.len, 10);
    assert_string_equal(b.data, "abZm9vYmFy");
    lmr_buf_clean_up(&b);
}

int main(int argc, char **argv)
{
    (void)argc;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base64_vectors),
        cmocka_unit_test(test_whole_alphabet),
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_strict),
        cmocka_unit_test(test_cap),
        cmocka_unit_test(test_against_reference),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    /* Once more with the table codec alone (LMR_BASE64_SCALAR is read once per process), where AVX2 ran above. */
    if (rc == 0 && !getenv("LMR_BASE64_SCALAR")) {
        setenv("LMR_BASE64_SCALAR", "1", 1);
        execv("/proc/self/exe", argv);
        fprintf(stderr, "test_util_base64: cannot run itself again with LMR_BASE64_SCALAR=1\n");
        return 1;
    }
    return rc;
}
