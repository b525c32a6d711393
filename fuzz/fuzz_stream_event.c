/*
 * The Kinesis/Lambda stream event and the stream function's response (common/stream/event.c),
 * both read with the in-place scanner. Whatever parses must also be JSON to jansson, and the
 * records found must be those jansson sees when "Records" appears once. Each record's data goes
 * through the KPL deaggregator as the stream function reads it (fuzz_kpl.c fuzzes it deeper).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stream/event.h"
#include "stream/kpl.h"

static void must_be_json(const uint8_t *data, size_t size, const char *what)
{
    json_error_t jerr;
    json_t *j = json_loadb((const char *)data, size, 0, &jerr);
    if (!j) {
        fprintf(stderr, "the %s parser accepts a document jansson refuses: %s\n", what, jerr.text);
        abort();
    }
    json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct lmr_err err = {0};
    struct lmr_stream_event ev;
    if (lmr_stream_event_parse((const char *)data, size, &ev, &err) == LMR_OK) {
        must_be_json(data, size, "stream event");
        for (size_t i = 0; i < ev.n_records; i++) {
            const struct lmr_stream_parsed_record *r = &ev.records[i];
            /* Every decoded piece lies in the arena and is NUL-terminated where it is a string. */
            if (strlen(r->sequence_number) > size || strlen(r->partition_key) > size || r->len > size)
                abort();
            struct lmr_kpl_reader rd;
            if (lmr_kpl_open(r->data, r->len, &rd)) {
                struct lmr_kpl_user_record u;
                size_t n = 0;
                while (lmr_kpl_next(&rd, &u)) {
                    if (u.data < r->data || u.data + u.len > r->data + r->len)
                        abort();
                    n++;
                }
                if (n != rd.n_records)
                    abort();
            }
        }
        if (ev.state_text &&
            (ev.state_text < (const char *)data || ev.state_text + ev.state_len > (const char *)data + size))
            abort();
    }
    lmr_stream_event_clean_up(&ev);

    struct lmr_stream_response resp;
    if (lmr_stream_response_parse((const char *)data, size, &resp, &err) == LMR_OK) {
        must_be_json(data, size, "stream response");
        for (size_t i = 0; i < resp.n_failed; i++)
            if (!resp.failed_ids[i][0])
                abort(); /* an empty itemIdentifier fails the whole batch instead */
        lmr_stream_response_clean_up(&resp);
    }
    return 0;
}
