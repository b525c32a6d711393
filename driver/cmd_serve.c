/*
 * lambdamr serve: the embedded Lambda-compatible service, standalone. Functions are given as
 * --function NAME=PATH[,memory=MB][,timeout=SECONDS][,concurrency=N][,handler=H] or created
 * through Lambda's control plane (CreateFunction with a zip); the Invoke API and the control plane
 * listen on 127.0.0.1 only, until SIGINT or SIGTERM.
 */
#include <errno.h>
#include <signal.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "background.h"
#include "commands.h"
#include "lambda/service.h"
#include "util/misc.h"

#define MAX_FUNCTIONS 64

static void usage(FILE *f)
{
    fprintf(f,
            "usage: lambdamr serve [--port N] [--log-dir DIR] [--state-dir DIR] [--update-delay-ms MS]\n"
            "                      [--idle-exit SECONDS] [--background] [--function NAME=PATH[,OPTION=VALUE...] ...]\n"
            "       lambdamr serve --stop\n\n"
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
            "  --idle-exit SECONDS   exit once no invocation has run or waited for SECONDS (default: never)\n"
            "  --background          run as this user's background service, the one 'lambdamr run --detach'\n"
            "                        uses on the embedded default (it starts one when none runs): its pid,\n"
            "                        port and start time go to $XDG_RUNTIME_DIR/lambdamr/serve.json (else\n"
            "                        ~/.cache/lambdamr/), the functions' logs to function-logs/ there\n"
            "  --stop                stop this user's background service (jobs still running in it stop\n"
            "                        too; run the same command again to resume them)\n"
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

/* serve --stop: SIGTERM to this user's background serve, then wait (10 s) until it is gone. */
static int stop_background(void)
{
    char dir[LMR_BACKGROUND_DIR_MAX];
    struct lmr_err err = {0};
    struct lmr_background_state st;
    if (lmr_background_dir(dir, sizeof dir, &err)) {
        fprintf(stderr, "lambdamr serve: %s\n", err.msg);
        return 1;
    }
    enum lmr_result r = lmr_background_find(dir, &st, &err);
    if (r == LMR_ERR_NOT_FOUND) {
        printf("lambdamr serve: no background serve runs for this user (%s/serve.json)\n", dir);
        return 0;
    }
    if (r) {
        fprintf(stderr, "lambdamr serve: %s\n", err.msg);
        return 1;
    }
    if (kill(st.pid, SIGTERM)) {
        fprintf(stderr, "lambdamr serve: cannot stop the background serve (pid %d): %s\n", st.pid, strerror(errno));
        return 1;
    }
    for (int i = 0; i < 200 && lmr_background_start_ticks(st.pid) == st.start_ticks; i++)
        lmr_sleep_ms(50);
    if (lmr_background_start_ticks(st.pid) == st.start_ticks) {
        fprintf(stderr, "lambdamr serve: the background serve (pid %d) did not stop within 10 s; see %s/serve.log\n",
                st.pid, dir);
        return 1;
    }
    printf("lambdamr serve: stopped the background serve (pid %d, port %u)\n", st.pid, (unsigned)st.port);
    return 0;
}

/*
 * Wait for SIGINT/SIGTERM, or (idle_exit_s > 0) until no invocation has run, waited or ended
 * for that long. A background serve stops for idleness only under the lock, after removing its
 * state file, so a driver that found it (and holds the lock until its job's coordinator runs)
 * never sees it go. @return the signal, or 0 for idleness.
 */
static int wait_for_stop(struct lmr_lambda_service *svc, const sigset_t *stop, uint32_t idle_exit_s,
                         const char *background_dir)
{
    if (!idle_exit_s) {
        int sig = 0;
        sigwait(stop, &sig);
        return sig;
    }
    uint64_t last_completed = UINT64_MAX;
    double idle_since = lmr_mono_ms();
    for (;;) {
        struct timespec ts = {.tv_sec = 1};
        int sig = sigtimedwait(stop, NULL, &ts);
        if (sig > 0)
            return sig;
        struct lmr_lambda_service_stats s;
        lmr_lambda_service_get_stats(svc, &s);
        if (s.invocations_running || s.events_queued || s.invocations_completed != last_completed) {
            last_completed = s.invocations_completed;
            idle_since = lmr_mono_ms();
            continue;
        }
        if (lmr_mono_ms() - idle_since < idle_exit_s * 1000.0)
            continue;
        int lock = background_dir ? lmr_background_lock(background_dir, 60000, NULL) : -1;
        if (background_dir && lock < 0)
            continue;                          /* a driver holds it for long: look again */
        lmr_lambda_service_get_stats(svc, &s); /* a driver may have handed a job over meanwhile */
        if (s.invocations_running || s.events_queued || s.invocations_completed != last_completed) {
            lmr_background_unlock(lock);
            continue;
        }
        if (background_dir)
            lmr_background_remove_state(background_dir);
        lmr_background_unlock(lock);
        return 0;
    }
}

int lmr_cmd_serve(int argc, char **argv)
{
    struct lmr_lambda_service_options opts = {0};
    struct lmr_function_config fns[MAX_FUNCTIONS];
    size_t n_fns = 0;
    uint32_t idle_exit_s = 0;
    bool background = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--stop")) {
            if (argc != 2) {
                fprintf(stderr, "lambdamr serve: --stop takes no other options\n");
                return 2;
            }
            return stop_background();
        }
        if (!strcmp(a, "--background")) {
            background = true;
            continue;
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
        } else if (!strcmp(a, "--idle-exit")) {
            uint64_t secs;
            if (lmr_parse_u64(argv[++i], 1, 86400, &secs) != LMR_OK) {
                fprintf(stderr, "lambdamr serve: --idle-exit takes whole seconds from 1 to 86400, not '%s'\n", argv[i]);
                return 2;
            }
            idle_exit_s = (uint32_t)secs;
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
    /* The background service: its folder (checked private), its functions' logs there. */
    char dir[LMR_BACKGROUND_DIR_MAX], logs[LMR_BACKGROUND_DIR_MAX + 32];
    if (background) {
        if (lmr_background_dir(dir, sizeof dir, &err)) {
            fprintf(stderr, "lambdamr serve: %s\n", err.msg);
            return 1;
        }
        snprintf(logs, sizeof logs, "%s/function-logs", dir);
        if (!opts.log_dir) /* the last serve's (jobs keep their own logs in their work location) */
            lmr_remove_tree(logs, NULL);
        if (!opts.log_dir && mkdir(logs, 0700) && errno != EEXIST) {
            fprintf(stderr, "lambdamr serve: cannot create %s: %s\n", logs, strerror(errno));
            return 1;
        }
        if (!opts.log_dir)
            opts.log_dir = logs;
    }
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
    if (background && lmr_background_write_state(dir, lmr_lambda_service_port(svc), &err)) {
        fprintf(stderr, "lambdamr serve: %s\n", err.msg);
        lmr_lambda_service_destroy(svc);
        return 1;
    }
    if (background)
        printf("lambdamr serve: background service of uid %u, pid %d (state in %s/serve.json)%s\n", (unsigned)getuid(),
               (int)getpid(), dir, idle_exit_s ? "" : "; it runs until 'lambdamr serve --stop'");
    if (idle_exit_s)
        printf("lambdamr serve: exits after %u s without invocations\n", idle_exit_s);
    fflush(stdout);
    int sig = wait_for_stop(svc, &stop, idle_exit_s, background ? dir : NULL);
    if (sig)
        fprintf(stderr, "lambdamr serve: stopping (signal %d)\n", sig);
    else
        fprintf(stderr, "lambdamr serve: stopping (no invocation for %u s)\n", idle_exit_s);
    if (background)
        lmr_background_remove_state(dir);
    lmr_lambda_service_destroy(svc);
    return 0;
}
