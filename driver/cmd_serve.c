/*
 * lambdamr serve: the embedded Lambda-compatible service, standalone. Functions are given as
 * --function NAME=PATH[,memory=MB][,timeout=SECONDS][,concurrency=N][,handler=H]; the Invoke
 * API listens on 127.0.0.1 until SIGINT or SIGTERM.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "lambda/service.h"
#include "util/misc.h"

#define MAX_FUNCTIONS 64

static void usage(FILE *f)
{
    fprintf(f, "usage: lambdamr serve [--port N] [--log-dir DIR] --function NAME=PATH[,OPTION=VALUE...] ...\n\n"
               "Run the embedded Lambda-compatible service: the Lambda Invoke API on 127.0.0.1\n"
               "(POST /2015-03-31/functions/NAME/invocations, e.g. 'aws lambda invoke --endpoint-url\n"
               "http://127.0.0.1:PORT ...') and one execution environment process per concurrent\n"
               "invocation, each served the Lambda Runtime API (any AWS custom runtime works).\n\n"
               "options:\n"
               "  --port N              port of the Invoke API (default 0: any free port)\n"
               "  --log-dir DIR         where the per-function logs go (default: a new temp dir)\n"
               "  --function SPEC       a function; SPEC is NAME=PATH followed by any of\n"
               "                          ,memory=MB        memory size, 128..10240 (default 1024)\n"
               "                          ,timeout=SECONDS  timeout, up to 900 (default 3)\n"
               "                          ,concurrency=N    environments at once (default 10)\n"
               "                          ,handler=H        the _HANDLER value\n"
               "  --help                this text\n\n"
               "The port and the log directory are printed at start; stop with Ctrl-C (SIGINT) or SIGTERM.\n");
}

/* Parse NAME=PATH[,k=v...] into cfg. Modifies spec. */
static int parse_function(char *spec, struct lmr_function_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    char *eq = strchr(spec, '=');
    if (!eq || eq == spec) {
        fprintf(stderr, "lambdamr serve: --function '%s' needs the form NAME=PATH[,memory=MB,...]\n", spec);
        return -1;
    }
    *eq = '\0';
    cfg->name = spec;
    char *save = NULL;
    char *path = strtok_r(eq + 1, ",", &save);
    if (!path || !*path) {
        fprintf(stderr, "lambdamr serve: function %s has no executable path\n", cfg->name);
        return -1;
    }
    cfg->path = path;
    for (char *opt = strtok_r(NULL, ",", &save); opt; opt = strtok_r(NULL, ",", &save)) {
        char *v = strchr(opt, '=');
        if (!v) {
            fprintf(stderr, "lambdamr serve: option '%s' of function %s needs a value (KEY=VALUE)\n", opt, cfg->name);
            return -1;
        }
        *v++ = '\0';
        uint64_t n = 0;
        char *end = NULL;
        if (!strcmp(opt, "memory") && lmr_parse_u64(v, LMR_MEMORY_MIN_MB, LMR_MEMORY_MAX_MB, &n) == LMR_OK) {
            cfg->memory_mb = (uint32_t)n;
        } else if (!strcmp(opt, "concurrency") && lmr_parse_u64(v, 1, 1000, &n) == LMR_OK) {
            cfg->concurrency = (uint32_t)n;
        } else if (!strcmp(opt, "timeout") && (cfg->timeout_s = strtod(v, &end)) > 0 && end && !*end &&
                   cfg->timeout_s <= 900) {
        } else if (!strcmp(opt, "handler") && *v) {
            cfg->handler = v;
        } else {
            fprintf(stderr,
                    "lambdamr serve: bad option %s=%s for function %s (memory=128..10240, timeout=SECONDS up to "
                    "900, concurrency=1..1000, handler=NAME)\n",
                    opt, v, cfg->name);
            return -1;
        }
    }
    return 0;
}

int lmr_cmd_serve(int argc, char **argv)
{
    struct lmr_lambda_service_options opts = {0};
    struct lmr_function_config fns[MAX_FUNCTIONS];
    size_t n_fns = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "lambdamr serve: unknown option or missing value: %s (see --help)\n", a);
            return 2;
        }
        if (!strcmp(a, "--port")) {
            uint64_t port;
            if (lmr_parse_u64(argv[++i], 0, 65535, &port) != LMR_OK) {
                fprintf(stderr, "lambdamr serve: --port takes a number from 0 to 65535, not '%s'\n", argv[i]);
                return 2;
            }
            opts.port = (uint16_t)port;
        } else if (!strcmp(a, "--log-dir")) {
            opts.log_dir = argv[++i];
        } else if (!strcmp(a, "--function")) {
            if (n_fns == MAX_FUNCTIONS) {
                fprintf(stderr, "lambdamr serve: at most %d functions\n", MAX_FUNCTIONS);
                return 2;
            }
            if (parse_function(argv[++i], &fns[n_fns]) != 0)
                return 2;
            n_fns++;
        } else {
            fprintf(stderr, "lambdamr serve: unknown option %s (see --help)\n", a);
            return 2;
        }
    }
    if (!n_fns) {
        fprintf(stderr, "lambdamr serve: give at least one --function NAME=PATH (see --help)\n");
        return 2;
    }
    /* Block the stop signals in every thread; the main thread waits for them with sigwait. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct lmr_err err = {0};
    struct lmr_lambda_service *svc = NULL;
    if (lmr_lambda_service_new(&opts, &svc, &err) != LMR_OK) {
        fprintf(stderr, "lambdamr serve: %s\n", err.msg);
        return 1;
    }
    for (size_t i = 0; i < n_fns; i++) {
        if (lmr_lambda_service_add_function(svc, &fns[i], &err) != LMR_OK) {
            fprintf(stderr, "lambdamr serve: %s\n", err.msg);
            lmr_lambda_service_destroy(svc);
            return 1;
        }
    }
    if (lmr_lambda_service_start(svc, &err) != LMR_OK) {
        fprintf(stderr, "lambdamr serve: %s\n", err.msg);
        lmr_lambda_service_destroy(svc);
        return 1;
    }
    printf("lambdamr serve: Invoke API on http://127.0.0.1:%u\n", lmr_lambda_service_port(svc));
    printf("lambdamr serve: logs in %s\n", lmr_lambda_service_log_dir(svc));
    for (size_t i = 0; i < n_fns; i++)
        printf("lambdamr serve: function %s -> %s\n", fns[i].name, fns[i].path);
    fflush(stdout);
    int sig = 0;
    sigwait(&stop, &sig);
    fprintf(stderr, "lambdamr serve: stopping (signal %d)\n", sig);
    lmr_lambda_service_destroy(svc);
    return 0;
}
