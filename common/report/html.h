/*
 * The job report as one self-contained HTML page: inline styles, no scripts, and a
 * Content-Security-Policy that forbids every fetch, so the file can be mailed, archived and
 * opened offline. It shows the job's parameters and the command that reproduces it, a
 * timeline (a row per concurrency slot, a bar per invocation coloured by phase; cold starts,
 * failed and retried attempts and the critical path marked), the phases, the shuffle's bytes
 * before and after compression, stragglers, and the cost with the prices used. A stream run's
 * report gets a page of its own shape (html_stream.c): its windows and a timeline per window.
 */
#ifndef LMR_REPORT_HTML_H
#define LMR_REPORT_HTML_H

#include <jansson.h>
#include <stdio.h>

#include "util/result.h"

/** A straggler: an invocation that took more than this many times its phase's median. */
#define LMR_REPORT_STRAGGLER_FACTOR 1.5

/**
 * Write the page for report to out: a batch report.json (schema 2 or later), or a stream run's
 * ("kind": "stream": the run, a table of its windows, a timeline per window kept in full, the cost).
 * @return LMR_ERR_FORMAT when the report lacks what the page needs (the message says what),
 *         LMR_ERR_IO when writing fails.
 */
enum lmr_result lmr_report_html_write(FILE *out, const json_t *report, struct lmr_err *err);

#endif
