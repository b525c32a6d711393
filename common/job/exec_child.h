/*
 * A child process of an exec job (Hadoop Streaming's idea): records go to its stdin, lines come
 * back from its stdout, its stderr's first bytes are kept for the error message.
 *
 * No deadlock: every write services both directions (poll on stdin-writable, stdout- and
 * stderr-readable), so a child that writes more than it reads, or never reads, cannot stall the
 * task. Memory stays bounded: the output buffer holds at most one line of max_line_bytes plus one
 * read, the stderr head LMR_EXEC_STDERR_HEAD_BYTES. Pipes are enlarged (F_SETPIPE_SZ) and data
 * moves in large writes and reads: no system call per line.
 */
#ifndef LMR_JOB_EXEC_CHILD_H
#define LMR_JOB_EXEC_CHILD_H

#include <stddef.h>

#include "lambdamr/job.h"
#include "util/result.h"

#define LMR_EXEC_PIPE_BYTES (1024 * 1024) /* asked of F_SETPIPE_SZ for stdin and stdout */
#define LMR_EXEC_READ_BYTES (256 * 1024)  /* one read of the child's stdout */
#define LMR_EXEC_STDERR_HEAD_BYTES 2048   /* kept from the child's stderr for errors */

/* Receives each output line (without "\n"); return non-zero with err set to stop the child. */
typedef enum lmr_result (*lmr_exec_line_fn)(void *user, struct lmr_slice line, struct lmr_err *err);

struct lmr_exec_child_options {
    const char *command;      /* Required: run as /bin/sh -c COMMAND */
    const char *what;         /* Required: "mapper", "combiner" or "reducer", for messages */
    const char *context;      /* Optional: " (task m-00001, input …)" appended to messages */
    const char *const *env;   /* Optional: extra "NAME=VALUE", NULL-terminated, after environ */
    const char *cwd;          /* Optional: the child's working directory */
    const char *path_prefix;  /* Optional: a folder put first in the child's PATH */
    size_t max_line_bytes;    /* Required: the longest output line accepted */
    lmr_exec_line_fn on_line; /* Required */
    void *user;
};

struct lmr_exec_child;

/** Start the child. SIGPIPE is ignored in this process from now on (restored in the child). */
enum lmr_result lmr_exec_child_start(const struct lmr_exec_child_options *o, struct lmr_exec_child **out,
                                     struct lmr_err *err);
/**
 * Write len bytes to the child's stdin, delivering output lines meanwhile. A child that has
 * closed its stdin (exited, or never reads) makes the rest of the input go nowhere: that is
 * not an error here; its exit status decides in finish. @return an on_line error, or I/O errors.
 */
enum lmr_result lmr_exec_child_write(struct lmr_exec_child *c, const void *data, size_t len, struct lmr_err *err);
/**
 * Close the child's stdin, deliver the rest of its output, wait for it. @return LMR_ERR_FUNCTION
 * naming the command, the exit status or signal and the first lines of its stderr when it did not
 * exit with status 0; an on_line error; or an unterminated last line too long.
 */
enum lmr_result lmr_exec_child_finish(struct lmr_exec_child *c, struct lmr_err *err);
/** Kill (if still running), reap and free. NULL-safe. */
void lmr_exec_child_destroy(struct lmr_exec_child *c);

#endif
