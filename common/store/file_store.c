/*
 * The "file" back-end: a local directory is the object store. Keys map to paths below the
 * root. Writes go to a hidden temporary file beside the target and become visible on commit
 * by rename(2) (replace) or link(2) (create-only: fails with EEXIST, so the first commit
 * wins even between processes). Hidden names (a segment starting with '.') are never listed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store.h"
#include "util/misc.h"

struct file_store {
    char *root; /* absolute, no trailing '/' unless it is "/" */
};

struct file_reader {
    struct lmr_store_reader base;
    int fd;
    uint64_t pos, end;
};

struct file_writer {
    struct lmr_store_writer base;
    int fd;
    unsigned flags;
    char *tmp_path;
    char *final_path;
};

static struct file_store *impl_of(struct lmr_store *s)
{
    return s->impl;
}

static char *key_path(struct lmr_store *s, const char *key)
{
    const char *root = impl_of(s)->root;
    size_t n = strlen(root) + strlen(key) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s%s%s", root, strcmp(root, "/") ? "/" : "", key);
    return p;
}

static enum lmr_result errno_result(int e)
{
    switch (e) {
    case ENOENT:
    case ENOTDIR:
        return LMR_ERR_NOT_FOUND;
    case EEXIST:
        return LMR_ERR_EXISTS;
    case EACCES:
    case EPERM:
        return LMR_ERR_AUTH;
    case ENOMEM:
        return LMR_ERR_NOMEM;
    default:
        return LMR_ERR_IO;
    }
}

/* ---- listing ---------------------------------------------------------------------------------------------- */

/*
 * Listing walks the tree below the root, following symbolic links, but enters each real
 * directory at most once (by device and inode), so a link to an ancestor ("ln -s . loop") or
 * two links to one directory cannot make the walk endless or list a file twice; likewise a
 * regular file reached by several names (symbolic or hard links) is listed once, under the
 * first of its names in key order. Entries of a directory are visited in name order, so which
 * name is kept does not depend on readdir's order.
 */

/* A set of (device, inode) pairs: open addressing, grows by doubling. */
struct inode_set {
    struct {
        dev_t dev;
        ino_t ino;
        bool used;
    } * slots;
    size_t n, cap;
};

/* @return 1 if (dev, ino) was new and is now in the set, 0 if it was there, -1 out of memory. */
static int inode_set_add(struct inode_set *set, dev_t dev, ino_t ino)
{
    if ((set->n + 1) * 2 > set->cap) {
        size_t cap = set->cap ? set->cap * 2 : 64;
        __typeof__(set->slots) slots = calloc(cap, sizeof *slots);
        if (!slots)
            return -1;
        for (size_t i = 0; i < set->cap; i++) {
            if (!set->slots[i].used)
                continue;
            size_t h = ((uint64_t)set->slots[i].dev * 0x9E3779B97F4A7C15ull ^ (uint64_t)set->slots[i].ino) & (cap - 1);
            while (slots[h].used)
                h = (h + 1) & (cap - 1);
            slots[h] = set->slots[i];
        }
        free(set->slots);
        set->slots = slots;
        set->cap = cap;
    }
    size_t h = ((uint64_t)dev * 0x9E3779B97F4A7C15ull ^ (uint64_t)ino) & (set->cap - 1);
    for (; set->slots[h].used; h = (h + 1) & (set->cap - 1))
        if (set->slots[h].dev == dev && set->slots[h].ino == ino)
            return 0;
    set->slots[h].dev = dev;
    set->slots[h].ino = ino;
    set->slots[h].used = true;
    set->n++;
    return 1;
}

struct list_state {
    struct lmr_store_object *objs;
    size_t n, cap;
    const char *prefix;
    struct inode_set dirs, files;
};

static int cmp_obj(const void *a, const void *b)
{
    return strcmp(((const struct lmr_store_object *)a)->key, ((const struct lmr_store_object *)b)->key);
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The visible names in dirpath, sorted. *names is malloc'd (and each name). */
static enum lmr_result read_names(const char *dirpath, char ***names, size_t *n, struct lmr_err *err)
{
    *names = NULL;
    *n = 0;
    DIR *d = opendir(dirpath);
    if (!d) {
        if (errno == ENOENT || errno == ENOTDIR)
            return LMR_OK;
        return lmr_fail(err, errno_result(errno), "cannot list directory '%s': %s", dirpath, strerror(errno));
    }
    size_t cap = 0;
    enum lmr_result r = LMR_OK;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.' || de->d_name[0] == '\0')
            continue; /* ".", "..", hidden and temporary files */
        if (*n == cap) {
            cap = cap ? cap * 2 : 32;
            char **p = realloc(*names, cap * sizeof *p);
            if (!p) {
                r = lmr_fail(err, LMR_ERR_NOMEM, "out of memory listing '%s'", dirpath);
                break;
            }
            *names = p;
        }
        if (!((*names)[*n] = strdup(de->d_name))) {
            r = lmr_fail(err, LMR_ERR_NOMEM, "out of memory listing '%s'", dirpath);
            break;
        }
        (*n)++;
    }
    closedir(d);
    if (*n > 1)
        qsort(*names, *n, sizeof **names, cmp_name);
    return r;
}

static enum lmr_result add_object(struct list_state *ls, const char *relpath, uint64_t size, struct lmr_err *err)
{
    if (ls->n == ls->cap) {
        size_t cap = ls->cap ? ls->cap * 2 : 64;
        struct lmr_store_object *o = realloc(ls->objs, cap * sizeof *o);
        if (!o)
            return lmr_fail(err, LMR_ERR_NOMEM, "out of memory listing '%s'", relpath);
        ls->objs = o;
        ls->cap = cap;
    }
    char *k = strdup(relpath);
    if (!k)
        return lmr_fail(err, LMR_ERR_NOMEM, "out of memory listing '%s'", relpath);
    ls->objs[ls->n].key = k;
    ls->objs[ls->n].size_bytes = size;
    ls->n++;
    return LMR_OK;
}

static enum lmr_result walk(struct list_state *ls, const char *root, const char *rel, struct lmr_err *err)
{
    char dirpath[PATH_MAX];
    snprintf(dirpath, sizeof dirpath, "%s%s%s", root, *rel ? "/" : "", rel);
    char **names;
    size_t nnames;
    enum lmr_result r = read_names(dirpath, &names, &nnames, err);
    for (size_t i = 0; i < nnames && !r; i++) {
        char relpath[PATH_MAX], full[PATH_MAX];
        if ((size_t)snprintf(relpath, sizeof relpath, "%s%s%s", rel, *rel ? "/" : "", names[i]) >= sizeof relpath ||
            (size_t)snprintf(full, sizeof full, "%s/%s", dirpath, names[i]) >= sizeof full) {
            r = lmr_fail(err, LMR_ERR_TOO_LARGE, "the path '%s/%s' is longer than %d bytes", dirpath, names[i],
                         PATH_MAX);
            break;
        }
        /* Prune subtrees that cannot match the prefix. */
        size_t rl = strlen(relpath), pl = strlen(ls->prefix);
        size_t cmp = rl < pl ? rl : pl;
        if (strncmp(relpath, ls->prefix, cmp))
            continue;
        struct stat st;
        if (stat(full, &st))
            continue; /* vanished or dangling link */
        int fresh = 0;
        if (S_ISDIR(st.st_mode) || (S_ISREG(st.st_mode) && rl >= pl))
            fresh = inode_set_add(S_ISDIR(st.st_mode) ? &ls->dirs : &ls->files, st.st_dev, st.st_ino);
        if (fresh < 0)
            r = lmr_fail(err, LMR_ERR_NOMEM, "out of memory listing '%s'", dirpath);
        else if (fresh && S_ISDIR(st.st_mode))
            r = walk(ls, root, relpath, err);
        else if (fresh)
            r = add_object(ls, relpath, (uint64_t)st.st_size, err);
    }
    for (size_t i = 0; i < nnames; i++)
        free(names[i]);
    free(names);
    return r;
}

static enum lmr_result file_list(struct lmr_store *s, const char *prefix, lmr_store_list_fn fn, void *user_data,
                                 struct lmr_err *err)
{
    struct list_state ls = {.prefix = prefix};
    atomic_fetch_add(&s->stats.list_requests, 1);
    enum lmr_result r = LMR_OK;
    struct stat st;
    if (!stat(impl_of(s)->root, &st) && inode_set_add(&ls.dirs, st.st_dev, st.st_ino) < 0)
        r = LMR_ERR_NOMEM;
    if (!r)
        r = walk(&ls, impl_of(s)->root, "", err);
    if (!r && ls.n > 1)
        qsort(ls.objs, ls.n, sizeof *ls.objs, cmp_obj);
    for (size_t i = 0; i < ls.n; i++) {
        if (!r)
            r = fn(user_data, &ls.objs[i]);
        free((char *)ls.objs[i].key);
    }
    free(ls.objs);
    free(ls.dirs.slots);
    free(ls.files.slots);
    return r;
}

static enum lmr_result file_head(struct lmr_store *s, const char *key, uint64_t *size_bytes, struct lmr_err *err)
{
    char *path = key_path(s, key);
    if (!path)
        return LMR_ERR_NOMEM;
    struct stat st;
    enum lmr_result r = LMR_OK;
    atomic_fetch_add(&s->stats.head_requests, 1);
    if (stat(path, &st))
        r = lmr_fail(err, errno_result(errno), "cannot stat '%s': %s", path, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        r = lmr_fail(err, LMR_ERR_NOT_FOUND, "'%s' is not a regular file", path);
    else if (size_bytes)
        *size_bytes = (uint64_t)st.st_size;
    free(path);
    return r;
}

/* ---- reading ---------------------------------------------------------------------------------------------- */

static enum lmr_result file_open_read(struct lmr_store *s, const char *key, uint64_t offset, uint64_t length,
                                      struct lmr_store_reader **out, struct lmr_err *err)
{
    char *path = key_path(s, key);
    if (!path)
        return LMR_ERR_NOMEM;
    atomic_fetch_add(&s->stats.get_requests, 1);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        enum lmr_result r = lmr_fail(err, errno_result(errno),
                                     "cannot open '%s' for reading: %s; check the path "
                                     "and its permissions",
                                     path, strerror(errno));
        free(path);
        return r;
    }
    struct stat st;
    if (fstat(fd, &st) || S_ISDIR(st.st_mode)) {
        close(fd);
        enum lmr_result r = lmr_fail(err, LMR_ERR_NOT_FOUND, "'%s' is not a readable file", path);
        free(path);
        return r;
    }
    free(path);
    struct file_reader *rd = calloc(1, sizeof *rd);
    if (!rd) {
        close(fd);
        return LMR_ERR_NOMEM;
    }
    uint64_t size = (uint64_t)st.st_size;
    rd->base.store = s;
    rd->fd = fd;
    rd->pos = offset < size ? offset : size;
    rd->end = (length == LMR_STORE_TO_END || length > size - rd->pos) ? size : rd->pos + length;
    posix_fadvise(fd, (off_t)rd->pos, (off_t)(rd->end - rd->pos), POSIX_FADV_SEQUENTIAL);
    *out = &rd->base;
    return LMR_OK;
}

static enum lmr_result file_read(struct lmr_store_reader *r, void *buf, size_t cap, size_t *got, struct lmr_err *err)
{
    struct file_reader *rd = (struct file_reader *)r;
    uint64_t left = rd->end - rd->pos;
    size_t want = cap < left ? cap : (size_t)left;
    *got = 0;
    while (want) {
        ssize_t n = pread(rd->fd, buf, want, (off_t)rd->pos);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return lmr_fail(err, LMR_ERR_IO, "read failed: %s", strerror(errno));
        }
        if (n == 0) { /* file shrank under us */
            rd->end = rd->pos;
            break;
        }
        rd->pos += (uint64_t)n;
        *got = (size_t)n;
        atomic_fetch_add(&r->store->stats.bytes_read, (uint64_t)n);
        break;
    }
    return LMR_OK;
}

static void file_close_read(struct lmr_store_reader *r)
{
    struct file_reader *rd = (struct file_reader *)r;
    close(rd->fd);
    free(rd);
}

/* ---- writing ---------------------------------------------------------------------------------------------- */

static enum lmr_result file_open_write(struct lmr_store *s, const char *key, unsigned flags,
                                       struct lmr_store_writer **out, struct lmr_err *err)
{
    struct file_writer *w = calloc(1, sizeof *w);
    char *final_path = key_path(s, key);
    if (!w || !final_path) {
        free(w);
        free(final_path);
        return LMR_ERR_NOMEM;
    }
    char *slash = strrchr(final_path, '/');
    *slash = '\0';
    enum lmr_result r = lmr_mkdirs(final_path, err);
    *slash = '/';
    if (r) {
        free(w);
        free(final_path);
        return r;
    }
    char rnd[17];
    lmr_random_hex(rnd, 8);
    size_t n = strlen(final_path) + 32;
    w->tmp_path = malloc(n);
    if (!w->tmp_path) {
        free(w);
        free(final_path);
        return LMR_ERR_NOMEM;
    }
    /* Hidden temporary beside the target: same file system, so rename/link are atomic. */
    snprintf(w->tmp_path, n, "%.*s/.%s.tmp-%s", (int)(slash - final_path), final_path, slash + 1, rnd);
    w->fd = open(w->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (w->fd < 0) {
        r = lmr_fail(err, errno_result(errno), "cannot create '%s': %s", w->tmp_path, strerror(errno));
        free(w->tmp_path);
        free(w);
        free(final_path);
        return r;
    }
    w->base.store = s;
    w->flags = flags;
    w->final_path = final_path;
    *out = &w->base;
    return LMR_OK;
}

static enum lmr_result file_write(struct lmr_store_writer *wb, const void *data, size_t len, struct lmr_err *err)
{
    struct file_writer *w = (struct file_writer *)wb;
    const char *p = data;
    while (len) {
        ssize_t n = write(w->fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return lmr_fail(err, errno_result(errno), "cannot write '%s': %s", w->final_path, strerror(errno));
        }
        p += n;
        len -= (size_t)n;
        atomic_fetch_add(&wb->store->stats.bytes_written, (uint64_t)n);
    }
    return LMR_OK;
}

static void writer_free(struct file_writer *w)
{
    free(w->tmp_path);
    free(w->final_path);
    free(w);
}

static enum lmr_result file_commit(struct lmr_store_writer *wb, struct lmr_err *err)
{
    struct file_writer *w = (struct file_writer *)wb;
    enum lmr_result r = LMR_OK;
    atomic_fetch_add(&wb->store->stats.put_requests, 1);
    if (close(w->fd))
        r = lmr_fail(err, LMR_ERR_IO, "cannot write '%s': %s", w->final_path, strerror(errno));
    else if (w->flags & LMR_PUT_CREATE_ONLY) {
        if (link(w->tmp_path, w->final_path))
            r = lmr_fail(err, errno_result(errno), "cannot create '%s': %s", w->final_path, strerror(errno));
        unlink(w->tmp_path);
    } else if (rename(w->tmp_path, w->final_path)) {
        r = lmr_fail(err, errno_result(errno), "cannot commit '%s': %s", w->final_path, strerror(errno));
        unlink(w->tmp_path);
    }
    writer_free(w);
    return r;
}

static void file_abort(struct lmr_store_writer *wb)
{
    struct file_writer *w = (struct file_writer *)wb;
    close(w->fd);
    unlink(w->tmp_path);
    writer_free(w);
}

/* ---- deleting --------------------------------------------------------------------------------------------- */

static enum lmr_result file_delete(struct lmr_store *s, const char *const *keys, size_t n, struct lmr_err *err)
{
    const char *root = impl_of(s)->root;
    for (size_t i = 0; i < n; i++) {
        char *path = key_path(s, keys[i]);
        if (!path)
            return LMR_ERR_NOMEM;
        atomic_fetch_add(&s->stats.delete_requests, 1);
        if (unlink(path) && errno != ENOENT) {
            enum lmr_result r = lmr_fail(err, errno_result(errno), "cannot delete '%s': %s", path, strerror(errno));
            free(path);
            return r;
        }
        /* Remove directories left empty, up to (not including) the root: keys have no directories of their own. */
        char *slash;
        while ((slash = strrchr(path, '/')) && (size_t)(slash - path) > strlen(root)) {
            *slash = '\0';
            if (rmdir(path))
                break;
        }
        free(path);
    }
    return LMR_OK;
}

static void file_destroy(struct lmr_store *s)
{
    free(impl_of(s)->root);
    free(s->impl);
    free(s->root_uri);
    free(s);
}

/* ---- versions: ETags and If-Match --------------------------------------------------------------------- */

/* A file's ETag: inode, modification time (ns) and size. rename(2) gives every write a new inode. */
static void file_etag(const struct stat *st, char etag[LMR_STORE_ETAG_BYTES])
{
    snprintf(etag, LMR_STORE_ETAG_BYTES, "%llx-%llx.%lx-%llx", (unsigned long long)st->st_ino,
             (unsigned long long)st->st_mtim.tv_sec, (long)st->st_mtim.tv_nsec, (unsigned long long)st->st_size);
}

static enum lmr_result file_get_versioned(struct lmr_store *s, const char *key, struct lmr_buf *out,
                                          char etag[LMR_STORE_ETAG_BYTES], struct lmr_err *err)
{
    char *path = key_path(s, key);
    if (!path)
        return LMR_ERR_NOMEM;
    atomic_fetch_add(&s->stats.get_requests, 1);
    enum lmr_result r = LMR_OK;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st))
        r = lmr_fail(err, errno_result(errno), "cannot read '%s': %s", path, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        r = lmr_fail(err, LMR_ERR_NOT_FOUND, "'%s' is not a regular file", path);
    else if ((uint64_t)st.st_size > out->max_bytes - out->len)
        r = lmr_fail(err, LMR_ERR_TOO_LARGE, "'%s' is larger than the %zu bytes allowed here", path, out->max_bytes);
    else
        r = lmr_buf_reserve(out, (size_t)st.st_size + 1);
    for (size_t got = 0; !r && got < (size_t)st.st_size;) {
        ssize_t n = pread(fd, out->data + out->len, (size_t)st.st_size - got, (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            r = lmr_fail(err, LMR_ERR_IO, "cannot read '%s': %s", path, n ? strerror(errno) : "it shrank while read");
            break;
        }
        got += (size_t)n;
        out->len += (size_t)n;
        atomic_fetch_add(&s->stats.bytes_read, (uint64_t)n);
    }
    if (!r) {
        out->data[out->len] = '\0';
        file_etag(&st, etag);
    }
    if (fd >= 0)
        close(fd);
    free(path);
    return r;
}

/*
 * If-Match for files: under an exclusive flock(2) of the object's directory (which every
 * conditional writer of that directory takes), compare the current ETag, then rename(2) the
 * new contents into place. Create-only commits (link(2)) need no lock: they only succeed when
 * the key is absent, and put_if_match only replaces an existing key.
 */
static enum lmr_result file_put_if_match(struct lmr_store *s, const char *key, const void *data, size_t len,
                                         const char *etag, struct lmr_err *err)
{
    char *path = key_path(s, key);
    if (!path)
        return LMR_ERR_NOMEM;
    char *slash = strrchr(path, '/');
    *slash = '\0';
    int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    *slash = '/';
    enum lmr_result r = LMR_OK;
    if (dfd < 0) {
        r = lmr_fail(err, errno_result(errno), "cannot open the directory of '%s': %s", path, strerror(errno));
        free(path);
        return r;
    }
    while (flock(dfd, LOCK_EX) && errno == EINTR)
        ;
    struct stat st;
    char now[LMR_STORE_ETAG_BYTES];
    if (stat(path, &st))
        r = lmr_fail(err, errno_result(errno), "cannot replace '%s': %s", path, strerror(errno));
    else if (file_etag(&st, now), strcmp(now, etag))
        r = lmr_fail(err, LMR_ERR_EXISTS, "'%s' changed since it was read (ETag %s, now %s): another writer came first",
                     path, etag, now);
    else
        r = lmr_store_put(s, key, data, len, 0, err); /* temp file + rename */
    flock(dfd, LOCK_UN);
    close(dfd);
    free(path);
    return r;
}

static const struct lmr_store_vtable file_vtable = {
    .scheme = "file",
    .list = file_list,
    .head = file_head,
    .open_read = file_open_read,
    .read = file_read,
    .close_read = file_close_read,
    .open_write = file_open_write,
    .write = file_write,
    .commit = file_commit,
    .abort = file_abort,
    .delete_keys = file_delete,
    .destroy = file_destroy,
    .get_versioned = file_get_versioned,
    .put_if_match = file_put_if_match,
};

enum lmr_result lmr_file_store_new(const char *abs_dir, struct lmr_store **out, struct lmr_err *err)
{
    if (abs_dir[0] != '/')
        return lmr_fail(err, LMR_ERR_INVALID, "file store root '%s' must be absolute", abs_dir);
    struct lmr_store *s = calloc(1, sizeof *s);
    struct file_store *fs = calloc(1, sizeof *fs);
    char *root = lmr_abspath(abs_dir);
    char *uri = root ? malloc(strlen(root) + 8) : NULL;
    if (!s || !fs || !root || !uri) {
        free(s);
        free(fs);
        free(root);
        free(uri);
        return LMR_ERR_NOMEM;
    }
    sprintf(uri, "file://%s", root);
    fs->root = root;
    s->vtable = &file_vtable;
    s->impl = fs;
    s->root_uri = uri;
    *out = s;
    return LMR_OK;
}
