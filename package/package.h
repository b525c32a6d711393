/*
 * The function package: one zip that runs on Lambda's provided.al2023 runtime as it is.
 *
 * provided.al2023 is a bare Amazon Linux 2023 (glibc 2.34, no libcurl, jansson, zstd, xxhash
 * ...), and this project builds on Debian (glibc 2.36). A binary linked against 2.36 does not
 * start under 2.34's loader, so the package carries its own: the binary, every library the
 * host's loader resolves for it, and that loader (ld-linux-*.so.*). The entry point Lambda runs
 * is a /bin/sh script that execs the binary through the packaged loader with only the
 * package's libraries (--library-path, --inhibit-cache); nothing of the image's /lib64 is used.
 *
 * Layout (the zip's root is Lambda's task root, LAMBDA_TASK_ROOT=/var/task):
 *   bootstrap              the entry point (a /bin/sh script)
 *   bin/lambdamr-function  the function binary (build/bin/bootstrap; _HANDLER picks the role)
 *   lib/                   every shared library it loads, and the dynamic loader
 *   plugins/NAME.so        job plugins (--plugin); libraries they need that lib/ lacks go to lib/
 *   files/NAME             shipped scripts and executables (--file)
 *
 * The zip is deterministic: entries sorted by name, one fixed timestamp (1980-01-01 00:00, the
 * first DOS date), fixed Unix modes (0755 for executables, 0644 for other files), fixed deflate
 * level, so the same inputs give the same bytes.
 */
#ifndef LMR_PACKAGE_PACKAGE_H
#define LMR_PACKAGE_PACKAGE_H

#include <stddef.h>
#include <stdint.h>

#include "lambda/limits.h"
#include "util/result.h"

#define LMR_PACKAGE_ENTRY_POINT "bootstrap"
#define LMR_PACKAGE_FUNCTION_PATH "bin/lambdamr-function"
#define LMR_PACKAGE_MAX_ENTRIES 4096

struct lmr_package_options {
    const char *function_path;  /* Required: the function binary (build/bin/bootstrap) */
    const char *out_path;       /* Required: the zip; replaced whole, or left as it was on error */
    const char *const *plugins; /* Optional: job plugins (.so), n_plugins of them */
    size_t n_plugins;
    const char *const *files; /* Optional: files for files/, n_files of them */
    size_t n_files;
};

/** One entry of the zip. */
struct lmr_package_entry {
    char *name;          /* path inside the zip ("lib/libc.so.6") */
    char *source;        /* the file on this machine it was read from; NULL for the generated entry point */
    uint64_t size_bytes; /* unzipped size */
    uint32_t mode;       /* Unix permission bits stored in the zip (0755 or 0644) */
};

/** What was written. */
struct lmr_package {
    struct lmr_package_entry *entries; /* sorted by name */
    size_t n_entries;
    uint64_t unzipped_bytes; /* sum of the entries' sizes */
    uint64_t zipped_bytes;   /* size of the zip file */
    char arch[16];           /* Lambda's architecture name: "x86_64" or "arm64" */
    char glibc_version[32];  /* of the packaged libc ("2.36"), or "unknown" */
    char loader[64];         /* base name of the packaged dynamic loader */
};

/**
 * Build the package described by o and write it to o->out_path. A package that would be over
 * Lambda's unzipped limit (LMR_LAMBDA_UNZIPPED_MAX_BYTES) is refused before anything is
 * written; the zipped size is only known afterwards, so the caller compares zipped_bytes with
 * LMR_LAMBDA_ZIP_DIRECT_MAX_BYTES (over it, the zip can still be deployed from S3).
 * out is caller-owned; free with lmr_package_clean_up.
 */
enum lmr_result lmr_package_write(const struct lmr_package_options *o, struct lmr_package *out, struct lmr_err *err);

/** Free what lmr_package_write filled in (NULL-safe). */
void lmr_package_clean_up(struct lmr_package *p);

/**
 * The entry point script for a package whose loader is named loader (base name): it execs
 * $LAMBDA_TASK_ROOT/lib/LOADER with --inhibit-cache --library-path $LAMBDA_TASK_ROOT/lib on
 * bin/lambdamr-function. Written to out (NUL-terminated). @return LMR_ERR_TOO_LARGE if cap is short.
 */
enum lmr_result lmr_package_entry_script(const char *loader, char *out, size_t cap, struct lmr_err *err);

#endif
