/* Placeholder until the Runtime API client lands (issue 2). */
#include <stdio.h>

#include "lambda/runtime.h"

int lmr_runtime_main(lmr_handler_fn handler, void *user_data)
{
    fprintf(stderr, "bootstrap: the Runtime API client is not built yet\n");
    return 1;
}

int lmr_runtime_init_error(const char *error_type, const char *message)
{
    return 1;
}
