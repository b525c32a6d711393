/*
 * bench_invoke: the embedded Lambda service with the no-op "echo" role of bootstrap.
 *   - cold start: a fresh function's first invocation (wall time and Init Duration)
 *   - warm round trip through the local invoker and over HTTP (keep-alive libcurl), p50/p99
 *   - sustained async fan-out: Event invocations submitted as fast as possible until all ran
 * Usage: bench_invoke [--warm N] [--http N] [--events N] [--concurrency N] [--cold N]
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lambda/service.h"
#include "util/misc.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p)
{
    qsort(v, n, sizeof *v, cmp_double);
    size_t i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

static size_t sink(char *p, size_t s, size_t n, void *ud)
{
    return s * n;
}

static void die(const char *what, const struct lmr_err *err)
{
    fprintf(stderr, "bench_invoke: %s: %s\n", what, err ? err->msg : "");
    exit(1);
}

int main(int argc, char **argv)
{
    unsigned warm_n = 5000, http_n = 2000, events_n = 20000, conc = 2, cold_n = 10;
    for (int i = 1; i + 1 < argc; i += 2) {
        unsigned v = (unsigned)strtoul(argv[i + 1], NULL, 10);
        if (!strcmp(argv[i], "--warm"))
            warm_n = v;
        else if (!strcmp(argv[i], "--http"))
            http_n = v;
        else if (!strcmp(argv[i], "--events"))
            events_n = v;
        else if (!strcmp(argv[i], "--concurrency"))
            conc = v;
        else if (!strcmp(argv[i], "--cold"))
            cold_n = v;
    }
    char *dir = lmr_self_dir();
    char path[4096];
    snprintf(path, sizeof path, "%s/bootstrap", dir);
    free(dir);
    struct lmr_err err = {0};
    struct lmr_lambda_service *svc;
    if (lmr_lambda_service_new(NULL, &svc, &err))
        die("service", &err);
    struct lmr_function_config cfg = {.name = "echo", .path = path, .handler = "echo", .concurrency = conc};
    if (lmr_lambda_service_add_function(svc, &cfg, &err) || lmr_lambda_service_start(svc, &err))
        die("function", &err);
    struct lmr_invoker *inv;
    lmr_local_invoker_new(svc, &inv, &err);
    struct lmr_invoke_result res;
    lmr_invoke_result_init(&res, 1 << 20);
    const char *payload = "{}";

    /* Cold starts: one new function per sample. */
    double *cold_wall = calloc(cold_n + 1, sizeof(double)), *cold_init = calloc(cold_n + 1, sizeof(double));
    for (unsigned i = 0; i < cold_n; i++) {
        char name[32];
        snprintf(name, sizeof name, "cold%u", i);
        struct lmr_function_config c = {.name = name, .path = path, .handler = "echo", .concurrency = 1};
        if (lmr_lambda_service_add_function(svc, &c, &err))
            die("cold function", &err);
        double t0 = lmr_mono_ms();
        if (lmr_invoke(inv, name, payload, 2, LMR_INVOKE_SYNC, 0, &res, &err))
            die("cold invoke", &err);
        cold_wall[i] = lmr_mono_ms() - t0;
        cold_init[i] = res.init_duration_ms;
    }

    /* Warm round trips through the local invoker. */
    for (unsigned i = 0; i < 100; i++)
        lmr_invoke(inv, "echo", payload, 2, LMR_INVOKE_SYNC, 0, &res, &err);
    double *lat = calloc(warm_n + http_n + 1, sizeof(double));
    double t_start = lmr_mono_ms();
    for (unsigned i = 0; i < warm_n; i++) {
        double t0 = lmr_mono_ms();
        if (lmr_invoke(inv, "echo", payload, 2, LMR_INVOKE_SYNC, 0, &res, &err) || res.function_error[0])
            die("warm invoke", &err);
        lat[i] = lmr_mono_ms() - t0;
    }
    double warm_total = lmr_mono_ms() - t_start;
    double warm_p50 = pct(lat, warm_n, 50), warm_p99 = pct(lat, warm_n, 99);

    /* Warm round trips over HTTP with one keep-alive connection. */
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURL *c = curl_easy_init();
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/2015-03-31/functions/echo/invocations",
             lmr_lambda_service_port(svc));
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, payload);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    for (unsigned i = 0; i < http_n + 50; i++) {
        double t0 = lmr_mono_ms();
        long status = 0;
        if (curl_easy_perform(c) != CURLE_OK)
            die("http invoke", NULL);
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        if (status != 200)
            die("http status", NULL);
        if (i >= 50)
            lat[i - 50] = lmr_mono_ms() - t0;
    }
    curl_easy_cleanup(c);
    double http_p50 = http_n ? pct(lat, http_n, 50) : 0, http_p99 = http_n ? pct(lat, http_n, 99) : 0;

    /* Sustained async fan-out. */
    struct lmr_lambda_service_stats st0, st;
    lmr_lambda_service_get_stats(svc, &st0);
    double t0 = lmr_mono_ms();
    for (unsigned i = 0; i < events_n; i++)
        if (lmr_invoke(inv, "echo", payload, 2, LMR_INVOKE_EVENT, 0, &res, &err))
            die("event invoke", &err);
    double submitted = lmr_mono_ms() - t0;
    do {
        lmr_sleep_ms(1);
        lmr_lambda_service_get_stats(svc, &st);
    } while (st.invocations_completed - st0.invocations_completed < events_n);
    double fan_total = lmr_mono_ms() - t0;

    printf("bench_invoke: embedded Lambda service, bootstrap _HANDLER=echo, payload \"{}\", concurrency %u\n", conc);
    printf("cold start     (%u): wall p50 %.2f ms  max %.2f ms; Init Duration p50 %.2f ms\n", cold_n,
           pct(cold_wall, cold_n, 50), pct(cold_wall, cold_n, 100), pct(cold_init, cold_n, 50));
    printf("warm local     (%u): p50 %.3f ms  p99 %.3f ms  (%.0f invocations/s, one caller)\n", warm_n, warm_p50,
           warm_p99, warm_n / (warm_total / 1000.0));
    printf("warm HTTP      (%u): p50 %.3f ms  p99 %.3f ms\n", http_n, http_p50, http_p99);
    printf("async fan-out  (%u): %.0f invocations/s (submitted in %.1f ms, all done in %.1f ms)\n", events_n,
           events_n / (fan_total / 1000.0), submitted, fan_total);
    printf("service: %llu completed, %llu cold starts, %llu throttles\n", (unsigned long long)st.invocations_completed,
           (unsigned long long)st.cold_starts, (unsigned long long)st.throttles);
    lmr_invoke_result_clean_up(&res);
    lmr_invoker_destroy(inv);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", lmr_lambda_service_log_dir(svc));
    lmr_lambda_service_destroy(svc);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_invoke: could not remove the log directory\n");
    free(lat);
    free(cold_wall);
    free(cold_init);
    curl_global_cleanup();
    return 0;
}
