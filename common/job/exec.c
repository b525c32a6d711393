/*
 * Exec jobs (Hadoop Streaming): any executable as mapper, combiner or reducer. Records go to the
 * child's stdin one per line; it writes key<SEP>value lines on stdout (SEP a TAB unless
 * --separator; the key is the first --key-fields fields). Reducers get "key<SEP>value" lines with
 * the keys in order, one line per value. Map-only jobs ("exec-map", chosen by the driver when
 * there is no --reducer) and reducers write their lines to the output unchanged.
 *
 * One child per input shard in a mapper (its environment names the shard, as Hadoop's
 * mapreduce_map_input_file does) and one per reduce task. A --combiner runs on the mapper's
 * pairs in sorted batches of at most a sixteenth of the memory, as often as the batch fills:
 * like Hadoop's, it must accept its own output as input.
 * The plumbing (pipes, poll, errors that name the command) is in exec_child.c.
 */
#define _GNU_SOURCE /* qsort_r */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "job/exec_child.h"
#include "job/registry.h"

#define MiB (1024ull * 1024ull)
#define EXEC_INPUT_BUF_BYTES (1024 * 1024) /* records gathered before one write to the child */
#define EXEC_MAX_KEY_FIELDS 100

struct pair_ref {
    size_t off;
    uint32_t klen, vlen;
};

struct exec_state {
    char *mapper, *combiner, *reducer;
    char sep;
    uint32_t key_fields;

    /* The running task. */
    bool in_reduce;
    struct lmr_emitter *out;
    struct lmr_exec_child *child;
    char context[1024];
    char files_dir[1024];
    char env_store[8][1100];
    const char *env[9];
    size_t max_line_bytes;
    uint8_t *inbuf;
    size_t inlen;
    uint64_t lines_out;
    enum lmr_result failed; /* sticky, reducer side (reduce cannot fail by itself) */
    struct lmr_err err;

    /* Combiner batch: pairs from the mapper, sorted and piped through the combiner when full. */
    uint8_t *arena;
    size_t arena_used, arena_cap;
    struct pair_ref *pairs;
    size_t npairs, pairs_cap;
    uint64_t comb_lines_out;
};

static void exec_teardown(void *state)
{
    struct exec_state *s = state;
    if (!s)
        return;
    lmr_exec_child_destroy(s->child);
    free(s->mapper);
    free(s->combiner);
    free(s->reducer);
    free(s->inbuf);
    free(s->arena);
    free(s->pairs);
    free(s);
}

static int exec_setup_common(void **state, const struct lmr_job_args *args, bool map_only, char *errbuf,
                             size_t errbuf_len)
{
    const char *m = lmr_job_arg(args, "mapper"), *c = lmr_job_arg(args, "combiner"), *r = lmr_job_arg(args, "reducer");
    const char *sep = lmr_job_arg(args, "separator"), *kf = lmr_job_arg(args, "key-fields");
    if (!m || !*m) {
        snprintf(errbuf, errbuf_len, "--mapper CMD is required (the command that reads records on stdin)");
        return -1;
    }
    if (map_only && (c || r)) {
        snprintf(errbuf, errbuf_len, "a map-only exec job has no --combiner or --reducer (run 'exec' with --reducer)");
        return -1;
    }
    if (!map_only && (!r || !*r)) {
        snprintf(errbuf, errbuf_len, "--reducer CMD is required here (leave it out for a map-only job)");
        return -1;
    }
    char sepc = '\t';
    if (sep) {
        if (!strcmp(sep, "\\t"))
            sepc = '\t';
        else if (strlen(sep) == 1 && sep[0] != '\n')
            sepc = sep[0];
        else {
            snprintf(errbuf, errbuf_len, "--separator '%s' must be one byte (or \\t)", sep);
            return -1;
        }
    }
    uint32_t nkf = 1;
    if (kf) {
        char *end;
        long v = strtol(kf, &end, 10);
        if (*end || v < 1 || v > EXEC_MAX_KEY_FIELDS) {
            snprintf(errbuf, errbuf_len, "--key-fields '%s' is not a whole number from 1 to %d", kf,
                     EXEC_MAX_KEY_FIELDS);
            return -1;
        }
        nkf = (uint32_t)v;
    }
    struct exec_state *s = calloc(1, sizeof *s);
    if (!s || !(s->mapper = strdup(m)) || (c && !(s->combiner = strdup(c))) || (r && !(s->reducer = strdup(r)))) {
        exec_teardown(s);
        snprintf(errbuf, errbuf_len, "out of memory");
        return -1;
    }
    s->sep = sepc;
    s->key_fields = nkf;
    *state = s;
    return 0;
}

static int exec_setup(void **state, const struct lmr_job_args *args, char *errbuf, size_t errbuf_len)
{
    return exec_setup_common(state, args, false, errbuf, errbuf_len);
}

static int exec_map_setup(void **state, const struct lmr_job_args *args, char *errbuf, size_t errbuf_len)
{
    return exec_setup_common(state, args, true, errbuf, errbuf_len);
}

/* Split a line into key and value at the key_fields-th separator. */
static enum lmr_result split_line(const struct exec_state *s, struct lmr_slice line, struct lmr_slice *k,
                                  struct lmr_slice *v, const char *who, uint64_t lineno, struct lmr_err *err)
{
    const uint8_t *p = line.ptr, *end = line.ptr + line.len;
    for (uint32_t f = 0; f < s->key_fields; f++) {
        const uint8_t *q = p < end ? memchr(p, (unsigned char)s->sep, (size_t)(end - p)) : NULL;
        if (!q) {
            char shown[81];
            size_t n = line.len < 80 ? line.len : 80;
            for (size_t i = 0; i < n; i++)
                shown[i] = line.ptr[i] < 0x20 ? '?' : (char)line.ptr[i];
            shown[n] = '\0';
            char sepname[16];
            snprintf(sepname, sizeof sepname, s->sep == '\t' ? "TAB" : "'%c'", s->sep);
            if (f)
                return lmr_fail(err, LMR_ERR_FORMAT,
                                "wrote line %llu of its output with %u separator%s (%s) where the key needs %u: "
                                "'%s%s'; see --separator and --key-fields",
                                (unsigned long long)lineno, f, f == 1 ? "" : "s", sepname, s->key_fields, shown,
                                line.len > 80 ? "…" : "");
            return lmr_fail(err, LMR_ERR_FORMAT,
                            "wrote line %llu of its output without a separator (%s): '%s%s'; a %s's output lines "
                            "must be key%svalue (see --separator and --key-fields)",
                            (unsigned long long)lineno, sepname, shown, line.len > 80 ? "…" : "", who,
                            s->sep == '\t' ? "<TAB>" : sepname);
        }
        if (f + 1 == s->key_fields) {
            *k = lmr_slice_make(line.ptr, (size_t)(q - line.ptr));
            *v = lmr_slice_make(q + 1, (size_t)(end - q - 1));
            return LMR_OK;
        }
        p = q + 1;
    }
    return LMR_OK;
}

/* ---- combiner batches --------------------------------------------------------------------------------- */

static int pair_cmp(const void *a, const void *b, void *arena_ptr)
{
    const struct pair_ref *x = a, *y = b;
    const uint8_t *arena = arena_ptr;
    size_t n = x->klen < y->klen ? x->klen : y->klen;
    int c = memcmp(arena + x->off, arena + y->off, n);
    if (c)
        return c;
    return x->klen < y->klen ? -1 : x->klen > y->klen;
}

static enum lmr_result on_combiner_line(void *user, struct lmr_slice line, struct lmr_err *err)
{
    struct exec_state *s = user;
    struct lmr_slice k, v;
    enum lmr_result r = split_line(s, line, &k, &v, "combiner", ++s->comb_lines_out, err);
    if (!r)
        lmr_emit(s->out, k, v);
    return r;
}

static enum lmr_result child_write_buffered(struct exec_state *s, struct lmr_exec_child *c, uint8_t *buf, size_t *len,
                                            const void *a, size_t alen, const void *b, size_t blen,
                                            struct lmr_err *err);

/* Sort the batch, pipe it through the combiner, emit its output to the collector. */
static enum lmr_result flush_combiner(struct exec_state *s, struct lmr_err *err)
{
    if (!s->npairs)
        return LMR_OK;
    qsort_r(s->pairs, s->npairs, sizeof *s->pairs, pair_cmp, s->arena);
    struct lmr_exec_child_options o = {.command = s->combiner,
                                       .what = "combiner",
                                       .context = s->context,
                                       .env = s->env,
                                       .cwd = s->files_dir[0] ? s->files_dir : NULL,
                                       .path_prefix = s->files_dir[0] ? s->files_dir : NULL,
                                       .max_line_bytes = s->max_line_bytes,
                                       .on_line = on_combiner_line,
                                       .user = s};
    struct lmr_exec_child *c = NULL;
    s->comb_lines_out = 0;
    enum lmr_result r = lmr_exec_child_start(&o, &c, err);
    uint8_t *buf = malloc(EXEC_INPUT_BUF_BYTES);
    size_t len = 0;
    if (!r && !buf)
        r = lmr_fail(err, LMR_ERR_NOMEM, "out of memory feeding exec combiner '%s'", s->combiner);
    for (size_t i = 0; i < s->npairs && !r; i++) {
        const struct pair_ref *p = &s->pairs[i];
        uint8_t mid = (uint8_t)s->sep;
        /* key SEP value \n: the separator goes with the key part */
        r = child_write_buffered(s, c, buf, &len, s->arena + p->off, p->klen, &mid, 1, err);
        if (!r)
            r = child_write_buffered(s, c, buf, &len, s->arena + p->off + p->klen, p->vlen, "\n", 1, err);
    }
    if (!r && len)
        r = lmr_exec_child_write(c, buf, len, err);
    if (!r)
        r = lmr_exec_child_finish(c, err);
    lmr_exec_child_destroy(c);
    free(buf);
    s->npairs = 0;
    s->arena_used = 0;
    return r;
}

static enum lmr_result add_to_batch(struct exec_state *s, struct lmr_slice k, struct lmr_slice v, struct lmr_err *err)
{
    size_t need = k.len + v.len;
    if (need > s->arena_cap) { /* bigger than a batch: straight to the collector */
        lmr_emit(s->out, k, v);
        return LMR_OK;
    }
    enum lmr_result r;
    if (s->arena_used + need > s->arena_cap && (r = flush_combiner(s, err)))
        return r;
    if (!s->arena && !(s->arena = malloc(s->arena_cap)))
        return lmr_fail(err, LMR_ERR_NOMEM, "out of memory for the combiner batch of exec combiner '%s'", s->combiner);
    if (s->npairs == s->pairs_cap) {
        size_t cap = s->pairs_cap ? s->pairs_cap * 2 : 4096;
        struct pair_ref *p = realloc(s->pairs, cap * sizeof *p);
        if (!p)
            return lmr_fail(err, LMR_ERR_NOMEM, "out of memory for the combiner batch of exec combiner '%s'",
                            s->combiner);
        s->pairs = p;
        s->pairs_cap = cap;
    }
    memcpy(s->arena + s->arena_used, k.ptr, k.len);
    memcpy(s->arena + s->arena_used + k.len, v.ptr, v.len);
    s->pairs[s->npairs++] = (struct pair_ref){.off = s->arena_used, .klen = (uint32_t)k.len, .vlen = (uint32_t)v.len};
    s->arena_used += need;
    return LMR_OK;
}

/* ---- the mapper's and reducer's child ------------------------------------------------------------------- */

static enum lmr_result on_child_line(void *user, struct lmr_slice line, struct lmr_err *err)
{
    struct exec_state *s = user;
    s->lines_out++;
    if (s->in_reduce || !s->reducer) { /* the job's output: lines as written */
        lmr_emit(s->out, line, lmr_slice_make(NULL, 0));
        return LMR_OK;
    }
    struct lmr_slice k, v;
    enum lmr_result r = split_line(s, line, &k, &v, "mapper", s->lines_out, err);
    if (r)
        return r;
    if (s->combiner)
        return add_to_batch(s, k, v, err);
    lmr_emit(s->out, k, v);
    return LMR_OK;
}

/* Append a then b to buf, writing buf to the child whenever it is full. */
static enum lmr_result child_write_buffered(struct exec_state *s, struct lmr_exec_child *c, uint8_t *buf, size_t *len,
                                            const void *a, size_t alen, const void *b, size_t blen, struct lmr_err *err)
{
    enum lmr_result r;
    if (*len + alen + blen > EXEC_INPUT_BUF_BYTES) {
        if (*len && (r = lmr_exec_child_write(c, buf, *len, err)))
            return r;
        *len = 0;
        if (alen + blen > EXEC_INPUT_BUF_BYTES) { /* a huge record: no copy */
            if ((r = lmr_exec_child_write(c, a, alen, err)))
                return r;
            return lmr_exec_child_write(c, b, blen, err);
        }
    }
    memcpy(buf + *len, a, alen);
    memcpy(buf + *len + alen, b, blen);
    *len += alen + blen;
    return LMR_OK;
}

static int exec_start(void *state, const struct lmr_task_info *t, char *errbuf, size_t errbuf_len)
{
    struct exec_state *s = state;
    s->in_reduce = !strcmp(t->role, "reduce");
    s->lines_out = 0;
    s->failed = LMR_OK;
    lmr_err_clear(&s->err);
    s->max_line_bytes = (size_t)((uint64_t)t->memory_mb * MiB / 16);
    s->arena_cap = s->max_line_bytes;
    if (!s->inbuf && !(s->inbuf = malloc(EXEC_INPUT_BUF_BYTES))) {
        snprintf(errbuf, errbuf_len, "out of memory");
        return -1;
    }
    s->inlen = 0;
    const char *root = getenv("LAMBDA_TASK_ROOT");
    struct stat st;
    s->files_dir[0] = '\0';
    if (root && *root) {
        snprintf(s->files_dir, sizeof s->files_dir, "%s/files", root);
        if (stat(s->files_dir, &st) || !S_ISDIR(st.st_mode))
            s->files_dir[0] = '\0';
    }
    if (s->in_reduce)
        snprintf(s->context, sizeof s->context, " (task %s, attempt %u)", t->task_id, t->attempt);
    else
        snprintf(s->context, sizeof s->context, " (task %s, attempt %u, input %s bytes %llu-%llu)", t->task_id,
                 t->attempt, t->input_uri, (unsigned long long)t->input_offset,
                 (unsigned long long)(t->input_offset + t->input_length));
    size_t k = 0;
    snprintf(s->env_store[k++], sizeof s->env_store[0], "mapreduce_task_id=%s", t->task_id);
    snprintf(s->env_store[k++], sizeof s->env_store[0], "mapreduce_task_attempt_id=%s_%u", t->task_id, t->attempt);
    snprintf(s->env_store[k++], sizeof s->env_store[0], "mapreduce_task_partition=%s", t->task_id + 2);
    snprintf(s->env_store[k++], sizeof s->env_store[0], "mapreduce_task_ismap=%s", s->in_reduce ? "false" : "true");
    if (!s->in_reduce) {
        snprintf(s->env_store[k++], sizeof s->env_store[0], "mapreduce_map_input_file=%s", t->input_uri);
        snprintf(s->env_store[k++], sizeof s->env_store[0], "mapreduce_map_input_start=%llu",
                 (unsigned long long)t->input_offset);
        snprintf(s->env_store[k++], sizeof s->env_store[0], "mapreduce_map_input_length=%llu",
                 (unsigned long long)t->input_length);
    }
    for (size_t i = 0; i < k; i++)
        s->env[i] = s->env_store[i];
    s->env[k] = NULL;
    struct lmr_exec_child_options o = {.command = s->in_reduce ? s->reducer : s->mapper,
                                       .what = s->in_reduce ? "reducer" : "mapper",
                                       .context = s->context,
                                       .env = s->env,
                                       .cwd = s->files_dir[0] ? s->files_dir : NULL,
                                       .path_prefix = s->files_dir[0] ? s->files_dir : NULL,
                                       .max_line_bytes = s->max_line_bytes,
                                       .on_line = on_child_line,
                                       .user = s};
    lmr_exec_child_destroy(s->child);
    s->child = NULL;
    struct lmr_err err = {0};
    if (lmr_exec_child_start(&o, &s->child, &err)) {
        snprintf(errbuf, errbuf_len, "%s", err.msg);
        return -1;
    }
    return 0;
}

static int fail_with(struct exec_state *s, struct lmr_job_counters *counters, struct lmr_err *err)
{
    lmr_job_error(counters, "%s", err->msg);
    lmr_exec_child_destroy(s->child);
    s->child = NULL;
    return -1;
}

static int exec_map(void *state, struct lmr_slice record, struct lmr_emitter *out, struct lmr_job_counters *counters)
{
    struct exec_state *s = state;
    struct lmr_err err = {0};
    s->out = out;
    if (!s->child)
        return -1;
    if (child_write_buffered(s, s->child, s->inbuf, &s->inlen, record.ptr, record.len, "\n", 1, &err))
        return fail_with(s, counters, &err);
    return 0;
}

static int exec_map_block(void *state, struct lmr_slice block, struct lmr_emitter *out,
                          struct lmr_job_counters *counters)
{
    struct exec_state *s = state;
    struct lmr_err err = {0};
    s->out = out;
    if (!s->child)
        return -1;
    enum lmr_result r = LMR_OK;
    if (s->inlen) {
        r = lmr_exec_child_write(s->child, s->inbuf, s->inlen, &err);
        s->inlen = 0;
    }
    if (!r)
        r = lmr_exec_child_write(s->child, block.ptr, block.len, &err);
    if (!r && block.len && block.ptr[block.len - 1] != '\n')
        r = lmr_exec_child_write(s->child, "\n", 1, &err);
    return r ? fail_with(s, counters, &err) : 0;
}

static void exec_reduce(void *state, struct lmr_slice key, struct lmr_values *values, struct lmr_emitter *out)
{
    struct exec_state *s = state;
    struct lmr_slice v;
    uint8_t sep = (uint8_t)s->sep;
    s->out = out;
    while (lmr_values_next(values, &v)) {
        if (s->failed || !s->child)
            continue;
        /* key SEP value \n, gathered into one large write */
        if ((s->failed = child_write_buffered(s, s->child, s->inbuf, &s->inlen, key.ptr, key.len, &sep, 1, &s->err)))
            continue;
        s->failed = child_write_buffered(s, s->child, s->inbuf, &s->inlen, v.ptr, v.len, "\n", 1, &s->err);
    }
}

static int exec_finish(void *state, struct lmr_emitter *out, struct lmr_job_counters *counters)
{
    struct exec_state *s = state;
    s->out = out;
    if (s->failed)
        return fail_with(s, counters, &s->err);
    if (!s->child)
        return -1;
    struct lmr_err err = {0};
    enum lmr_result r = LMR_OK;
    if (s->inlen)
        r = lmr_exec_child_write(s->child, s->inbuf, s->inlen, &err);
    s->inlen = 0;
    if (!r)
        r = lmr_exec_child_finish(s->child, &err);
    if (!r && s->combiner && !s->in_reduce)
        r = flush_combiner(s, &err);
    if (r)
        return fail_with(s, counters, &err);
    lmr_exec_child_destroy(s->child);
    s->child = NULL;
    return 0;
}

const struct lmr_job_ops lmr_job_exec = {
    .abi_version = LMR_JOB_ABI_VERSION,
    .name = "exec",
    .summary = "any executable as mapper, combiner, reducer (--mapper CMD [--combiner CMD] [--reducer CMD])",
    .setup = exec_setup,
    .teardown = exec_teardown,
    .map = exec_map,
    .map_block = exec_map_block,
    .reduce = exec_reduce,
    .start = exec_start,
    .finish = exec_finish,
};

const struct lmr_job_ops lmr_job_exec_map = {
    .abi_version = LMR_JOB_ABI_VERSION,
    .name = "exec-map",
    .summary = "map-only exec job (what 'exec' becomes without --reducer)",
    .setup = exec_map_setup,
    .teardown = exec_teardown,
    .map = exec_map,
    .map_block = exec_map_block,
    .map_only = true,
    .start = exec_start,
    .finish = exec_finish,
};
