/*
 * Deployment package unpacking on libzip (see zip_unpack.h). Two passes: the first reads only the
 * central directory (names, types, declared sizes) and refuses anything unsafe before a byte is
 * written; the second creates the tree with openat/mkdirat below one directory descriptor,
 * never following a symbolic link (O_NOFOLLOW) and never replacing a file (O_EXCL), and counts
 * the inflated bytes against the limit again.
 */
#define _GNU_SOURCE
#include "lambda/zip_unpack.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

#include "util/misc.h"

#define COPY_CHUNK_BYTES 65536

enum entry_kind { ENTRY_FILE, ENTRY_DIR, ENTRY_SKIP };

/*
 * Normalise an entry name into norm ("a//./b/" -> "a/b"). @return LMR_ERR_INVALID (with err) for
 * an absolute name or a ".." component; *kind becomes ENTRY_SKIP for a name that is the root
 * itself ("./").
 */
static enum lmr_result normalise_name(const char *name, char *norm, size_t cap, enum entry_kind *kind,
                                      struct lmr_err *err)
{
    size_t n = strlen(name);
    if (n == 0)
        return lmr_fail(err, LMR_ERR_INVALID, "the zip has an entry with an empty name");
    if (n >= LMR_ZIP_NAME_MAX_BYTES || n >= cap)
        return lmr_fail(err, LMR_ERR_INVALID, "the zip has an entry name of %zu bytes; at most %d are allowed", n,
                        LMR_ZIP_NAME_MAX_BYTES - 1);
    if (name[0] == '/')
        return lmr_fail(err, LMR_ERR_INVALID,
                        "zip entry '%.200s' has an absolute path and would land outside the task root", name);
    size_t out = 0;
    const char *p = name;
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len == 2 && p[0] == '.' && p[1] == '.')
            return lmr_fail(err, LMR_ERR_INVALID,
                            "zip entry '%.200s' climbs out with '..' and would land outside the task root", name);
        if (len && !(len == 1 && p[0] == '.')) {
            if (out)
                norm[out++] = '/';
            memcpy(norm + out, p, len);
            out += len;
        }
        p += len;
        if (*p == '/')
            p++;
    }
    norm[out] = '\0';
    if (!out)
        *kind = ENTRY_SKIP;
    else if (name[n - 1] == '/')
        *kind = ENTRY_DIR;
    return LMR_OK;
}

/* Type and mode of entry i from its external attributes. */
static enum lmr_result entry_type(zip_t *za, zip_uint64_t i, const char *name, enum entry_kind *kind, mode_t *mode,
                                  struct lmr_err *err)
{
    zip_uint8_t opsys = 0;
    zip_uint32_t attr = 0;
    *mode = 0644;
    if (zip_file_get_external_attributes(za, i, 0, &opsys, &attr) != 0)
        return LMR_OK;
    if (opsys == ZIP_OPSYS_UNIX) {
        mode_t m = (mode_t)(attr >> 16);
        switch (m & S_IFMT) {
        case 0: /* some archivers leave the type out */
        case S_IFREG:
            break;
        case S_IFDIR:
            *kind = ENTRY_DIR;
            break;
        case S_IFLNK:
            return lmr_fail(err, LMR_ERR_INVALID,
                            "zip entry '%.200s' is a symbolic link; links could point outside the task root and are "
                            "refused: store the file itself",
                            name);
        default:
            return lmr_fail(err, LMR_ERR_INVALID,
                            "zip entry '%.200s' is a special file (device, FIFO or socket); only regular files and "
                            "directories are allowed",
                            name);
        }
        if (*kind == ENTRY_FILE && (m & 0777))
            *mode = (m & 0777) | 0400;
    } else if (attr & 0x10) { /* MS-DOS directory attribute */
        *kind = ENTRY_DIR;
    }
    return LMR_OK;
}

/* Open (creating as needed) the directory that holds the last component of norm, below root_fd.
 * @return the descriptor, or -1 with err set; *leaf points at the last component in norm. */
static int open_parent(int root_fd, char *norm, const char **leaf, struct lmr_err *err)
{
    int fd = dup(root_fd);
    char *p = norm;
    for (char *slash = strchr(p, '/'); fd >= 0 && slash; slash = strchr(p, '/')) {
        *slash = '\0';
        if (mkdirat(fd, p, 0755) != 0 && errno != EEXIST) {
            int e = errno;
            *slash = '/';
            close(fd);
            lmr_fail(err, LMR_ERR_IO, "cannot create directory '%.200s' of the task root: %s", norm, strerror(e));
            return -1;
        }
        int next = openat(fd, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int e = errno;
        *slash = '/';
        close(fd);
        if (next < 0) {
            lmr_fail(err, LMR_ERR_INVALID, "zip entry '%.200s' goes through a path that is not a directory (%s)", norm,
                     strerror(e));
            return -1;
        }
        fd = next;
        p = slash + 1;
    }
    if (fd < 0)
        lmr_fail(err, LMR_ERR_IO, "cannot open the task root: %s", strerror(errno));
    *leaf = p;
    return fd;
}

/* Write entry i (a regular file) as leaf below dir_fd. *total counts the bytes written so far. */
static enum lmr_result write_file(zip_t *za, zip_uint64_t i, int dir_fd, const char *leaf, const char *norm,
                                  mode_t mode, uint64_t declared, uint64_t max_total, uint64_t *total, char *chunk,
                                  struct lmr_err *err)
{
    int fd = openat(dir_fd, leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        if (errno == EEXIST)
            return lmr_fail(err, LMR_ERR_INVALID, "the zip holds '%.200s' twice", norm);
        return lmr_fail(err, LMR_ERR_IO, "cannot create '%.200s' in the task root: %s", norm, strerror(errno));
    }
    zip_file_t *zf = zip_fopen_index(za, i, 0);
    if (!zf) {
        close(fd);
        return lmr_fail(err, LMR_ERR_FORMAT, "cannot read zip entry '%.200s': %s", norm, zip_strerror(za));
    }
    enum lmr_result r = LMR_OK;
    uint64_t got = 0;
    for (;;) {
        zip_int64_t n = zip_fread(zf, chunk, COPY_CHUNK_BYTES);
        if (n < 0) {
            r = lmr_fail(err, LMR_ERR_FORMAT, "zip entry '%.200s' is corrupt: %s", norm, zip_file_strerror(zf));
            break;
        }
        if (n == 0)
            break;
        got += (uint64_t)n;
        *total += (uint64_t)n;
        if (got > declared || *total > max_total) {
            r = lmr_fail(err, LMR_ERR_TOO_LARGE,
                         "zip entry '%.200s' inflates past its declared size or the unzipped limit of %llu bytes", norm,
                         (unsigned long long)max_total);
            break;
        }
        size_t off = 0;
        while (off < (size_t)n) {
            ssize_t w = write(fd, chunk + off, (size_t)n - off);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                r = lmr_fail(err, LMR_ERR_IO, "cannot write '%.200s' in the task root: %s", norm,
                             strerror(w < 0 ? errno : ENOSPC));
                break;
            }
            off += (size_t)w;
        }
        if (r)
            break;
    }
    zip_fclose(zf);
    if (!r && fchmod(fd, mode) != 0)
        r = lmr_fail(err, LMR_ERR_IO, "cannot set the mode of '%.200s': %s", norm, strerror(errno));
    if (close(fd) != 0 && !r)
        r = lmr_fail(err, LMR_ERR_IO, "cannot write '%.200s' in the task root: %s", norm, strerror(errno));
    return r;
}

/* Pass 1: every entry is safe and the declared sizes fit. */
static enum lmr_result check_entries(zip_t *za, zip_uint64_t n, const struct lmr_zip_limits *lim, char *norm,
                                     struct lmr_err *err)
{
    if (n > lim->max_entries)
        return lmr_fail(err, LMR_ERR_TOO_LARGE, "the zip declares %llu entries; at most %llu are allowed",
                        (unsigned long long)n, (unsigned long long)lim->max_entries);
    uint64_t declared = 0;
    for (zip_uint64_t i = 0; i < n; i++) {
        zip_stat_t st;
        if (zip_stat_index(za, i, ZIP_FL_ENC_RAW, &st) != 0 || !(st.valid & ZIP_STAT_NAME))
            return lmr_fail(err, LMR_ERR_FORMAT, "cannot read entry %llu of the zip: %s", (unsigned long long)i,
                            zip_strerror(za));
        enum entry_kind kind = ENTRY_FILE;
        mode_t mode;
        enum lmr_result r = normalise_name(st.name, norm, LMR_ZIP_NAME_MAX_BYTES, &kind, err);
        if (!r)
            r = entry_type(za, i, st.name, &kind, &mode, err);
        if (r)
            return r;
        if (kind == ENTRY_FILE) {
            if (!(st.valid & ZIP_STAT_SIZE))
                return lmr_fail(err, LMR_ERR_FORMAT, "zip entry '%.200s' has no size", st.name);
            declared += st.size;
            if (st.size > lim->max_unzipped_bytes || declared > lim->max_unzipped_bytes)
                return lmr_fail(err, LMR_ERR_TOO_LARGE,
                                "the zip unpacks to more than %llu bytes (the unzipped size limit)",
                                (unsigned long long)lim->max_unzipped_bytes);
        }
    }
    return LMR_OK;
}

/* Pass 2: create the tree. */
static enum lmr_result extract(zip_t *za, zip_uint64_t n, int root_fd, const struct lmr_zip_limits *lim, char *norm,
                               struct lmr_zip_summary *sum, struct lmr_err *err)
{
    char *chunk = malloc(COPY_CHUNK_BYTES);
    if (!chunk)
        return lmr_fail(err, LMR_ERR_NOMEM, "out of memory unpacking the zip");
    enum lmr_result r = LMR_OK;
    for (zip_uint64_t i = 0; i < n && !r; i++) {
        zip_stat_t st;
        enum entry_kind kind = ENTRY_FILE;
        mode_t mode = 0644;
        if (zip_stat_index(za, i, ZIP_FL_ENC_RAW, &st) != 0) {
            r = lmr_fail(err, LMR_ERR_FORMAT, "cannot read entry %llu of the zip", (unsigned long long)i);
            break;
        }
        r = normalise_name(st.name, norm, LMR_ZIP_NAME_MAX_BYTES, &kind, err);
        if (!r)
            r = entry_type(za, i, st.name, &kind, &mode, err);
        if (r || kind == ENTRY_SKIP)
            continue;
        const char *leaf = NULL;
        int dir_fd = open_parent(root_fd, norm, &leaf, err);
        if (dir_fd < 0) {
            r = err ? err->code : LMR_ERR_IO;
            break;
        }
        sum->entries++;
        if (kind == ENTRY_DIR) {
            if (mkdirat(dir_fd, leaf, 0755) != 0 && errno != EEXIST)
                r = lmr_fail(err, LMR_ERR_IO, "cannot create directory '%.200s': %s", norm, strerror(errno));
            struct stat ds;
            if (!r && (fstatat(dir_fd, leaf, &ds, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(ds.st_mode)))
                r = lmr_fail(err, LMR_ERR_INVALID, "zip entry '%.200s' is both a file and a directory", norm);
        } else {
            r = write_file(za, i, dir_fd, leaf, norm, mode, st.size, lim->max_unzipped_bytes, &sum->unzipped_bytes,
                           chunk, err);
            if (!r) {
                sum->files++;
                if (!strcmp(norm, "bootstrap"))
                    sum->has_bootstrap = true;
            }
        }
        close(dir_fd);
    }
    free(chunk);
    return r;
}

static enum lmr_result unpack(zip_t *za, const char *dest_dir, const struct lmr_zip_limits *limits,
                              struct lmr_zip_summary *summary, struct lmr_err *err)
{
    struct lmr_zip_limits lim = {LMR_ZIP_UNZIPPED_MAX_BYTES, LMR_ZIP_ENTRIES_MAX};
    if (limits && limits->max_unzipped_bytes)
        lim.max_unzipped_bytes = limits->max_unzipped_bytes;
    if (limits && limits->max_entries)
        lim.max_entries = limits->max_entries;
    struct lmr_zip_summary sum = {0};
    char *norm = malloc(LMR_ZIP_NAME_MAX_BYTES);
    if (!norm)
        return lmr_fail(err, LMR_ERR_NOMEM, "out of memory unpacking the zip");
    zip_int64_t n = zip_get_num_entries(za, 0);
    enum lmr_result r = n < 0 ? lmr_fail(err, LMR_ERR_FORMAT, "cannot read the zip's directory")
                              : check_entries(za, (zip_uint64_t)n, &lim, norm, err);
    if (!r && mkdir(dest_dir, 0755) != 0)
        r = lmr_fail(err, errno == EEXIST ? LMR_ERR_EXISTS : LMR_ERR_IO, "cannot create the task root %s: %s", dest_dir,
                     strerror(errno));
    else if (!r) {
        int root_fd = open(dest_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (root_fd < 0)
            r = lmr_fail(err, LMR_ERR_IO, "cannot open the task root %s: %s", dest_dir, strerror(errno));
        else {
            r = extract(za, (zip_uint64_t)n, root_fd, &lim, norm, &sum, err);
            close(root_fd);
        }
        if (r)
            lmr_remove_tree(dest_dir, NULL);
    }
    free(norm);
    if (!r && summary)
        *summary = sum;
    return r;
}

enum lmr_result lmr_zip_unpack_buffer(const void *zip, size_t len, const char *dest_dir,
                                      const struct lmr_zip_limits *limits, struct lmr_zip_summary *summary,
                                      struct lmr_err *err)
{
    if (!len)
        return lmr_fail(err, LMR_ERR_FORMAT, "the data is empty, not a zip archive");
    zip_error_t ze;
    zip_error_init(&ze);
    zip_source_t *src = zip_source_buffer_create(zip, len, 0, &ze);
    zip_t *za = src ? zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS, &ze) : NULL;
    if (!za) {
        enum lmr_result r =
            lmr_fail(err, LMR_ERR_FORMAT, "the data is not a readable zip archive: %s", zip_error_strerror(&ze));
        zip_source_free(src);
        zip_error_fini(&ze);
        return r;
    }
    zip_error_fini(&ze);
    enum lmr_result r = unpack(za, dest_dir, limits, summary, err);
    zip_discard(za);
    return r;
}

enum lmr_result lmr_zip_unpack_file(const char *zip_path, const char *dest_dir, const struct lmr_zip_limits *limits,
                                    struct lmr_zip_summary *summary, struct lmr_err *err)
{
    struct stat st;
    if (stat(zip_path, &st) == 0 && st.st_size == 0)
        return lmr_fail(err, LMR_ERR_FORMAT, "%s is empty, not a zip archive", zip_path);
    int zerr = 0;
    zip_t *za = zip_open(zip_path, ZIP_RDONLY | ZIP_CHECKCONS, &zerr);
    if (!za) {
        zip_error_t ze;
        zip_error_init_with_code(&ze, zerr);
        enum lmr_result r =
            lmr_fail(err, LMR_ERR_FORMAT, "%s is not a readable zip archive: %s", zip_path, zip_error_strerror(&ze));
        zip_error_fini(&ze);
        return r;
    }
    enum lmr_result r = unpack(za, dest_dir, limits, summary, err);
    zip_discard(za);
    return r;
}
