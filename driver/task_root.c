#include "task_root.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "job/registry.h"
#include "util/misc.h"

static enum lmr_result copy_file(const char *from, const char *to, struct lmr_err *err)
{
    struct stat st;
    int in = open(from, O_RDONLY | O_CLOEXEC);
    if (in < 0 || fstat(in, &st) || !S_ISREG(st.st_mode)) {
        int e = in < 0 ? errno : EISDIR;
        if (in >= 0)
            close(in);
        return lmr_fail(err, LMR_ERR_NOT_FOUND, "cannot ship '%s': %s; --file and plugins must be regular files", from,
                        strerror(e));
    }
    int out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, st.st_mode & 07777);
    if (out < 0) {
        int e = errno;
        close(in);
        return lmr_fail(err, e == EEXIST ? LMR_ERR_EXISTS : LMR_ERR_IO, "cannot create %s: %s%s", to, strerror(e),
                        e == EEXIST ? " (two shipped files have the same name; rename one)" : "");
    }
    char buf[65536];
    enum lmr_result r = LMR_OK;
    for (;;) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = lmr_fail(err, LMR_ERR_IO, "reading %s: %s", from, strerror(errno));
            break;
        }
        if (n == 0)
            break;
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(out, buf + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0) {
                r = lmr_fail(err, LMR_ERR_IO, "writing %s: %s", to, strerror(errno));
                break;
            }
            off += w;
        }
        if (r)
            break;
    }
    close(in);
    if (close(out) && !r)
        r = lmr_fail(err, LMR_ERR_IO, "writing %s: %s", to, strerror(errno));
    return r;
}

enum lmr_result lmr_task_root_make(const char *plugin, char *const *files, size_t nfiles, char **dir_out,
                                   struct lmr_err *err)
{
    if (nfiles > LMR_TASK_ROOT_MAX_FILES)
        return lmr_fail(err, LMR_ERR_TOO_LARGE, "%zu --file options; at most %d", nfiles, LMR_TASK_ROOT_MAX_FILES);
    const char *tmp = getenv("TMPDIR");
    char dir[4096], path[8192];
    snprintf(dir, sizeof dir, "%s/lambdamr-task-root-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir))
        return lmr_fail(err, LMR_ERR_IO, "cannot create a task root in %s: %s (set TMPDIR)", tmp ? tmp : "/tmp",
                        strerror(errno));
    enum lmr_result r = LMR_OK;
    snprintf(path, sizeof path, "%s/plugins", dir);
    if (mkdir(path, 0755))
        r = lmr_fail(err, LMR_ERR_IO, "cannot create %s: %s", path, strerror(errno));
    snprintf(path, sizeof path, "%s/files", dir);
    if (!r && mkdir(path, 0755))
        r = lmr_fail(err, LMR_ERR_IO, "cannot create %s: %s", path, strerror(errno));
    if (!r && plugin) {
        char *base = lmr_job_plugin_base(plugin);
        if (!base)
            r = LMR_ERR_NOMEM;
        else {
            snprintf(path, sizeof path, "%s/plugins/%s.so", dir, base);
            r = copy_file(plugin, path, err);
        }
        free(base);
    }
    for (size_t i = 0; i < nfiles && !r; i++) {
        const char *slash = strrchr(files[i], '/');
        const char *base = slash ? slash + 1 : files[i];
        if (!*base || !strcmp(base, ".") || !strcmp(base, "..")) {
            r = lmr_fail(err, LMR_ERR_INVALID, "--file '%s' does not name a file", files[i]);
            break;
        }
        snprintf(path, sizeof path, "%s/files/%s", dir, base);
        r = copy_file(files[i], path, err);
    }
    if (r) {
        lmr_remove_tree(dir, NULL);
        return r;
    }
    if (!(*dir_out = strdup(dir))) {
        lmr_remove_tree(dir, NULL);
        return LMR_ERR_NOMEM;
    }
    return LMR_OK;
}
