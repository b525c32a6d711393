/* Small helpers used across the project: clocks, sizes, ids, file-system helpers. */
#ifndef LMR_UTIL_MISC_H
#define LMR_UTIL_MISC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/result.h"

/** Monotonic clock in nanoseconds / milliseconds (for durations). */
uint64_t lmr_mono_ns(void);
double lmr_mono_ms(void);
/** Wall clock in milliseconds since the epoch. */
uint64_t lmr_wall_ms(void);
/** Sleep for ms milliseconds (restarts on EINTR). */
void lmr_sleep_ms(uint64_t ms);

/** The value of one hexadecimal digit (0-9, a-f, A-F), or -1 if c is not one. */
static inline int lmr_hex_digit_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The largest size lmr_parse_size accepts: 2^53 bytes (8 PiB), beyond any object or setting here. */
#define LMR_SIZE_MAX_BYTES (1ull << 53)

/**
 * Parse a byte size: a whole number of bytes with an optional binary unit: "65536", "64K",
 * "64KiB", "64KB", "64M", "1G", "2T" (K = 1024). Fractions ("1.5G"), exponents ("1e3"), signs
 * and spaces are refused rather than rounded.
 * @return LMR_ERR_INVALID if malformed, zero or above LMR_SIZE_MAX_BYTES.
 */
enum lmr_result lmr_parse_size(const char *s, uint64_t *out);
/** @return true if s[0..n) is well-formed UTF-8 (no overlong forms, surrogates or code points past U+10FFFF). */
bool lmr_utf8_valid(const char *s, size_t n);
/** Copy s into out with bytes outside printable ASCII (and '\\') as \xHH, truncated to cap. @return out. */
const char *lmr_escape_bytes(const char *s, char *out, size_t cap);
/** Parse a non-negative decimal integer within [min, max]. */
enum lmr_result lmr_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);
/** Format bytes as "12.3 MiB" into out. */
const char *lmr_format_bytes(double bytes, char *out, size_t cap);

/** Random identifier of 2*nbytes hex characters (nbytes <= 32) into out (size >= 2*nbytes+1). */
void lmr_random_hex(char *out, size_t nbytes);
/** Uniform random in [0, n). Thread-safe, not cryptographic. */
uint64_t lmr_random_below(uint64_t n);

/** mkdir -p. @return LMR_OK if the directory exists afterwards. */
enum lmr_result lmr_mkdirs(const char *path, struct lmr_err *err);
/** Absolute, normalised form of path (need not exist). Caller frees. */
char *lmr_abspath(const char *path);
/** rm -rf path (files and directories below it). @return LMR_OK if nothing is left. */
enum lmr_result lmr_remove_tree(const char *path, struct lmr_err *err);
/** Read a whole local file, at most max_bytes. Caller frees *data. */
enum lmr_result lmr_read_file(const char *path, size_t max_bytes, char **data, size_t *len, struct lmr_err *err);
/**
 * Directory containing the running executable (for the driver finding the bootstrap binary),
 * from /proc/self/exe. Caller frees; NULL without /proc. Not for function code: in the function
 * package the binary runs under an explicitly started loader (/proc/self/exe is the loader) and
 * there may be no /proc; a function finds its files through LAMBDA_TASK_ROOT.
 */
char *lmr_self_dir(void);

/** Exponential backoff with full jitter: random in [0, min(cap_ms, base_ms * 2^attempt)). */
uint64_t lmr_backoff_ms(unsigned attempt, uint64_t base_ms, uint64_t cap_ms);

/** "first argv[0] argv[1] …" with each word single-quoted for a POSIX shell when needed (malloc'd; NULL on OOM). */
char *lmr_shell_join(const char *first, int argc, char **argv);

#endif
