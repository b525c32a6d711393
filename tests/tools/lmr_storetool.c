/*
 * lmr_storetool: the store interface from the command line, for tests and quick checks.
 * Works for every back-end (paths, file://, s3://).
 *
 *   lmr_storetool [--stats] ls URI                 size<TAB>key per object under the prefix
 *   lmr_storetool [--stats] head URI               size of one object
 *   lmr_storetool [--stats] get URI [OFF LEN]      object (or a range) to stdout
 *   lmr_storetool [--stats] put [--create-only] URI [FILE]   stdin (or FILE) to an object
 *   lmr_storetool [--stats] put --abort URI [FILE]  write everything, then abort (nothing must remain)
 *   lmr_storetool [--stats] cp [--create-only] SRC DST       streamed copy between any stores
 *   lmr_storetool [--stats] rm URI...              delete objects (one store; batched)
 *   lmr_storetool [--stats] rm-prefix URI          delete everything under a prefix
 *   lmr_storetool [--stats] bench URI              read an object, print MB/s (to stdout)
 *   lmr_storetool [--stats] put-many URI N         N small objects URI00000 ... ("line I\n" each)
 *   lmr_storetool [--stats] get-etag URI           the object's ETag (first line), then its contents
 *   lmr_storetool [--stats] put-if-match URI ETAG  stdin to the object if its ETag is still ETAG
 *
 * Exit status: 0 success, 2 create-only commit lost (key exists) or If-Match failed, 3 not found, 1 other.
 * --stats prints the store's request and byte counters to stderr at the end.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store/store.h"
#include "util/misc.h"

#define CHUNK (1u << 20)

static bool want_stats;

static int fail(enum lmr_result r, const struct lmr_err *err)
{
    fprintf(stderr, "lmr_storetool: %s\n", err->msg[0] ? err->msg : lmr_result_str(r));
    return r == LMR_ERR_EXISTS ? 2 : r == LMR_ERR_NOT_FOUND ? 3 : 1;
}

static void print_stats(const struct lmr_store *s)
{
    if (!want_stats || !s)
        return;
    const struct lmr_store_stats *st = &s->stats;
    fprintf(stderr,
            "stats %s: get=%llu put=%llu list=%llu head=%llu delete=%llu retries=%llu bytes_read=%llu "
            "bytes_written=%llu\n",
            s->root_uri, (unsigned long long)st->get_requests, (unsigned long long)st->put_requests,
            (unsigned long long)st->list_requests, (unsigned long long)st->head_requests,
            (unsigned long long)st->delete_requests, (unsigned long long)st->retries,
            (unsigned long long)st->bytes_read, (unsigned long long)st->bytes_written);
}

/*
 * Open the store holding the object `uri` and return its key. For a path that does not
 * exist yet, the store is rooted at its directory.
 */
static enum lmr_result open_object(const char *uri, struct lmr_store **s, char **key, struct lmr_err *err)
{
    if (!strncmp(uri, "s3://", 5))
        return lmr_store_open(uri, s, key, err);
    const char *path = !strncmp(uri, "file://", 7) ? uri + 7 : uri;
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISDIR(st.st_mode))
        return lmr_store_open(uri, s, key, err);
    char *abs = lmr_abspath(path);
    if (!abs)
        return LMR_ERR_NOMEM;
    char *slash = strrchr(abs, '/');
    *key = strdup(slash + 1);
    if (slash == abs)
        slash[1] = '\0';
    else
        *slash = '\0';
    enum lmr_result r = lmr_file_store_new(abs, s, err);
    free(abs);
    if (r) {
        free(*key);
        *key = NULL;
    }
    return r;
}

static enum lmr_result print_obj(void *ud, const struct lmr_store_object *o)
{
    (*(size_t *)ud)++;
    printf("%llu\t%s\n", (unsigned long long)o->size_bytes, o->key);
    return LMR_OK;
}

/* Stream [off, off+len) of src/key into fd-like sink (stdout or a writer). */
static enum lmr_result copy_out(struct lmr_store *s, const char *key, uint64_t off, uint64_t len, FILE *out,
                                struct lmr_store_writer *w, uint64_t *total, struct lmr_err *err)
{
    struct lmr_store_reader *rd;
    enum lmr_result r = lmr_store_open_read(s, key, off, len, &rd, err);
    if (r)
        return r;
    char *buf = malloc(CHUNK);
    if (!buf) {
        lmr_store_close_read(rd);
        return LMR_ERR_NOMEM;
    }
    *total = 0;
    for (;;) {
        size_t got = 0;
        if ((r = lmr_store_read(rd, buf, CHUNK, &got, err)) || got == 0)
            break;
        *total += got;
        if (w)
            r = lmr_store_write(w, buf, got, err);
        else if (out && fwrite(buf, 1, got, out) != got)
            r = lmr_fail(err, LMR_ERR_IO, "cannot write the output: %s", strerror(errno));
        if (r)
            break;
    }
    free(buf);
    lmr_store_close_read(rd);
    return r;
}

struct collect {
    char **keys;
    size_t n, cap;
};

static enum lmr_result collect_fn(void *ud, const struct lmr_store_object *o)
{
    struct collect *cc = ud;
    if (cc->n == cc->cap) {
        cc->cap = cc->cap ? 2 * cc->cap : 1024;
        char **k = realloc(cc->keys, cc->cap * sizeof *k);
        if (!k)
            return LMR_ERR_NOMEM;
        cc->keys = k;
    }
    return (cc->keys[cc->n++] = strdup(o->key)) ? LMR_OK : LMR_ERR_NOMEM;
}

static int usage(void)
{
    fprintf(stderr, "usage: lmr_storetool [--stats] ls|head|get|put|cp|rm|rm-prefix|bench ARGS (see the source)\n");
    return 1;
}

int main(int argc, char **argv)
{
    int i = 1;
    if (i < argc && !strcmp(argv[i], "--stats")) {
        want_stats = true;
        i++;
    }
    if (i >= argc)
        return usage();
    const char *cmd = argv[i++];
    bool create_only = false, abort_write = false;
    if (i < argc && !strcmp(argv[i], "--create-only")) {
        create_only = true;
        i++;
    } else if (i < argc && !strcmp(argv[i], "--abort")) {
        abort_write = true;
        i++;
    }
    unsigned flags = create_only ? LMR_PUT_CREATE_ONLY : 0;
    struct lmr_err err = {0};
    struct lmr_store *s = NULL, *d = NULL;
    char *key = NULL, *dkey = NULL;
    enum lmr_result r = LMR_OK;

    if (!strcmp(cmd, "ls") && i + 1 == argc) {
        if (!(r = lmr_store_open(argv[i], &s, &key, &err))) {
            size_t n = 0;
            r = lmr_store_list(s, key, print_obj, &n, &err);
        }
    } else if (!strcmp(cmd, "head") && i + 1 == argc) {
        uint64_t size = 0;
        if (!(r = open_object(argv[i], &s, &key, &err)) && !(r = lmr_store_head(s, key, &size, &err)))
            printf("%llu\n", (unsigned long long)size);
    } else if (!strcmp(cmd, "get") && (i + 1 == argc || i + 3 == argc)) {
        uint64_t off = 0, len = LMR_STORE_TO_END, total;
        if (i + 3 == argc &&
            (lmr_parse_u64(argv[i + 1], 0, UINT64_MAX, &off) || lmr_parse_u64(argv[i + 2], 0, UINT64_MAX, &len)))
            return usage();
        if (!(r = open_object(argv[i], &s, &key, &err)))
            r = copy_out(s, key, off, len, stdout, NULL, &total, &err);
        if (!r && fflush(stdout))
            r = lmr_fail(&err, LMR_ERR_IO, "cannot write the output: %s", strerror(errno));
    } else if (!strcmp(cmd, "bench") && i + 1 == argc) {
        uint64_t total = 0;
        if (!(r = open_object(argv[i], &s, &key, &err))) {
            double t0 = lmr_mono_ms();
            r = copy_out(s, key, 0, LMR_STORE_TO_END, NULL, NULL, &total, &err);
            double ms = lmr_mono_ms() - t0;
            if (!r)
                printf("read %llu bytes in %.1f ms: %.1f MB/s\n", (unsigned long long)total, ms,
                       ms > 0 ? total / 1e6 / (ms / 1e3) : 0.0);
        }
    } else if (!strcmp(cmd, "put") && (i + 1 == argc || i + 2 == argc)) {
        FILE *in = i + 2 == argc ? fopen(argv[i + 1], "rb") : stdin;
        if (!in)
            r = lmr_fail(&err, LMR_ERR_IO, "cannot open '%s': %s", argv[i + 1], strerror(errno));
        struct lmr_store_writer *w = NULL;
        if (!r && !(r = open_object(argv[i], &s, &key, &err)))
            r = lmr_store_open_write(s, key, flags, &w, &err);
        char *buf = r ? NULL : malloc(CHUNK);
        size_t n;
        while (!r && buf && (n = fread(buf, 1, CHUNK, in)) > 0)
            r = lmr_store_write(w, buf, n, &err);
        if (!r && ferror(in))
            r = lmr_fail(&err, LMR_ERR_IO, "cannot read the input: %s", strerror(errno));
        if (w)
            r = r || abort_write ? (lmr_store_abort(w), r) : lmr_store_commit(w, &err);
        free(buf);
        if (in && in != stdin)
            fclose(in);
    } else if (!strcmp(cmd, "get-etag") && i + 1 == argc) {
        struct lmr_buf b;
        char etag[LMR_STORE_ETAG_BYTES];
        lmr_buf_init(&b, 64u << 20);
        if (!(r = open_object(argv[i], &s, &key, &err)) && !(r = lmr_store_get_versioned(s, key, &b, etag, &err))) {
            printf("%s\n", etag);
            fwrite(b.data ? b.data : "", 1, b.len, stdout);
        }
        lmr_buf_clean_up(&b);
    } else if (!strcmp(cmd, "put-if-match") && i + 2 == argc) {
        struct lmr_buf b;
        lmr_buf_init(&b, 64u << 20);
        char chunk[65536];
        size_t n;
        while (!r && (n = fread(chunk, 1, sizeof chunk, stdin)) > 0)
            r = lmr_buf_append(&b, chunk, n);
        if (!r && !(r = open_object(argv[i], &s, &key, &err)))
            r = lmr_store_put_if_match(s, key, b.data ? b.data : "", b.len, argv[i + 1], &err);
        lmr_buf_clean_up(&b);
    } else if (!strcmp(cmd, "put-many") && i + 2 == argc) {
        uint64_t n = 0;
        if (lmr_parse_u64(argv[i + 1], 1, 1000000, &n))
            return usage();
        if (!(r = lmr_store_open(argv[i], &s, &key, &err))) {
            for (uint64_t k = 0; !r && k < n; k++) {
                char name[4096], body[64];
                snprintf(name, sizeof name, "%s%05llu", key, (unsigned long long)k);
                int len = snprintf(body, sizeof body, "line %llu\n", (unsigned long long)k);
                r = lmr_store_put(s, name, body, (size_t)len, flags, &err);
            }
        }
    } else if (!strcmp(cmd, "cp") && i + 2 == argc) {
        struct lmr_store_writer *w = NULL;
        uint64_t total;
        if (!(r = open_object(argv[i], &s, &key, &err)) && !(r = open_object(argv[i + 1], &d, &dkey, &err)))
            r = lmr_store_open_write(d, dkey, flags, &w, &err);
        if (!r)
            r = copy_out(s, key, 0, LMR_STORE_TO_END, NULL, w, &total, &err);
        if (w)
            r = r ? (lmr_store_abort(w), r) : lmr_store_commit(w, &err);
    } else if (!strcmp(cmd, "rm") && i < argc) {
        size_t n = (size_t)(argc - i);
        char **keys = calloc(n, sizeof *keys);
        for (size_t k = 0; !r && k < n; k++) {
            struct lmr_store *one = NULL;
            r = open_object(argv[i + (int)k], &one, &keys[k], &err);
            if (!r && s && strcmp(one->root_uri, s->root_uri))
                r = lmr_fail(&err, LMR_ERR_INVALID, "rm: all objects must be in one store (%s vs %s)", s->root_uri,
                             one->root_uri);
            if (!s)
                s = one;
            else
                lmr_store_destroy(one);
        }
        if (!r)
            r = lmr_store_delete(s, (const char *const *)keys, n, &err);
        for (size_t k = 0; k < n; k++)
            free(keys[k]);
        free(keys);
    } else if (!strcmp(cmd, "rm-prefix") && i + 1 == argc) {
        if (!(r = lmr_store_open(argv[i], &s, &key, &err))) {
            /* Collect first, then delete in batches. */
            struct collect c = {0};
            r = lmr_store_list(s, key, collect_fn, &c, &err);
            if (!r && c.n)
                r = lmr_store_delete(s, (const char *const *)c.keys, c.n, &err);
            for (size_t k = 0; k < c.n; k++)
                free(c.keys[k]);
            free(c.keys);
        }
    } else {
        return usage();
    }
    print_stats(s);
    print_stats(d);
    int rc = r ? fail(r, &err) : 0;
    lmr_store_destroy(s);
    lmr_store_destroy(d);
    free(key);
    free(dkey);
    return rc;
}
