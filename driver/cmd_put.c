/* Placeholder: 'lambdamr put' is not built yet. */
#include <stdio.h>

#include "commands.h"

int lmr_cmd_put(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "lambdamr put: not available yet in this build\n");
    return 1;
}
