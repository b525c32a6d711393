/*
 * Job arguments are bytes, carried exactly: a value that is not valid UTF-8 (a binary
 * delimiter, a --where comparing against 0xFF) cannot be a JSON string, so in task events, the
 * manifest and the report it travels as {"base64": "..."} (docs/FORMATS.md); in memory values
 * are the raw bytes. Names are identifiers and must be UTF-8.
 */
#include "job/args.h"

#include <stdlib.h>
#include <string.h>

#include "util/base64.h"
#include "util/misc.h"

#define ARG_MAX_BYTES (64u * 1024)

struct lmr_job_args {
    json_t *obj; /* {name: string of raw bytes (not checked for UTF-8)} */
};

struct lmr_job_args *lmr_job_args_new(void)
{
    struct lmr_job_args *a = calloc(1, sizeof *a);
    if (a && !(a->obj = json_object())) {
        free(a);
        a = NULL;
    }
    return a;
}

void lmr_job_args_destroy(struct lmr_job_args *args)
{
    if (args) {
        json_decref(args->obj);
        free(args);
    }
}

enum lmr_result lmr_job_args_set(struct lmr_job_args *args, const char *name, const char *value)
{
    if (!name || !*name || !lmr_utf8_valid(name, strlen(name)))
        return LMR_ERR_INVALID;
    size_t n = strlen(value);
    if (n > ARG_MAX_BYTES)
        return LMR_ERR_TOO_LARGE;
    json_t *v = json_stringn_nocheck(value, n);
    if (!v || json_object_set_new(args->obj, name, v))
        return LMR_ERR_NOMEM;
    return LMR_OK;
}

const char *lmr_job_arg(const struct lmr_job_args *args, const char *name)
{
    if (!args)
        return NULL;
    return json_string_value(json_object_get(args->obj, name));
}

json_t *lmr_job_args_to_json(const struct lmr_job_args *args)
{
    json_t *out = json_object();
    const char *k;
    json_t *v;
    json_object_foreach(args->obj, k, v)
    {
        const char *s = json_string_value(v);
        size_t n = json_string_length(v);
        json_t *enc = NULL;
        if (lmr_utf8_valid(s, n)) {
            enc = json_stringn(s, n);
        } else {
            struct lmr_buf b;
            lmr_buf_init(&b, lmr_base64_len(n) + 1);
            if (!lmr_base64_append(&b, s, n))
                enc = json_pack("{s:s}", "base64", b.data ? b.data : "");
            lmr_buf_clean_up(&b);
        }
        if (!out || !enc || json_object_set_new(out, k, enc)) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}

/* A value as carried: a JSON string, or {"base64": "..."} for bytes that are not UTF-8. */
static enum lmr_result decode_value(const char *name, const json_t *v, struct lmr_job_args *a, struct lmr_err *err)
{
    if (json_is_string(v))
        return lmr_job_args_set(a, name, json_string_value(v)) ? LMR_ERR_NOMEM : LMR_OK;
    const json_t *b64 = json_is_object(v) && json_object_size(v) == 1 ? json_object_get(v, "base64") : NULL;
    if (!json_is_string(b64))
        return lmr_fail(err, LMR_ERR_FORMAT, "job argument '%s' must be a string or {\"base64\": \"...\"}", name);
    size_t n = json_string_length(b64), len = 0;
    if (n > lmr_base64_len(ARG_MAX_BYTES))
        return lmr_fail(err, LMR_ERR_FORMAT, "job argument '%s' is longer than %u bytes", name, ARG_MAX_BYTES);
    uint8_t *bytes = malloc(n / 4 * 3 + 1);
    if (!bytes)
        return LMR_ERR_NOMEM;
    enum lmr_result r = lmr_base64_decode(json_string_value(b64), n, bytes, &len);
    if (r)
        r = lmr_fail(err, LMR_ERR_FORMAT, "job argument '%s' is not valid base64", name);
    else if (memchr(bytes, '\0', len))
        r = lmr_fail(err, LMR_ERR_FORMAT, "job argument '%s' holds a NUL byte, which no argument can", name);
    bytes[len] = '\0';
    if (!r && lmr_job_args_set(a, name, (const char *)bytes))
        r = LMR_ERR_NOMEM;
    free(bytes);
    return r;
}

enum lmr_result lmr_job_args_from_json(const json_t *obj, struct lmr_job_args **out, struct lmr_err *err)
{
    if (obj && !json_is_object(obj))
        return lmr_fail(err, LMR_ERR_FORMAT, "job arguments must be a JSON object of strings");
    struct lmr_job_args *a = lmr_job_args_new();
    if (!a)
        return LMR_ERR_NOMEM;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v)
    {
        enum lmr_result r = decode_value(k, v, a, err);
        if (r) {
            lmr_job_args_destroy(a);
            return r;
        }
    }
    *out = a;
    return LMR_OK;
}
