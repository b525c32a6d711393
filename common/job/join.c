/*
 * Joins of two or more tagged inputs on a key (see join.h for the reduce-side scheme).
 *
 * join (reduce-side):  --side TAG=URI (two or more; the driver stores "sides" = "T1,T2,…" and
 *                      "side.TAG" = the location), per side --arg key.TAG=N (default 1) and
 *                      --arg value.TAG=LIST (fields joined by the delimiter; default the whole
 *                      row), --arg between.TAG=FIELD,LOW,HIGH keeps rows whose field lies in
 *                      [LOW, HIGH] bytewise, --delimiter (default ','). Output: JOINKEY<TAB>V1<TAB>V2… in side
 *                      order, one line per combination (inner join). Put the small sides first:
 *                      all but the last are buffered per key.
 * join-map (broadcast): the same output, map-only: every mapper loads all sides but "stream"
 *                      (the largest, chosen by the driver) into hash tables and maps the streamed
 *                      side alone. The driver picks it when the other sides fit a task
 *                      (--arg join=broadcast forces it, join=reduce the reduce-side join).
 */
#include "job/join.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "job/fields.h"
#include "job/join_table.h"
#include "job/registry.h"
#include "lambda/memory.h"
#include "shuffle/range_partition.h"
#include "util/misc.h"

/* ---- shared pieces ---- */

bool lmr_join_emit_tagged(struct lmr_emitter *out, struct lmr_slice joinkey, uint32_t side, uint32_t nsides,
                          struct lmr_slice value, uint8_t **buf, size_t *cap)
{
    for (size_t i = 0; i < joinkey.len; i++)
        if (joinkey.ptr[i] < nsides)
            return false;
    if (joinkey.len + 1 > *cap) {
        size_t n = (joinkey.len + 1) * 2;
        uint8_t *p = realloc(*buf, n);
        if (!p)
            return false;
        *buf = p;
        *cap = n;
    }
    memcpy(*buf, joinkey.ptr, joinkey.len);
    (*buf)[joinkey.len] = (uint8_t)side;
    lmr_emit(out, lmr_slice_make(*buf, joinkey.len + 1), value);
    return true;
}

uint32_t lmr_join_partition(struct lmr_slice composite, uint32_t nparts)
{
    size_t n = composite.len ? composite.len - 1 : 0;
    return (uint32_t)(XXH3_64bits(composite.ptr, n) % nparts);
}

void lmr_join_reducer_init(struct lmr_join_reducer *jr, uint32_t nsides, size_t memory_cap_bytes)
{
    memset(jr, 0, sizeof *jr);
    jr->nsides = nsides;
    jr->memory_cap_bytes = memory_cap_bytes;
}

static void side_reset(struct lmr_join_side_buffer *b)
{
    b->len = 0;
    b->rows = 0;
    if (b->spill) {
        fclose(b->spill);
        b->spill = NULL;
    }
}

void lmr_join_reducer_clean_up(struct lmr_join_reducer *jr)
{
    for (uint32_t s = 0; s < LMR_JOIN_MAX_SIDES; s++) {
        side_reset(&jr->sides[s]);
        free(jr->sides[s].mem);
    }
    free(jr->key);
    memset(jr, 0, sizeof *jr);
}

static size_t buffered_bytes(const struct lmr_join_reducer *jr)
{
    size_t n = 0;
    for (uint32_t s = 0; s < jr->nsides; s++)
        n += jr->sides[s].cap;
    return n;
}

static void fail_jr(struct lmr_join_reducer *jr, const char *what)
{
    if (!jr->failed)
        snprintf(jr->error, sizeof jr->error, "%s", what);
    jr->failed = true;
}

static void side_add(struct lmr_join_reducer *jr, struct lmr_join_side_buffer *b, struct lmr_slice v)
{
    uint32_t len = (uint32_t)v.len;
    b->rows++;
    if (!b->spill && b->len + 4 + v.len > b->cap) {
        size_t ncap = b->cap ? b->cap * 2 : 4096;
        while (ncap < b->len + 4 + v.len)
            ncap *= 2;
        if (buffered_bytes(jr) - b->cap + ncap <= jr->memory_cap_bytes) {
            uint8_t *p = realloc(b->mem, ncap);
            if (p) {
                b->mem = p;
                b->cap = ncap;
            }
        }
        if (b->len + 4 + v.len > b->cap && !(b->spill = tmpfile())) {
            fail_jr(jr, "cannot create a temporary file for a join group larger than the memory budget");
            return;
        }
    }
    if (b->spill) {
        jr->spilled_rows++;
        if (fwrite(&len, 4, 1, b->spill) != 1 || (len && fwrite(v.ptr, len, 1, b->spill) != 1))
            fail_jr(jr, "writing a join group's temporary file failed (disk full?)");
        return;
    }
    memcpy(b->mem + b->len, &len, 4);
    memcpy(b->mem + b->len + 4, v.ptr, v.len);
    b->len += 4 + v.len;
}

/* A cursor over one buffered side: memory first, then the spill file. */
struct cursor {
    struct lmr_join_side_buffer *b;
    size_t at;
    bool in_file;
    uint8_t *row;
    size_t row_cap;
};

static void cursor_rewind(struct cursor *c)
{
    c->at = 0;
    c->in_file = false;
}

static bool cursor_next(struct lmr_join_reducer *jr, struct cursor *c, struct lmr_slice *v)
{
    if (!c->in_file) {
        if (c->at < c->b->len) {
            uint32_t len;
            memcpy(&len, c->b->mem + c->at, 4);
            *v = lmr_slice_make(c->b->mem + c->at + 4, len);
            c->at += 4 + len;
            return true;
        }
        if (!c->b->spill)
            return false;
        c->in_file = true;
        fflush(c->b->spill);
        rewind(c->b->spill);
    }
    uint32_t len;
    if (fread(&len, 4, 1, c->b->spill) != 1) {
        fseek(c->b->spill, 0, SEEK_END); /* appends continue at the end */
        return false;
    }
    if (len > c->row_cap) {
        uint8_t *p = realloc(c->row, len);
        if (!p) {
            fail_jr(jr, "out of memory reading back a spilled join row");
            return false;
        }
        c->row = p;
        c->row_cap = len;
    }
    if (len && fread(c->row, len, 1, c->b->spill) != 1) {
        fail_jr(jr, "reading a join group's temporary file failed");
        return false;
    }
    *v = lmr_slice_make(c->row, len);
    return true;
}

/* Every combination of the buffered sides [s, nsides - 1) with vals[nsides - 1] fixed. */
static void cross(struct lmr_join_reducer *jr, struct cursor *cur, uint32_t s, struct lmr_slice *vals,
                  lmr_join_match_fn match, void *ud, struct lmr_emitter *out)
{
    if (s == jr->nsides - 1) {
        match(ud, lmr_slice_make(jr->key, jr->key_len), vals, jr->nsides, out);
        return;
    }
    cursor_rewind(&cur[s]);
    while (!jr->failed && cursor_next(jr, &cur[s], &vals[s]))
        cross(jr, cur, s + 1, vals, match, ud, out);
}

void lmr_join_reducer_group(struct lmr_join_reducer *jr, struct lmr_slice composite, struct lmr_values *values,
                            lmr_join_match_fn match, void *user_data, struct lmr_emitter *out)
{
    if (!composite.len || jr->failed)
        return;
    struct lmr_slice key = lmr_slice_make(composite.ptr, composite.len - 1), v;
    uint32_t side = composite.ptr[composite.len - 1];
    if (side >= jr->nsides)
        return;
    if (!jr->have_key || key.len != jr->key_len || memcmp(key.ptr, jr->key, key.len)) {
        for (uint32_t s = 0; s < jr->nsides; s++)
            side_reset(&jr->sides[s]);
        if (key.len > jr->key_cap) {
            uint8_t *p = realloc(jr->key, key.len * 2);
            if (!p) {
                fail_jr(jr, "out of memory for a join key");
                return;
            }
            jr->key = p;
            jr->key_cap = key.len * 2;
        }
        memcpy(jr->key, key.ptr, key.len);
        jr->key_len = key.len;
        jr->have_key = true;
    }
    if (side < jr->nsides - 1) {
        while (lmr_values_next(values, &v))
            side_add(jr, &jr->sides[side], v);
        return;
    }
    for (uint32_t s = 0; s + 1 < jr->nsides; s++)
        if (!jr->sides[s].rows)
            return; /* inner join: a side without rows for this key */
    struct cursor cur[LMR_JOIN_MAX_SIDES] = {{0}};
    for (uint32_t s = 0; s < jr->nsides; s++)
        cur[s].b = &jr->sides[s];
    struct lmr_slice vals[LMR_JOIN_MAX_SIDES];
    while (!jr->failed && lmr_values_next(values, &vals[jr->nsides - 1]))
        cross(jr, cur, 0, vals, match, user_data, out);
    for (uint32_t s = 0; s < jr->nsides; s++)
        free(cur[s].row);
}

char *lmr_join_normalize_location(const char *uri)
{
    if (!strncmp(uri, "s3://", 5))
        return strdup(uri);
    const char *path = !strncmp(uri, "file://", 7) ? uri + 7 : uri;
    char *abs = lmr_abspath(path);
    size_t n = abs ? strlen(abs) : 0;
    while (n > 1 && abs[n - 1] == '/')
        abs[--n] = '\0';
    return abs;
}

bool lmr_join_location_contains(const char *location, const char *input)
{
    size_t n = strlen(location);
    return !strncmp(input, location, n) && (input[n] == '\0' || input[n] == '/' || (n && location[n - 1] == '/'));
}

/* ---- the join jobs ---- */

struct join_side {
    char tag[64];
    char *location;
    uint32_t key_field;
    uint32_t value_fields[64];
    size_t nvalue_fields; /* 0: the whole row */
    uint32_t max_field;
    uint32_t between_field; /* 0: no filter; else keep rows with lo <= field <= hi (bytewise) */
    char *lo, *hi;
    struct lmr_join_table *table; /* join-map: a loaded side */
};

struct join_state {
    uint8_t delim;
    uint32_t nsides;
    struct join_side sides[LMR_JOIN_MAX_SIDES];
    int current;     /* the side of the shard being mapped; -1 before start */
    uint32_t stream; /* join-map: the streamed side */
    bool broadcast;
    uint8_t *kbuf, *vbuf, *obuf;
    size_t kcap, vcap, ocap;
    struct lmr_join_reducer jr;
    bool jr_ready;
    bool oom;
    uint64_t buffer_bytes; /* Optional "join-buffer": the reducer's cap for buffered rows */
};

/* "FIELD,LO,HI" into the side's filter. */
static bool parse_between(struct join_side *sd, const char *v)
{
    const char *c1 = strchr(v, ','), *c2 = c1 ? strchr(c1 + 1, ',') : NULL;
    if (!c2 || !lmr_fields_parse_index(v, (size_t)(c1 - v), &sd->between_field))
        return false;
    sd->lo = strndup(c1 + 1, (size_t)(c2 - c1 - 1));
    sd->hi = strdup(c2 + 1);
    if (sd->between_field > sd->max_field)
        sd->max_field = sd->between_field;
    return sd->lo && sd->hi;
}

static int join_setup_common(void **state, const struct lmr_job_args *args, bool broadcast, char *errbuf,
                             size_t errbuf_len)
{
    struct join_state *st = calloc(1, sizeof *st);
    if (!st) {
        snprintf(errbuf, errbuf_len, "out of memory setting up the join");
        return -1;
    }
    st->current = -1;
    st->broadcast = broadcast;
    st->delim = ',';
    const char *delim = lmr_job_arg(args, "delimiter"), *sides = lmr_job_arg(args, "sides");
    if (delim && !lmr_fields_parse_delimiter(delim, &st->delim, errbuf, errbuf_len))
        goto fail;
    if (!sides) {
        snprintf(errbuf, errbuf_len,
                 "a join needs two or more inputs given as --side TAG=URI (e.g. --side rankings=DIR --side "
                 "uservisits=DIR)");
        goto fail;
    }
    for (const char *p = sides; *p;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (st->nsides == LMR_JOIN_MAX_SIDES || n == 0 || n >= sizeof st->sides[0].tag) {
            snprintf(errbuf, errbuf_len, "a join takes 2 to %u sides with tags of 1 to 63 bytes", LMR_JOIN_MAX_SIDES);
            goto fail;
        }
        struct join_side *sd = &st->sides[st->nsides++];
        memcpy(sd->tag, p, n);
        sd->tag[n] = '\0';
        p += n + (comma != NULL);
        char name[96];
        snprintf(name, sizeof name, "side.%s", sd->tag);
        const char *loc = lmr_job_arg(args, name);
        if (!loc || !(sd->location = strdup(loc))) {
            snprintf(errbuf, errbuf_len, "join side '%s' has no location; give --side %s=URI", sd->tag, sd->tag);
            goto fail;
        }
        snprintf(name, sizeof name, "key.%s", sd->tag);
        const char *key = lmr_job_arg(args, name);
        sd->key_field = 1;
        if (key && !lmr_fields_parse_index(key, strlen(key), &sd->key_field)) {
            snprintf(errbuf, errbuf_len, "--arg key.%s='%s' is not a 1-based field number", sd->tag, key);
            goto fail;
        }
        snprintf(name, sizeof name, "value.%s", sd->tag);
        const char *val = lmr_job_arg(args, name);
        if (val && !(sd->nvalue_fields = lmr_fields_parse_list(name, val, sd->value_fields, 64, errbuf, errbuf_len)))
            goto fail;
        sd->max_field = sd->key_field;
        for (size_t i = 0; i < sd->nvalue_fields; i++)
            if (sd->value_fields[i] > sd->max_field)
                sd->max_field = sd->value_fields[i];
        snprintf(name, sizeof name, "between.%s", sd->tag);
        const char *between = lmr_job_arg(args, name);
        if (between && !parse_between(sd, between)) {
            snprintf(errbuf, errbuf_len,
                     "--arg between.%s='%s' is not FIELD,LOW,HIGH (keep rows whose field is in [LOW, HIGH], "
                     "bytewise)",
                     sd->tag, between);
            goto fail;
        }
    }
    const char *jb = lmr_job_arg(args, "join-buffer");
    if (jb && (lmr_parse_size(jb, &st->buffer_bytes) || st->buffer_bytes < 4096)) {
        snprintf(errbuf, errbuf_len, "--arg join-buffer='%s' is not a size of at least 4K", jb);
        goto fail;
    }
    if (st->nsides < 2) {
        snprintf(errbuf, errbuf_len, "a join needs at least two --side inputs, got %u", st->nsides);
        goto fail;
    }
    const char *stream = lmr_job_arg(args, "stream");
    st->stream = st->nsides - 1;
    for (uint32_t s = 0; stream && s < st->nsides; s++)
        if (!strcmp(st->sides[s].tag, stream))
            st->stream = s;
    *state = st;
    return 0;
fail:
    for (uint32_t s = 0; s < st->nsides; s++) {
        free(st->sides[s].location);
        free(st->sides[s].lo);
        free(st->sides[s].hi);
    }
    free(st);
    return -1;
}

static int join_setup(void **state, const struct lmr_job_args *args, char *errbuf, size_t errbuf_len)
{
    return join_setup_common(state, args, false, errbuf, errbuf_len);
}

static int join_map_setup(void **state, const struct lmr_job_args *args, char *errbuf, size_t errbuf_len)
{
    return join_setup_common(state, args, true, errbuf, errbuf_len);
}

static void join_teardown(void *state)
{
    struct join_state *st = state;
    if (!st)
        return;
    for (uint32_t s = 0; s < st->nsides; s++) {
        free(st->sides[s].location);
        free(st->sides[s].lo);
        free(st->sides[s].hi);
        lmr_join_table_destroy(st->sides[s].table);
    }
    if (st->jr_ready)
        lmr_join_reducer_clean_up(&st->jr);
    free(st->kbuf);
    free(st->vbuf);
    free(st->obuf);
    free(st);
}

/* The side's key and value of a row into *key and *value (value built in st->vbuf). */
static bool row_fields(struct join_state *st, const struct join_side *sd, struct lmr_slice row, struct lmr_slice *key,
                       struct lmr_slice *value)
{
    struct lmr_slice f[LMR_FIELDS_MAX];
    size_t n = lmr_fields_split(row, st->delim, f, sd->max_field);
    if (n < sd->max_field)
        return false;
    if (sd->between_field) {
        struct lmr_slice b = f[sd->between_field - 1];
        struct lmr_slice lo = lmr_slice_make(sd->lo, strlen(sd->lo)), hi = lmr_slice_make(sd->hi, strlen(sd->hi));
        if (lmr_range_key_compare(b, lo) < 0 || lmr_range_key_compare(b, hi) > 0) {
            *key = lmr_slice_make(NULL, 0);
            value->ptr = NULL; /* filtered out, not malformed */
            return true;
        }
    }
    *key = f[sd->key_field - 1];
    if (!sd->nvalue_fields) {
        *value = row;
        return true;
    }
    size_t need = row.len + sd->nvalue_fields;
    if (need > st->vcap) {
        uint8_t *p = realloc(st->vbuf, need * 2);
        if (!p)
            return false;
        st->vbuf = p;
        st->vcap = need * 2;
    }
    size_t at = 0;
    for (size_t i = 0; i < sd->nvalue_fields; i++) {
        struct lmr_slice v = f[sd->value_fields[i] - 1];
        if (i)
            st->vbuf[at++] = st->delim;
        memcpy(st->vbuf + at, v.ptr, v.len);
        at += v.len;
    }
    *value = lmr_slice_make(st->vbuf, at);
    return true;
}

static int load_side_line(void *ud, struct lmr_slice line)
{
    void **pair = ud;
    struct join_state *st = pair[0];
    struct join_side *sd = pair[1];
    struct lmr_slice key, value;
    if (!line.len || !row_fields(st, sd, line, &key, &value) || !value.ptr)
        return 0; /* malformed or filtered rows of a loaded side are skipped */
    return lmr_join_table_add(sd->table, key, value) ? -1 : 0;
}

static int join_start(void *state, const struct lmr_task_info *task, char *errbuf, size_t errbuf_len)
{
    struct join_state *st = state;
    if (strcmp(task->role, "map")) {
        if (!st->jr_ready) {
            /* a quarter of the task's shuffle budget for the buffered sides of one key */
            struct lmr_task_budget b = lmr_task_budget(task->memory_mb, task->memory_mb);
            lmr_join_reducer_init(&st->jr, st->nsides,
                                  st->buffer_bytes ? (size_t)st->buffer_bytes : (size_t)(b.shuffle_bytes / 4));
            st->jr_ready = true;
        }
        return 0;
    }
    /* Which side is this shard? The longest location that contains it. */
    st->current = -1;
    size_t best = 0;
    for (uint32_t s = 0; s < st->nsides; s++) {
        size_t n = strlen(st->sides[s].location);
        if (lmr_join_location_contains(st->sides[s].location, task->input_uri) && n >= best) {
            st->current = (int)s;
            best = n;
        }
    }
    if (st->current < 0) {
        snprintf(errbuf, errbuf_len, "input '%s' belongs to none of the join's --side locations", task->input_uri);
        return -1;
    }
    if (!st->broadcast)
        return 0;
    if (st->current != (int)st->stream) {
        snprintf(errbuf, errbuf_len, "the broadcast join maps side '%s' only, but got '%s'", st->sides[st->stream].tag,
                 task->input_uri);
        return -1;
    }
    struct lmr_task_budget b = lmr_task_budget(task->memory_mb, task->memory_mb);
    size_t cap = (size_t)(b.memory_bytes / 4);
    for (uint32_t s = 0; s < st->nsides; s++) {
        struct join_side *sd = &st->sides[s];
        if (s == st->stream || sd->table)
            continue;
        if (!(sd->table = lmr_join_table_new(cap))) {
            snprintf(errbuf, errbuf_len, "out of memory for the broadcast side '%s'", sd->tag);
            return -1;
        }
        void *pair[2] = {st, sd};
        struct lmr_err err = {0};
        if (lmr_join_load_lines(sd->location, cap / 2, load_side_line, pair, &err)) {
            snprintf(errbuf, errbuf_len, "%s%s", err.msg[0] ? err.msg : "loading the broadcast side failed",
                     err.msg[0] ? "" : "; use --arg join=reduce or more --memory");
            return -1;
        }
    }
    return 0;
}

static int join_map(void *state, struct lmr_slice record, struct lmr_emitter *out, struct lmr_job_counters *counters)
{
    struct join_state *st = state;
    if (st->current < 0)
        return 0;
    const struct join_side *sd = &st->sides[st->current];
    struct lmr_slice key, value;
    if (!row_fields(st, sd, record, &key, &value)) {
        counters->malformed_records++;
        return 0;
    }
    if (!value.ptr)
        return 0;
    if (!lmr_join_emit_tagged(out, key, (uint32_t)st->current, st->nsides, value, &st->kbuf, &st->kcap))
        counters->malformed_records++;
    return 0;
}

static uint32_t join_partition(void *state, struct lmr_slice key, uint32_t nparts)
{
    (void)state;
    return lmr_join_partition(key, nparts);
}

/* Emit key<TAB>v0<TAB>v1… (the emitter adds the first tab). */
static void emit_joined(void *ud, struct lmr_slice key, const struct lmr_slice *vals, uint32_t nsides,
                        struct lmr_emitter *out)
{
    struct join_state *st = ud;
    size_t need = nsides;
    for (uint32_t s = 0; s < nsides; s++)
        need += vals[s].len;
    if (need > st->ocap) {
        uint8_t *p = realloc(st->obuf, need * 2);
        if (!p) {
            st->oom = true;
            return;
        }
        st->obuf = p;
        st->ocap = need * 2;
    }
    size_t at = 0;
    for (uint32_t s = 0; s < nsides; s++) {
        if (s)
            st->obuf[at++] = '\t';
        memcpy(st->obuf + at, vals[s].ptr, vals[s].len);
        at += vals[s].len;
    }
    lmr_emit(out, key, lmr_slice_make(st->obuf, at));
}

static void join_reduce(void *state, struct lmr_slice key, struct lmr_values *values, struct lmr_emitter *out)
{
    struct join_state *st = state;
    if (!st->jr_ready) {
        lmr_join_reducer_init(&st->jr, st->nsides, 64u << 20);
        st->jr_ready = true;
    }
    lmr_join_reducer_group(&st->jr, key, values, emit_joined, st, out);
}

static int join_finish(void *state, struct lmr_emitter *out, struct lmr_job_counters *counters)
{
    (void)out;
    struct join_state *st = state;
    if (st->jr_ready && st->jr.spilled_rows) {
        lmr_job_count(counters, "join_spilled_rows", st->jr.spilled_rows);
        st->jr.spilled_rows = 0;
    }
    if (st->oom || (st->jr_ready && st->jr.failed)) {
        lmr_job_error(counters, "%s; give the reducers more --memory",
                      st->oom ? "out of memory building a joined row" : st->jr.error);
        return -1;
    }
    return 0;
}

/* Broadcast: look the streamed row's key up in every loaded side; emit each combination. */
static void broadcast_cross(struct join_state *st, struct lmr_slice key, struct lmr_slice *vals, uint32_t s,
                            struct lmr_emitter *out)
{
    if (s == st->nsides) {
        emit_joined(st, key, vals, st->nsides, out);
        return;
    }
    if (s == st->stream) {
        broadcast_cross(st, key, vals, s + 1, out);
        return;
    }
    struct lmr_join_iter it;
    if (!lmr_join_table_find(st->sides[s].table, key, &it))
        return;
    while (lmr_join_table_next(&it, &vals[s]))
        broadcast_cross(st, key, vals, s + 1, out);
}

static int join_map_broadcast(void *state, struct lmr_slice record, struct lmr_emitter *out,
                              struct lmr_job_counters *counters)
{
    struct join_state *st = state;
    const struct join_side *sd = &st->sides[st->stream];
    struct lmr_slice key, vals[LMR_JOIN_MAX_SIDES];
    if (!row_fields(st, sd, record, &key, &vals[st->stream])) {
        counters->malformed_records++;
        return 0;
    }
    if (!vals[st->stream].ptr)
        return 0;
    /* the value may live in vbuf, which the next row reuses: emits copy it first */
    broadcast_cross(st, key, vals, 0, out);
    if (st->oom) {
        lmr_job_error(counters, "out of memory building a joined row");
        return -1;
    }
    return 0;
}

const struct lmr_job_ops lmr_job_join = {
    .abi_version = LMR_JOB_ABI_VERSION,
    .name = "join",
    .summary = "inner join of --side TAG=URI inputs on a key (--arg key.TAG=N value.TAG=LIST); broadcast when "
               "small",
    .setup = join_setup,
    .teardown = join_teardown,
    .start = join_start,
    .map = join_map,
    .partition = join_partition,
    .reduce = join_reduce,
    .finish = join_finish,
};

const struct lmr_job_ops lmr_job_join_map = {
    .abi_version = LMR_JOB_ABI_VERSION,
    .name = "join-map",
    .summary = "the broadcast (map-side) join: the driver picks it for 'join' when the small sides fit a task",
    .setup = join_map_setup,
    .teardown = join_teardown,
    .start = join_start,
    .map = join_map_broadcast,
    .map_only = true,
};
