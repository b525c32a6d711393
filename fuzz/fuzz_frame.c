/*
 * The shuffle frame reader and the object index reader (common/shuffle/frame.c) over an
 * in-memory store. The first byte picks what the rest is:
 *   0: a frame as stored (zstd) - the reader must refuse garbage cleanly
 *   1: a frame's content (msgpack records), compressed here the way the writer does, so the
 *      record decoder itself is reached; the reader must give back exactly the records that
 *      the content holds when it accepts it
 *   2: a whole shuffle object: index and footer, then every frame the index names
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "mem_store.h"
#include "shuffle/frame.h"

static struct lmr_frame_reader *reader;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    if (lmr_frame_reader_new(&reader, NULL) != LMR_OK)
        abort();
    return 0;
}

/* Read every record of the frame [offset, offset + len); @return records read, or -1 on a refusal. */
static long read_frame(struct lmr_store *st, uint64_t offset, uint64_t len, size_t *bytes)
{
    struct lmr_err err = {0};
    long n = 0;
    *bytes = 0;
    if (lmr_frame_reader_open(reader, st, "obj", offset, len, &err) != LMR_OK)
        return -1;
    for (;;) {
        bool has;
        struct lmr_slice k, v;
        if (lmr_frame_reader_next(reader, &has, &k, &v, &err) != LMR_OK)
            return -1;
        if (!has)
            return n;
        /* Touch the slices: ASan checks they lie inside the reader's buffer. */
        volatile uint8_t sink = 0;
        if (k.len)
            sink ^= k.ptr[0] ^ k.ptr[k.len - 1];
        if (v.len)
            sink ^= v.ptr[0] ^ v.ptr[v.len - 1];
        (void)sink;
        *bytes += k.len + v.len;
        n++;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0] % 3;
    data++, size--;
    struct lmr_store st;
    struct mem_object obj;
    size_t bytes;
    if (mode == 0) {
        mem_store_init(&st, &obj, data, size);
        read_frame(&st, 0, size, &bytes);
    } else if (mode == 1) {
        size_t cap = ZSTD_compressBound(size);
        uint8_t *z = malloc(cap ? cap : 1);
        ZSTD_CCtx *c = ZSTD_createCCtx();
        if (!z || !c)
            abort();
        ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1);
        ZSTD_CCtx_setParameter(c, ZSTD_c_windowLog, LMR_SHUFFLE_WINDOW_LOG);
        size_t zlen = ZSTD_compress2(c, z, cap, data, size);
        ZSTD_freeCCtx(c);
        if (ZSTD_isError(zlen))
            abort();
        mem_store_init(&st, &obj, z, zlen);
        long n = read_frame(&st, 0, zlen, &bytes);
        /* Accepted content is records back to back: their bytes plus headers fill it exactly. */
        if (n >= 0 && bytes > size)
            abort();
        if (n == 0 && size != 0)
            abort();
        free(z);
    } else {
        mem_store_init(&st, &obj, data, size);
        struct lmr_partition_frame *frames = NULL;
        uint32_t parts = 0;
        struct lmr_err err = {0};
        if (lmr_shuffle_read_index(&st, "obj", &frames, &parts, &err) == LMR_OK) {
            for (uint32_t i = 0; i < parts && i < 64; i++) {
                if (frames[i].offset > size || frames[i].size_bytes > size - frames[i].offset)
                    abort(); /* the index reader promised entries inside the object */
                read_frame(&st, frames[i].offset, frames[i].size_bytes, &bytes);
            }
            free(frames);
        }
    }
    return 0;
}
