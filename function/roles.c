/* The table of roles: each is a handler from its own folder (mapper/, reducer/, …). The names, and which
 * roles a deployment has a function for, are in common/lambda/roles.h. */
#include <string.h>

#include "handlers.h"
#include "lambda/roles.h"
#include "mapper.h"
#include "reducer.h"
#include "role.h"
#include "stream_function.h"

/* Echo handler: returns the event unchanged. For tests and invoke benchmarks. */
static enum lmr_result echo_handler(void *user_data, const struct lmr_runtime_context *ctx, const char *event,
                                    size_t event_len, struct lmr_buf *response, struct lmr_err *err)
{
    return lmr_buf_append(response, event, event_len);
}

static const struct lmr_function_role roles[] = {
    {LMR_ROLE_MAPPER, lmr_mapper_handle},
    {LMR_ROLE_REDUCER, lmr_reducer_handle},
    {LMR_ROLE_ECHO, echo_handler},
    {LMR_ROLE_STREAM, lmr_stream_handler},
    {LMR_ROLE_COORDINATOR, lmr_coordinator_handle, lmr_coordinator_init},
};

const struct lmr_function_role *lmr_function_role_find(const char *name)
{
    for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++)
        if (!strcmp(roles[i].name, name))
            return &roles[i];
    return NULL;
}

const char *lmr_function_role_names(void)
{
    return "mapper, reducer, stream, coordinator, echo";
}
