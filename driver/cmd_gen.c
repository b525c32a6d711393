/* Placeholder: 'lambdamr gen' is not built yet. */
#include <stdio.h>

#include "commands.h"

int lmr_cmd_gen(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "lambdamr gen: not available yet in this build\n");
    return 1;
}
