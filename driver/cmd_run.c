/* Placeholder: 'lambdamr run' is not built yet. */
#include <stdio.h>

#include "commands.h"

int lmr_cmd_run(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "lambdamr run: not available yet in this build\n");
    return 1;
}
