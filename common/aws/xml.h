/*
 * A small streaming view of AWS XML responses on top of expat: the callback sees every
 * element when it closes, with its path from the root ("ListBucketResult/Contents/Key") and
 * its text content. Enough for S3's list, multipart and delete results and error bodies.
 */
#ifndef LMR_AWS_XML_H
#define LMR_AWS_XML_H

#include <stddef.h>

#include "util/result.h"

/** Called at each closing tag. text is the element's own text (NUL-terminated, may be ""). Non-OK stops. */
typedef enum lmr_result (*lmr_aws_xml_fn)(void *user_data, const char *path, const char *text, size_t text_len);

/** Parse an XML document. @return LMR_ERR_FORMAT if it is not well-formed, or the callback's result. */
enum lmr_result lmr_aws_xml_parse(const char *data, size_t len, lmr_aws_xml_fn fn, void *user_data,
                                  struct lmr_err *err);

/** Append s with &, <, >, ", ' escaped to out (for request bodies). */
struct lmr_buf;
enum lmr_result lmr_aws_xml_escape(struct lmr_buf *out, const char *s);

#endif
