/*
 * lmr_invoketool: one invocation through the "aws" invoker (Lambda Invoke API, SigV4), for
 * tests. Prints the result as one JSON object on stdout.
 *
 *   lmr_invoketool [--type sync|event|dry-run] [--tail] FUNCTION PAYLOAD
 *
 * Exit status: 0 (also for a function error, which is in the JSON), 3 not found, 1 other errors.
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "lambda/aws_invoker.h"

int main(int argc, char **argv)
{
    enum lmr_invoke_type type = LMR_INVOKE_SYNC;
    unsigned flags = 0;
    int i = 1;
    for (; i < argc && !strncmp(argv[i], "--", 2); i++) {
        if (!strcmp(argv[i], "--tail"))
            flags |= LMR_INVOKE_LOG_TAIL;
        else if (!strcmp(argv[i], "--type") && i + 1 < argc) {
            const char *t = argv[++i];
            type = !strcmp(t, "event")     ? LMR_INVOKE_EVENT
                   : !strcmp(t, "dry-run") ? LMR_INVOKE_DRY_RUN
                                           : LMR_INVOKE_SYNC;
        }
    }
    if (i + 2 != argc) {
        fprintf(stderr, "usage: lmr_invoketool [--type sync|event|dry-run] [--tail] FUNCTION PAYLOAD\n");
        return 1;
    }
    struct lmr_err err = {0};
    struct lmr_invoker *inv = NULL;
    enum lmr_result r = lmr_aws_invoker_new(NULL, &inv, &err);
    struct lmr_invoke_result res;
    lmr_invoke_result_init(&res, 6 << 20);
    if (!r)
        r = lmr_invoke(inv, argv[i], argv[i + 1], strlen(argv[i + 1]), type, flags, &res, &err);
    if (r) {
        fprintf(stderr, "lmr_invoketool: %s\n", err.msg[0] ? err.msg : lmr_result_str(r));
    } else {
        json_t *j = json_pack(
            "{s:i, s:s, s:s, s:s%, s:s, s:f, s:f, s:f, s:i, s:i, s:i}", "status", res.status_code, "function_error",
            res.function_error, "request_id", res.request_id, "payload", res.payload.data ? res.payload.data : "",
            res.payload.len, "log_tail", res.log_tail, "duration_ms", res.duration_ms, "billed_duration_ms",
            res.billed_duration_ms, "init_duration_ms", res.init_duration_ms, "memory_size_mb", (int)res.memory_size_mb,
            "max_memory_used_mb", (int)res.max_memory_used_mb, "throttle_retries", (int)res.throttle_retries);
        char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
        puts(s ? s : "{}");
        free(s);
        json_decref(j);
    }
    lmr_invoke_result_clean_up(&res);
    lmr_invoker_destroy(inv);
    return r == LMR_OK ? 0 : r == LMR_ERR_NOT_FOUND ? 3 : 1;
}
