/*
 * lambdamr run: a batch job from the command line.
 *   plan (list + split) -> manifest -> coordinator (map tasks, shuffle plan, reduce tasks,
 *   commit) -> summary and report.
 * Tasks always run as Lambda invocations: by default on the embedded Lambda-compatible
 * service started in this process, with the bootstrap binary found next to lambdamr.
 */
#include <ctype.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend_aws.h"
#include "commands.h"
#include "detach_local.h"
#include "job/args.h"
#include "job/registry.h"
#include "lambda/aws_invoker.h"
#include "lambda/limits.h"
#include "lambda/roles.h"
#include "lambda/service.h"
#include "aws/config.h"
#include "estimate.h"
#include "exchange.h"
#include "job_plan.h"
#include "report/html.h"
#include "lease.h"
#include "follow.h"
#include "output.h"
#include "report_print.h"
#include "speculation.h"
#include "shuffle/merge_stage.h"
#include "stages.h"
#include "task_root.h"
#include "util/misc.h"

struct run_options {
    const char *job;
    char **inputs;
    size_t ninputs;
    const char *output;
    const char *work;
    uint64_t split_size;
    bool split_given;
    uint32_t mappers;
    uint32_t reducers;
    uint32_t memory_mb;
    bool memory_given;
    uint32_t timeout_s;
    uint32_t concurrency;
    uint32_t max_attempts;
    struct lmr_speculation speculation; /* backups for stragglers (--speculation*) */
    const char *rebalance;              /* --rebalance auto|on|off (NULL: auto) */
    bool overwrite;
    bool json;
    bool detach;
    const char *backend;
    const char *function_prefix;
    const char *price_file;
    bool html;
    bool dry_run, model_given;
    uint64_t assume_bytes, assume_objects;
    struct lmr_estimate_model model;
    char *command; /* the command line, shell-quoted, for the report */
    struct lmr_job_args *args;
    char **files; /* --file: shipped into the functions' task root (files/NAME) */
    size_t nfiles;
    char *task_root; /* local: the functions' LAMBDA_TASK_ROOT when the job ships anything */
    char **sides;    /* --side TAG=URI (joins) */
    size_t nsides;
    enum lmr_exchange_mode exchange; /* --exchange */
    uint32_t merge_fan_in;           /* --merge-fan-in */
};

static void run_usage(FILE *f)
{
    fprintf(f,
            "usage: lambdamr run JOB --input URI [--input URI ...] --output URI [options] [job options]\n"
            "\n"
            "Run a MapReduce job. Inputs are files, directories (recursive) or prefixes: paths,\n"
            "file:// or s3://bucket/prefix. Names starting with '_' or '.' are skipped. Symbolic links\n"
            "are followed, each real directory and file at most once (link loops are not followed\n"
            "again), and an object named by several --input locations is read once. File names must\n"
            "be UTF-8. .gz and .zst inputs are decompressed; a damaged or truncated one fails the job.\n"
            "The output must not lie inside an input. Output: part-r-NNNNN files of key<TAB>value lines (part-m-NNNNN\n"
            "for map-only jobs), then _SUCCESS, and the job report in _lambdamr/report.json.\n"
            "\n"
            "jobs:\n");
    lmr_job_list(f);
    fprintf(f, "  PATH.so    a plugin exporting lmr_job_plugin() (see docs/JOBS.md)\n"
               "\n"
               "options:\n"
               "  -i, --input URI        input location (repeatable; at least one)\n"
               "  -o, --output URI       output location (must not hold a finished job unless --overwrite)\n"
               "      --work URI         where intermediate data goes (default: OUTPUT/_lambdamr/work)\n"
               "      --split-size SIZE  bytes per shard: a whole number with an optional K, M, G or T\n"
               "                         (binary), e.g. 64M (default: balanced tasks of at most 64M in whole\n"
               "                         waves of --concurrency; one wave of up to 256M each for a combining\n"
               "                         job that fits one); at most 100,000 shards\n"
               "      --mappers N        at most N map tasks (shards are packed into tasks)\n"
               "      --reducers N       reduce tasks (default: one per GiB of input, and at least one per\n"
               "                         concurrent invocation when the input is over 64 MiB each)\n"
               "      --memory MB        each function's memory size and budget (default 1024; with --backend aws\n"
               "                         the deployed functions' memory, which --memory must match)\n"
               "      --timeout SECONDS  each invocation's timeout (default 900)\n"
               "      --concurrency N    invocations in flight (default: CPUs here, 100 on AWS)\n"
               "      --max-attempts N   attempts per task before the job fails (default 3)\n"
               "      --speculation on|off  start a backup attempt of a straggling task (default on): once\n"
               "                         a phase's quantile of tasks has finished and an attempt has run\n"
               "                         factor x their median duration and at least min-ms; the first\n"
               "                         commit wins, the other attempt's data is removed\n"
               "      --speculation-quantile Q  fraction of tasks finished first, >0 to 1 (default 0.75)\n"
               "      --speculation-factor X    times the median duration, 1 to 100 (default 3)\n"
               "      --speculation-min-ms MS   and at least this long, 0 to 900000 (default 3000)\n"
               "      --rebalance auto|on|off  dynamic work rebalancing (jobs with a reduce phase): when a slot\n"
               "                         would idle, a running map task's rest is split off as a tail task;\n"
               "                         auto (default): only jobs whose output cannot depend on the split\n"
               "                         (wordcount; aggregate count, min, max); on: also floating-point sums\n"
               "                         (their last digit may then change) and jobs that see values in order\n"
               "      --exchange MODE    the shuffle: direct (each reducer reads its frame of every map output),\n"
               "                         merge (merge tasks first merge groups of map outputs, so reducers read\n"
               "                         fewer, larger frames) or auto (default: merge when a direct shuffle would\n"
               "                         make more than 55,000 frame reads and merging saves half; see\n"
               "                         docs/ARCHITECTURE.md)\n"
               "      --merge-fan-in N   map outputs per merge task (2-512; default about the square root of\n"
               "                         the map task count, at most what the function's memory holds)\n"
               "      --overwrite        replace the output of an earlier job\n"
               "      --json             print the job report as JSON on stdout (no summary)\n"
               "      --html             also write the report as an HTML page, OUTPUT/_lambdamr/report.html\n"
               "      --dry-run          plan the job and print the plan and an estimate of its time and cost on\n"
               "                         AWS, from a stated model; nothing is invoked or written\n"
               "      --assume-input SIZE[,OBJECTS]  with --dry-run: plan for an input that is not at hand\n"
               "                         (e.g. 126.8G,2000) instead of listing --input\n"
               "      --model NAME=VALUE[,...]  with --dry-run: change the model's parameters (printed with\n"
               "                         the estimate; see docs/ARCHITECTURE.md)\n"
               "      --price-file FILE  prices for the cost estimate (default: the built-in table, for the\n"
               "                         region of AWS_REGION / the profile; see docs/FORMATS.md)\n"
               "      --detach           return once the coordinator has the job; follow it with 'lambdamr\n"
               "                         status|wait|cancel|logs OUTPUT'. On the embedded default the job runs\n"
               "                         in this user's background 'lambdamr serve' (started when none runs,\n"
               "                         it exits after 5 idle minutes; 'lambdamr serve --stop' stops it)\n"
               "      --backend B        local (default: embedded runtime) or aws (deployed functions)\n"
               "      --function-prefix NAME  with --backend aws: invoke NAME-mapper and NAME-reducer\n"
               "  -h, --help             this help\n"
               "\n"
               "job options (passed to the job):\n"
               "      --delimiter C --fields LIST --where EXPR --key SPEC --value N --op OP --strict\n"
               "      --arg NAME=VALUE   any other argument, for plugins\n"
               "\n"
               "joins and Query 3 (lambdamr run join | bdb-q3; see docs/JOBS.md):\n"
               "      --side TAG=URI     a join input and its tag (two or more; instead of --input); the\n"
               "                         key and value fields per side: --arg key.TAG=N --arg value.TAG=LIST\n"
               "      --join STRATEGY    auto (default: broadcast when the small sides fit a task), broadcast\n"
               "                         (map-side) or reduce (reduce-side with a secondary sort); bdb-q3 also\n"
               "                         filter-broadcast (its auto: filter the visits, then join them with\n"
               "                         each rankings shard in its mapper)\n"
               "      --date-from D --date-to D  bdb-q3: the visitDate range, YYYY-MM-DD, inclusive\n"
               "\n"
               "sort (lambdamr run sort): --key N (field, with --delimiter) or --key bytes:A-B; the whole\n"
               "      line by default; ranges sampled from the input, part files in total order\n"
               "\n"
               "exec jobs (lambdamr run exec; see docs/JOBS.md):\n"
               "      --mapper CMD       reads records on stdin, writes key<TAB>value lines (run by /bin/sh -c)\n"
               "      --combiner CMD     optional; runs on sorted batches of the mapper's lines\n"
               "      --reducer CMD      reads key<TAB>value lines in key order; none: a map-only job\n"
               "      --separator C      key/value separator instead of TAB\n"
               "      --key-fields N     the key is the first N fields (default 1)\n"
               "      --file PATH        ship a script or binary with the job (repeatable); commands find\n"
               "                         it as files/NAME, also on PATH and in the working directory. On\n"
               "                         AWS package it with 'lambdamr package --file' instead\n"
               "\n"
               "example:\n"
               "  lambdamr run wordcount --input ./datasets/text/ --output ./out/wc\n");
}

static int usage_error(const char *fmt, const char *what)
{
    fprintf(stderr, "lambdamr run: ");
    fprintf(stderr, fmt, what);
    fprintf(stderr, "\nrun 'lambdamr run --help' for the options\n");
    return 2;
}

static int parse_u32(const char *name, const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
    uint64_t v;
    if (lmr_parse_u64(s, min, max, &v)) {
        fprintf(stderr, "lambdamr run: --%s '%s' is not a whole number from %u to %u\n", name, s, min, max);
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

enum {
    OPT_WORK = 256,
    OPT_SPLIT,
    OPT_MAPPERS,
    OPT_REDUCERS,
    OPT_MEMORY,
    OPT_TIMEOUT,
    OPT_CONCURRENCY,
    OPT_ATTEMPTS,
    OPT_OVERWRITE,
    OPT_JSON,
    OPT_DETACH,
    OPT_BACKEND,
    OPT_PREFIX,
    OPT_ARG,
    OPT_DELIM,
    OPT_FIELDS,
    OPT_WHERE,
    OPT_KEY,
    OPT_VALUE,
    OPT_OP,
    OPT_STRICT,
    OPT_HTML,
    OPT_PRICE_FILE,
    OPT_DRY_RUN,
    OPT_ASSUME,
    OPT_MODEL,
    OPT_MAPPER,
    OPT_COMBINER,
    OPT_REDUCER,
    OPT_SEPARATOR,
    OPT_KEY_FIELDS,
    OPT_DATE_FROM,
    OPT_DATE_TO,
    OPT_JOIN,
    OPT_FILE,
    OPT_SIDE,
    OPT_SPECULATION,
    OPT_REBALANCE,
    OPT_SPEC_QUANTILE,
    OPT_SPEC_FACTOR,
    OPT_SPEC_MIN_MS,
    OPT_EXCHANGE,
    OPT_FAN_IN,
};

/* A decimal number (no suffix, finite) for --NAME. @return 0, or 2 after an error message. */
static int parse_number(const char *name, const char *s, double *out)
{
    char *end = NULL;
    double v = strtod(s, &end);
    if (!*s || !end || *end || v != v || v > 1e300 || v < -1e300) {
        fprintf(stderr, "lambdamr run: --%s '%s' is not a decimal number\nrun 'lambdamr run --help' for the options\n",
                name, s);
        return 2;
    }
    *out = v;
    return 0;
}

/* --assume-input's SIZE: a size as lmr_parse_size takes it, or with a fraction ("126.8G", binary units). */
static enum lmr_result parse_assumed_size(const char *s, uint64_t *out)
{
    const char *dot = strchr(s, '.');
    if (!dot)
        return lmr_parse_size(s, out);
    char whole[32], unit = 0;
    size_t n = (size_t)(dot - s), f = 0;
    if (!n || n >= sizeof whole)
        return LMR_ERR_INVALID;
    memcpy(whole, s, n);
    whole[n] = '\0';
    uint64_t w, frac = 0, scale = 1;
    if (strspn(whole, "0") == n)
        w = 0; /* "0.5G" */
    else if (lmr_parse_size(whole, &w))
        return LMR_ERR_INVALID;
    for (const char *p = dot + 1; *p; p++, f++) {
        if (!isdigit((unsigned char)*p)) {
            unit = (char)toupper((unsigned char)*p);
            if (p[1] && !(toupper((unsigned char)p[1]) == 'B' && !p[2]))
                return LMR_ERR_INVALID;
            break;
        }
        if (f >= 6)
            return LMR_ERR_INVALID;
        frac = frac * 10 + (uint64_t)(*p - '0');
        scale *= 10;
    }
    unsigned shift = unit == 'K' ? 10 : unit == 'M' ? 20 : unit == 'G' ? 30 : unit == 'T' ? 40 : unit == 'B' ? 0 : 99;
    if (!f || shift == 99 || w > (LMR_SIZE_MAX_BYTES >> shift))
        return LMR_ERR_INVALID;
    *out = (w << shift) + (frac << shift) / scale;
    return *out <= LMR_SIZE_MAX_BYTES ? LMR_OK : LMR_ERR_INVALID;
}

static int parse_args(int argc, char **argv, struct run_options *o)
{
    static const struct option longopts[] = {
        {"input", required_argument, 0, 'i'},
        {"output", required_argument, 0, 'o'},
        {"work", required_argument, 0, OPT_WORK},
        {"split-size", required_argument, 0, OPT_SPLIT},
        {"mappers", required_argument, 0, OPT_MAPPERS},
        {"reducers", required_argument, 0, OPT_REDUCERS},
        {"memory", required_argument, 0, OPT_MEMORY},
        {"timeout", required_argument, 0, OPT_TIMEOUT},
        {"concurrency", required_argument, 0, OPT_CONCURRENCY},
        {"max-attempts", required_argument, 0, OPT_ATTEMPTS},
        {"overwrite", no_argument, 0, OPT_OVERWRITE},
        {"json", no_argument, 0, OPT_JSON},
        {"detach", no_argument, 0, OPT_DETACH},
        {"backend", required_argument, 0, OPT_BACKEND},
        {"function-prefix", required_argument, 0, OPT_PREFIX},
        {"arg", required_argument, 0, OPT_ARG},
        {"delimiter", required_argument, 0, OPT_DELIM},
        {"fields", required_argument, 0, OPT_FIELDS},
        {"where", required_argument, 0, OPT_WHERE},
        {"key", required_argument, 0, OPT_KEY},
        {"value", required_argument, 0, OPT_VALUE},
        {"op", required_argument, 0, OPT_OP},
        {"strict", no_argument, 0, OPT_STRICT},
        {"html", no_argument, 0, OPT_HTML},
        {"price-file", required_argument, 0, OPT_PRICE_FILE},
        {"dry-run", no_argument, 0, OPT_DRY_RUN},
        {"assume-input", required_argument, 0, OPT_ASSUME},
        {"model", required_argument, 0, OPT_MODEL},
        {"mapper", required_argument, 0, OPT_MAPPER},
        {"combiner", required_argument, 0, OPT_COMBINER},
        {"reducer", required_argument, 0, OPT_REDUCER},
        {"separator", required_argument, 0, OPT_SEPARATOR},
        {"key-fields", required_argument, 0, OPT_KEY_FIELDS},
        {"file", required_argument, 0, OPT_FILE},
        {"side", required_argument, 0, OPT_SIDE},
        {"exchange", required_argument, 0, OPT_EXCHANGE},
        {"merge-fan-in", required_argument, 0, OPT_FAN_IN},
        {"date-from", required_argument, 0, OPT_DATE_FROM},
        {"date-to", required_argument, 0, OPT_DATE_TO},
        {"join", required_argument, 0, OPT_JOIN},
        {"speculation", required_argument, 0, OPT_SPECULATION},
        {"rebalance", required_argument, 0, OPT_REBALANCE},
        {"speculation-quantile", required_argument, 0, OPT_SPEC_QUANTILE},
        {"speculation-factor", required_argument, 0, OPT_SPEC_FACTOR},
        {"speculation-min-ms", required_argument, 0, OPT_SPEC_MIN_MS},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    static const char *const job_arg_names[] = {
        [OPT_DELIM - OPT_DELIM] = "delimiter",       [OPT_FIELDS - OPT_DELIM] = "fields",
        [OPT_WHERE - OPT_DELIM] = "where",           [OPT_KEY - OPT_DELIM] = "key",
        [OPT_VALUE - OPT_DELIM] = "value",           [OPT_OP - OPT_DELIM] = "op",
        [OPT_MAPPER - OPT_DELIM] = "mapper",         [OPT_COMBINER - OPT_DELIM] = "combiner",
        [OPT_REDUCER - OPT_DELIM] = "reducer",       [OPT_SEPARATOR - OPT_DELIM] = "separator",
        [OPT_KEY_FIELDS - OPT_DELIM] = "key-fields", [OPT_DATE_FROM - OPT_DELIM] = "date-from",
        [OPT_DATE_TO - OPT_DELIM] = "date-to",       [OPT_JOIN - OPT_DELIM] = "join",
    };
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":i:o:h", longopts, NULL)) != -1) {
        uint64_t v;
        switch (c) {
        case 'i': {
            char **in = realloc(o->inputs, (o->ninputs + 1) * sizeof *in);
            if (!in)
                return -1;
            o->inputs = in;
            o->inputs[o->ninputs++] = optarg;
            break;
        }
        case 'o':
            o->output = optarg;
            break;
        case OPT_WORK:
            o->work = optarg;
            break;
        case OPT_SPLIT:
            if (lmr_parse_size(optarg, &v))
                return usage_error("--split-size '%s' is not a size in bytes (e.g. 64M, 512K, 1G)", optarg);
            o->split_size = v;
            o->split_given = true;
            break;
        case OPT_MAPPERS:
            if (parse_u32("mappers", optarg, 1, 100000, &o->mappers))
                return 2;
            break;
        case OPT_EXCHANGE:
            if (!lmr_exchange_mode_parse(optarg, &o->exchange))
                return usage_error("--exchange '%s' is not auto, direct or merge", optarg);
            break;
        case OPT_FAN_IN:
            if (parse_u32("merge-fan-in", optarg, 2, LMR_MERGE_FAN_IN_MAX, &o->merge_fan_in))
                return 2;
            break;
        case OPT_REDUCERS:
            if (parse_u32("reducers", optarg, 1, 10000, &o->reducers))
                return 2;
            break;
        case OPT_MEMORY:
            if (parse_u32("memory", optarg, LMR_MEMORY_MIN_MB, LMR_MEMORY_MAX_MB, &o->memory_mb))
                return 2;
            o->memory_given = true;
            break;
        case OPT_TIMEOUT:
            if (parse_u32("timeout", optarg, 1, 900, &o->timeout_s))
                return 2;
            break;
        case OPT_CONCURRENCY:
            if (parse_u32("concurrency", optarg, 1, 10000, &o->concurrency))
                return 2;
            break;
        case OPT_ATTEMPTS:
            if (parse_u32("max-attempts", optarg, 1, 100, &o->max_attempts))
                return 2;
            break;
        case OPT_OVERWRITE:
            o->overwrite = true;
            break;
        case OPT_DETACH:
            o->detach = true;
            break;
        case OPT_JSON:
            o->json = true;
            break;
        case OPT_BACKEND:
            if (strcmp(optarg, "local") && strcmp(optarg, "aws"))
                return usage_error("--backend '%s' is not one of: local, aws", optarg);
            o->backend = optarg;
            break;
        case OPT_PREFIX:
            o->function_prefix = optarg;
            break;
        case OPT_ARG: {
            char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg)
                return usage_error("--arg '%s' must be NAME=VALUE", optarg);
            *eq = '\0';
            enum lmr_result set = lmr_job_args_set(o->args, optarg, eq + 1);
            *eq = '=';
            if (set)
                return usage_error(set == LMR_ERR_TOO_LARGE ? "--arg '%s': the value is longer than 64 KiB"
                                                            : "--arg '%s': NAME must be UTF-8 text",
                                   optarg);
            break;
        }
        case OPT_STRICT:
            lmr_job_args_set(o->args, "strict", "1");
            break;
        case OPT_HTML:
            o->html = true;
            break;
        case OPT_PRICE_FILE:
            o->price_file = optarg;
            break;
        case OPT_DRY_RUN:
            o->dry_run = true;
            break;
        case OPT_ASSUME: {
            char *comma = strchr(optarg, ',');
            if (comma)
                *comma = '\0';
            bool bad = parse_assumed_size(optarg, &o->assume_bytes) || !o->assume_bytes;
            o->assume_objects = 1;
            if (comma) {
                *comma = ',';
                bad = bad || lmr_parse_u64(comma + 1, 1, LMR_PLAN_MAX_ASSUMED_OBJECTS, &o->assume_objects);
            }
            if (bad)
                return usage_error("--assume-input '%s' is not SIZE[,OBJECTS] (e.g. 126.8G,2000)", optarg);
            break;
        }
        case OPT_MODEL: {
            struct lmr_err merr = {0};
            if (lmr_estimate_model_parse(&o->model, optarg, &merr))
                return usage_error("%s", merr.msg);
            o->model_given = true;
            break;
        }
        case OPT_DELIM:
        case OPT_FIELDS:
        case OPT_WHERE:
        case OPT_KEY:
        case OPT_VALUE:
        case OPT_OP:
        case OPT_MAPPER:
        case OPT_COMBINER:
        case OPT_REDUCER:
        case OPT_SEPARATOR:
        case OPT_KEY_FIELDS:
        case OPT_DATE_FROM:
        case OPT_DATE_TO:
        case OPT_JOIN:
            if (lmr_job_args_set(o->args, job_arg_names[c - OPT_DELIM], optarg))
                return usage_error("the value of --%s is longer than 64 KiB", job_arg_names[c - OPT_DELIM]);
            break;
        case OPT_SIDE: {
            const char *eq = strchr(optarg, '=');
            size_t tl = eq ? (size_t)(eq - optarg) : 0;
            if (!eq || !tl || tl > 63 ||
                strspn(optarg, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") != tl || !eq[1])
                return usage_error("--side '%s' must be TAG=URI with a tag of letters, digits, '_' or '-' (e.g. "
                                   "--side rankings=data/rankings)",
                                   optarg);
            char **sd = realloc(o->sides, (o->nsides + 1) * sizeof *sd);
            if (!sd)
                return -1;
            o->sides = sd;
            o->sides[o->nsides++] = optarg;
            break;
        }
        case OPT_FILE: {
            char **f = realloc(o->files, (o->nfiles + 1) * sizeof *f);
            if (!f)
                return -1;
            o->files = f;
            o->files[o->nfiles++] = optarg;
            break;
        }
        case OPT_SPECULATION:
            if (strcmp(optarg, "on") && strcmp(optarg, "off"))
                return usage_error("--speculation '%s' is not one of: on, off", optarg);
            o->speculation.enabled = !strcmp(optarg, "on");
            break;
        case OPT_REBALANCE:
            if (strcmp(optarg, "auto") && strcmp(optarg, "on") && strcmp(optarg, "off"))
                return usage_error("--rebalance '%s' is not one of: auto, on, off", optarg);
            o->rebalance = optarg;
            break;
        case OPT_SPEC_QUANTILE:
            if (parse_number("speculation-quantile", optarg, &o->speculation.quantile))
                return 2;
            break;
        case OPT_SPEC_FACTOR:
            if (parse_number("speculation-factor", optarg, &o->speculation.factor))
                return 2;
            break;
        case OPT_SPEC_MIN_MS:
            if (parse_u32("speculation-min-ms", optarg, 0, LMR_SPECULATION_MIN_MS_MAX, &o->speculation.min_ms))
                return 2;
            break;
        case 'h':
            run_usage(stdout);
            return 1;
        case ':':
            return usage_error("%s needs a value", argv[optind - 1]);
        default:
            return usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    struct lmr_err serr = {0};
    if (lmr_speculation_check(&o->speculation, &serr))
        return usage_error("%s", serr.msg);
    if (optind < argc)
        o->job = argv[optind++];
    if (optind < argc)
        return usage_error("unexpected argument '%s'", argv[optind]);
    if (!o->job)
        return usage_error("%s", "no JOB given (e.g. 'lambdamr run wordcount --input DIR --output DIR')");
    if (!o->ninputs && !o->nsides)
        return usage_error("%s", "no --input given");
    if (!o->output)
        return usage_error("%s", "no --output given");
    if ((o->assume_bytes || o->model_given) && !o->dry_run)
        return usage_error("%s", "--assume-input and --model go with --dry-run");
    if (o->detach && o->dry_run)
        return usage_error("%s", "--detach and --dry-run do not go together (a dry run runs nothing)");
    if (!strcmp(o->backend, "aws") && !o->function_prefix && !o->dry_run)
        return usage_error("%s", "--backend aws needs --function-prefix NAME (the deployed NAME-mapper, NAME-reducer)");
    if (!strcmp(o->backend, "aws") && o->nfiles)
        return usage_error("--file %s: deployed functions run what their package holds; ship it with 'lambdamr "
                           "package --file PATH' and deploy, then run without --file",
                           o->files[0]);
    /* An exec job without a reducer is map-only (Hadoop Streaming's -numReduceTasks 0). */
    if (!strcmp(o->job, "exec") && !lmr_job_arg(o->args, "reducer") && !lmr_job_arg(o->args, "combiner"))
        o->job = "exec-map";
    return 0;
}

/* An output inside one of its inputs would be read back as input by the next run: refuse it now. */
static enum lmr_result check_output_outside_inputs(const struct run_options *o, struct lmr_err *err)
{
    for (size_t i = 0; i < o->ninputs; i++) {
        bool within = false;
        enum lmr_result r = lmr_store_uri_within(o->output, o->inputs[i], &within, err);
        if (r)
            return r == LMR_ERR_NOMEM ? r : LMR_OK; /* a location that does not open fails later, with its own error */
        if (within)
            return lmr_fail(err, LMR_ERR_INVALID,
                            "--output '%s' is inside --input '%s': the job's output would become its own input; "
                            "choose an --output outside every input",
                            o->output, o->inputs[i]);
    }
    return LMR_OK;
}

/* ---- progress --------------------------------------------------------------------------------------------- */

struct progress_state {
    bool tty;
    double t0;
};

static void draw_progress(void *user_data, const struct lmr_progress *p)
{
    struct progress_state *ps = user_data;
    if (!ps->tty)
        return;
    fprintf(stderr, "\r\033[K  %-7s %5u/%-5u tasks done, %u running%s%.0u  %6.1f s", p->phase, p->done, p->total,
            p->running, p->failed_attempts ? ", failed attempts: " : "", p->failed_attempts,
            (lmr_mono_ms() - ps->t0) / 1000.0);
    if (p->done == p->total && p->running == 0)
        fprintf(stderr, "\n");
    fflush(stderr);
}

/* ---- the command ------------------------------------------------------------------------------------------ */

static int fail(struct lmr_err *err, enum lmr_result r)
{
    fprintf(stderr, "lambdamr run: %s\n", err->msg[0] ? err->msg : lmr_result_str(r));
    return 1;
}

/* The function binary: bootstrap next to lambdamr, or LMR_BOOTSTRAP. */
static enum lmr_result find_bootstrap(char *path, size_t cap, struct lmr_err *err)
{
    char *dir = lmr_self_dir();
    const char *env_bootstrap = getenv("LMR_BOOTSTRAP");
    snprintf(path, cap, "%s/bootstrap", dir ? dir : ".");
    free(dir);
    if (env_bootstrap && *env_bootstrap)
        snprintf(path, cap, "%s", env_bootstrap);
    if (access(path, X_OK))
        return lmr_fail(err, LMR_ERR_NOT_FOUND,
                        "the function binary '%s' is missing; build the project (cmake --build build) or set "
                        "LMR_BOOTSTRAP",
                        path);
    return LMR_OK;
}

/*
 * Start the embedded service with the coordinator function, and start the coordinator's
 * environment at once: its Init (process start, libcurl) runs while this driver plans the job,
 * takes the lease and writes the manifest, instead of after the invoke.
 */
static enum lmr_result start_service(const struct run_options *o, struct lmr_lambda_service **svc, struct lmr_err *err)
{
    char path[4096];
    enum lmr_result r = find_bootstrap(path, sizeof path, err);
    struct lmr_lambda_service_options so = {0};
    if (!r)
        r = lmr_lambda_service_new(&so, svc, err);
    if (!r)
        r = lmr_lambda_service_start(*svc, err);
    /* The coordinator runs as a function too and invokes the tasks through the service's own
     * HTTP Invoke API, as it would invoke Lambda's: one code path, local or on AWS. The embedded
     * service does not check signatures, so any credentials do when none are set. */
    if (!r) {
        char endpoint[96];
        snprintf(endpoint, sizeof endpoint, "AWS_ENDPOINT_URL_LAMBDA=http://127.0.0.1:%u",
                 (unsigned)lmr_lambda_service_port(*svc));
        bool creds = getenv("AWS_ACCESS_KEY_ID") || getenv("AWS_PROFILE");
        const char *env[] = {endpoint, creds ? NULL : "AWS_ACCESS_KEY_ID=lambdamr-local",
                             "AWS_SECRET_ACCESS_KEY=lambdamr-local", NULL};
        struct lmr_function_config fc = {.name = LMR_DEFAULT_FUNCTION_PREFIX "-coordinator",
                                         .path = path,
                                         .handler = "coordinator",
                                         .memory_mb = o->memory_mb,
                                         /* --timeout is the tasks'; the coordinator gets Lambda's
                                          * longest, as deploy gives P-coordinator, and continues
                                          * itself near that deadline. */
                                         .timeout_s = LMR_COORDINATOR_TIMEOUT_S,
                                         .concurrency = 2,
                                         .env = env};
        r = lmr_lambda_service_add_function(*svc, &fc, err);
    }
    if (!r) /* ahead of time only: the invoke starts one itself if this one could not start */
        lmr_lambda_service_prestart(*svc, LMR_DEFAULT_FUNCTION_PREFIX "-coordinator", 1, NULL);
    return r;
}

/* The embedded functions of the tasks: NAME-mapper, NAME-reducer. */
static const char *const task_roles[] = {"mapper", "reducer"};

/* Add the mapper and reducer functions (with the job's task root) to the started service and make the local invoker. */
static enum lmr_result add_task_functions(const struct run_options *o, struct lmr_lambda_service *svc,
                                          struct lmr_invoker **inv, struct lmr_err *err)
{
    char path[4096];
    enum lmr_result r = find_bootstrap(path, sizeof path, err);
    for (int i = 0; i < 2 && !r; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s-%s", LMR_DEFAULT_FUNCTION_PREFIX, task_roles[i]);
        struct lmr_function_config fc = {.name = name,
                                         .path = path,
                                         .handler = task_roles[i],
                                         .memory_mb = o->memory_mb,
                                         .timeout_s = o->timeout_s,
                                         .concurrency = o->concurrency,
                                         .task_root = o->task_root};
        r = lmr_lambda_service_add_function(svc, &fc, err);
    }
    if (!r)
        r = lmr_local_invoker_new(svc, inv, err);
    return r;
}

/*
 * Start as many environments of the mapper and the reducer function as the plan runs at once,
 * called once the coordinator has its event (each start takes the service's lock for about a
 * millisecond, which the coordinator's invoke should not wait for). The coordinator's first task
 * invokes then find an environment warm, or in its Init, instead of starting a process each, and
 * the reducers' start after the map phase is no longer on the job's path. Ahead of time only: a
 * start that fails here fails again, with its reason, on the invocation.
 */
static void prestart_tasks(const struct run_options *o, const struct lmr_job_plan *plan, struct lmr_lambda_service *svc)
{
    uint64_t merges = plan->merge_fan_in ? lmr_exchange_merge_tasks(plan->ntasks, plan->merge_fan_in) : 0;
    uint64_t reducer_fn = merges > plan->job.reducers ? merges : plan->job.reducers; /* merge tasks run there too */
    uint64_t tasks[] = {plan->ntasks, reducer_fn};
    for (int i = 0; i < 2; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s-%s", LMR_DEFAULT_FUNCTION_PREFIX, task_roles[i]);
        lmr_lambda_service_prestart(svc, name, (uint32_t)(tasks[i] < o->concurrency ? tasks[i] : o->concurrency), NULL);
    }
}

/* Prices for the job's region (AWS_REGION, AWS_DEFAULT_REGION, the profile) and this build's architecture. */
static enum lmr_result load_prices(const struct run_options *o, struct lmr_prices *p, struct lmr_err *err)
{
    struct lmr_aws_config cfg;
    const char *region = lmr_aws_config_load(&cfg, NULL) == LMR_OK ? cfg.region : NULL;
    enum lmr_result r = lmr_prices_load(o->price_file, region, NULL, p, err);
    if (r && o->price_file)
        lmr_err_prefix(err, "--price-file '%s'", o->price_file);
    return r;
}

/* OUTPUT/_lambdamr/report.html, beside report.json. */
static enum lmr_result write_html(struct lmr_store *out, const struct lmr_job_common *job, const json_t *report,
                                  struct lmr_err *err)
{
    char *text = NULL, *key = lmr_output_key(job, "_lambdamr/report.html");
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    enum lmr_result r = f && key ? lmr_report_html_write(f, report, err) : LMR_ERR_NOMEM;
    if (f && fclose(f) && !r)
        r = lmr_fail(err, LMR_ERR_NOMEM, "out of memory writing the HTML report");
    if (!r)
        r = lmr_store_put(out, key, text, len, 0, err);
    free(text);
    free(key);
    return r;
}

/* --dry-run: the plan and the estimate; nothing is invoked or written. */
static int dry_run(const struct run_options *o, const struct lmr_job_plan *plan, struct lmr_store_set *stores,
                   struct lmr_err *err)
{
    struct lmr_prices prices;
    if (load_prices(o, &prices, err))
        return 1;
    struct lmr_estimate_options eo = {
        .plan = plan, .model = &o->model, .prices = &prices, .concurrency = o->concurrency, .stores = stores};
    json_t *e = lmr_estimate(&eo);
    if (!e)
        return lmr_fail(err, LMR_ERR_NOMEM, "out of memory estimating the job"), 1;
    if (o->json)
        lmr_json_print(stdout, e);
    else
        lmr_estimate_print(stdout, e);
    json_decref(e);
    return 0;
}

/* How long an output lease runs; LMR_LEASE_DURATION_MS shortens it (tests of lease expiry). */
static uint64_t lease_duration_ms(void)
{
    const char *s = getenv("LMR_LEASE_DURATION_MS");
    uint64_t v;
    return s && lmr_parse_u64(s, 100, 3600000, &v) == LMR_OK ? v : LMR_LEASE_DEFAULT_DURATION_MS;
}

/*
 * Resume: read the unfinished job's own plan back from its manifest (its id, its work location,
 * its tasks), in place of the new plan. *resumed stays false when the job died before its
 * manifest was written (then it starts afresh).
 */
static enum lmr_result resume_plan(const json_t *previous, struct lmr_store_set *stores, struct lmr_job_plan *plan,
                                   struct lmr_store **work_store, bool *resumed, struct lmr_err *err)
{
    json_t *w = json_object_get(previous, "work");
    const char *root = lmr_json_str(w, "root", NULL), *key = lmr_json_str(w, "key", NULL);
    struct lmr_store *ws;
    *resumed = false;
    if (!root || !key)
        return LMR_OK;
    enum lmr_result r = lmr_store_set_get(stores, root, &ws, err);
    if (r)
        return r;
    char *mk = malloc(strlen(key) + 16);
    if (!mk)
        return LMR_ERR_NOMEM;
    sprintf(mk, "%smanifest.json", key);
    struct lmr_buf b;
    lmr_buf_init(&b, LMR_MANIFEST_MAX_BYTES);
    r = lmr_store_get(ws, mk, 0, LMR_STORE_TO_END, &b, err);
    free(mk);
    if (r == LMR_ERR_NOT_FOUND) {
        lmr_err_clear(err);
        lmr_buf_clean_up(&b);
        return LMR_OK;
    }
    json_t *m = r ? NULL : json_loadb(b.data ? b.data : "", b.len, 0, NULL);
    lmr_buf_clean_up(&b);
    struct lmr_job_plan back;
    if (!r && !m)
        r = lmr_fail(err, LMR_ERR_FORMAT, "the manifest of the unfinished job %s is not JSON; use --overwrite",
                     lmr_json_str(previous, "job_id", "?"));
    if (!r && !(r = lmr_plan_from_manifest(m, &back, err))) {
        lmr_plan_clean_up(plan);
        *plan = back;
        *work_store = ws;
        *resumed = true;
    }
    json_decref(m);
    return r;
}

/* --detach: wait (up to 60 s) until a coordinator holds the lease instead of this driver. */
static enum lmr_result wait_for_handover(struct lmr_store *out, const char *lease_key, const char *holder,
                                         const char *job_id, struct lmr_err *err)
{
    for (int i = 0; i < 600; i++) {
        json_t *rec = NULL;
        enum lmr_result r = lmr_lease_peek(out, lease_key, &rec, err);
        if (r)
            return r;
        bool taken = rec && strcmp(lmr_json_str(rec, "holder", ""), holder);
        json_decref(rec);
        if (taken)
            return LMR_OK;
        lmr_sleep_ms(100);
    }
    return lmr_fail(err, LMR_ERR_TIMEOUT,
                    "the coordinator did not take job %s over within 60 s; check the coordinator function's log",
                    job_id);
}

/* The coordinator function's event: the manifest, the lease to take over, the functions. */
static enum lmr_result invoke_coordinator(const struct run_options *o, const char *prefix,
                                          const struct lmr_job_plan *plan, struct lmr_store *work_store,
                                          const char *fingerprint, const char *holder, bool resume,
                                          const struct lmr_store_set *stores, const struct lmr_prices *prices,
                                          struct lmr_invoker *inv, struct lmr_err *err)
{
    char map_fn[128], reduce_fn[128], coord_fn[128];
    snprintf(map_fn, sizeof map_fn, "%s-mapper", prefix);
    snprintf(reduce_fn, sizeof reduce_fn, "%s-reducer", prefix);
    snprintf(coord_fn, sizeof coord_fn, "%s-coordinator", prefix);
    char *manifest_key = lmr_work_key(&plan->job, "manifest.json");
    json_t *stats = lmr_store_set_stats_json(stores);
    json_t *ev = json_pack("{s:s, s:{s:s, s:s?}, s:s, s:s, s:I, s:{s:s, s:s, s:s}, s:I, s:I, s:i, s:b, s:O}", "kind",
                           "coordinate", "manifest", "root", work_store->root_uri, "key", manifest_key, "fingerprint",
                           fingerprint, "holder", holder, "lease_duration_ms", (json_int_t)lease_duration_ms(),
                           "functions", "map", map_fn, "reduce", reduce_fn, "coordinator", coord_fn, "concurrency",
                           (json_int_t)o->concurrency, "max_attempts", (json_int_t)o->max_attempts, "round", 1,
                           "resume", resume, "earlier_requests", stats);
    if (ev && o->command)
        json_object_set_new(ev, "command", json_string(o->command));
    json_decref(stats);
    if (ev) {
        json_object_set_new(ev, "speculation",
                            json_pack("{s:b, s:f, s:f, s:I}", "enabled", o->speculation.enabled, "quantile",
                                      o->speculation.quantile, "factor", o->speculation.factor, "min_ms",
                                      (json_int_t)o->speculation.min_ms));
        json_object_set_new(ev, "prices", lmr_prices_json(prices));
        json_object_set_new(ev, "rebalance", json_string(o->rebalance ? o->rebalance : "auto"));
        if (o->command)
            json_object_set_new(ev, "command", json_string(o->command));
    }
    char *text = ev ? json_dumps(ev, JSON_COMPACT) : NULL;
    json_decref(ev);
    free(manifest_key);
    struct lmr_invoke_result ir;
    lmr_invoke_result_init(&ir, 64 * 1024);
    enum lmr_result r = text ? lmr_invoke(inv, coord_fn, text, strlen(text), LMR_INVOKE_EVENT, 0, &ir, err)
                             : lmr_fail(err, LMR_ERR_NOMEM, "out of memory building the coordinator's event");
    if (r)
        lmr_err_prefix(err, "starting the coordinator of job %s (function %s)", plan->job.job_id, coord_fn);
    lmr_invoke_result_clean_up(&ir);
    free(text);
    return r;
}

/* Does the job read or write S3? */
static bool uses_s3(const struct run_options *o)
{
    bool s3 = !strncmp(o->output, "s3://", 5) || (o->work && !strncmp(o->work, "s3://", 5));
    for (size_t i = 0; i < o->ninputs && !s3; i++)
        s3 = !strncmp(o->inputs[i], "s3://", 5);
    return s3;
}

/* A job that never started leaves no manifest (a resumed job's stays: it is the job's plan). */
static void delete_new_manifest(const struct lmr_job_plan *plan, struct lmr_store *work_store, bool resumed)
{
    char *mk = resumed ? NULL : lmr_work_key(&plan->job, "manifest.json");
    if (mk)
        lmr_store_delete(work_store, (const char *const *)&mk, 1, NULL);
    free(mk);
}

/* The job record said it ended (succeeded, failed or cancelled): give the coordinator function the
 * moment it needs to end (it stores its log after the record: killed in that write, it would leave a
 * temporary file in the work folder that no cleanup lists) before the service stops, at most
 * COORDINATOR_END_WAIT_MS; the
 * service wakes this wait when an invocation ends. Not when speculative losers still run: the
 * coordinator would wait for them, and the service's end is what stops them (the driver removes
 * their data afterwards). */
#define COORDINATOR_END_WAIT_MS 2000
static void let_coordinator_finish(struct lmr_lambda_service *svc, const json_t *report)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(report, "invocations"), i, v)
    {
        if (json_is_true(json_object_get(v, "unfinished")))
            return;
    }
    lmr_lambda_service_wait_idle(svc, COORDINATOR_END_WAIT_MS);
}

static int run_stage(struct run_options *o)
{
    struct lmr_err err = {0};
    enum lmr_result r;
    double t0 = lmr_mono_ms();
    const struct lmr_job_ops *ops;
    struct lmr_job_plan plan = {0};
    struct lmr_store_set stores = {0};
    struct lmr_store *out_store = NULL, *work_store = NULL;
    struct lmr_lambda_service *svc = NULL;
    struct lmr_invoker *inv = NULL;
    json_t *report = NULL, *previous = NULL;
    struct lmr_lease *lease = NULL;
    char *lease_key = NULL;
    int status = 1;
    bool job_ended = false;                        /* the coordinator wrote the job's end in its record */
    bool tasks_added = false;                      /* the mapper and reducer functions are in the embedded service */
    struct lmr_detach_local det = {.lock_fd = -1}; /* --detach on the embedded default */
    const char *prefix = o->function_prefix ? o->function_prefix : LMR_DEFAULT_FUNCTION_PREFIX;

    /* The job and its arguments, validated here before anything is written. */
    if ((r = lmr_job_find(o->job, &ops, &err))) { /* an argument error: exit 2, as for the options */
        fail(&err, r);
        return 2;
    }
    if ((r = check_output_outside_inputs(o, &err)))
        return fail(&err, r);
    if (ops->setup) {
        void *state = NULL;
        char msg[512] = "";
        if (ops->setup(&state, o->args, msg, sizeof msg)) {
            fprintf(stderr, "lambdamr run: job '%s': %s\n", ops->name, msg);
            return 2;
        }
        if (ops->teardown && state)
            ops->teardown(state);
    }
    /* --detach on the embedded default: the background serve's folder must be usable, and a running
     * serve must have this environment's AWS settings if the job uses S3 (checked before writing). */
    if (o->detach && strcmp(o->backend, "aws") && !o->dry_run &&
        ((r = lmr_background_dir(det.dir, sizeof det.dir, &err)) ||
         (r = lmr_detach_local_check(det.dir, uses_s3(o), &err))))
        return fail(&err, r);

    /* The embedded default: the service and the coordinator's environment start first, so that the
     * coordinator's Init overlaps the planning below. */
    bool embedded = strcmp(o->backend, "aws") && !o->detach && !o->dry_run;
    if (embedded && (r = start_service(o, &svc, &err)))
        goto out;

    /* Plan (the planner lists, splits, packs and places the job), check the output, write the manifest. */
    struct lmr_plan_request req = {.job_name = o->job,
                                   .args = o->args,
                                   .map_only = ops->map_only,
                                   .inputs = o->inputs,
                                   .ninputs = o->ninputs,
                                   .output_uri = o->output,
                                   .work_uri = o->work,
                                   .split_size_bytes = o->split_size,
                                   .split_size_given = o->split_given,
                                   .max_mappers = o->mappers,
                                   .reducers = o->reducers,
                                   .memory_mb = o->memory_mb,
                                   .concurrency = o->concurrency,
                                   .combining = ops->combine != NULL,
                                   .assume_bytes = o->assume_bytes,
                                   .assume_objects = o->assume_objects,
                                   .range_ops = lmr_job_wants_ranges(ops) ? ops : NULL,
                                   .exchange = o->exchange,
                                   .merge_fan_in = o->merge_fan_in};
    if ((r = lmr_plan_job(&req, &stores, &plan, &out_store, &work_store, &err)))
        goto out;
    if (o->dry_run) {
        status = dry_run(o, &plan, &stores, &err);
        r = status ? LMR_ERR_INVALID : LMR_OK;
        goto out;
    }
    /* The output's lease: one job at a time; then what an earlier job left there. */
    char fingerprint[17];
    lmr_plan_fingerprint(&req, fingerprint);
    lease_key = lmr_output_key(&plan.job, "_lambdamr/lease.json");
    if (!lease_key) {
        r = LMR_ERR_NOMEM;
        goto out;
    }
    if ((r = lmr_lease_peek(out_store, lease_key, &previous, &err)))
        goto out;
    /* An unfinished job on this output: the same command resumes it, another is refused. */
    bool resumed = false;
    if (previous && !strcmp(lmr_json_str(previous, "status", ""), "running")) {
        if (!strcmp(lmr_json_str(previous, "fingerprint", ""), fingerprint)) {
            if ((r = resume_plan(previous, &stores, &plan, &work_store, &resumed, &err)))
                goto out;
        } else if (!o->overwrite && !lmr_lease_record_held(previous, lmr_wall_ms())) {
            /* (a job that still holds its lease is refused below, as running) */
            r = lmr_fail(&err, LMR_ERR_EXISTS,
                         "output '%s' holds the unfinished job %s, started by a different command; run that command "
                         "again to resume it, or add --overwrite to replace it",
                         o->output, lmr_json_str(previous, "job_id", "?"));
            goto out;
        }
    }
    struct lmr_lease_options lo = {.store = out_store,
                                   .key = lease_key,
                                   .output_uri = o->output,
                                   .job_id = plan.job.job_id,
                                   .fingerprint = fingerprint,
                                   .work_root = plan.job.work.root,
                                   .work_key = plan.job.work.key,
                                   .duration_ms = lease_duration_ms()};
    struct lmr_output_check oc = {.store = out_store,
                                  .prefix = plan.job.output.key,
                                  .uri = o->output,
                                  .overwrite = o->overwrite,
                                  .previous = previous,
                                  .job_id = plan.job.job_id,
                                  .stores = &stores};
    struct lmr_output_state ost;
    /* A refused job writes nothing: without --overwrite, check before taking the lease. */
    if (!resumed && !o->overwrite && (r = lmr_output_prepare(&oc, &ost, &err)))
        goto out;
    json_decref(previous);
    previous = NULL;
    /* A resumed job's last coordinator may still be on its way out (it stops when its service is gone). */
    for (int wait = 0; (r = lmr_lease_acquire(&lo, &lease, &previous, &err)) == LMR_ERR_EXISTS && resumed && wait < 50;
         wait++)
        lmr_sleep_ms(100);
    if (r)
        goto out;
    oc.previous = previous;
    if (!resumed && (r = lmr_output_prepare(&oc, &ost, &err))) {
        struct lmr_err lerr = {0};
        if (lmr_lease_restore(lease, previous, &lerr))
            fprintf(stderr, "lambdamr run: %s\n", lerr.msg);
        lmr_lease_destroy(lease);
        lease = NULL;
        goto out;
    }
    if (!resumed && (r = lmr_plan_write_manifest(&plan, work_store, &err)))
        goto out;
    if (resumed && !o->json)
        fprintf(stderr, "lambdamr run: resuming job %s (the same command on the same output)\n", plan.job.job_id);
    plan.plan_ms = lmr_mono_ms() - t0;

    /* Functions. */
    if (!strcmp(o->backend, "aws")) {
        /* The deployed functions (NAME-mapper, NAME-reducer) through the Lambda Invoke API. */
        struct lmr_aws_invoker_options ao = {0};
        if ((r = lmr_aws_invoker_new(&ao, &inv, &err)))
            goto out;
    } else {
        static const char *const cmds[] = {"mapper", "combiner", "reducer"};
        for (int i = 0; i < 3; i++) /* a script left behind is the usual first mistake */
            lmr_task_root_warn_unshipped(stderr, cmds[i], lmr_job_arg(o->args, cmds[i]), o->files, o->nfiles);
        /* The job's plugin and --file into a task root laid out as the function package is. */
        if ((lmr_job_is_plugin_name(o->job) || o->nfiles) &&
            (r = lmr_task_root_make(lmr_job_is_plugin_name(o->job) ? o->job : NULL, o->files, o->nfiles, &o->task_root,
                                    &err)))
            goto out;
        if (o->detach) {
            /* The job goes to this user's background serve: it outlives this process. */
            char path[4096];
            struct lmr_detach_local_options dlo = {.bootstrap = path,
                                                   .task_root = o->task_root,
                                                   .memory_mb = o->memory_mb,
                                                   .timeout_s = o->timeout_s,
                                                   .concurrency = o->concurrency,
                                                   .uses_s3 = uses_s3(o)};
            if ((r = find_bootstrap(path, sizeof path, &err)) ||
                (r = lmr_detach_local_prepare(&dlo, &det, &inv, &err))) {
                delete_new_manifest(&plan, work_store, resumed); /* nothing ran: leave nothing */
                goto out;
            }
            prefix = det.prefix;
        } else if ((r = add_task_functions(o, svc, &inv, &err))) {
            goto out;
        }
        tasks_added = true;
    }

    /* Hand the job to the coordinator function, then follow it from its records. */
    struct lmr_prices prices;
    if ((r = load_prices(o, &prices, &err)))
        goto out;
    struct progress_state ps = {.tty = !o->json && isatty(STDERR_FILENO), .t0 = t0};
    if ((r = invoke_coordinator(o, prefix, &plan, work_store, fingerprint, lmr_lease_holder(lease), resumed, &stores,
                                &prices, inv, &err))) {
        delete_new_manifest(&plan, work_store, resumed); /* nothing ran: leave nothing */
        goto out;
    }
    if (svc)
        prestart_tasks(o, &plan, svc);
    if (o->detach) {
        /* Return once the coordinator has taken the lease over from us. */
        r = wait_for_handover(out_store, lease_key, lmr_lease_holder(lease), plan.job.job_id, &err);
        lmr_detach_local_release(&det); /* the serve now runs a job: it does not stop for idleness */
        lmr_lease_destroy(lease);
        lease = NULL;
        if (r)
            goto out;
        if (o->json) {
            json_t *j =
                json_pack("{s:s, s:s, s:s}", "job_id", plan.job.job_id, "output", o->output, "status", "running");
            if (j && det.serve.pid)
                json_object_set_new(j, "serve",
                                    json_pack("{s:i, s:i}", "pid", det.serve.pid, "port", (int)det.serve.port));
            char *text = j ? json_dumps(j, JSON_INDENT(2)) : NULL;
            printf("%s\n", text ? text : "{}");
            free(text);
            json_decref(j);
        } else {
            printf("job %s started on %s\nfollow it:   lambdamr status %s --watch\nwait for it: lambdamr wait "
                   "%s\ncancel it:   lambdamr cancel %s\n",
                   plan.job.job_id, o->output, o->output, o->output, o->output);
            if (det.serve.pid)
                printf("it runs in the background lambdamr serve (pid %d, port %u; log %s/serve.log)\n", det.serve.pid,
                       (unsigned)det.serve.port, det.dir);
        }
        status = 0;
        goto out;
    }
    lmr_lease_destroy(lease); /* handed over: the coordinator holds and releases it */
    lease = NULL;
    char *record_key = lmr_work_key(&plan.job, "job.json"),
         *report_key = lmr_output_key(&plan.job, "_lambdamr/report.json");
    struct lmr_follow_options fo = {.work_store = work_store,
                                    .record_key = record_key,
                                    .output_store = out_store,
                                    .lease_key = lease_key,
                                    .report_key = report_key,
                                    .job_id = plan.job.job_id,
                                    .progress = draw_progress,
                                    .progress_user_data = &ps};
    r = record_key && report_key ? lmr_follow_job(&fo, &report, &err) : LMR_ERR_NOMEM;
    /* The record's end (not an orphaned job's): the coordinator is storing its log now. */
    job_ended = r == LMR_OK || r == LMR_ERR_CANCELLED || r == LMR_ERR_FUNCTION;
    free(record_key);
    free(report_key);
    if (r)
        goto out;
    if (o->html && (r = write_html(out_store, &plan.job, report, &err)))
        goto out;
    lmr_report_print_as(stdout, report, o->json);
    fflush(stdout); /* the summary is final: show it now, not after the service's stop */
    status = 0;
out:
    if (status && r)
        fail(&err, r);
    lmr_detach_local_release(&det);
    lmr_invoker_destroy(inv);
    /* The functions' logs (stdout/stderr and REPORT lines) are kept only when the job failed after its
     * functions were there (a job refused while planning ran nothing worth reading). */
    char *log_dir = svc ? strdup(lmr_lambda_service_log_dir(svc)) : NULL;
    bool local = svc != NULL;
    if (local && job_ended)
        let_coordinator_finish(svc, report);
    lmr_lambda_service_destroy(svc);
    if (local && status == 0 && report) /* superseded attempts died with the service: their data goes too */
        lmr_coordinator_remove_superseded(work_store, &plan.job, report);
    if (log_dir && (status == 0 || !tasks_added))
        lmr_remove_tree(log_dir, NULL);
    else if (log_dir)
        fprintf(stderr, "lambdamr run: the function logs are in %s\n", log_dir);
    free(log_dir);
    json_decref(report);
    if (o->task_root)
        lmr_remove_tree(o->task_root, NULL);
    free(o->task_root);
    o->task_root = NULL;
    if (lease) /* failed before the coordinator ran (it releases the lease itself) */
        lmr_lease_release(lease, "failed", NULL);
    lmr_lease_destroy(lease);
    json_decref(previous);
    free(lease_key);
    lmr_plan_clean_up(&plan);
    lmr_store_set_clean_up(&stores);
    return status;
}

/*
 * The job as stages (driver/stages.h): most jobs are one; a join picks broadcast or reduce-side,
 * bdb-q3 may run the reduce-side join and then its aggregation. Each stage is planned, run and
 * committed as a job of its own; a temporary stage's output is deleted after the last stage.
 */
static int run_job(struct run_options *o)
{
    struct lmr_err err = {0};
    struct lmr_stage_list list;
    struct lmr_stage_request sr = {.job = o->job,
                                   .args = o->args,
                                   .inputs = o->inputs,
                                   .ninputs = o->ninputs,
                                   .sides = o->sides,
                                   .nsides = o->nsides,
                                   .output = o->output,
                                   .memory_mb = o->memory_mb,
                                   .estimate_only = o->assume_bytes != 0};
    enum lmr_result r = lmr_stages_plan(&sr, &list, &err);
    if (r) {
        fprintf(stderr, "lambdamr run: %s\n", err.msg[0] ? err.msg : lmr_result_str(r));
        return 2;
    }
    if (o->detach && list.n > 1) {
        fprintf(stderr,
                "lambdamr run: --detach runs one-stage jobs, and this %s job has %zu stages (each reads the one "
                "before); run it without --detach (under nohup if the terminal may go away)%s\n",
                o->job, list.n, list.strategy ? ", or pick the one-stage --join broadcast" : "");
        lmr_stages_clean_up(&list);
        return 2;
    }
    struct run_options base = *o;
    int status = 0;
    for (size_t i = 0; i < list.n && !status; i++) {
        struct lmr_stage *s = &list.stages[i];
        if (o->dry_run && i > 0 && list.stages[i - 1].temporary) {
            if (!o->json)
                printf("stage %zu/%zu: %s reads stage %zu's output, which a dry run does not write: not estimated\n",
                       i + 1, list.n, s->job, i);
            break;
        }
        if (list.n > 1 && !o->json)
            printf("stage %zu/%zu: %s%s%s\n", i + 1, list.n, s->job, list.strategy ? ", join strategy " : "",
                   list.strategy ? list.strategy : "");
        else if (list.strategy && !o->json)
            printf("join strategy: %s\n", list.strategy);
        o->job = s->job;
        o->args = s->args;
        o->inputs = s->inputs;
        o->ninputs = s->ninputs;
        o->output = s->output;
        o->overwrite = base.overwrite || s->temporary;
        status = run_stage(o);
    }
    for (size_t i = 0; i < list.n && !o->dry_run; i++)
        if (list.stages[i].temporary && lmr_stages_remove_output(list.stages[i].output, &err))
            fprintf(stderr, "lambdamr run: could not delete the intermediate stage output '%s': %s\n",
                    list.stages[i].output, err.msg);
    if (!status && !o->dry_run && !o->json && !strcmp(base.job, "bdb-q3") &&
        (r = lmr_stages_print_q3_top(stdout, base.output, &err)))
        fprintf(stderr, "lambdamr run: reading the top row of '%s': %s\n", base.output, err.msg);
    o->job = base.job;
    o->args = base.args;
    o->inputs = base.inputs;
    o->ninputs = base.ninputs;
    o->output = base.output;
    lmr_stages_clean_up(&list);
    return status;
}

int lmr_cmd_run(int argc, char **argv)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    struct run_options o = {
        .split_size = LMR_PLAN_DEFAULT_SPLIT_BYTES,
        .memory_mb = LMR_MEMORY_DEFAULT_MB,
        .timeout_s = 900,
        .concurrency = 0,
        .max_attempts = 3,
        .speculation = lmr_speculation_defaults(),
        .backend = "local",
        .args = lmr_job_args_new(),
    };
    if (!o.args)
        return 1;
    lmr_estimate_model_defaults(&o.model);
    o.command = lmr_shell_join("lambdamr", argc, argv);
    int rc = parse_args(argc, argv, &o);
    if (rc) {
        free(o.command);
        free(o.inputs);
        free(o.sides);
        free(o.files);
        lmr_job_args_destroy(o.args);
        return rc == 1 ? 0 : rc;
    }
    if (!o.concurrency)
        o.concurrency = !strcmp(o.backend, "aws") ? 100 : (uint32_t)(ncpu > 0 ? ncpu : 1);
    signal(SIGPIPE, SIG_IGN);
    struct lmr_err err = {0};
    struct lmr_backend_aws_options bo = {o.function_prefix, o.inputs, o.ninputs, o.output, o.work, o.memory_given};
    if (!strcmp(o.backend, "aws") && !o.dry_run && lmr_backend_aws_prepare(&bo, &o.memory_mb, &err)) {
        fprintf(stderr, "lambdamr run: %s\n", err.msg);
        rc = err.code == LMR_ERR_INVALID ? 2 : 1;
    } else {
        rc = run_job(&o);
    }
    free(o.command);
    free(o.sides);
    free(o.inputs);
    free(o.files);
    lmr_job_args_destroy(o.args);
    return rc;
}
