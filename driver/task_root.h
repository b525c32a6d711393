/*
 * The local functions' task root: what a deployed function package holds beside its binary,
 * made for one `lambdamr run` on the embedded default (INTERFACES: plugins/NAME.so for the job's
 * plugin, files/NAME for each --file). Functions started with LAMBDA_TASK_ROOT set to it find
 * plugins and shipped files exactly as they do on AWS.
 */
#ifndef LMR_DRIVER_TASK_ROOT_H
#define LMR_DRIVER_TASK_ROOT_H

#include <stddef.h>

#include "util/result.h"

#define LMR_TASK_ROOT_MAX_FILES 256

/**
 * Make a new folder under $TMPDIR (or /tmp) with plugins/BASE.so (a copy of plugin, when not
 * NULL) and files/BASE for each of files (copies keeping their mode). Two files with one base
 * name, or a missing file, are errors. @return LMR_OK and *dir_out (caller frees; remove it with
 * lmr_remove_tree after the run).
 */
enum lmr_result lmr_task_root_make(const char *plugin, char *const *files, size_t nfiles, char **dir_out,
                                   struct lmr_err *err);

#endif
