/*
 * A cmocka group fixture shared by the unit tests that need a file store in a fresh temporary
 * directory (test_shard_reader.c, test_map_cut.c): the test defines
 * STORE_FIXTURE_TEMPLATE ("/tmp/lmr-NAME-XXXXXX") before including this after <cmocka.h>, and
 * gets `tmpdir`, `store`, and store_fixture_setup/teardown for cmocka_run_group_tests.
 */
#ifndef LMR_TEST_STORE_FIXTURE_H
#define LMR_TEST_STORE_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>

#include "store/store.h"

static char tmpdir[] = STORE_FIXTURE_TEMPLATE;
static struct lmr_store *store;

static int store_fixture_setup(void **state)
{
    (void)state;
    return mkdtemp(tmpdir) && lmr_file_store_new(tmpdir, &store, NULL) == LMR_OK ? 0 : -1;
}

static int store_fixture_teardown(void **state)
{
    (void)state;
    lmr_store_destroy(store);
    char cmd[sizeof tmpdir + 16];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    return system(cmd);
}

#endif
