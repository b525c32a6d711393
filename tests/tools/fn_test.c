/*
 * fn_test: a Lambda function (custom runtime) for the tests of the embedded Lambda service.
 * _HANDLER picks the behaviour:
 *   echo      return the event
 *   fail      handler error (errorType lambdamr.Invalid); logs "fail attempt <request id>"
 *   sleep     sleep <event> milliseconds, return "slept"
 *   alloc     allocate and touch <event> MB gradually, return "allocated"
 *   crash     abort() the process
 *   exit      exit(7) inside the handler
 *   env       return "NAME=VALUE\n" for each comma-separated name in the event
 *   log       print "<event>" to stdout and stderr, return "logged"
 *   big       return <event> bytes of 'x'
 *   count     return "<pid>:<invocations so far in this process>"
 *   context   return "<request id>|<arn>|<remaining ms>|<function name>|<memory MB>"
 *   init_exit     exit(2) before reaching the Runtime API
 *   init_error    POST /runtime/init/error (Runtime.TestInitError) and exit
 *   init_slow     sleep 200 ms, then behave like echo
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lambda/runtime.h"
#include "util/misc.h"

static char mode[64];
static unsigned long count;

static unsigned long number(const char *event, size_t len)
{
    char tmp[32];
    if (len >= sizeof tmp)
        len = sizeof tmp - 1;
    memcpy(tmp, event, len);
    tmp[len] = '\0';
    return strtoul(tmp, NULL, 10);
}

static enum lmr_result handle(void *user_data, const struct lmr_runtime_context *ctx, const char *event,
                              size_t event_len, struct lmr_buf *response, struct lmr_err *err)
{
    count++;
    if (!strcmp(mode, "echo") || !strcmp(mode, "init_slow"))
        return lmr_buf_append(response, event, event_len);
    if (!strcmp(mode, "fail")) {
        fprintf(stderr, "fail attempt %s\n", ctx->request_id);
        return lmr_fail(err, LMR_ERR_INVALID, "failing on purpose for request %s", ctx->request_id);
    }
    if (!strcmp(mode, "sleep")) {
        lmr_sleep_ms(number(event, event_len));
        return lmr_buf_append_str(response, "slept");
    }
    if (!strcmp(mode, "alloc")) {
        unsigned long mb = number(event, event_len);
        for (unsigned long i = 0; i < mb; i += 4) {
            char *p = malloc(4u << 20);
            if (!p)
                return lmr_fail(err, LMR_ERR_NOMEM, "malloc failed");
            memset(p, (int)i, 4u << 20);
            lmr_sleep_ms(1);
        }
        return lmr_buf_append_str(response, "allocated");
    }
    if (!strcmp(mode, "crash"))
        abort();
    if (!strcmp(mode, "exit"))
        exit(7);
    if (!strcmp(mode, "env")) {
        char names[1024];
        size_t n = event_len < sizeof names - 1 ? event_len : sizeof names - 1;
        memcpy(names, event, n);
        names[n] = '\0';
        char *save = NULL;
        for (char *name = strtok_r(names, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
            const char *v = getenv(name);
            lmr_buf_printf(response, "%s=%s\n", name, v ? v : "<unset>");
        }
        return LMR_OK;
    }
    if (!strcmp(mode, "log")) {
        printf("%.*s (stdout)\n", (int)event_len, event);
        fflush(stdout);
        fprintf(stderr, "%.*s (stderr)\n", (int)event_len, event);
        return lmr_buf_append_str(response, "logged");
    }
    if (!strcmp(mode, "big")) {
        unsigned long n = number(event, event_len);
        enum lmr_result r = lmr_buf_reserve(response, n);
        if (r)
            return lmr_fail(err, r, "cannot build a response of %lu bytes", n);
        memset(response->data, 'x', n);
        response->len = n;
        response->data[n] = '\0';
        return LMR_OK;
    }
    if (!strcmp(mode, "count"))
        return lmr_buf_printf(response, "%d:%lu", (int)getpid(), count);
    if (!strcmp(mode, "context"))
        return lmr_buf_printf(response, "%s|%s|%lld|%s|%u", ctx->request_id, ctx->invoked_function_arn,
                              (long long)lmr_runtime_remaining_ms(ctx), ctx->function_name, ctx->memory_size_mb);
    return lmr_fail(err, LMR_ERR_INVALID, "fn_test: unknown mode %s", mode);
}

int main(void)
{
    const char *h = getenv("_HANDLER");
    snprintf(mode, sizeof mode, "%s", h ? h : "echo");
    if (!strcmp(mode, "init_exit"))
        return 2;
    if (!strcmp(mode, "init_error"))
        return lmr_runtime_init_error("Runtime.TestInitError", "init failed on purpose");
    if (!strcmp(mode, "init_slow"))
        lmr_sleep_ms(200);
    return lmr_runtime_main(handle, NULL);
}
