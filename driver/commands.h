/* The lambdamr subcommands. Each takes the arguments after its name and returns the exit status. */
#ifndef LMR_DRIVER_COMMANDS_H
#define LMR_DRIVER_COMMANDS_H

int lmr_cmd_run(int argc, char **argv);     /* batch job: plan, map, shuffle, reduce, report */
int lmr_cmd_serve(int argc, char **argv);   /* standalone embedded Lambda-compatible service */
int lmr_cmd_gen(int argc, char **argv);     /* deterministic data sets */
int lmr_cmd_stream(int argc, char **argv);  /* real-time stream job with tumbling windows */
int lmr_cmd_put(int argc, char **argv);     /* Kinesis producer */
int lmr_cmd_status(int argc, char **argv);  /* the job an output holds: status, phase, progress */
int lmr_cmd_wait(int argc, char **argv);    /* wait for it; exit status = the job's */
int lmr_cmd_cancel(int argc, char **argv);  /* ask its coordinator to stop it */
int lmr_cmd_cleanup(int argc, char **argv); /* remove work data of failed or abandoned jobs */
int lmr_cmd_logs(int argc, char **argv);    /* the log lines the job's functions stored */
int lmr_cmd_report(int argc, char **argv);  /* a finished job's report: summary, JSON, HTML */
int lmr_cmd_package(int argc, char **argv); /* the function package: a zip for Lambda's provided.al2023 */

#endif
