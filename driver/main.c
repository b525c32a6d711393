/* lambdamr: the command-line entry point. Dispatches to the subcommands in driver/cmd_*.c. */
#include <stdio.h>
#include <string.h>

#include "commands.h"

struct command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
};

static const struct command commands[] = {
    {"run", lmr_cmd_run, "run a batch MapReduce job (wordcount, scan, aggregate, or a plugin)"},
    {"stream", lmr_cmd_stream, "process a Kinesis stream, stdin or a growing file in tumbling windows"},
    {"put", lmr_cmd_put, "put records into a Kinesis stream (PutRecords in batches)"},
    {"report", lmr_cmd_report, "show a job's report: summary, JSON, or an HTML page with a timeline and cost"},
    {"gen", lmr_cmd_gen, "generate a deterministic data set (text, bdb)"},
    {"status", lmr_cmd_status,
     "the job an output holds: status, phase, tasks, elapsed, bytes, cost so far (--json, --watch)"},
    {"wait", lmr_cmd_wait, "wait for the job an output holds; the exit status is the job's"},
    {"cancel", lmr_cmd_cancel, "cancel the job an output holds (it removes its own parts)"},
    {"cleanup", lmr_cmd_cleanup, "remove the work data of failed or abandoned jobs on an output"},
    {"logs", lmr_cmd_logs, "the log lines of the job an output holds (--task m-00003 for one task)"},
    {"serve", lmr_cmd_serve, "run the embedded Lambda-compatible service standalone (--stop: the background one)"},
    {"package", lmr_cmd_package, "write the function package (a zip for Lambda's provided.al2023)"},
    {"deploy", lmr_cmd_deploy, "create or update the functions, role and log groups on AWS Lambda"},
    {"undeploy", lmr_cmd_undeploy, "remove what deploy created"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: lambdamr COMMAND [OPTIONS]\n\n"
               "Serverless MapReduce and stream processing: tasks run as Lambda functions, on this\n"
               "machine by default (embedded runtime, a directory as the store) or on AWS.\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n'lambdamr COMMAND --help' shows a command's options.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("lambdamr 0.1.0\n");
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "lambdamr: unknown command '%s'; run 'lambdamr --help' for the list\n", argv[1]);
    return 2;
}
