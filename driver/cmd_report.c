/*
 * lambdamr report: show a finished job's report (OUTPUT/_lambdamr/report.json, on any store):
 * the text summary, the JSON, or one self-contained HTML page (common/report/html.c).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "commands.h"
#include "report/html.h"
#include "report_print.h"
#include "store/store.h"
#include "util/misc.h"

#define REPORT_MAX_BYTES (256u << 20)

static void report_usage(FILE *f)
{
    fprintf(f, "usage: lambdamr report OUTPUT [--html FILE] [--open] [--json]\n"
               "\n"
               "Show the report of the job whose output is OUTPUT (a path, file:// or s3:// URI): its\n"
               "summary by default; with --html one self-contained HTML page (timeline of every\n"
               "invocation, phases, shuffle, stragglers, cost with the prices used; no scripts, and it\n"
               "fetches nothing). The output of 'lambdamr stream' has a report too: its windows, a\n"
               "timeline of each of the last ones, and the cost of the run.\n"
               "\n"
               "options:\n"
               "      --html FILE   write the HTML page to FILE ('-' = standard output)\n"
               "      --open        open the page in the desktop's browser (xdg-open); without --html\n"
               "                    the page is written to a temporary file first\n"
               "      --json        print the report JSON\n"
               "  -h, --help        this help\n");
}

/** Read OUTPUT/_lambdamr/report.json into a new JSON object. */
enum lmr_result lmr_report_load(const char *output, json_t **out, struct lmr_err *err)
{
    struct lmr_store *store = NULL;
    char *prefix = NULL;
    *out = NULL;
    enum lmr_result r = lmr_store_open(output, &store, &prefix, err);
    if (r) {
        lmr_err_prefix(err, "output '%s'", output);
        return r;
    }
    size_t n = strlen(prefix);
    char *key = malloc(n + 32);
    struct lmr_buf b;
    lmr_buf_init(&b, REPORT_MAX_BYTES);
    if (!key) {
        r = lmr_fail(err, LMR_ERR_NOMEM, "out of memory reading the report");
    } else {
        snprintf(key, n + 32, "%s%s_lambdamr/report.json", prefix, n && prefix[n - 1] != '/' ? "/" : "");
        r = lmr_store_get(store, key, 0, LMR_STORE_TO_END, &b, err);
        if (r == LMR_ERR_NOT_FOUND)
            r = lmr_fail(err, r,
                         "'%s' holds no job report (%s is missing): give the --output of a job that finished, or "
                         "run one",
                         output, key);
    }
    if (!r) {
        json_error_t jerr;
        *out = json_loadb(b.data ? b.data : "", b.len, 0, &jerr);
        if (!*out)
            r = lmr_fail(err, LMR_ERR_FORMAT, "the report %s%s is not valid JSON (%s)", store->root_uri, key,
                         jerr.text);
    }
    lmr_buf_clean_up(&b);
    free(key);
    free(prefix);
    lmr_store_destroy(store);
    return r;
}

static int open_in_browser(const char *path)
{
    pid_t pid = fork();
    if (pid == 0) {
        execlp("xdg-open", "xdg-open", path, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status)) {
        fprintf(stderr, "lambdamr report: could not open %s with xdg-open; open it in a browser yourself\n", path);
        return 1;
    }
    return 0;
}

int lmr_cmd_report(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"html", required_argument, 0, 'H'},
        {"open", no_argument, 0, 'O'},
        {"json", no_argument, 0, 'J'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *html = NULL;
    bool open_it = false, as_json = false;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'H':
            html = optarg;
            break;
        case 'O':
            open_it = true;
            break;
        case 'J':
            as_json = true;
            break;
        case 'h':
            report_usage(stdout);
            return 0;
        case ':':
            fprintf(stderr, "lambdamr report: %s needs a value\nrun 'lambdamr report --help' for the options\n",
                    argv[optind - 1]);
            return 2;
        default:
            fprintf(stderr, "lambdamr report: unknown option '%s'\nrun 'lambdamr report --help' for the options\n",
                    argv[optind - 1]);
            return 2;
        }
    }
    if (optind + 1 != argc) {
        fprintf(stderr, "lambdamr report: give exactly one OUTPUT (the --output of a job)\n"
                        "run 'lambdamr report --help' for the options\n");
        return 2;
    }
    struct lmr_err err = {0};
    json_t *report = NULL;
    enum lmr_result r = lmr_report_load(argv[optind], &report, &err);
    if (r) {
        fprintf(stderr, "lambdamr report: %s\n", err.msg[0] ? err.msg : lmr_result_str(r));
        return 1;
    }
    int status = 0;
    char tmp[] = "/tmp/lambdamr-report-XXXXXX.html";
    if (open_it && !html) {
        int fd = mkstemps(tmp, 5);
        if (fd < 0) {
            fprintf(stderr, "lambdamr report: cannot create a temporary file for the page; give --html FILE\n");
            json_decref(report);
            return 1;
        }
        close(fd);
        html = tmp;
    }
    if (html) {
        bool to_stdout = !strcmp(html, "-");
        FILE *f = to_stdout ? stdout : fopen(html, "w");
        if (!f) {
            fprintf(stderr, "lambdamr report: cannot write '%s': %s\n", html, strerror(errno));
            status = 1;
        } else {
            r = lmr_report_html_write(f, report, &err);
            if ((!to_stdout && fclose(f)) || r) {
                fprintf(stderr, "lambdamr report: %s\n", r ? err.msg : "could not write the page");
                if (!to_stdout)
                    unlink(html);
                status = 1;
            } else if (!to_stdout && !open_it) {
                fprintf(stderr, "lambdamr report: wrote %s\n", html);
            }
        }
        if (!status && open_it)
            status = open_in_browser(html);
    } else {
        lmr_report_print_as(stdout, report, as_json);
    }
    json_decref(report);
    return status;
}
