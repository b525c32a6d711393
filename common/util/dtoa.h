/*
 * Shortest round-trip digits of a double, from Google's double-conversion library (Debian's
 * libdouble-conversion, C++; common/util/dtoa.cc is the C wrapper). The digits are the shortest
 * decimal that reads back as exactly v, the closest to v among those (Grisu3 with a bignum
 * fallback), so no strtod round trips are needed.
 */
#ifndef LMR_UTIL_DTOA_H
#define LMR_UTIL_DTOA_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * The shortest digits of |v| (v finite and non-zero) into digits (at least 18 bytes; no sign,
 * no point, NUL-terminated), and the decimal point's position: |v| = 0.DIGITS x 10^point.
 * @return the number of digits (1..17), or 0 when v is zero, infinite or NaN.
 */
size_t lmr_dtoa_shortest(double v, char *digits, int *point);

#ifdef __cplusplus
}
#endif

#endif
