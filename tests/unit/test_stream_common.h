/* Test helpers shared by test_stream_event.c and test_stream_kpl.c: lines through the handler. */
#ifndef LMR_TEST_STREAM_COMMON_H
#define LMR_TEST_STREAM_COMMON_H

#include <stdio.h>
#include <string.h>

#include "stream/event.h"
#include "stream_function.h"
#include "util/buf.h"

#define TEST_STREAM_LINES_MAX 64

/*
 * Build the event of lines[0..n) (sequence numbers 1..n, partition key pk, or each line's sequence
 * number when pk is NULL) on shard 0 of the stdin stream with the rest of *info, run the handler on
 * it and parse its response into *resp. @return the handler's result.
 */
static enum lmr_result test_stream_run_lines(struct lmr_stream_handler_config *cfg, struct lmr_stream_event_info info,
                                             const char *pk, const char *const *lines, size_t n,
                                             struct lmr_stream_response *resp)
{
    struct lmr_stream_record recs[TEST_STREAM_LINES_MAX];
    char seqs[TEST_STREAM_LINES_MAX][32];
    assert_true(n <= TEST_STREAM_LINES_MAX);
    for (size_t i = 0; i < n; i++) {
        snprintf(seqs[i], sizeof seqs[i], "%020zu", i + 1);
        recs[i] = (struct lmr_stream_record){lines[i], strlen(lines[i]), pk ? pk : seqs[i], seqs[i], 1000};
    }
    info.shard_id = "shardId-000000000000";
    info.event_source_arn = "arn:aws:kinesis:local:000000000000:stream/stdin";
    struct lmr_buf ev, out;
    lmr_buf_init(&ev, 1 << 22);
    lmr_buf_init(&out, 1 << 22);
    assert_int_equal(lmr_stream_event_build(&ev, &info, recs, n, NULL), LMR_OK);
    struct lmr_err err;
    enum lmr_result r = lmr_stream_handler(cfg, NULL, ev.data, ev.len, &out, &err);
    if (!r)
        assert_int_equal(lmr_stream_response_parse(out.data, out.len, resp, NULL), LMR_OK);
    lmr_buf_clean_up(&ev);
    lmr_buf_clean_up(&out);
    return r;
}

#endif
