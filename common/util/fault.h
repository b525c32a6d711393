/*
 * Fault injection for tests: LMR_FAULT="point:task:attempt[,point:task:attempt…]" makes the
 * named point fire for that task and attempt ('*' matches any). Points used:
 *   map-kill        a mapper kills its own process (SIGKILL) in the middle of its input
 *   reduce-kill     a reducer kills its own process before committing its part
 *   map-duplicate   the coordinator invokes an already committed map task once more
 *   map-oom         a mapper allocates and touches memory until its environment is killed
 *   map-hang        a mapper sleeps until its invocation times out
 *   peer-proc-net-tcp  the Runtime API peer check skips sock_diag and reads /proc/net/tcp
 *   map-slow        a mapper sleeps LMR_FAULT_SLOW_MS (default 1000) before reading its input
 *   map-cut-kill    a mapper kills its own process right after writing its split decision (a cut)
 *   reduce-slow     a reducer sleeps LMR_FAULT_SLOW_MS (default 1000) before reading its frames
 * Unset in normal use; the embedded service passes LMR_* variables to function processes.
 */
#ifndef LMR_UTIL_FAULT_H
#define LMR_UTIL_FAULT_H

#include <stdbool.h>

/** @return true if LMR_FAULT names point for this task and attempt. */
bool lmr_fault(const char *point, unsigned task, unsigned attempt);

/** The "ROLE-oom" and "ROLE-hang" points: exhaust memory or hang when they fire (never return then). */
void lmr_fault_misbehave(const char *role, unsigned task, unsigned attempt);

#endif
