/*
 * A small JSON scanner for the stream hot path: walks a document in place (no tree, no
 * allocation) so that the handler can read a 10,000-record Kinesis event at memory speed.
 * Strict: a document it accepts, jansson (json_loadb with default flags) accepts too and decodes
 * to the same values. Strings must be valid UTF-8 (no overlong forms, no encoded surrogates),
 * \u escapes may not name a lone surrogate or U+0000, integers must fit in 64 bits and reals
 * may not overflow a double (as in jansson); numbers longer than 63 characters are refused.
 * Nesting is limited to 64 levels (jansson allows 2048). fuzz/json_scan.c checks the promise.
 */
#ifndef LMR_STREAM_JSON_SCAN_H
#define LMR_STREAM_JSON_SCAN_H

#include <stdbool.h>
#include <stddef.h>

struct lmr_json_scan {
    const char *p, *end;
    bool failed;
};

static inline void lmr_json_scan_init(struct lmr_json_scan *s, const char *text, size_t len)
{
    s->p = text;
    s->end = text + len;
    s->failed = false;
}

/** Next non-blank character without taking it ('\0' at the end). Inline: this runs per token. */
static inline char lmr_json_scan_peek(struct lmr_json_scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\t' || *s->p == '\r'))
        s->p++;
    return s->p < s->end ? *s->p : '\0';
}

/** True when only blanks are left (a NUL byte is not the end: jansson refuses it). */
static inline bool lmr_json_scan_at_end(struct lmr_json_scan *s)
{
    (void)lmr_json_scan_peek(s);
    return s->p == s->end;
}

/** Take character c (after blanks). @return false (and failed) if it is not next. */
static inline bool lmr_json_scan_expect(struct lmr_json_scan *s, char c)
{
    if (lmr_json_scan_peek(s) == c && s->p < s->end) {
        s->p++;
        return true;
    }
    s->failed = true;
    return false;
}
/**
 * Take a string. *raw and *raw_len: its content as written (escapes not decoded); *escaped tells
 * whether it holds any backslash.
 */
bool lmr_json_scan_string(struct lmr_json_scan *s, const char **raw, size_t *raw_len, bool *escaped);
/** Take a number (v may be NULL). Out of range as jansson sees it (1e999, 2^63) is an error. */
bool lmr_json_scan_number(struct lmr_json_scan *s, double *v);
/** Take any value. */
bool lmr_json_scan_skip(struct lmr_json_scan *s);
/**
 * Iterate an object: call with *first = true after '{' was taken (lmr_json_scan_expect);
 * returns true with the next member's key (raw) with the scanner at its value, false at '}'
 * (check s->failed for errors).
 */
bool lmr_json_scan_member(struct lmr_json_scan *s, bool *first, const char **key, size_t *key_len);
/** Same for arrays: true when an element follows. */
bool lmr_json_scan_element(struct lmr_json_scan *s, bool *first);
/** Decode a raw string's escapes into out (room for raw_len bytes). @return the length, or (size_t)-1 if invalid. */
size_t lmr_json_unescape(const char *raw, size_t raw_len, char *out);

/** Compare a raw key with a literal. */
#define LMR_JSON_KEY_IS(key, len, lit) ((len) == sizeof(lit) - 1 && !memcmp((key), (lit), sizeof(lit) - 1))

#endif
