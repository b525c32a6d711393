/* Placeholder: 'lambdamr stream' is not built yet. */
#include <stdio.h>

#include "commands.h"

int lmr_cmd_stream(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "lambdamr stream: not available yet in this build\n");
    return 1;
}
