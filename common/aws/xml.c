/* AWS XML responses through expat (see xml.h). Paths and texts are capped. */
#include "aws/xml.h"

#include <stdbool.h>
#include <string.h>

#include <expat.h>

#include "util/buf.h"

#define XML_PATH_MAX_BYTES 1024
#define XML_TEXT_MAX_BYTES (1u << 20)

struct xml_state {
    XML_Parser parser;
    struct lmr_buf path, text;
    lmr_aws_xml_fn fn;
    void *user_data;
    enum lmr_result result;
    bool capped; /* result is ours: a path or a text over its cap */
};

static void XMLCALL on_start(void *ud, const XML_Char *name, const XML_Char **attrs)
{
    struct xml_state *x = ud;
    (void)attrs;
    if (x->result)
        return;
    if ((x->path.len && lmr_buf_append(&x->path, "/", 1)) || lmr_buf_append_str(&x->path, name)) {
        x->result = LMR_ERR_TOO_LARGE;
        x->capped = true;
        XML_StopParser(x->parser, XML_FALSE);
    }
    lmr_buf_reset(&x->text);
}

static void XMLCALL on_end(void *ud, const XML_Char *name)
{
    struct xml_state *x = ud;
    (void)name;
    if (x->result)
        return;
    x->result = x->fn(x->user_data, x->path.data, x->text.data ? x->text.data : "", x->text.len);
    char *slash = strrchr(x->path.data, '/');
    x->path.len = slash ? (size_t)(slash - x->path.data) : 0;
    x->path.data[x->path.len] = '\0';
    lmr_buf_reset(&x->text);
    if (x->result)
        XML_StopParser(x->parser, XML_FALSE);
}

static void XMLCALL on_text(void *ud, const XML_Char *s, int len)
{
    struct xml_state *x = ud;
    if (!x->result && lmr_buf_append(&x->text, s, (size_t)len)) {
        x->result = LMR_ERR_TOO_LARGE;
        x->capped = true;
        XML_StopParser(x->parser, XML_FALSE);
    }
}

enum lmr_result lmr_aws_xml_parse(const char *data, size_t len, lmr_aws_xml_fn fn, void *user_data, struct lmr_err *err)
{
    struct xml_state x = {.fn = fn, .user_data = user_data};
    x.parser = XML_ParserCreate("UTF-8");
    if (!x.parser)
        return LMR_ERR_NOMEM;
    lmr_buf_init(&x.path, XML_PATH_MAX_BYTES);
    lmr_buf_init(&x.text, XML_TEXT_MAX_BYTES);
    XML_SetUserData(x.parser, &x);
    XML_SetElementHandler(x.parser, on_start, on_end);
    XML_SetCharacterDataHandler(x.parser, on_text);
    enum XML_Status st = XML_Parse(x.parser, data, (int)len, XML_TRUE);
    enum lmr_result r = x.result;
    if (x.capped)
        r = lmr_fail(err, LMR_ERR_TOO_LARGE,
                     "XML from AWS nests elements deeper than %u bytes of path or holds more than %u bytes of text in "
                     "one element (at line %lu); it is not a response this client can read",
                     XML_PATH_MAX_BYTES, XML_TEXT_MAX_BYTES, (unsigned long)XML_GetCurrentLineNumber(x.parser));
    else if (!r && st != XML_STATUS_OK)
        r = lmr_fail(err, LMR_ERR_FORMAT, "malformed XML from AWS at line %lu: %s",
                     (unsigned long)XML_GetCurrentLineNumber(x.parser), XML_ErrorString(XML_GetErrorCode(x.parser)));
    XML_ParserFree(x.parser);
    lmr_buf_clean_up(&x.path);
    lmr_buf_clean_up(&x.text);
    return r;
}

enum lmr_result lmr_aws_xml_escape(struct lmr_buf *out, const char *s)
{
    enum lmr_result r = LMR_OK;
    for (; !r && *s; s++) {
        switch (*s) {
        case '&':
            r = lmr_buf_append_str(out, "&amp;");
            break;
        case '<':
            r = lmr_buf_append_str(out, "&lt;");
            break;
        case '>':
            r = lmr_buf_append_str(out, "&gt;");
            break;
        case '"':
            r = lmr_buf_append_str(out, "&quot;");
            break;
        case '\'':
            r = lmr_buf_append_str(out, "&apos;");
            break;
        default:
            r = lmr_buf_append(out, s, 1);
        }
    }
    return r;
}
