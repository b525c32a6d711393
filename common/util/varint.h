/*
 * Unsigned LEB128 varints (protobuf's, 7 bits a byte, low group first): the KPL aggregated
 * records (stream/kpl.c) and the packed window state (stream/state.c) write key lengths this way,
 * and read them back with lmr_varint_get, each with its own cap on the length.
 */
#ifndef LMR_UTIL_VARINT_H
#define LMR_UTIL_VARINT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LMR_VARINT_MAX_BYTES 10 /* a 64-bit value */

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

/**
 * Read a varint of at most max_bytes bytes (1..LMR_VARINT_MAX_BYTES) from [*pp, end).
 * @return false if it is truncated, longer than max_bytes or past 64 bits; else true, *v set and
 * *pp moved past it.
 */
static inline bool lmr_varint_get(const uint8_t **pp, const uint8_t *end, unsigned max_bytes, uint64_t *v)
{
    const uint8_t *p = *pp;
    if (p < end && *p < 0x80) { /* the usual one-byte case */
        *v = *p;
        *pp = p + 1;
        return true;
    }
    uint64_t r = 0;
    for (unsigned i = 0, shift = 0; i < max_bytes; i++, shift += 7) {
        if (p >= end)
            return false;
        uint8_t b = *p++;
        if (shift == 63 && b > 1)
            return false;
        r |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = r;
            *pp = p;
            return true;
        }
    }
    return false;
}
#endif
