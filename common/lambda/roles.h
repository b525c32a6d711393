/*
 * The roles one function binary plays (its _HANDLER), and which of them a deployment has a
 * function for. A deployment with prefix P has one function per deployable role, named
 * P-ROLE with handler ROLE (the embedded default uses the prefix "lambdamr"). The function's
 * role table (function/roles.c) and `lambdamr deploy` both use these names; "echo" is a test
 * role and is not deployed.
 */
#ifndef LMR_LAMBDA_ROLES_H
#define LMR_LAMBDA_ROLES_H

#define LMR_ROLE_MAPPER "mapper"
#define LMR_ROLE_REDUCER "reducer"
#define LMR_ROLE_STREAM "stream"
#define LMR_ROLE_COORDINATOR "coordinator"
#define LMR_ROLE_ECHO "echo"

/* The deployable roles, in deploy's order. */
#define LMR_DEPLOYABLE_ROLE_COUNT 4
static const char *const lmr_deployable_roles[LMR_DEPLOYABLE_ROLE_COUNT] = {LMR_ROLE_MAPPER, LMR_ROLE_REDUCER,
                                                                            LMR_ROLE_STREAM, LMR_ROLE_COORDINATOR};

/* The prefix of the embedded default's functions (lambdamr-mapper, ...). */
#define LMR_DEFAULT_FUNCTION_PREFIX "lambdamr"

#endif
