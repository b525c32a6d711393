/*
 * libcurl, opened when the first HTTP client is made (lmr_curl_load) instead of linked.
 *
 * Debian's libcurl pulls in about 30 shared libraries (nghttp2, ssh2, rtmp, ldap, gnutls,
 * kerberos, ...) whose loading and relocation cost every process about 8 ms before main, while
 * most lambdamr processes never speak HTTP through libcurl: a mapper or reducer on the embedded
 * default reads and writes a directory, the driver of a local job calls the embedded service in
 * process. Only the processes that make an AWS client (S3, Lambda's Invoke API, Kinesis, IAM, ...)
 * open it. `lambdamr package` ships libcurl.so.4 and its libraries in the function package's lib/
 * although the function binary does not name it (package/package.c), and the package's entry
 * script gives the loader that lib/ as its library path, which dlopen searches too.
 *
 * Every call goes through lmr_curl, the table of the entry points lambdamr uses; they are valid
 * once lmr_curl_load returned LMR_OK (common/aws/http.c calls it when a client is made; the S3
 * store makes its client before any transfer).
 */
#ifndef LMR_AWS_CURL_API_H
#define LMR_AWS_CURL_API_H
#include <curl/curl.h>

#include "util/result.h"

/** The shared object opened: libcurl's ABI 4 (the SONAME since libcurl 7.16, 2006). */
#define LMR_CURL_SONAME "libcurl.so.4"

struct lmr_curl_api {
    CURLcode (*global_init)(long flags);
    curl_version_info_data *(*version_info)(CURLversion age);
    CURL *(*easy_init)(void);
    CURLcode (*easy_setopt)(CURL *h, CURLoption option, ...);
    CURLcode (*easy_perform)(CURL *h);
    CURLcode (*easy_getinfo)(CURL *h, CURLINFO info, ...);
    void (*easy_reset)(CURL *h);
    void (*easy_cleanup)(CURL *h);
    const char *(*easy_strerror)(CURLcode code);
    struct curl_slist *(*slist_append)(struct curl_slist *list, const char *s);
    void (*slist_free_all)(struct curl_slist *list);
    CURLM *(*multi_init)(void);
    CURLMcode (*multi_add_handle)(CURLM *m, CURL *h);
    CURLMcode (*multi_remove_handle)(CURLM *m, CURL *h);
    CURLMcode (*multi_perform)(CURLM *m, int *running);
    CURLMcode (*multi_poll)(CURLM *m, struct curl_waitfd extra_fds[], unsigned int n_extra, int timeout_ms,
                            int *numfds);
    CURLMsg *(*multi_info_read)(CURLM *m, int *msgs_left);
    CURLMcode (*multi_cleanup)(CURLM *m);
};

/** libcurl's entry points (all NULL until lmr_curl_load succeeded). */
extern struct lmr_curl_api lmr_curl;

/**
 * Open libcurl and run curl_global_init, once per process (thread-safe; later calls return the
 * first one's result).
 * @return LMR_OK, or LMR_ERR_UNSUPPORTED naming the library and the loader's reason.
 */
enum lmr_result lmr_curl_load(struct lmr_err *err);
#endif
