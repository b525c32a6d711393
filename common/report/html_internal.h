/* Shared by the report pages (html.c: batch jobs, html_stream.c: stream runs); not a public interface. */
#ifndef LMR_REPORT_HTML_INTERNAL_H
#define LMR_REPORT_HTML_INTERNAL_H

#include <jansson.h>
#include <stdio.h>

#include "util/result.h"

/** Write s with HTML's special characters escaped. */
void lmr_html_esc(FILE *f, const char *s);
/** "$0.0000123" or "$1.2345" into buf. @return buf. */
const char *lmr_html_usd(double v, char *buf, size_t cap);
/** The page's head (doctype, the Content-Security-Policy that forbids every fetch, the styles) and <body>. */
void lmr_html_open(FILE *f, const char *job, const char *id);
/** A parameter table's row: name and value, both escaped. */
void lmr_html_row(FILE *f, const char *name, const char *value);
/**
 * The end of the parameters section: a row per job argument ("--NAME"), the table's end, the
 * command that reproduces the `what` ("job", "run") when the report has one, and </section>.
 */
void lmr_html_args_and_command(FILE *f, const json_t *report, const char *what);
/** The cost section (#cost, #cost-table, #cost-total, #prices) from the report's "cost". */
void lmr_html_cost(FILE *f, const json_t *report);
/** The page of a stream report ("kind": "stream"). */
enum lmr_result lmr_report_html_stream(FILE *out, const json_t *report, struct lmr_err *err);

#endif
