#include "store/store_set.h"

#include <string.h>

static struct lmr_store *find(const struct lmr_store_set *set, const char *root_uri)
{
    for (size_t i = 0; i < set->n; i++)
        if (!strcmp(set->stores[i]->root_uri, root_uri))
            return set->stores[i];
    return NULL;
}

enum lmr_result lmr_store_set_get(struct lmr_store_set *set, const char *root_uri, struct lmr_store **out,
                                  struct lmr_err *err)
{
    if ((*out = find(set, root_uri)))
        return LMR_OK;
    struct lmr_store *s;
    enum lmr_result r = lmr_store_open_root(root_uri, &s, err);
    if (!r)
        r = lmr_store_set_adopt(set, &s, err);
    if (!r)
        *out = s;
    return r;
}

enum lmr_result lmr_store_set_adopt(struct lmr_store_set *set, struct lmr_store **s, struct lmr_err *err)
{
    struct lmr_store *shared = find(set, (*s)->root_uri);
    if (shared) {
        lmr_store_destroy(*s);
        *s = shared;
        return LMR_OK;
    }
    if (set->n == LMR_STORE_SET_MAX) {
        enum lmr_result r = lmr_fail(err, LMR_ERR_TOO_LARGE,
                                     "a job may use at most %d distinct store roots (buckets or directories); %s is "
                                     "one too many",
                                     LMR_STORE_SET_MAX, (*s)->root_uri);
        lmr_store_destroy(*s);
        *s = NULL;
        return r;
    }
    set->stores[set->n++] = *s;
    return LMR_OK;
}

json_t *lmr_store_set_stats_json(const struct lmr_store_set *set)
{
    uint64_t get = 0, put = 0, list = 0, head = 0, del = 0, br = 0, bw = 0, retries = 0;
    for (size_t i = 0; i < set->n; i++) {
        const struct lmr_store_stats *st = &set->stores[i]->stats;
        get += atomic_load(&st->get_requests);
        put += atomic_load(&st->put_requests);
        list += atomic_load(&st->list_requests);
        head += atomic_load(&st->head_requests);
        del += atomic_load(&st->delete_requests);
        br += atomic_load(&st->bytes_read);
        bw += atomic_load(&st->bytes_written);
        retries += atomic_load(&st->retries);
    }
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "get", (json_int_t)get, "put", (json_int_t)put, "list",
                     (json_int_t)list, "head", (json_int_t)head, "delete", (json_int_t)del, "bytes_read",
                     (json_int_t)br, "bytes_written", (json_int_t)bw, "retries", (json_int_t)retries);
}

void lmr_store_set_clean_up(struct lmr_store_set *set)
{
    for (size_t i = 0; i < set->n; i++)
        lmr_store_destroy(set->stores[i]);
    set->n = 0;
}
