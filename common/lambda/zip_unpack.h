/*
 * Unpacking a Lambda deployment package (a zip) into a task root, safely: every entry must land
 * inside the new directory. Refused, before anything is written: names that are absolute or climb
 * out with "..", symbolic links and other special files (devices, FIFOs), duplicate names, more
 * entries or more unzipped bytes than the limits. The sizes a zip declares are checked first and
 * the bytes actually inflated are counted again while writing, so a lying header cannot grow the
 * tree past the limit either. On any failure the destination directory is removed again: a caller
 * sees the whole tree or nothing.
 *
 * File modes come from the zip's Unix attributes (permission bits only: no setuid, setgid or
 * sticky bit); entries without Unix attributes get 0644, directories 0755. As on Lambda, a
 * `bootstrap` that is not executable is the package's problem, found when it is started.
 */
#ifndef LMR_LAMBDA_ZIP_UNPACK_H
#define LMR_LAMBDA_ZIP_UNPACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/result.h"

/* Lambda's limit on a function's unzipped deployment package ("Unzipped size must be smaller than
 * 262144000 bytes"). */
#define LMR_ZIP_UNZIPPED_MAX_BYTES 262144000ull
#define LMR_ZIP_ENTRIES_MAX 100000ull /* ours: a cap on the entries a zip may declare */
#define LMR_ZIP_NAME_MAX_BYTES 4096   /* an entry name longer than PATH_MAX is refused */

struct lmr_zip_limits {
    uint64_t max_unzipped_bytes; /* Optional, default LMR_ZIP_UNZIPPED_MAX_BYTES. */
    uint64_t max_entries;        /* Optional, default LMR_ZIP_ENTRIES_MAX. */
};

/* What an unpacked zip held. */
struct lmr_zip_summary {
    uint64_t entries;        /* files and directories */
    uint64_t files;          /* regular files written */
    uint64_t unzipped_bytes; /* bytes written */
    bool has_bootstrap;      /* a regular file named "bootstrap" at the root */
};

/**
 * Unpack the zip held in memory (zip, len bytes) into dest_dir, which must not exist yet (its
 * parent must). limits and summary are optional.
 * @return LMR_ERR_FORMAT if the data is not a readable zip (or an entry fails its CRC),
 *         LMR_ERR_INVALID for an unsafe or duplicate entry (err names it),
 *         LMR_ERR_TOO_LARGE when the entries or unzipped bytes exceed the limits,
 *         LMR_ERR_EXISTS if dest_dir exists, LMR_ERR_IO, LMR_ERR_NOMEM.
 *         On failure dest_dir does not exist afterwards.
 */
enum lmr_result lmr_zip_unpack_buffer(const void *zip, size_t len, const char *dest_dir,
                                      const struct lmr_zip_limits *limits, struct lmr_zip_summary *summary,
                                      struct lmr_err *err);

/** The same for a zip file on disk (zip_path). */
enum lmr_result lmr_zip_unpack_file(const char *zip_path, const char *dest_dir, const struct lmr_zip_limits *limits,
                                    struct lmr_zip_summary *summary, struct lmr_err *err);

#endif
