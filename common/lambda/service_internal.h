/*
 * Private to the embedded Lambda service (service*.c, local_invoker.c). One mutex (svc->mu)
 * guards every function, environment and invocation; the threads that wait (a sync caller, a
 * runtime's blocked GET /next) wait on condition variables tied to that mutex.
 */
#ifndef LMR_LAMBDA_SERVICE_INTERNAL_H
#define LMR_LAMBDA_SERVICE_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <microhttpd.h>

#include "lambda/service.h"
#include "util/buf.h"

struct lmr_svc_fn;
struct lmr_svc_env;

enum lmr_svc_inv_state { INV_QUEUED, INV_RUNNING, INV_DONE };

struct lmr_svc_outcome;

/*
 * A chain of synchronous invocations (lmr_svc_invoke_chain): after an invocation's result arrives,
 * the environment's Runtime API thread calls next() with its outcome and, when next() gives a
 * payload, hands that to the same environment at once (its pipelined GET /next is answered without
 * waking the caller: two wake-ups fewer per invocation). next() must not invoke anything.
 */
struct lmr_svc_chain {
    /* o: the finished invocation (o->payload is borrowed for the call). @return true with *payload, *len: run it. */
    bool (*next)(void *user, const struct lmr_svc_outcome *o, const void **payload, size_t *len);
    void *user;
};

/* One invocation attempt chain (an Event may be attempted up to 3 times). */
struct lmr_svc_inv {
    char request_id[40];
    struct lmr_svc_fn *fn;
    enum lmr_invoke_type type;
    unsigned flags;
    uint64_t client; /* the caller's key (a lane, an HTTP connection); 0 = none */
    char *payload;
    size_t payload_len;
    enum lmr_svc_inv_state state;
    unsigned attempt;        /* 0 for the first attempt */
    double not_before_ms;    /* queued retries wait until this monotonic time */
    struct lmr_svc_env *env; /* while running */
    bool delivered;          /* handed to the runtime by GET /next */
    bool start_logged;       /* the START line is in the log */
    double start_ms;         /* monotonic time of delivery */
    double deadline_ms;      /* monotonic deadline (start + timeout) */
    /* Outcome. */
    struct lmr_buf response; /* payload, or the error JSON when function_error */
    bool function_error;
    char error_type[128];
    char tail[LMR_LAMBDA_LOG_TAIL_BYTES];
    size_t tail_len;
    double duration_ms, billed_ms, init_ms;
    uint32_t max_memory_mb;
    bool done;
    pthread_cond_t done_cond;          /* sync callers wait here */
    const struct lmr_svc_chain *chain; /* sync only; NULL = none */
    bool chain_in_env;          /* rt_result runs chain->next for this result (finish does not wake the caller) */
    bool chain_seen;            /* chain->next has seen this outcome */
    const void *resume_payload; /* next() asked for this but the environment could not run it */
    size_t resume_len;
    struct lmr_svc_inv *next; /* queue link */
};

enum lmr_svc_env_state { ENV_IDLE, ENV_BUSY, ENV_DEAD };

/* One execution environment: a process plus its Runtime API endpoint. */
struct lmr_svc_env {
    struct lmr_lambda_service *svc;
    struct lmr_svc_fn *fn;
    unsigned id;
    pid_t pid;
    int out_fd; /* read end of the process's stdout/stderr pipe (non-blocking) */
    struct MHD_Daemon *daemon;
    uint16_t port;
    enum lmr_svc_env_state state;
    bool ready;         /* has called GET /next at least once */
    bool init_reported; /* Init Duration already went into a REPORT */
    double spawn_ms;
    double init_ms;
    struct lmr_svc_inv *inv; /* assigned invocation, if any */
    pthread_cond_t cond;     /* GET /next waits here for work */
    uint32_t peak_rss_mb;
    double hwm_read_ms; /* when VmHWM was last read */
    char stream_name[96];
    unsigned refused;     /* Runtime API connections refused by the peer check */
    unsigned code_gen;    /* the function's code_gen when this environment started */
    uint64_t last_client; /* client of the invocation it ran last (0 = none) */
    double last_used_ms;  /* when it was last given an invocation */
    struct lmr_svc_env *next;
};

struct lmr_svc_fn {
    struct lmr_lambda_service *svc;
    char *name;
    char *path;
    char *handler;
    char *task_root;
    uint32_t memory_mb;
    double timeout_s;
    uint32_t concurrency;
    char **envp; /* base environment, NULL-terminated (per-env variables are added at spawn) */
    size_t envp_len;
    int log_fd;
    struct lmr_svc_env *envs;
    unsigned n_alive;    /* environments not DEAD */
    unsigned n_starting; /* of those, reserved by lmr_svc_env_spawn_unlocked and still starting */
    unsigned next_env_id;
    struct lmr_svc_inv *q_head, *q_tail;
    size_t q_len;
    /* Control plane (service_control.c). */
    struct lmr_svc_fn_ctl *ctl; /* configuration as the Lambda API reports it; NULL until first asked */
    unsigned code_gen;          /* bumped when an update takes effect: older environments are retired */
    bool deleted;               /* DeleteFunction: no new environments, no Event retries */
    struct lmr_svc_fn *next;
};

struct lmr_svc_guard;

struct lmr_lambda_service {
    pthread_mutex_t mu;
    struct lmr_svc_fn *fns;
    char *log_dir;
    uint16_t port_wanted, port;
    struct MHD_Daemon *http;
    struct lmr_svc_guard *guard; /* request deadlines of the Invoke API (service_guard.c) */
    uint32_t request_timeout_ms;
    uint32_t event_retry_delay_ms;
    char region[64];
    bool stopping;
    unsigned n_envs;          /* environments not yet reaped */
    pthread_cond_t envs_cond; /* n_envs changed */
    pthread_t monitor;
    bool monitor_running;
    pthread_cond_t monitor_cond;
    pthread_cond_t idle_cond;              /* an invocation ended (lmr_lambda_service_wait_idle; CLOCK_MONOTONIC) */
    struct lmr_lambda_service_stats stats; /* events_queued is computed on demand */
    struct lmr_svc_control *control;       /* the control plane's own state (service_control.c) */
};

/* What an Invoke call produced, for the HTTP front end and the local invoker. */
struct lmr_svc_outcome {
    int status;             /* 200, 202, 204 or the error status */
    const char *error_code; /* x-amzn-ErrorType when status is an error, else NULL */
    char message[768];      /* the error message */
    char request_id[40];
    bool function_error;
    char error_type[128];
    struct lmr_buf payload; /* owned; cleaned up by lmr_svc_outcome_clean_up */
    char tail[LMR_LAMBDA_LOG_TAIL_BYTES];
    size_t tail_len;
    double duration_ms, billed_ms, init_ms;
    uint32_t memory_mb, max_memory_mb;
    /* Chains (lmr_svc_invoke_chain): next() has seen this outcome already; and when it asked for another
       invocation that the service did not start (its environment was gone), that payload. */
    bool chain_seen;
    const void *resume_payload;
    size_t resume_len;
};

void lmr_svc_outcome_init(struct lmr_svc_outcome *o);
void lmr_svc_outcome_clean_up(struct lmr_svc_outcome *o);

/**
 * Invoke `function` (name, ARN or name:qualifier; `qualifier` may be NULL). Sync calls block
 * until the function answers. Errors of the service itself come back in o->status/error_code.
 * `client` (0 = none) is the caller's key: an idle environment it used last is preferred.
 */
void lmr_svc_invoke(struct lmr_lambda_service *svc, const char *function, const char *qualifier, const void *payload,
                    size_t len, enum lmr_invoke_type type, unsigned flags, uint64_t client, struct lmr_svc_outcome *o);

/**
 * lmr_svc_invoke (sync) as a chain: see struct lmr_svc_chain. Returns when next() ends the chain
 * (o->chain_seen: o is the outcome it saw last), when it asks for a payload the environment cannot
 * run (o->resume_payload: invoke that yourself), or with an outcome next() has not seen (an error
 * of the service, an environment that ended or timed out: !o->chain_seen).
 */
void lmr_svc_invoke_chain(struct lmr_lambda_service *svc, const char *function, const void *payload, size_t len,
                          unsigned flags, uint64_t client, const struct lmr_svc_chain *chain,
                          struct lmr_svc_outcome *o);
/* Runtime API side of a chain (service.c): the result of a chained inv arrived in env's Runtime API thread
   (svc->mu held; it is released while next() runs). @return true if inv runs again on env. */
bool lmr_svc_chain_step_locked(struct lmr_svc_env *env, struct lmr_svc_inv *inv);

/* Environment side (service_env.c); all *_locked functions need svc->mu held. */
enum lmr_result lmr_svc_env_spawn_locked(struct lmr_svc_fn *fn, struct lmr_svc_env **out, char *why, size_t why_cap);
/* Start an environment of fn without holding svc->mu while its process starts: reserve it under the
 * lock (it counts in n_alive and n_starting), unlock, spawn, lock, publish it idle and pump fn's
 * queue. Called and returns with svc->mu held; the caller must re-check what it read before. */
enum lmr_result lmr_svc_env_spawn_unlocked(struct lmr_svc_fn *fn, char *why, size_t why_cap);
void lmr_svc_env_kill_locked(struct lmr_svc_env *env, const char *error_type, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void lmr_svc_env_drain_locked(struct lmr_svc_env *env);
/* Resident MB of an environment: the process and its descendants (peak: the process's VmHWM only). */
uint32_t lmr_svc_read_rss_mb(pid_t pid, bool peak);
/*
 * The monitor's handle on one environment's resident memory: the process's statm and children
 * files stay open (one pread a look), and its descendants (an exec job's children, which share the function's memory
 * as on Lambda) are looked up every sample while it has any, else every LMR_SVC_CHILDREN_EVERY_MS.
 */
struct lmr_svc_rss_probe {
    pid_t pid;
    int statm_fd;       /* /proc/<pid>/statm; -1 = not open yet (or unopenable) */
    int children_fd;    /* /proc/<pid>/task/<pid>/children; -1 = not open yet */
    bool has_children;  /* descendants were there at the last look */
    double children_ms; /* monotonic time of the last look; < 0 = never */
};
#define LMR_SVC_CHILDREN_EVERY_MS 50.0
void lmr_svc_rss_probe_init(struct lmr_svc_rss_probe *p, pid_t pid);
/* Resident MB of p's process and its descendants now (0 when the process is gone). */
uint32_t lmr_svc_rss_probe_read_mb(struct lmr_svc_rss_probe *p, double now_ms);
void lmr_svc_rss_probe_close(struct lmr_svc_rss_probe *p);

/* Core (service.c). */
void lmr_svc_inv_finish_locked(struct lmr_lambda_service *svc, struct lmr_svc_inv *inv);
void lmr_svc_fn_pump_locked(struct lmr_svc_fn *fn);
void lmr_svc_inv_fail(struct lmr_svc_inv *inv, const char *error_type, const char *message);
void lmr_svc_log_write_locked(struct lmr_svc_fn *fn, struct lmr_svc_inv *inv, const char *data, size_t len);
double lmr_svc_now_ms(void);

/* Functions (service.c). */
bool lmr_svc_valid_name(const char *s);
/* Split "name", "name:qualifier", a full or partial ARN into name and qualifier (pointing into buf). */
bool lmr_svc_split_function(char *buf, const char **name, const char **qualifier);
/* A function built from cfg (validated, environment fixed) but not registered: no log yet. */
enum lmr_result lmr_svc_fn_build(struct lmr_lambda_service *svc, const struct lmr_function_config *cfg,
                                 struct lmr_svc_fn **out, struct lmr_err *err);
/* Register fn (opens its log). On failure fn is freed; LMR_ERR_EXISTS when the name is taken. */
enum lmr_result lmr_svc_fn_insert(struct lmr_lambda_service *svc, struct lmr_svc_fn *fn, struct lmr_err *err);
void lmr_svc_fn_free(struct lmr_svc_fn *fn);

/* HTTP front end (service_http.c). */
enum lmr_result lmr_svc_http_start(struct lmr_lambda_service *svc, struct lmr_err *err);

/* Connection guards (service_guard.c). */
struct sockaddr;
struct MHD_Connection;
/**
 * Is the TCP connection from peer (an IPv4 address) to 127.0.0.1:port made by process env_pid
 * or one of its descendants? Looks the client socket's inode up (sock_diag, else
 * /proc/net/tcp) and searches the processes' open files for it. Needs no privileges.
 */
bool lmr_svc_peer_in_env(pid_t env_pid, uint16_t port, const struct sockaddr *peer, socklen_t peer_len);
/**
 * Request deadlines for an HTTP daemon: every request must arrive whole within deadline_ms of
 * the connection's start (or of the previous response's end); a watchdog thread shuts down
 * connections that are late. At soft_limit connections a new one evicts the oldest connection
 * still sending its request, or is refused when there is none. Wire the hooks into the daemon:
 * lmr_svc_guard_accept (accept policy), lmr_svc_guard_notify (MHD_OPTION_NOTIFY_CONNECTION),
 * and call request_received when a request is complete, request_done when it was answered.
 */
enum lmr_result lmr_svc_guard_new(uint32_t deadline_ms, unsigned soft_limit, struct lmr_svc_guard **out);
/** Stop the watchdog and free the guard (after the daemon has stopped). NULL-safe. */
void lmr_svc_guard_destroy(struct lmr_svc_guard *g);
enum MHD_Result lmr_svc_guard_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen);
void lmr_svc_guard_notify(void *cls, struct MHD_Connection *connection, void **socket_context,
                          enum MHD_ConnectionNotificationCode code);
void lmr_svc_guard_request_received(struct lmr_svc_guard *g, struct MHD_Connection *connection);
void lmr_svc_guard_request_done(struct lmr_svc_guard *g, struct MHD_Connection *connection);
/** Connections cut for missing their deadline, and evicted to make room. */
void lmr_svc_guard_counts(struct lmr_svc_guard *g, uint64_t *expired, uint64_t *evicted);

#endif
