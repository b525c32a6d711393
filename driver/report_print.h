/* The human-readable job summary printed after a run (the report JSON has every figure). */
#ifndef LMR_DRIVER_REPORT_PRINT_H
#define LMR_DRIVER_REPORT_PRINT_H

#include <jansson.h>
#include <stdio.h>

#include <stdbool.h>

void lmr_report_print(FILE *f, const json_t *report);
/** Print j as indented JSON and a newline (nothing when it cannot be encoded). */
void lmr_json_print(FILE *f, const json_t *j);
/** Print the report as indented JSON (json) or as the summary. */
void lmr_report_print_as(FILE *f, const json_t *report, bool json);

#include "util/result.h"

/** Read OUTPUT/_lambdamr/report.json (any store) into *out (new reference). */
enum lmr_result lmr_report_load(const char *output, json_t **out, struct lmr_err *err);

#endif
