/*
 * The S3 XML parsers (common/store/s3_store.c: list pages, multipart initiate/complete, delete
 * results, through common/aws/xml.c) and the AWS error body parser (common/aws/http.c: XML
 * and JSON errors). The first byte picks the parser.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws/http.h"
#include "aws/xml.h"
#include "store/s3_store.h"

struct seen {
    size_t objects, key_bytes;
};

static enum lmr_result on_object(void *user_data, const struct lmr_store_object *obj)
{
    struct seen *s = user_data;
    s->objects++;
    s->key_bytes += strlen(obj->key);
    return s->objects > 5000 ? LMR_ERR_CANCELLED : LMR_OK; /* a caller may stop the listing */
}

static enum lmr_result on_element(void *user_data, const char *path, const char *text, size_t text_len)
{
    if (strlen(path) > 1024 || strlen(text) != text_len)
        abort(); /* paths are capped and texts NUL-terminated at their length */
    return LMR_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t which = data[0] % 6;
    const char *xml = (const char *)data + 1;
    size_t len = size - 1;
    struct lmr_err err = {0};
    if (which < 4) {
        struct seen s = {0};
        enum lmr_result r = lmr_s3_parse_response((enum lmr_s3_response)which, xml, len, on_object, &s, &err);
        if (r != LMR_OK && !err.msg[0] && r != LMR_ERR_CANCELLED)
            abort(); /* every refusal explains itself */
    } else if (which == 4) {
        lmr_aws_xml_parse(xml, len, on_element, NULL, &err);
    } else {
        struct lmr_aws_response resp;
        lmr_aws_response_init(&resp);
        resp.status = 400;
        if (lmr_buf_append(&resp.body, xml, len) == LMR_OK) {
            lmr_aws_response_parse_error(&resp);
            if (!resp.aws_code[0] || strlen(resp.aws_code) >= sizeof resp.aws_code ||
                strlen(resp.aws_message) >= sizeof resp.aws_message)
                abort();
        }
        lmr_aws_response_clean_up(&resp);
    }
    return 0;
}
