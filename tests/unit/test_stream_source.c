/* The local sources: a growing file (partial lines, rotation, truncation, checkpoints) and stdin. */
#define _GNU_SOURCE
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "stream/source.h"

static char dir[128], path[256];

static void append(const char *p, const char *text)
{
    FILE *f = fopen(p, "a");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* Read everything available now; returns the lines joined with '|' and the last sequence number. */
static char *read_all(struct lmr_stream_shard_reader *r, char *last_seq, bool *ended)
{
    static char out[4096];
    out[0] = '\0';
    for (int round = 0; round < 3; round++) {
        struct lmr_stream_read_result res = {0};
        assert_int_equal(r->source->vtable->read(r, 1000, 20, &res, NULL), LMR_OK);
        for (struct lmr_stream_item *it = res.head; it; it = it->next) {
            strncat(out, it->rec.data, it->rec.len);
            strcat(out, "|");
            strcpy(last_seq, it->rec.sequence_number);
        }
        if (ended)
            *ended = res.shard_ended;
        lmr_stream_item_free(res.head);
    }
    return out;
}

static void test_file_follow_rotate_restart(void **unused)
{
    snprintf(dir, sizeof dir, "/tmp/lmr-test-source-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/app.log", dir);
    char uri[300], seq[LMR_STREAM_SEQ_MAX + 1] = "";
    snprintf(uri, sizeof uri, "file://%s", path);
    struct lmr_stream_source *src;
    assert_int_equal(lmr_stream_source_open(uri, &src, NULL), LMR_OK);
    assert_string_equal(src->vtable->name, "file");
    struct lmr_stream_position pos;
    lmr_stream_position_parse("trim-horizon", &pos, NULL);
    struct lmr_stream_shard_reader *r;
    /* The file does not exist yet: the reader waits for it. */
    assert_int_equal(src->vtable->open_shard(src, "shardId-000000000000", &pos, &r, NULL), LMR_OK);
    assert_string_equal(read_all(r, seq, NULL), "");
    append(path, "one\ntwo\nthr");
    assert_string_equal(read_all(r, seq, NULL), "one|two|"); /* a partial line waits for its newline */
    append(path, "ee\r\n");
    assert_string_equal(read_all(r, seq, NULL), "three\r|");
    char after_three[LMR_STREAM_SEQ_MAX + 1];
    strcpy(after_three, seq);
    /* Rotation: the old file gets a last line (unterminated), then a new file appears. */
    append(path, "four\nfive");
    char rotated[300];
    snprintf(rotated, sizeof rotated, "%s.1", path);
    assert_int_equal(rename(path, rotated), 0);
    append(path, "six\n");
    assert_string_equal(read_all(r, seq, NULL), "four|five|six|");
    src->vtable->close_shard(r);

    /* Restart from the checkpoint after "three": the rotated file is found and drained first. */
    pos.type = LMR_STREAM_AFTER_SEQUENCE_NUMBER;
    strcpy(pos.sequence_number, after_three);
    assert_int_equal(src->vtable->open_shard(src, "shardId-000000000000", &pos, &r, NULL), LMR_OK);
    assert_string_equal(read_all(r, seq, NULL), "four|five|six|");
    /*
     * Truncation in place (copytruncate) starts over at the beginning of the file once the
     * reader sees the file shorter than what it has read (as tail -F does).
     */
    assert_int_equal(truncate(path, 0), 0);
    assert_string_equal(read_all(r, seq, NULL), "");
    append(path, "seven\n");
    assert_string_equal(read_all(r, seq, NULL), "seven|");
    src->vtable->close_shard(r);

    /* LATEST skips what is there; AT_TIMESTAMP is refused with a reason. */
    lmr_stream_position_parse("latest", &pos, NULL);
    assert_int_equal(src->vtable->open_shard(src, "shardId-000000000000", &pos, &r, NULL), LMR_OK);
    append(path, "eight\n");
    assert_string_equal(read_all(r, seq, NULL), "eight|");
    src->vtable->close_shard(r);
    struct lmr_err err;
    lmr_stream_position_parse("at-timestamp=2026-01-01T00:00:00Z", &pos, NULL);
    assert_int_equal(src->vtable->open_shard(src, "shardId-000000000000", &pos, &r, &err), LMR_ERR_UNSUPPORTED);
    /* A checkpoint from another source is refused. */
    pos.type = LMR_STREAM_AFTER_SEQUENCE_NUMBER;
    strcpy(pos.sequence_number, "00000000000000000001");
    assert_int_equal(src->vtable->open_shard(src, "shardId-000000000000", &pos, &r, &err), LMR_ERR_FORMAT);
    lmr_stream_source_destroy(src);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_stdin_lines_and_end(void **unused)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    struct lmr_stream_source *src;
    assert_int_equal(lmr_stream_stdin_source_new(fds[0], &src, NULL), LMR_OK);
    assert_false(src->replayable);
    struct lmr_stream_position pos;
    lmr_stream_position_parse("trim-horizon", &pos, NULL);
    struct lmr_stream_shard_reader *r;
    assert_int_equal(src->vtable->open_shard(src, "shardId-000000000000", &pos, &r, NULL), LMR_OK);
    assert_int_equal(write(fds[1], "a b\n\nc", 6), 6);
    char seq[LMR_STREAM_SEQ_MAX + 1] = "";
    bool ended = true;
    assert_string_equal(read_all(r, seq, &ended), "a b||");
    assert_false(ended);
    assert_string_equal(seq, "00000000000000000002");
    close(fds[1]);
    assert_string_equal(read_all(r, seq, &ended), "c|"); /* the unterminated last line at EOF */
    assert_true(ended);
    lmr_stream_source_destroy(src);
    close(fds[0]);
}

/* Items are carved from per-thread blocks (source.c) and freed anywhere: a maker thread makes items of many sizes
   (some too large for a block), the test's thread checks and frees them, singly through a releaser and in chains, in
   another order than made; a block is freed when its last item goes (ASan and LeakSanitizer see the rest). */
#define ITEMS_N 40000
struct made {
    struct lmr_stream_item *it[ITEMS_N];
};

static size_t item_len(size_t i)
{
    return i % 997 == 0 ? 5000 + i % 3000 : i % 61;
}

static void *make_items(void *arg)
{
    struct made *m = arg;
    char data[8192], seq[32];
    for (size_t i = 0; i < ITEMS_N; i++) {
        size_t len = item_len(i);
        memset(data, 'a' + (int)(i % 26), len);
        snprintf(seq, sizeof seq, "%zu", i);
        m->it[i] = lmr_stream_item_new(data, len, seq, i % 2 ? seq : "", 1000 + i);
        if (!m->it[i])
            return NULL;
    }
    return m; /* the thread ends with its block open: its key's destructor closes it */
}

static void test_items_across_threads(void **unused)
{
    struct made *m = calloc(1, sizeof *m);
    assert_non_null(m);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, make_items, m), 0);
    void *ok = NULL;
    pthread_join(th, &ok);
    assert_ptr_equal(ok, m);
    for (size_t i = 0; i < ITEMS_N; i++) {
        const struct lmr_stream_item *it = m->it[i];
        char seq[32];
        snprintf(seq, sizeof seq, "%zu", i);
        assert_int_equal(it->rec.len, item_len(i));
        for (size_t j = 0; j < it->rec.len; j++)
            assert_int_equal(it->rec.data[j], 'a' + (int)(i % 26));
        assert_int_equal(it->rec.data[it->rec.len], '\0');
        assert_string_equal(it->rec.sequence_number, seq);
        assert_string_equal(it->rec.partition_key, i % 2 ? seq : "");
        assert_int_equal(it->rec.arrival_ms, 1000 + i);
    }
    /* Odd items one at a time (runs of one per block), then the even ones as a chain, newest first. */
    struct lmr_stream_item_releaser rel = {0};
    for (size_t i = 1; i < ITEMS_N; i += 2)
        lmr_stream_item_release(&rel, m->it[i]);
    lmr_stream_item_releaser_flush(&rel);
    struct lmr_stream_item *chain = NULL;
    for (size_t i = 0; i < ITEMS_N; i += 2) {
        m->it[i]->next = chain;
        chain = m->it[i];
    }
    lmr_stream_item_free(chain);
    /* This thread's own items: its block stays open for the next ones. */
    struct lmr_stream_item *a = lmr_stream_item_new("x", 1, "1", "k", 1), *b = lmr_stream_item_new("y", 1, "2", "k", 2);
    assert_true(a && b);
    assert_string_equal(b->rec.data, "y");
    lmr_stream_item_free(a);
    lmr_stream_item_free(b);
    free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_file_follow_rotate_restart),
        cmocka_unit_test(test_stdin_lines_and_end),
        cmocka_unit_test(test_items_across_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
