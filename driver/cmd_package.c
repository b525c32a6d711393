/*
 * lambdamr package: write the function package, a zip that runs on Lambda's provided.al2023
 * as it is (package/package.h has the layout and why the loader is inside), and print what
 * it holds against Lambda's size limits.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "package.h"
#include "util/misc.h"

#define MAX_EXTRAS 256

static void usage(FILE *f)
{
    fprintf(f, "usage: lambdamr package --out FILE.zip [--plugin PATH.so ...] [--file PATH ...]\n\n"
               "Write the function package: a zip to deploy as a Lambda function with runtime provided.al2023.\n"
               "It holds the entry point 'bootstrap', the function binary (bin/lambdamr-function), every\n"
               "shared library it loads and the dynamic loader (lib/), job plugins (plugins/) and files\n"
               "for jobs (files/). The layout, the sizes, the glibc it carries and the architecture are\n"
               "printed; the same build gives the same zip bytes.\n\n"
               "options:\n"
               "  --out FILE.zip     the zip to write (replaced whole; left untouched on error)\n"
               "  --plugin PATH.so   a job plugin, found at run time as plugins/NAME.so (repeatable)\n"
               "  --file PATH        a script or executable for jobs, found as files/NAME (repeatable)\n"
               "  --help             this text\n\n"
               "The function binary is 'bootstrap' next to lambdamr; LMR_BOOTSTRAP names another one.\n");
}

/* The function binary: LMR_BOOTSTRAP, or bootstrap next to this executable (as `run` finds it). */
static void function_path(char *out, size_t cap)
{
    const char *env = getenv("LMR_BOOTSTRAP");
    if (env && *env) {
        snprintf(out, cap, "%s", env);
        return;
    }
    char *dir = lmr_self_dir();
    snprintf(out, cap, "%s/bootstrap", dir ? dir : ".");
    free(dir);
}

static void print_package(const char *out_path, const struct lmr_package *p)
{
    char a[32], b[32];
    printf("lambdamr package: wrote %s for Lambda provided.al2023, architecture %s, glibc %s (loader lib/%s)\n",
           out_path, p->arch, p->glibc_version, p->loader);
    printf("%12s  %s\n", "bytes", "entry");
    for (size_t i = 0; i < p->n_entries; i++)
        printf("%12llu  %s\n", (unsigned long long)p->entries[i].size_bytes, p->entries[i].name);
    printf("%zu entries; %llu bytes unzipped (%s), %llu bytes zipped (%s)\n", p->n_entries,
           (unsigned long long)p->unzipped_bytes, lmr_format_bytes((double)p->unzipped_bytes, a, sizeof a),
           (unsigned long long)p->zipped_bytes, lmr_format_bytes((double)p->zipped_bytes, b, sizeof b));
    if (p->zipped_bytes > LMR_LAMBDA_ZIP_DIRECT_MAX_BYTES)
        printf("OVER LAMBDA'S LIMIT: the zip is over %llu bytes (50 MiB), the most CreateFunction and "
               "UpdateFunctionCode accept directly; upload it to S3 and deploy it from there (S3Bucket/S3Key)\n",
               LMR_LAMBDA_ZIP_DIRECT_MAX_BYTES);
    else
        printf("within Lambda's limits: %llu bytes zipped for direct upload, %llu bytes unzipped\n",
               LMR_LAMBDA_ZIP_DIRECT_MAX_BYTES, LMR_LAMBDA_UNZIPPED_MAX_BYTES);
}

int lmr_cmd_package(int argc, char **argv)
{
    enum { OPT_OUT = 1, OPT_PLUGIN, OPT_FILE, OPT_HELP };
    static const struct option longopts[] = {{"out", required_argument, 0, OPT_OUT},
                                             {"plugin", required_argument, 0, OPT_PLUGIN},
                                             {"file", required_argument, 0, OPT_FILE},
                                             {"help", no_argument, 0, OPT_HELP},
                                             {0, 0, 0, 0}};
    const char *plugins[MAX_EXTRAS], *files[MAX_EXTRAS];
    struct lmr_package_options o = {.plugins = plugins, .files = files};
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_OUT:
            o.out_path = optarg;
            break;
        case OPT_PLUGIN:
        case OPT_FILE: {
            size_t *n = c == OPT_PLUGIN ? &o.n_plugins : &o.n_files;
            if (*n == MAX_EXTRAS) {
                fprintf(stderr, "lambdamr package: at most %d --%s arguments\n", MAX_EXTRAS,
                        c == OPT_PLUGIN ? "plugin" : "file");
                return 2;
            }
            (c == OPT_PLUGIN ? plugins : files)[(*n)++] = optarg;
            break;
        }
        case OPT_HELP:
        case 'h':
            usage(stdout);
            return 0;
        default:
            fprintf(stderr, "lambdamr package: unknown option or missing value: %s (see --help)\n", argv[optind - 1]);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "lambdamr package: unexpected argument '%s' (see --help)\n", argv[optind]);
        return 2;
    }
    if (!o.out_path || !*o.out_path) {
        fprintf(stderr, "lambdamr package: give --out FILE.zip, the zip to write (see --help)\n");
        return 2;
    }
    char fn[4096];
    function_path(fn, sizeof fn);
    if (access(fn, X_OK) != 0) {
        fprintf(stderr,
                "lambdamr package: the function binary '%s' is missing; build the project (cmake --build build) "
                "or set LMR_BOOTSTRAP\n",
                fn);
        return 1;
    }
    o.function_path = fn;
    struct lmr_package pkg;
    struct lmr_err err = {0};
    if (lmr_package_write(&o, &pkg, &err) != LMR_OK) {
        fprintf(stderr, "lambdamr package: %s\n", err.msg);
        return 1;
    }
    print_package(o.out_path, &pkg);
    lmr_package_clean_up(&pkg);
    return 0;
}
