/* Placeholder: 'lambdamr serve' is not built yet. */
#include <stdio.h>

#include "commands.h"

int lmr_cmd_serve(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "lambdamr serve: not available yet in this build\n");
    return 1;
}
