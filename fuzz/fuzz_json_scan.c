/*
 * The in-place JSON scanner (common/stream/json_scan.c) against jansson: whatever the scanner
 * accepts, jansson accepts and decodes to the same values (strings byte for byte, numbers as
 * doubles). A tree is built from the scanner's view with the same primitives the event parser
 * uses, and compared with json_loadb's.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stream/json_scan.h"

#define WALK_MAX_DEPTH 64

static json_t *walk(struct lmr_json_scan *s, int depth);

static json_t *scan_string_value(struct lmr_json_scan *s, char **text, size_t *text_len)
{
    const char *raw;
    size_t len;
    bool esc;
    if (!lmr_json_scan_string(s, &raw, &len, &esc))
        return NULL;
    char *out = malloc(len + 1);
    if (!out)
        abort();
    size_t n = esc ? lmr_json_unescape(raw, len, out) : len;
    if (!esc)
        memcpy(out, raw, len);
    if (n == (size_t)-1) {
        /* The scanner took the string, so unescaping it must work. */
        fprintf(stderr, "lmr_json_unescape refused a string lmr_json_scan_string accepted\n");
        abort();
    }
    out[n] = '\0';
    *text = out;
    *text_len = n;
    return json_true(); /* a marker: success */
}

static json_t *walk(struct lmr_json_scan *s, int depth)
{
    if (depth > WALK_MAX_DEPTH)
        return NULL;
    char c = lmr_json_scan_peek(s);
    bool first = true;
    const char *key;
    size_t klen;
    char *text;
    size_t tlen;
    double d;
    switch (c) {
    case '{': {
        s->p++;
        json_t *o = json_object();
        while (lmr_json_scan_member(s, &first, &key, &klen)) {
            /* Keys decode like strings: scan the key again from its quote. */
            struct lmr_json_scan ks;
            lmr_json_scan_init(&ks, key - 1, klen + 2);
            if (!scan_string_value(&ks, &text, &tlen)) {
                fprintf(stderr, "a key lmr_json_scan_member accepted does not scan as a string\n");
                abort();
            }
            json_t *v = walk(s, depth + 1);
            if (!v) {
                free(text);
                json_decref(o);
                return NULL;
            }
            json_object_setn_new_nocheck(o, text, tlen, v);
            free(text);
        }
        if (s->failed) {
            json_decref(o);
            return NULL;
        }
        return o;
    }
    case '[': {
        s->p++;
        json_t *a = json_array();
        while (lmr_json_scan_element(s, &first)) {
            json_t *v = walk(s, depth + 1);
            if (!v) {
                json_decref(a);
                return NULL;
            }
            json_array_append_new(a, v);
        }
        if (s->failed) {
            json_decref(a);
            return NULL;
        }
        return a;
    }
    case '"':
        if (!scan_string_value(s, &text, &tlen))
            return NULL;
        json_t *str = json_stringn_nocheck(text, tlen);
        free(text);
        return str;
    case 't':
    case 'f':
    case 'n':
        if (!lmr_json_scan_skip(s))
            return NULL;
        return c == 't' ? json_true() : c == 'f' ? json_false() : json_null();
    default:
        if (!lmr_json_scan_number(s, &d))
            return NULL;
        return json_real(d);
    }
}

static double number_of(const json_t *j)
{
    return json_is_integer(j) ? (double)json_integer_value(j) : json_real_value(j);
}

/* Same values: the scanner tree (numbers as reals) against jansson's. */
static bool same(const json_t *scan, const json_t *ref)
{
    if (json_is_number(scan) || json_is_number(ref))
        return json_is_number(scan) && json_is_number(ref) && number_of(scan) == number_of(ref);
    if (json_typeof(scan) != json_typeof(ref))
        return false;
    switch (json_typeof(scan)) {
    case JSON_OBJECT: {
        if (json_object_size(scan) != json_object_size(ref))
            return false;
        const char *k;
        size_t klen;
        json_t *v;
        json_object_keylen_foreach((json_t *)scan, k, klen, v)
        {
            json_t *rv = json_object_getn(ref, k, klen);
            if (!rv || !same(v, rv))
                return false;
        }
        return true;
    }
    case JSON_ARRAY:
        if (json_array_size(scan) != json_array_size(ref))
            return false;
        for (size_t i = 0; i < json_array_size(scan); i++)
            if (!same(json_array_get(scan, i), json_array_get(ref, i)))
                return false;
        return true;
    case JSON_STRING:
        return json_string_length(scan) == json_string_length(ref) &&
               !memcmp(json_string_value(scan), json_string_value(ref), json_string_length(ref));
    default:
        return true; /* true, false, null */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    struct lmr_json_scan s;
    lmr_json_scan_init(&s, text, size);
    bool skipped = lmr_json_scan_skip(&s) && lmr_json_scan_at_end(&s);
    lmr_json_scan_init(&s, text, size);
    json_t *tree = walk(&s, 0);
    bool walked = tree && !s.failed && lmr_json_scan_at_end(&s);
    if (skipped != walked) {
        fprintf(stderr, "lmr_json_scan_skip %s the document, the member/element walk %s it\n",
                skipped ? "accepts" : "refuses", walked ? "accepts" : "refuses");
        abort();
    }
    json_error_t jerr;
    json_t *ref = json_loadb(text, size, JSON_DECODE_ANY, &jerr);
    if (walked && !ref) {
        fprintf(stderr, "the scanner accepts a document jansson refuses: %s (line %d, column %d)\n", jerr.text,
                jerr.line, jerr.column);
        abort();
    }
    if (walked && !same(tree, ref)) {
        char *a = json_dumps(tree, JSON_ENCODE_ANY), *b = json_dumps(ref, JSON_ENCODE_ANY);
        fprintf(stderr, "the scanner decodes %s, jansson %s\n", a ? a : "?", b ? b : "?");
        abort();
    }
    json_decref(tree);
    json_decref(ref);
    return 0;
}
