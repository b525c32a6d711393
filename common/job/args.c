#include "job/args.h"

#include <stdlib.h>
#include <string.h>

struct lmr_job_args {
    json_t *obj; /* {name: string} */
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
    json_t *v = json_string(value);
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
    return json_deep_copy(args->obj);
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
        if (!json_is_string(v)) {
            lmr_job_args_destroy(a);
            return lmr_fail(err, LMR_ERR_FORMAT, "job argument '%s' must be a string", k);
        }
        if (lmr_job_args_set(a, k, json_string_value(v))) {
            lmr_job_args_destroy(a);
            return LMR_ERR_NOMEM;
        }
    }
    *out = a;
    return LMR_OK;
}
