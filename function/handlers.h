/* The roles one bootstrap binary can play, by _HANDLER. */
#ifndef LMR_FUNCTION_HANDLERS_H
#define LMR_FUNCTION_HANDLERS_H

#include "lambda/runtime.h"

struct lmr_function_role {
    const char *name; /* _HANDLER value */
    lmr_handler_fn handler;
    void (*init)(void); /* Optional: run once at process start, before the first GET /next (Lambda's Init) */
};

const struct lmr_function_role *lmr_function_role_find(const char *name);
/** "mapper, reducer, …" for error messages. */
const char *lmr_function_role_names(void);

#endif
