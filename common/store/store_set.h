/* The stores one task or driver uses, opened once per root and shared; request counters summed. */
#ifndef LMR_STORE_STORE_SET_H
#define LMR_STORE_STORE_SET_H

#include <jansson.h>

#include "store/store.h"

#define LMR_STORE_SET_MAX 16

struct lmr_store_set {
    struct lmr_store *stores[LMR_STORE_SET_MAX];
    size_t n;
};

/** The store for root_uri (a struct lmr_store.root_uri), opened on first use. */
enum lmr_result lmr_store_set_get(struct lmr_store_set *set, const char *root_uri, struct lmr_store **out,
                                  struct lmr_err *err);
/**
 * Adopt an already open store (the set destroys it). If the set already holds a store for the
 * same root, *s is destroyed and replaced by that one, so a root is opened once.
 */
enum lmr_result lmr_store_set_adopt(struct lmr_store_set *set, struct lmr_store **s, struct lmr_err *err);
/** {"get":n,"put":n,"list":n,"head":n,"delete":n,"bytes_read":n,"bytes_written":n,"retries":n} over all stores. */
json_t *lmr_store_set_stats_json(const struct lmr_store_set *set);
void lmr_store_set_clean_up(struct lmr_store_set *set);

#endif
