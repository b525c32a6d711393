/*
 * An emitter that writes the job's output records as text lines, "key<TAB>value\n" (just
 * "key\n" when the value is empty, as map-only jobs emit), buffered into one store object
 * that becomes visible only on lmr_text_output_commit (create-only: a repeated attempt that
 * finds the part already committed leaves it as it is).
 */
#ifndef LMR_JOB_TEXT_OUTPUT_H
#define LMR_JOB_TEXT_OUTPUT_H

#include <stdbool.h>
#include <stdint.h>

#include "lambdamr/job.h"
#include "store/store.h"

struct lmr_text_output {
    struct lmr_emitter emitter; /* pass &out->emitter to map/reduce */
    struct lmr_store_writer *writer;
    char *key;
    uint8_t *buf;
    size_t len, cap;
    enum lmr_result status; /* sticky: the first write error */
    struct lmr_err err;
    uint64_t records;
    uint64_t bytes;
};

enum lmr_result lmr_text_output_init(struct lmr_text_output *out, struct lmr_store *store, const char *key,
                                     struct lmr_err *err);
/**
 * Flush and commit create-only. @return LMR_OK (also when an earlier attempt already committed
 * the same key: *already_committed is set then), or the first write error.
 */
enum lmr_result lmr_text_output_commit(struct lmr_text_output *out, bool *already_committed, struct lmr_err *err);
/** Abort (if not committed) and free. Safe after commit. */
void lmr_text_output_clean_up(struct lmr_text_output *out);

#endif
