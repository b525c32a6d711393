/*
 * Test helpers shared by test_shuffle_*.c: a cmocka fixture holding a file store in a fresh
 * temporary directory (removed again by the teardown), and a xorshift64 generator.
 * Include after <cmocka.h>.
 */
#ifndef LMR_TEST_STORE_FIXTURE_H
#define LMR_TEST_STORE_FIXTURE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "store/store.h"

struct store_fixture {
    char dir[64];
    struct lmr_store *store;
};

/* cmocka setup: *state gets a struct store_fixture whose store is rooted at a new /tmp/<prefix>-XXXXXX. */
static inline int store_fixture_setup(void **state, const char *prefix)
{
    struct store_fixture *c = calloc(1, sizeof *c);
    snprintf(c->dir, sizeof c->dir, "/tmp/%s-XXXXXX", prefix);
    assert_non_null(mkdtemp(c->dir));
    struct lmr_err err;
    assert_int_equal(lmr_store_open(c->dir, &c->store, NULL, &err), LMR_OK);
    *state = c;
    return 0;
}

/* cmocka teardown for store_fixture_setup: closes the store and removes its directory. */
static inline int store_fixture_teardown(void **state)
{
    struct store_fixture *c = *state;
    lmr_store_destroy(c->store);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", c->dir);
    assert_int_equal(system(cmd), 0);
    free(c);
    return 0;
}

/* xorshift64; set rng_state (non-zero) to choose the sequence. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static inline uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

#endif
