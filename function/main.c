/*
 * bootstrap: the one function binary. Deployed as `bootstrap` in a Lambda zip (custom
 * runtime), and started the same way by the embedded service. _HANDLER picks the role.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lambda/runtime.h"
#include "handlers.h"

int main(void)
{
    const char *handler = getenv("_HANDLER");
    const struct lmr_function_role *role = lmr_function_role_find(handler ? handler : "");
    if (!role) {
        char msg[512];
        snprintf(msg, sizeof msg, "unknown _HANDLER '%s': use one of %s", handler ? handler : "",
                 lmr_function_role_names());
        fprintf(stderr, "bootstrap: %s\n", msg);
        return lmr_runtime_init_error("Runtime.InvalidEntrypoint", msg);
    }
    if (role->init)
        role->init();
    return lmr_runtime_main(role->handler, NULL);
}
