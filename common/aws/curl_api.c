#include "aws/curl_api.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>

struct lmr_curl_api lmr_curl;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static bool loaded;
static char load_error[512];

static void load(void)
{
    void *h = dlopen(LMR_CURL_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        snprintf(load_error, sizeof load_error, "%s", e ? e : "not found");
        return;
    }
    struct lmr_curl_api api;
    struct {
        void **slot;
        const char *name;
    } syms[] = {
        {(void **)&api.global_init, "curl_global_init"},
        {(void **)&api.version_info, "curl_version_info"},
        {(void **)&api.easy_init, "curl_easy_init"},
        {(void **)&api.easy_setopt, "curl_easy_setopt"},
        {(void **)&api.easy_perform, "curl_easy_perform"},
        {(void **)&api.easy_getinfo, "curl_easy_getinfo"},
        {(void **)&api.easy_reset, "curl_easy_reset"},
        {(void **)&api.easy_cleanup, "curl_easy_cleanup"},
        {(void **)&api.easy_strerror, "curl_easy_strerror"},
        {(void **)&api.slist_append, "curl_slist_append"},
        {(void **)&api.slist_free_all, "curl_slist_free_all"},
        {(void **)&api.multi_init, "curl_multi_init"},
        {(void **)&api.multi_add_handle, "curl_multi_add_handle"},
        {(void **)&api.multi_remove_handle, "curl_multi_remove_handle"},
        {(void **)&api.multi_perform, "curl_multi_perform"},
        {(void **)&api.multi_poll, "curl_multi_poll"},
        {(void **)&api.multi_info_read, "curl_multi_info_read"},
        {(void **)&api.multi_cleanup, "curl_multi_cleanup"},
    };
    for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++)
        if (!(*syms[i].slot = dlsym(h, syms[i].name))) {
            snprintf(load_error, sizeof load_error, "it has no %s (libcurl 7.66 or later is needed)", syms[i].name);
            return; /* the handle stays open: dlclose of a half-used library buys nothing */
        }
    if (api.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(load_error, sizeof load_error, "curl_global_init failed");
        return;
    }
    lmr_curl = api;
    loaded = true;
}

enum lmr_result lmr_curl_load(struct lmr_err *err)
{
    pthread_once(&load_once, load);
    if (loaded)
        return LMR_OK;
    return lmr_fail(err, LMR_ERR_UNSUPPORTED,
                    "cannot open %s, which lambdamr needs for HTTP to AWS and S3: %s; install libcurl (Debian: "
                    "apt-get install libcurl4t64 or libcurl4), or in a function package run 'lambdamr package' again",
                    LMR_CURL_SONAME, load_error);
}
