/*
 * lambdamr serve: the embedded Lambda-compatible service, standalone. Functions are given as
 * --function NAME=PATH[,memory=MB][,timeout=SECONDS][,concurrency=N][,handler=H] or created
 * through Lambda's control plane (CreateFunction with a zip); the Invoke API and the control plane
 * listen on 127.0.0.1 only, until SIGINT or SIGTERM.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "commands.h"
#include "lambda/service.h"
#include "util/misc.h"

#define MAX_FUNCTIONS 64

static void usage(FILE *f)
{
    fprintf(f, "usage: lambdamr serve [--port N] [--log-dir DIR] [--state-dir DIR] [--update-delay-ms MS]\n"
               "                      [--function NAME=PATH[,OPTION=VALUE...] ...]\n\n"
               "Run the embedded Lambda-compatible service on 127.0.0.1 (loopback only): the Lambda\n"
               "Invoke API (e.g. 'aws lambda invoke --endpoint-url http://127.0.0.1:PORT ...'), Lambda's\n"
               "function control plane, and one execution environment process per concurrent invocation,\n"
               "each served the Lambda Runtime API (any AWS custom runtime works).\n\n"
               "Control plane, with AWS's paths, JSON shapes and error types (AWS CLI, SDKs):\n"
               "  CreateFunction (Code.ZipFile, or Code.S3Bucket/S3Key read through AWS_ENDPOINT_URL_S3 or\n"
               "  AWS_ENDPOINT_URL), GetFunction, GetFunctionConfiguration, ListFunctions (Marker/MaxItems),\n"
               "  UpdateFunctionCode, UpdateFunctionConfiguration, DeleteFunction, Put/Get/Delete-\n"
               "  FunctionConcurrency. Runtimes provided.al2023 and provided.al2: the zip is unpacked into a\n"
               "  task root of its own (entries outside it, links and over 250 MB unzipped are refused) and\n"
               "  its 'bootstrap' runs there with LAMBDA_TASK_ROOT, _HANDLER and Environment.Variables.\n"
               "  A created function is Pending, an update InProgress, for --update-delay-ms; in that window\n"
               "  further updates (and invocations of a Pending function) get ResourceConflictException,\n"
               "  as on AWS ('aws lambda wait function-active-v2 / function-updated-v2').\n\n"
               "options:\n"
               "  --port N              port of the Invoke API and control plane (default 0: any free port)\n"
               "  --log-dir DIR         where the per-function logs go (default: a new temp dir)\n"
               "  --request-timeout S   an Invoke API request must arrive whole within S seconds of the\n"
               "                        connection's start or of the previous answer on it (default 10)\n"
               "  --state-dir DIR       where created functions' zips and task roots go, kept at exit\n"
               "                        (default: a temp dir made on the first CreateFunction, removed at exit)\n"
               "  --update-delay-ms MS  the Pending / InProgress window, 1..60000 (default 300)\n"
               "  --function SPEC       a function from an executable; SPEC is NAME=PATH followed by any of\n"
               "                          ,memory=MB        memory size, 128..10240 (default 1024)\n"
               "                          ,timeout=SECONDS  timeout, up to 900 (default 3)\n"
               "                          ,concurrency=N    environments at once (default 10)\n"
               "                          ,handler=H        the _HANDLER value\n"
               "                        (these appear in ListFunctions and can be updated or deleted too)\n"
               "  --help                this text\n\n"
               "The port and the log directory are printed at start; stop with Ctrl-C (SIGINT) or SIGTERM.\n");
}

/* A function's executable must exist and be runnable, or serve refuses to start. */
static int check_executable(const struct lmr_function_config *cfg)
{
    struct stat st;
    if (stat(cfg->path, &st) != 0) {
        fprintf(stderr,
                "lambdamr serve: the executable %s of function %s cannot be used: %s; give the path of the "
                "function's bootstrap\n",
                cfg->path, cfg->name, strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode) || access(cfg->path, X_OK) != 0) {
        fprintf(stderr, "lambdamr serve: the executable %s of function %s %s; give an executable file (chmod +x)\n",
                cfg->path, cfg->name, S_ISDIR(st.st_mode) ? "is a directory" : "is not an executable file");
        return -1;
    }
    return 0;
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
        } else if (!strcmp(a, "--request-timeout")) {
            uint64_t secs;
            if (lmr_parse_u64(argv[++i], 1, 3600, &secs) != LMR_OK) {
                fprintf(stderr, "lambdamr serve: --request-timeout takes whole seconds from 1 to 3600, not '%s'\n",
                        argv[i]);
                return 2;
            }
            opts.request_timeout_ms = (uint32_t)secs * 1000;
        } else if (!strcmp(a, "--log-dir")) {
            opts.log_dir = argv[++i];
        } else if (!strcmp(a, "--state-dir")) {
            opts.state_dir = argv[++i];
        } else if (!strcmp(a, "--update-delay-ms")) {
            uint64_t ms;
            if (lmr_parse_u64(argv[++i], 1, 60000, &ms) != LMR_OK) {
                fprintf(stderr, "lambdamr serve: --update-delay-ms takes a number from 1 to 60000, not '%s'\n",
                        argv[i]);
                return 2;
            }
            opts.update_delay_ms = (uint32_t)ms;
        } else if (!strcmp(a, "--function")) {
            if (n_fns == MAX_FUNCTIONS) {
                fprintf(stderr, "lambdamr serve: at most %d functions\n", MAX_FUNCTIONS);
                return 2;
            }
            if (parse_function(argv[++i], &fns[n_fns]) != 0 || check_executable(&fns[n_fns]) != 0)
                return 2;
            n_fns++;
        } else {
            fprintf(stderr, "lambdamr serve: unknown option %s (see --help)\n", a);
            return 2;
        }
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
    if (opts.state_dir)
        printf("lambdamr serve: created functions in %s\n", opts.state_dir);
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
