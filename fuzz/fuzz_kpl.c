/*
 * The KPL deaggregator (common/stream/kpl.c), the stream function's hot path. The input is a
 * protobuf AggregatedRecord: read as it is (lmr_kpl_open_message) and wrapped in the magic and its
 * MD5 (lmr_kpl_open must agree), and the raw input as a Kinesis record's data (almost always plain).
 * Every user record lies inside the input, indexes are inside their tables, the count is the one
 * open reported, and the user records written again by lmr_kpl_build read back the same.
 */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stream/kpl.h"

static void check(const uint8_t *base, size_t size, struct lmr_kpl_reader *rd)
{
    struct lmr_kpl_reader again = *rd;
    struct lmr_kpl_user_record u;
    size_t n = 0;
    struct lmr_buf b;
    lmr_buf_init(&b, 64u << 20);
    size_t start;
    if (lmr_kpl_begin(&b, "k", &start))
        abort();
    while (lmr_kpl_next(rd, &u)) {
        if (u.data < base || u.data + u.len > base + size || u.partition_key_index >= rd->n_partition_keys ||
            (u.has_explicit_hash_key_index && u.explicit_hash_key_index >= rd->n_explicit_hash_keys))
            abort();
        if (lmr_kpl_add(&b, u.data, u.len))
            abort();
        n++;
    }
    if (n != rd->n_records || lmr_kpl_finish(&b, start))
        abort();
    struct lmr_kpl_reader back;
    if (!lmr_kpl_open((const uint8_t *)b.data, b.len, &back) || back.n_records != n)
        abort();
    struct lmr_kpl_user_record v;
    while (lmr_kpl_next(&again, &u)) {
        if (!lmr_kpl_next(&back, &v) || u.len != v.len || (u.len && memcmp(u.data, v.data, u.len)))
            abort();
    }
    lmr_buf_clean_up(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct lmr_kpl_reader rd;
    bool as_message = lmr_kpl_open_message(data, size, &rd);
    if (as_message)
        check(data, size, &rd);
    uint8_t *wrapped = malloc(size + LMR_KPL_MAGIC_BYTES + LMR_KPL_DIGEST_BYTES);
    if (!wrapped)
        return 0;
    memcpy(wrapped, LMR_KPL_MAGIC, LMR_KPL_MAGIC_BYTES);
    if (size)
        memcpy(wrapped + LMR_KPL_MAGIC_BYTES, data, size);
    unsigned got = 0;
    EVP_Digest(data, size, wrapped + LMR_KPL_MAGIC_BYTES + size, &got, EVP_md5(), NULL);
    size_t wlen = size + LMR_KPL_MAGIC_BYTES + LMR_KPL_DIGEST_BYTES;
    /* An empty message is too short to be aggregated (16 bytes or fewer after the magic). */
    if (lmr_kpl_open(wrapped, wlen, &rd) != (as_message && size > 0))
        abort();
    if (size && as_message)
        check(wrapped, wlen, &rd);
    free(wrapped);
    if (lmr_kpl_open(data, size, &rd))
        check(data, size, &rd);
    return 0;
}
