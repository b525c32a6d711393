#include "stream/source.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/*
 * Items come from blocks: a reader makes one item per record (a line of standard input, tens of
 * bytes) and lanes free them on other threads, where malloc's per-item cost and its cross-thread
 * free were ~350 instructions a record. A thread carves its items from its open block (no lock, no
 * atomic); a block's `live` starts at BLOCK_OPEN_BIAS and every free subtracts 1, and when the
 * block is full (or its thread ends) the thread subtracts BLOCK_OPEN_BIAS minus the items it
 * carved, so that live counts the items still held and whoever brings it to 0 frees the block.
 * Items larger than ITEM_BLOCKED_MAX_BYTES (a Kinesis record can be 1 MB) are malloc'd alone.
 */
#define ITEM_BLOCK_BYTES (64u * 1024 - 64) /* under malloc's mmap threshold */
#define ITEM_BLOCKED_MAX_BYTES (4u * 1024)
#define BLOCK_OPEN_BIAS (SIZE_MAX / 4)

struct lmr_stream_item_block {
    _Atomic size_t live;
    size_t carved, used; /* the owning thread's, while open */
    _Alignas(16) char mem[];
};

static __thread struct lmr_stream_item_block *open_block;
static pthread_key_t open_block_key;
static pthread_once_t open_block_once = PTHREAD_ONCE_INIT;

static void block_sub(struct lmr_stream_item_block *b, size_t n)
{
    if (atomic_fetch_sub_explicit(&b->live, n, memory_order_acq_rel) == n)
        free(b);
}

static void block_close(void *arg)
{
    struct lmr_stream_item_block *b = arg;
    if (b)
        block_sub(b, BLOCK_OPEN_BIAS - b->carved);
}

static void open_block_key_init(void)
{
    /* The destructor closes a thread's open block when the thread ends (threads that carved items). */
    pthread_key_create(&open_block_key, block_close);
}

static struct lmr_stream_item *item_alloc(size_t size)
{
    size = (size + 15) & ~(size_t)15;
    if (size > ITEM_BLOCKED_MAX_BYTES) {
        struct lmr_stream_item *it = malloc(size);
        if (it)
            it->block = NULL;
        return it;
    }
    struct lmr_stream_item_block *b = open_block;
    if (!b || b->used + size > ITEM_BLOCK_BYTES - sizeof *b) {
        pthread_once(&open_block_once, open_block_key_init);
        struct lmr_stream_item_block *nb = malloc(ITEM_BLOCK_BYTES);
        if (!nb)
            return NULL;
        atomic_init(&nb->live, BLOCK_OPEN_BIAS);
        nb->carved = nb->used = 0;
        block_close(b);
        open_block = b = nb;
        pthread_setspecific(open_block_key, b);
    }
    struct lmr_stream_item *it = (struct lmr_stream_item *)(b->mem + b->used);
    b->used += size;
    b->carved++;
    it->block = b;
    return it;
}

struct lmr_stream_item *lmr_stream_item_new(const void *data, size_t len, const char *sequence_number,
                                            const char *partition_key, uint64_t arrival_ms)
{
    size_t seq_len = strlen(sequence_number), pk_len = strlen(partition_key);
    struct lmr_stream_item *it = item_alloc(sizeof *it + len + seq_len + pk_len + 3);
    if (!it)
        return NULL;
    char *p = it->mem;
    memcpy(p, data, len);
    p[len] = '\0';
    char *seq = p + len + 1;
    memcpy(seq, sequence_number, seq_len + 1);
    char *pk = seq + seq_len + 1;
    memcpy(pk, partition_key, pk_len + 1);
    it->next = NULL;
    it->rec = (struct lmr_stream_record){p, len, pk, seq, arrival_ms};
    it->window_start_ms = 0;
    it->lane = 0;
    it->event_bytes = 0;
    return it;
}

void lmr_stream_item_release(struct lmr_stream_item_releaser *r, struct lmr_stream_item *it)
{
    if (!it->block) {
        free(it);
        return;
    }
    if (it->block != r->block) {
        lmr_stream_item_releaser_flush(r);
        r->block = it->block;
    }
    r->n++;
}

void lmr_stream_item_releaser_flush(struct lmr_stream_item_releaser *r)
{
    if (r->block && r->n)
        block_sub(r->block, r->n);
    r->block = NULL;
    r->n = 0;
}

void lmr_stream_item_free(struct lmr_stream_item *items)
{
    struct lmr_stream_item_releaser r = {0};
    while (items) {
        struct lmr_stream_item *next = items->next;
        lmr_stream_item_release(&r, items);
        items = next;
    }
    lmr_stream_item_releaser_flush(&r);
}

const char *lmr_stream_position_type_name(enum lmr_stream_position_type t)
{
    switch (t) {
    case LMR_STREAM_TRIM_HORIZON:
        return "TRIM_HORIZON";
    case LMR_STREAM_LATEST:
        return "LATEST";
    case LMR_STREAM_AT_TIMESTAMP:
        return "AT_TIMESTAMP";
    case LMR_STREAM_AT_SEQUENCE_NUMBER:
        return "AT_SEQUENCE_NUMBER";
    case LMR_STREAM_AFTER_SEQUENCE_NUMBER:
        return "AFTER_SEQUENCE_NUMBER";
    }
    return "?";
}

/* Compare ignoring case and treating '-' and '_' alike. */
static bool same_word(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char x = a[i] == '_' ? '-' : a[i], y = b[i] == '_' ? '-' : b[i];
        if (!x || !y || (x | 0x20) != (y | 0x20))
            return false;
    }
    return true;
}

enum lmr_result lmr_stream_position_parse(const char *s, struct lmr_stream_position *out, struct lmr_err *err)
{
    memset(out, 0, sizeof *out);
    size_t n = strlen(s);
    if (n == 12 && same_word(s, "trim-horizon", 12)) {
        out->type = LMR_STREAM_TRIM_HORIZON;
        return LMR_OK;
    }
    if (n == 6 && same_word(s, "latest", 6)) {
        out->type = LMR_STREAM_LATEST;
        return LMR_OK;
    }
    if (n > 13 && same_word(s, "at-timestamp=", 13)) {
        out->type = LMR_STREAM_AT_TIMESTAMP;
        if (lmr_stream_parse_time(s + 13, &out->timestamp_ms) == LMR_OK)
            return LMR_OK;
    }
    return lmr_fail(err, LMR_ERR_INVALID,
                    "invalid starting position '%s': use trim-horizon, latest or at-timestamp=ISO-8601 (for example "
                    "at-timestamp=2026-11-30T12:00:00Z)",
                    s);
}

enum lmr_result lmr_stream_source_open(const char *uri, struct lmr_stream_source **out, struct lmr_err *err)
{
    if (!strcmp(uri, "-"))
        return lmr_stream_stdin_source_new(0, out, err);
    if (!strncmp(uri, "file://", 7))
        return lmr_stream_file_source_new(uri + 7, out, err);
    if (!strncmp(uri, "kinesis://", 10))
        return lmr_stream_kinesis_source_new(uri + 10, out, err);
    if (!strncmp(uri, "arn:aws:kinesis:", 16)) {
        const char *slash = strstr(uri, ":stream/");
        if (slash)
            return lmr_stream_kinesis_source_new(slash + 8, out, err);
    }
    return lmr_fail(err, LMR_ERR_INVALID,
                    "unknown stream source '%s': use kinesis://STREAM, - (standard input) or file://PATH", uri);
}

void lmr_stream_source_destroy(struct lmr_stream_source *src)
{
    if (src)
        src->vtable->destroy(src);
}
