/*
 * Local sources for use without AWS, one shard each ("shardId-000000000000"):
 *   "-"          standard input, one record per line; not replayable (a restart cannot re-read
 *                what an earlier run took from the pipe). Sequence numbers count lines.
 *   "file://P"   follows a growing file like `tail -F`: waits for it to appear, reads new lines
 *                as they are appended, notices rotation (P replaced by a new file: the old one
 *                is drained first) and truncation. Sequence numbers encode
 *                generation(6) inode(20) end-offset(20) digits, so a checkpoint names the exact
 *                byte after its line; on restart the file (or its rotated predecessor P.1,
 *                drained first) is reopened at that offset.
 * Both stamp approximateArrivalTimestamp with the time the line was read.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "stream/source.h"
#include "util/log.h"
#include "util/misc.h"

#define SHARD_ID "shardId-000000000000"
#define CHUNK_BYTES (256u * 1024u)

/* Zero-padded decimal of v in exactly width digits (no printf: this runs once per record). */
static void format_digits(char *out, uint64_t v, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        out[i] = (char)('0' + v % 10);
        v /= 10;
    }
}

/* Add one to the width-digit decimal number at out (the next sequence number without dividing).
   @return false when it would not fit. */
static bool next_digits(char *out, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        if (out[i] != '9') {
            out[i]++;
            return true;
        }
        out[i] = '0';
    }
    return false;
}

/* --- Buffered line splitting ------------------------------------------------------------------ */

struct line_buf {
    char *data;
    size_t start, len, cap; /* unconsumed bytes are data[start, len) */
};

static void line_buf_clean_up(struct line_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

/* Read up to CHUNK_BYTES more from fd. @return bytes read, 0 at EOF, -1 on error (errno). */
static ssize_t line_buf_fill(struct line_buf *b, int fd)
{
    if (b->start && b->start == b->len)
        b->start = b->len = 0;
    if (b->start > b->cap / 2) {
        memmove(b->data, b->data + b->start, b->len - b->start);
        b->len -= b->start;
        b->start = 0;
    }
    if (b->cap - b->len < CHUNK_BYTES) {
        size_t cap = b->cap ? b->cap * 2 : 2 * CHUNK_BYTES;
        while (cap - b->len < CHUNK_BYTES)
            cap *= 2;
        char *p = realloc(b->data, cap);
        if (!p) {
            errno = ENOMEM;
            return -1;
        }
        b->data = p;
        b->cap = cap;
    }
    ssize_t n;
    do
        n = read(fd, b->data + b->len, CHUNK_BYTES);
    while (n < 0 && errno == EINTR);
    if (n > 0)
        b->len += (size_t)n;
    return n;
}

/*
 * Next complete line (without '\n') or, if final, the unterminated rest. Lines longer than a
 * Kinesis record are cut into record-sized pieces. *consumed gets the bytes taken (line + '\n').
 */
static bool line_buf_next(struct line_buf *b, bool final, const char **line, size_t *len, size_t *consumed)
{
    size_t avail = b->len - b->start;
    if (!avail)
        return false;
    const char *p = b->data + b->start;
    const char *nl = memchr(p, '\n', avail);
    if (nl) {
        *len = (size_t)(nl - p);
        *consumed = *len + 1;
    } else if (avail >= LMR_STREAM_RECORD_MAX_BYTES || final) {
        *len = avail < LMR_STREAM_RECORD_MAX_BYTES ? avail : LMR_STREAM_RECORD_MAX_BYTES;
        *consumed = *len;
    } else {
        return false;
    }
    if (*len > LMR_STREAM_RECORD_MAX_BYTES) {
        *len = LMR_STREAM_RECORD_MAX_BYTES;
        *consumed = *len;
    }
    *line = p;
    b->start += *consumed;
    return true;
}

/* --- stdin ------------------------------------------------------------------------------------ */

struct stdin_src {
    struct lmr_stream_shard_reader reader;
    int fd;
    struct line_buf buf;
    uint64_t line_no;
    bool eof;
    bool opened;
};

static enum lmr_result local_list_shards(struct lmr_stream_source *src, struct lmr_stream_shard_info **out, size_t *n,
                                         struct lmr_err *err)
{
    *out = calloc(1, sizeof **out);
    if (!*out)
        return LMR_ERR_NOMEM;
    strcpy((*out)->id, SHARD_ID);
    *n = 1;
    return LMR_OK;
}

static enum lmr_result stdin_open_shard(struct lmr_stream_source *src, const char *shard_id,
                                        const struct lmr_stream_position *pos, struct lmr_stream_shard_reader **out,
                                        struct lmr_err *err)
{
    struct stdin_src *s = src->impl;
    if (strcmp(shard_id, SHARD_ID))
        return lmr_fail(err, LMR_ERR_NOT_FOUND, "standard input has one shard, %s, not %s", SHARD_ID, shard_id);
    if (s->opened)
        return lmr_fail(err, LMR_ERR_INVALID, "standard input can be read only once");
    s->opened = true;
    /* Standard input cannot be rewound: a checkpoint only tells how many lines came before. */
    if (pos->type == LMR_STREAM_AFTER_SEQUENCE_NUMBER || pos->type == LMR_STREAM_AT_SEQUENCE_NUMBER)
        s->line_no = strtoull(pos->sequence_number, NULL, 10) - (pos->type == LMR_STREAM_AT_SEQUENCE_NUMBER);
    s->reader.source = src;
    *out = &s->reader;
    return LMR_OK;
}

static enum lmr_result stdin_read(struct lmr_stream_shard_reader *r, size_t max_records, uint64_t wait_ms,
                                  struct lmr_stream_read_result *res, struct lmr_err *err)
{
    struct stdin_src *s = r->source->impl;
    uint64_t now = lmr_wall_ms();
    char seq[32] = "";
    bool waited = false;
    while (res->count < max_records) {
        const char *line;
        size_t len, used;
        if (line_buf_next(&s->buf, s->eof, &line, &len, &used)) {
            ++s->line_no;
            if (!seq[0] || !next_digits(seq, 20))
                format_digits(seq, s->line_no, 20);
            seq[20] = '\0';
            struct lmr_stream_item *it = lmr_stream_item_new(line, len, seq, seq, now);
            if (!it)
                return lmr_fail(err, LMR_ERR_NOMEM, "out of memory reading standard input");
            lmr_stream_read_result_push(res, it);
            continue;
        }
        if (s->eof) {
            res->shard_ended = true;
            break;
        }
        struct pollfd pfd = {s->fd, POLLIN, 0};
        int timeout = res->count || waited ? 0 : (int)wait_ms;
        int pr = poll(&pfd, 1, timeout);
        waited = true;
        if (pr < 0 && errno == EINTR)
            break;
        if (pr <= 0) {
            res->caught_up = true;
            break;
        }
        ssize_t n = line_buf_fill(&s->buf, s->fd);
        if (n < 0)
            return lmr_fail(err, LMR_ERR_IO, "cannot read standard input: %s", strerror(errno));
        if (n == 0)
            s->eof = true;
        now = lmr_wall_ms();
    }
    return LMR_OK;
}

static void stdin_close_shard(struct lmr_stream_shard_reader *r) {}

static void local_destroy(struct lmr_stream_source *src);

static const struct lmr_stream_source_vtable stdin_vtable = {
    .name = "stdin",
    .list_shards = local_list_shards,
    .open_shard = stdin_open_shard,
    .read = stdin_read,
    .close_shard = stdin_close_shard,
    .destroy = local_destroy,
};

/* --- file ------------------------------------------------------------------------------------- */

struct file_src {
    struct lmr_stream_shard_reader reader;
    char *path;
    char *rotated_path;    /* path + ".1" */
    int fd;                /* -1 while the file does not exist */
    bool draining_rotated; /* fd is the rotated predecessor; switch to path at its end */
    uint64_t ino;
    uint32_t gen;
    uint64_t off; /* file offset of buf's first unconsumed byte */
    struct line_buf buf;
    bool opened;
    bool skip_to_end; /* LATEST: start at the end of the file found at open */
};

static int open_at(const char *path, uint64_t off, uint64_t *ino)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) || (off && lseek(fd, (off_t)off, SEEK_SET) < 0)) {
        close(fd);
        return -1;
    }
    *ino = (uint64_t)st.st_ino;
    return fd;
}

static void file_reset_buf(struct file_src *f)
{
    f->buf.start = f->buf.len = 0;
}

static enum lmr_result file_open_shard(struct lmr_stream_source *src, const char *shard_id,
                                       const struct lmr_stream_position *pos, struct lmr_stream_shard_reader **out,
                                       struct lmr_err *err)
{
    struct file_src *f = src->impl;
    if (strcmp(shard_id, SHARD_ID))
        return lmr_fail(err, LMR_ERR_NOT_FOUND, "a file source has one shard, %s, not %s", SHARD_ID, shard_id);
    if (f->opened)
        f->reader.source->vtable->close_shard(&f->reader);
    f->opened = true;
    f->gen = 0;
    f->off = 0;
    f->draining_rotated = false;
    file_reset_buf(f);
    f->skip_to_end = false;
    switch (pos->type) {
    case LMR_STREAM_TRIM_HORIZON:
        f->fd = open_at(f->path, 0, &f->ino);
        break;
    case LMR_STREAM_LATEST: {
        struct stat st;
        f->fd = open_at(f->path, 0, &f->ino);
        if (f->fd >= 0 && !fstat(f->fd, &st)) {
            f->off = (uint64_t)st.st_size;
            lseek(f->fd, (off_t)f->off, SEEK_SET);
        }
        break;
    }
    case LMR_STREAM_AT_TIMESTAMP:
        return lmr_fail(err, LMR_ERR_UNSUPPORTED,
                        "a file source has no arrival times to start at: use --starting-position trim-horizon or "
                        "latest with file://%s",
                        f->path);
    case LMR_STREAM_AT_SEQUENCE_NUMBER:
    case LMR_STREAM_AFTER_SEQUENCE_NUMBER: {
        unsigned gen;
        unsigned long long ino, end;
        if (strlen(pos->sequence_number) != 46 ||
            sscanf(pos->sequence_number, "%6u%20llu%20llu", &gen, &ino, &end) != 3)
            return lmr_fail(err, LMR_ERR_FORMAT,
                            "checkpoint sequence number '%s' was not written by a file source; remove the "
                            "checkpoint or use the source it came from",
                            pos->sequence_number);
        f->gen = gen;
        uint64_t cur_ino;
        int fd = open_at(f->path, 0, &cur_ino);
        if (fd >= 0 && cur_ino == ino) {
            f->fd = fd;
            f->ino = cur_ino;
            f->off = end;
            lseek(fd, (off_t)end, SEEK_SET);
            break;
        }
        if (fd >= 0)
            close(fd);
        uint64_t old_ino;
        fd = open_at(f->rotated_path, 0, &old_ino);
        if (fd >= 0 && old_ino == ino) {
            f->fd = fd;
            f->ino = old_ino;
            f->off = end;
            f->draining_rotated = true;
            lseek(fd, (off_t)end, SEEK_SET);
            break;
        }
        if (fd >= 0)
            close(fd);
        LMR_WARN("file source %s: the file of the checkpoint (inode %llu) is gone; starting at the beginning of the "
                 "current file (lines after the checkpoint in the old file are skipped)",
                 f->path, ino);
        f->gen = gen + 1;
        f->fd = open_at(f->path, 0, &f->ino);
        break;
    }
    }
    f->reader.source = src;
    *out = &f->reader;
    return LMR_OK;
}

/* At the end of the current file: has it been replaced or truncated? Switch if so. @return true if switched. */
static bool file_check_rotation(struct file_src *f)
{
    if (f->fd < 0) {
        f->fd = open_at(f->path, 0, &f->ino);
        if (f->fd >= 0) {
            f->off = 0;
            file_reset_buf(f);
            return true;
        }
        return false;
    }
    struct stat st;
    if (f->draining_rotated || (!stat(f->path, &st) && (uint64_t)st.st_ino != f->ino)) {
        uint64_t ino;
        int fd = open_at(f->path, 0, &ino);
        if (fd < 0)
            return false;
        close(f->fd);
        f->fd = fd;
        f->ino = ino;
        f->gen++;
        f->off = 0;
        f->draining_rotated = false;
        file_reset_buf(f);
        return true;
    }
    struct stat cur;
    if (!fstat(f->fd, &cur) && (uint64_t)cur.st_size < f->off + (f->buf.len - f->buf.start)) {
        /* Truncated in place (copytruncate): start over from its beginning. */
        lseek(f->fd, 0, SEEK_SET);
        f->gen++;
        f->off = 0;
        file_reset_buf(f);
        return true;
    }
    return false;
}

static enum lmr_result file_read(struct lmr_stream_shard_reader *r, size_t max_records, uint64_t wait_ms,
                                 struct lmr_stream_read_result *res, struct lmr_err *err)
{
    struct file_src *f = r->source->impl;
    uint64_t now = lmr_wall_ms(), deadline = lmr_mono_ns() / 1000000 + wait_ms;
    char seq[64];
    bool at_end = false;
    while (res->count < max_records) {
        const char *line;
        size_t len, used;
        if (f->fd >= 0 && line_buf_next(&f->buf, at_end, &line, &len, &used)) {
            f->off += used;
            format_digits(seq, f->gen % 1000000, 6);
            format_digits(seq + 6, f->ino, 20);
            format_digits(seq + 26, f->off, 20);
            seq[46] = '\0';
            struct lmr_stream_item *it = lmr_stream_item_new(line, len, seq, seq, now);
            if (!it)
                return lmr_fail(err, LMR_ERR_NOMEM, "out of memory reading %s", f->path);
            lmr_stream_read_result_push(res, it);
            continue;
        }
        if (at_end) {
            /* The rotated file is fully drained (its last unterminated line included): switch. */
            at_end = false;
            if (file_check_rotation(f))
                continue;
        }
        ssize_t n = f->fd >= 0 ? line_buf_fill(&f->buf, f->fd) : 0;
        if (n < 0)
            return lmr_fail(err, LMR_ERR_IO, "cannot read %s: %s", f->path, strerror(errno));
        if (n > 0) {
            now = lmr_wall_ms();
            continue;
        }
        /* End of the file for now. Replaced by a new file? Then drain the old one to its last byte. */
        struct stat st;
        bool replaced = f->fd >= 0 && (f->draining_rotated || (!stat(f->path, &st) && (uint64_t)st.st_ino != f->ino));
        if (replaced) {
            /* The writer may have appended just before the rename: read the old file to its end. */
            ssize_t more = line_buf_fill(&f->buf, f->fd);
            if (more > 0)
                continue;
            at_end = true; /* one more pass takes an unterminated last line, then switches */
            continue;
        }
        if (file_check_rotation(f))
            continue;
        if (res->count || lmr_mono_ns() / 1000000 >= deadline) {
            res->caught_up = true;
            break;
        }
        lmr_sleep_ms(5);
    }
    return LMR_OK;
}

static void file_close_shard(struct lmr_stream_shard_reader *r)
{
    struct file_src *f = r->source->impl;
    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
    f->opened = false;
}

static const struct lmr_stream_source_vtable file_vtable = {
    .name = "file",
    .list_shards = local_list_shards,
    .open_shard = file_open_shard,
    .read = file_read,
    .close_shard = file_close_shard,
    .destroy = local_destroy,
};

static void local_destroy(struct lmr_stream_source *src)
{
    if (!src)
        return;
    if (src->vtable == &file_vtable) {
        struct file_src *f = src->impl;
        if (f->fd >= 0)
            close(f->fd);
        line_buf_clean_up(&f->buf);
        free(f->path);
        free(f->rotated_path);
        free(f);
    } else {
        struct stdin_src *s = src->impl;
        line_buf_clean_up(&s->buf);
        free(s);
    }
    free(src->name);
    free(src->arn);
    free(src);
}

static enum lmr_result local_new(const struct lmr_stream_source_vtable *vt, void *impl, const char *name,
                                 struct lmr_stream_source **out)
{
    struct lmr_stream_source *src = calloc(1, sizeof *src);
    char arn[512];
    snprintf(arn, sizeof arn, "arn:aws:kinesis:local:000000000000:stream/%s", name);
    if (!src || !(src->name = strdup(name)) || !(src->arn = strdup(arn))) {
        if (src) {
            free(src->name);
            free(src);
        }
        return LMR_ERR_NOMEM;
    }
    src->vtable = vt;
    src->impl = impl;
    src->replayable = vt == &file_vtable;
    src->arrival_is_read_time = true;
    *out = src;
    return LMR_OK;
}

enum lmr_result lmr_stream_stdin_source_new(int fd, struct lmr_stream_source **out, struct lmr_err *err)
{
    struct stdin_src *s = calloc(1, sizeof *s);
    if (!s)
        return lmr_fail(err, LMR_ERR_NOMEM, "out of memory");
    s->fd = fd;
    if (local_new(&stdin_vtable, s, "stdin", out)) {
        free(s);
        return lmr_fail(err, LMR_ERR_NOMEM, "out of memory");
    }
    return LMR_OK;
}

enum lmr_result lmr_stream_file_source_new(const char *path, struct lmr_stream_source **out, struct lmr_err *err)
{
    if (!*path)
        return lmr_fail(err, LMR_ERR_INVALID, "file:// needs a path, for example file:///var/log/app.log");
    struct file_src *f = calloc(1, sizeof *f);
    if (!f || !(f->path = lmr_abspath(path)) || asprintf(&f->rotated_path, "%s.1", f->path) < 0) {
        if (f)
            free(f->path);
        free(f);
        return lmr_fail(err, LMR_ERR_NOMEM, "out of memory");
    }
    f->fd = -1;
    const char *base = strrchr(f->path, '/');
    if (local_new(&file_vtable, f, base ? base + 1 : f->path, out)) {
        free(f->path);
        free(f->rotated_path);
        free(f);
        return lmr_fail(err, LMR_ERR_NOMEM, "out of memory");
    }
    return LMR_OK;
}
