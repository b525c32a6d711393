/*
 * Unsigned LEB128 varints (protobuf's, 7 bits a byte, low group first): the KPL aggregated
 * records (stream/kpl.c) and the packed window state (stream/state.c) write key lengths this way.
 */
#ifndef LMR_UTIL_VARINT_H
#define LMR_UTIL_VARINT_H
#include <stddef.h>
#include <stdint.h>

/** Bytes of v as a varint (1..10). */
static inline size_t lmr_varint_bytes(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/** Write v at o (room for lmr_varint_bytes(v) bytes). @return the byte after it. */
static inline uint8_t *lmr_varint_put(uint8_t *o, uint64_t v)
{
    while (v >= 0x80) {
        *o++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *o++ = (uint8_t)v;
    return o;
}
#endif
