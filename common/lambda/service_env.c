/*
 * Execution environments of the embedded Lambda service: a process of the function's
 * executable (its own process group, stdout/stderr into a pipe that feeds the function's log)
 * plus one small HTTP daemon that serves it the Runtime API on 127.0.0.1:PORT. A reaper
 * thread per environment waits for the process and tears the environment down.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lambda/service_internal.h"
#include "util/log.h"
#include "util/misc.h"

#define RT_PREFIX "/2018-06-01/runtime/"

/* Read (the start of) /proc/<pid>/<name> into text as a string. @return false if unreadable or empty. */
static bool read_proc_file(pid_t pid, const char *name, char *text, size_t cap)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, text, cap - 1);
    close(fd);
    if (n <= 0)
        return false;
    text[n] = '\0';
    return true;
}

/* The resident bytes in a statm text ("size resident shared ..." in pages). @return false if malformed. */
static bool statm_resident_bytes(const char *text, uint64_t *bytes)
{
    char *size_end, *resident_end;
    strtoul(text, &size_end, 10);
    unsigned long resident = strtoul(size_end, &resident_end, 10);
    if (size_end == text || resident_end == size_end)
        return false;
    *bytes = (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
    return true;
}

static uint64_t tree_rss_bytes(pid_t pid, int depth, int *budget);

/* The resident bytes of the processes a children file's text lists (those at depth + 1) and of their
   descendants, while *budget lasts. *any is set when it lists at least one. */
static uint64_t children_rss_bytes(char *text, int depth, int *budget, bool *any)
{
    uint64_t bytes = 0;
    for (char *q = text, *end; *q && *budget > 0; q = end) {
        long child = strtol(q, &end, 10);
        if (end == q)
            break;
        *any = true;
        (*budget)--;
        bytes += tree_rss_bytes((pid_t)child, depth + 1, budget);
    }
    return bytes;
}

/* Resident bytes of pid and of its descendants (the processes an exec job starts: on Lambda they
   share the function's memory), at most `budget` processes deep and wide. */
static uint64_t tree_rss_bytes(pid_t pid, int depth, int *budget)
{
    char text[4096], name[64];
    uint64_t bytes;
    /* statm is much cheaper than status */
    if (!read_proc_file(pid, "statm", text, sizeof text) || !statm_resident_bytes(text, &bytes))
        return 0;
    snprintf(name, sizeof name, "task/%d/children", (int)pid);
    if (depth >= 4 || !read_proc_file(pid, name, text, sizeof text))
        return bytes;
    bool any = false;
    return bytes + children_rss_bytes(text, depth, budget, &any);
}

uint32_t lmr_svc_read_rss_mb(pid_t pid, bool peak)
{
    char text[4096];
    if (!peak) {
        int budget = 64;
        uint64_t bytes = tree_rss_bytes(pid, 0, &budget);
        return (uint32_t)((bytes + (1u << 20) - 1) >> 20);
    }
    if (!read_proc_file(pid, "status", text, sizeof text))
        return 0;
    const char *key = peak ? "VmHWM:" : "VmRSS:";
    const char *p = strstr(text, key);
    if (!p)
        return 0;
    unsigned long kb = strtoul(p + strlen(key), NULL, 10);
    return (uint32_t)((kb + 1023) / 1024);
}

void lmr_svc_rss_probe_init(struct lmr_svc_rss_probe *p, pid_t pid)
{
    *p = (struct lmr_svc_rss_probe){.pid = pid, .statm_fd = -1, .children_fd = -1, .children_ms = -1};
}

void lmr_svc_rss_probe_close(struct lmr_svc_rss_probe *p)
{
    if (p->statm_fd >= 0)
        close(p->statm_fd);
    if (p->children_fd >= 0)
        close(p->children_fd);
    p->statm_fd = p->children_fd = -1;
}

uint32_t lmr_svc_rss_probe_read_mb(struct lmr_svc_rss_probe *p, double now_ms)
{
    char text[4096], name[64];
    if (p->statm_fd < 0) {
        snprintf(name, sizeof name, "/proc/%d/statm", (int)p->pid);
        /* The descriptor pins this process: after it is gone, reads fail even if the pid is reused. */
        p->statm_fd = open(name, O_RDONLY | O_CLOEXEC);
        if (p->statm_fd < 0)
            return 0;
    }
    ssize_t n = pread(p->statm_fd, text, sizeof text - 1, 0);
    if (n <= 0)
        return 0;
    text[n] = '\0';
    uint64_t bytes;
    if (!statm_resident_bytes(text, &bytes))
        return 0;
    if (p->has_children || p->children_ms < 0 || now_ms - p->children_ms >= LMR_SVC_CHILDREN_EVERY_MS) {
        p->children_ms = now_ms;
        p->has_children = false;
        if (p->children_fd < 0) {
            snprintf(name, sizeof name, "/proc/%d/task/%d/children", (int)p->pid, (int)p->pid);
            p->children_fd = open(name, O_RDONLY | O_CLOEXEC);
        }
        n = p->children_fd >= 0 ? pread(p->children_fd, text, sizeof text - 1, 0) : -1;
        if (n > 0) {
            text[n] = '\0';
            int budget = 63;
            bytes += children_rss_bytes(text, 0, &budget, &p->has_children);
        }
    }
    return (uint32_t)((bytes + (1u << 20) - 1) >> 20);
}

void lmr_svc_env_drain_locked(struct lmr_svc_env *env)
{
    if (env->out_fd < 0)
        return;
    char chunk[16384];
    size_t total = 0;
    while (total < (4u << 20)) {
        ssize_t n = read(env->out_fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        lmr_svc_log_write_locked(env->fn, env->inv && env->inv->delivered ? env->inv : NULL, chunk, (size_t)n);
        total += (size_t)n;
    }
}

/* Complete the environment's current invocation with an error, then forget it. */
static void fail_current_locked(struct lmr_svc_env *env, const char *error_type, const char *detail)
{
    struct lmr_svc_inv *inv = env->inv;
    if (!inv)
        return;
    char msg[768];
    snprintf(msg, sizeof msg, "RequestId: %s Error: %s", inv->request_id, detail);
    char line[900];
    int n = snprintf(line, sizeof line, "%s\n", msg);
    lmr_svc_log_write_locked(env->fn, inv->delivered ? inv : NULL, line, (size_t)n);
    lmr_svc_inv_fail(inv, error_type, msg);
    lmr_svc_inv_finish_locked(env->svc, inv);
}

void lmr_svc_env_kill_locked(struct lmr_svc_env *env, const char *error_type, const char *fmt, ...)
{
    if (env->state == ENV_DEAD)
        return;
    kill(-env->pid, SIGKILL);
    kill(env->pid, SIGKILL);
    env->state = ENV_DEAD;
    env->fn->n_alive--;
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    fail_current_locked(env, error_type, detail);
    pthread_cond_broadcast(&env->cond);
}

static void *reaper_main(void *arg)
{
    struct lmr_svc_env *env = arg;
    struct lmr_lambda_service *svc = env->svc;
    struct lmr_svc_fn *fn = env->fn;
    int status = 0;
    while (waitpid(env->pid, &status, 0) < 0 && errno == EINTR)
        ;
    LMR_DEBUG("lambda service: environment %u of %s (pid %d) ended with status 0x%x", env->id, fn->name, (int)env->pid,
              (unsigned)status);
    pthread_mutex_lock(&svc->mu);
    if (env->state != ENV_DEAD) {
        env->state = ENV_DEAD;
        fn->n_alive--;
        lmr_svc_env_drain_locked(env);
        char detail[256];
        if (WIFSIGNALED(status))
            snprintf(detail, sizeof detail, "Runtime exited with error: signal: %s", strsignal(WTERMSIG(status)));
        else if (WIFEXITED(status) && WEXITSTATUS(status))
            snprintf(detail, sizeof detail, "Runtime exited with error: exit status %d", WEXITSTATUS(status));
        else
            snprintf(detail, sizeof detail, "Runtime exited without providing a reason");
        fail_current_locked(env, "Runtime.ExitError", detail);
        pthread_cond_broadcast(&env->cond);
    }
    lmr_svc_env_drain_locked(env);
    for (struct lmr_svc_env **pp = &fn->envs; *pp; pp = &(*pp)->next) {
        if (*pp == env) {
            *pp = env->next;
            break;
        }
    }
    lmr_svc_fn_pump_locked(fn);
    pthread_mutex_unlock(&svc->mu);

    MHD_stop_daemon(env->daemon);
    close(env->out_fd);
    pthread_cond_destroy(&env->cond);
    free(env);

    pthread_mutex_lock(&svc->mu);
    svc->n_envs--;
    pthread_cond_broadcast(&svc->envs_cond);
    pthread_mutex_unlock(&svc->mu);
    return NULL;
}

/* ---- Runtime API -------------------------------------------------------------------------- */

struct rt_req {
    struct lmr_buf body;
    bool too_big;
};

static enum MHD_Result rt_reply(struct MHD_Connection *c, unsigned status, const char *body)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result rt_error(struct MHD_Connection *c, unsigned status, const char *type, const char *msg)
{
    json_t *j = json_pack("{s:s, s:s}", "errorMessage", msg, "errorType", type);
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    enum MHD_Result ret = rt_reply(c, status, s ? s : "{}");
    free(s);
    json_decref(j);
    return ret;
}

/*
 * Has the client closed its end (or reset it)? A GET /next can wait for a long time; a runtime
 * that gave up on it (a client timeout, a crashed helper) must not be handed an invocation.
 */
static bool client_gone(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *info = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!info)
        return false;
    struct pollfd p = {.fd = info->connect_fd, .events = POLLIN | POLLRDHUP};
    if (poll(&p, 1, 0) != 1)
        return false;
    if (p.revents & (POLLRDHUP | POLLHUP | POLLERR))
        return true;
    char byte;
    return recv(info->connect_fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

static enum MHD_Result rt_next(struct lmr_svc_env *env, struct MHD_Connection *c)
{
    struct lmr_lambda_service *svc = env->svc;
    struct lmr_svc_fn *fn = env->fn;
    pthread_mutex_lock(&svc->mu);
    if (!env->ready && env->state != ENV_DEAD) {
        env->ready = true;
        env->init_ms = lmr_svc_now_ms() - env->spawn_ms;
        if (!env->inv)
            lmr_svc_fn_pump_locked(fn);
    }
    while (env->state != ENV_DEAD && !(env->inv && !env->inv->delivered))
        pthread_cond_wait(&env->cond, &svc->mu);
    if (env->state == ENV_DEAD) {
        pthread_mutex_unlock(&svc->mu);
        return MHD_NO;
    }
    if (client_gone(c)) {
        /* Nobody reads this answer: leave the invocation for the runtime's next GET /next. */
        pthread_cond_broadcast(&env->cond);
        pthread_mutex_unlock(&svc->mu);
        return MHD_NO;
    }
    struct lmr_svc_inv *inv = env->inv;
    inv->delivered = true;
    inv->start_ms = lmr_svc_now_ms();
    inv->deadline_ms = inv->start_ms + fn->timeout_s * 1000.0;
    uint64_t deadline_wall = lmr_wall_ms() + (uint64_t)(fn->timeout_s * 1000.0);
    inv->start_logged = false; /* written with its first output line, or with END/REPORT */
    struct MHD_Response *r = MHD_create_response_from_buffer(inv->payload_len, inv->payload, MHD_RESPMEM_MUST_COPY);
    char request_id[40], arn[256], deadline[32], trace[128], hex[33];
    memcpy(request_id, inv->request_id, sizeof request_id);
    snprintf(arn, sizeof arn, "arn:aws:lambda:%s:000000000000:function:%s", svc->region, fn->name);
    pthread_mutex_unlock(&svc->mu);
    if (!r)
        return MHD_NO;
    snprintf(deadline, sizeof deadline, "%llu", (unsigned long long)deadline_wall);
    lmr_random_hex(hex, 16);
    snprintf(trace, sizeof trace, "Root=1-%08llx-%.24s;Parent=%.16s;Sampled=0",
             (unsigned long long)(lmr_wall_ms() / 1000), hex, hex + 8);
    MHD_add_response_header(r, "Content-Type", "application/json");
    MHD_add_response_header(r, "Lambda-Runtime-Aws-Request-Id", request_id);
    MHD_add_response_header(r, "Lambda-Runtime-Deadline-Ms", deadline);
    MHD_add_response_header(r, "Lambda-Runtime-Invoked-Function-Arn", arn);
    MHD_add_response_header(r, "Lambda-Runtime-Trace-Id", trace);
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

/* The invocation's response becomes the runtime's request body (buffers swapped, no copy). */
static void take_body(struct lmr_svc_inv *inv, struct rt_req *req)
{
    struct lmr_buf tmp = inv->response;
    inv->response = req->body;
    req->body = tmp;
}

/*
 * Mark inv as failed with a function error of the given type. The error document is the body the
 * runtime posted, or, when it posted none or too much, an error saying no_body_msg.
 */
static void set_function_error(struct lmr_svc_inv *inv, struct rt_req *req, const char *type, const char *no_body_msg)
{
    inv->function_error = true;
    snprintf(inv->error_type, sizeof inv->error_type, "%s", type);
    lmr_buf_reset(&inv->response);
    if (req->body.len && !req->too_big)
        take_body(inv, req);
    else
        lmr_svc_inv_fail(inv, inv->error_type, no_body_msg);
}

/* POST /invocation/{id}/response or /error. */
static enum MHD_Result rt_result(struct lmr_svc_env *env, struct MHD_Connection *c, const char *id, bool is_error,
                                 struct rt_req *req)
{
    struct lmr_lambda_service *svc = env->svc;
    pthread_mutex_lock(&svc->mu);
    struct lmr_svc_inv *inv = env->inv;
    if (env->state == ENV_DEAD || !inv || !inv->delivered || strcmp(inv->request_id, id)) {
        pthread_mutex_unlock(&svc->mu);
        return rt_error(c, 400, "InvalidRequestID", "No invocation with this request ID is waiting for a result.");
    }
    unsigned status = 202;
    if (!is_error && req->too_big) {
        char msg[256];
        snprintf(msg, sizeof msg, "Response payload size exceeded maximum allowed payload size (%u bytes).",
                 LMR_LAMBDA_SYNC_PAYLOAD_MAX_BYTES);
        lmr_svc_inv_fail(inv, "Function.ResponseSizeTooLarge", msg);
        status = 413;
    } else if (is_error) {
        const char *type = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Lambda-Runtime-Function-Error-Type");
        set_function_error(inv, req, type && *type ? type : "Unhandled",
                           "The runtime reported an error without a description.");
    } else {
        take_body(inv, req);
    }
    /* A chained invocation: next() runs here and its payload goes to this environment at once. */
    bool chained = inv->chain != NULL; /* (finish frees an Event's inv) */
    inv->chain_in_env = chained;
    lmr_svc_inv_finish_locked(svc, inv);
    if (!chained) {
        if (env->state != ENV_DEAD)
            env->state = ENV_IDLE;
        lmr_svc_fn_pump_locked(env->fn);
    } else if (!lmr_svc_chain_step_locked(env, inv) && env->state != ENV_DEAD) {
        /* (An environment that died while next() ran without the lock may be off its function's list, and
           a deleted function freed: its reaper pumps the queue.) */
        env->state = ENV_IDLE;
        lmr_svc_fn_pump_locked(env->fn);
    }
    pthread_mutex_unlock(&svc->mu);
    if (status == 413)
        return rt_error(c, 413, "RequestEntityTooLarge", "The response is larger than 6 MB.");
    return rt_reply(c, 202, "{\"status\":\"OK\"}");
}

static enum MHD_Result rt_init_error(struct lmr_svc_env *env, struct MHD_Connection *c, struct rt_req *req)
{
    struct lmr_lambda_service *svc = env->svc;
    const char *type = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Lambda-Runtime-Function-Error-Type");
    pthread_mutex_lock(&svc->mu);
    struct lmr_svc_inv *inv = env->inv;
    if (env->state != ENV_DEAD) {
        if (inv) {
            set_function_error(inv, req, type && *type ? type : "Runtime.Unknown", "The runtime failed to initialise.");
            lmr_svc_inv_finish_locked(svc, inv);
        }
        /* The environment is not reused after a failed init. */
        kill(-env->pid, SIGKILL);
        kill(env->pid, SIGKILL);
        env->state = ENV_DEAD;
        env->fn->n_alive--;
        pthread_cond_broadcast(&env->cond);
        lmr_svc_fn_pump_locked(env->fn);
    }
    pthread_mutex_unlock(&svc->mu);
    return rt_reply(c, 202, "{\"status\":\"OK\"}");
}

static enum MHD_Result rt_handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    struct lmr_svc_env *env = cls;
    bool is_get = !strcmp(method, "GET");
    if (!*con_cls) {
        /* Answering in this first call would make MHD close the connection; wait for the next. */
        struct rt_req *req = calloc(1, sizeof *req);
        if (!req)
            return MHD_NO;
        lmr_buf_init(&req->body, LMR_LAMBDA_SYNC_PAYLOAD_MAX_BYTES);
        *con_cls = req;
        return MHD_YES;
    }
    struct rt_req *req = *con_cls;
    if (*upload_data_size) {
        if (!req->too_big && lmr_buf_append(&req->body, upload_data, *upload_data_size) != LMR_OK) {
            req->too_big = true;
            lmr_buf_clean_up(&req->body);
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (is_get) {
        if (!strcmp(url, RT_PREFIX "invocation/next"))
            return rt_next(env, c);
        return rt_error(c, 404, "InvalidRequest", "Unknown Runtime API path.");
    }
    if (strcmp(method, "POST"))
        return rt_error(c, 405, "InvalidRequest", "Use POST for this Runtime API path.");
    if (!strcmp(url, RT_PREFIX "init/error"))
        return rt_init_error(env, c, req);
    const char *inv_prefix = RT_PREFIX "invocation/";
    if (!strncmp(url, inv_prefix, strlen(inv_prefix))) {
        const char *id = url + strlen(inv_prefix);
        const char *slash = strchr(id, '/');
        if (slash && (size_t)(slash - id) < 64) {
            char rid[64];
            memcpy(rid, id, (size_t)(slash - id));
            rid[slash - id] = '\0';
            if (!strcmp(slash, "/response"))
                return rt_result(env, c, rid, false, req);
            if (!strcmp(slash, "/error"))
                return rt_result(env, c, rid, true, req);
        }
    }
    return rt_error(c, 404, "InvalidRequest", "Unknown Runtime API path.");
}

static void rt_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    struct rt_req *req = *con_cls;
    if (req) {
        lmr_buf_clean_up(&req->body);
        free(req);
        *con_cls = NULL;
    }
}

/*
 * Accept policy of an environment's Runtime API: only the environment's own process (or a
 * descendant, e.g. a shell runtime's curl) may connect; see service_guard.c. A refusal closes the
 * connection before any request is read, and is logged (the first few per environment).
 */
static enum MHD_Result rt_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    struct lmr_svc_env *env = cls;
    struct lmr_lambda_service *svc = env->svc;
    /* Atomic reads, not svc->mu: a failing spawn stops this daemon while holding svc->mu. */
    pid_t pid = __atomic_load_n(&env->pid, __ATOMIC_ACQUIRE);
    uint16_t port = __atomic_load_n(&env->port, __ATOMIC_ACQUIRE);
    if (pid > 0 && lmr_svc_peer_in_env(pid, port, addr, addrlen))
        return MHD_YES;
    char from[INET_ADDRSTRLEN] = "?";
    unsigned from_port = 0;
    if (addr && addr->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)addr;
        inet_ntop(AF_INET, &sin->sin_addr, from, sizeof from);
        from_port = ntohs(sin->sin_port);
    }
    if (pthread_mutex_trylock(&svc->mu) != 0)
        return MHD_NO; /* busy (or stopping this daemon): refuse without a log line */
    if (env->refused++ < 5) {
        char line[320];
        int n = snprintf(line, sizeof line,
                         "lambda service: refused a connection to the Runtime API of environment %u (port %u) from "
                         "%s:%u: the socket belongs to no process of that environment\n",
                         env->id, (unsigned)port, from, from_port);
        lmr_svc_log_write_locked(env->fn, NULL, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
    }
    pthread_mutex_unlock(&svc->mu);
    return MHD_NO;
}

/* ---- spawning ----------------------------------------------------------------------------- */

/* A new environment of fn, not started (its id is taken: call with svc->mu held). */
static struct lmr_svc_env *env_new(struct lmr_svc_fn *fn)
{
    struct lmr_svc_env *env = calloc(1, sizeof *env);
    if (!env)
        return NULL;
    env->svc = fn->svc;
    env->fn = fn;
    env->id = fn->next_env_id++;
    env->out_fd = -1;
    env->code_gen = fn->code_gen;
    pthread_cond_init(&env->cond, NULL);
    char hex[33];
    lmr_random_hex(hex, 16);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    snprintf(env->stream_name, sizeof env->stream_name, "%04d/%02d/%02d/[$LATEST]%s", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, hex);
    return env;
}

/* Free an environment that was never published (its process, if any, is reaped). */
static void env_discard(struct lmr_svc_env *env)
{
    if (env->daemon)
        MHD_stop_daemon(env->daemon);
    if (env->out_fd >= 0)
        close(env->out_fd);
    pthread_cond_destroy(&env->cond);
    free(env);
}

/*
 * Open the environment's Runtime API endpoint and log pipe and spawn its process from path in
 * task_root with base (base_len entries) plus its own variables. Touches nothing but env and its
 * arguments: needs no lock when those are the caller's own copies.
 */
static enum lmr_result env_start(struct lmr_svc_env *env, const char *path, const char *task_root, char *const *base,
                                 size_t base_len, char *why, size_t why_cap)
{
    char **envp = calloc(base_len + 3, sizeof *envp);
    char api[64], stream[160];
    if (!envp) {
        snprintf(why, why_cap, "out of memory");
        return LMR_ERR_NOMEM;
    }
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    env->daemon = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL, 0,
                                   rt_accept, env, rt_handler, env, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sin,
                                   MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)0, MHD_OPTION_NOTIFY_COMPLETED,
                                   rt_completed, env, MHD_OPTION_END);
    const union MHD_DaemonInfo *info = env->daemon ? MHD_get_daemon_info(env->daemon, MHD_DAEMON_INFO_BIND_PORT) : NULL;
    int pipefd[2] = {-1, -1};
    if (!info || pipe2(pipefd, O_CLOEXEC) != 0) {
        snprintf(why, why_cap, "cannot open its Runtime API endpoint or log pipe: %s", strerror(errno));
        free(envp);
        return LMR_ERR_IO;
    }
    __atomic_store_n(&env->port, info->port, __ATOMIC_RELEASE);
    env->out_fd = pipefd[0];
    fcntl(pipefd[0], F_SETFL, O_NONBLOCK);
    fcntl(pipefd[0], F_SETPIPE_SZ, 1 << 20);

    snprintf(api, sizeof api, "AWS_LAMBDA_RUNTIME_API=127.0.0.1:%u", env->port);
    snprintf(stream, sizeof stream, "AWS_LAMBDA_LOG_STREAM_NAME=%s", env->stream_name);
    envp[0] = api;
    envp[1] = stream;
    memcpy(envp + 2, base, base_len * sizeof *envp);

    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
    posix_spawn_file_actions_addchdir_np(&fa, task_root);
    posix_spawnattr_init(&attr);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    sigdelset(&all, SIGKILL);
    sigdelset(&all, SIGSTOP);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    char *argv[] = {(char *)path, NULL};
    pid_t pid = 0;
    /* Before the process exists: its GET /next may come before the caller publishes env. */
    env->spawn_ms = lmr_svc_now_ms();
    env->state = ENV_IDLE;
    int rc = posix_spawn(&pid, path, &fa, &attr, argv, envp);
    __atomic_store_n(&env->pid, pid, __ATOMIC_RELEASE); /* read by rt_accept without svc->mu */
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close(pipefd[1]);
    free(envp);
    if (rc != 0) {
        snprintf(why, why_cap, "%s", strerror(rc));
        return LMR_ERR_IO;
    }
    return LMR_OK;
}

/* Give the started env its reaper thread and put it into fn's list (svc->mu held); on failure
 * its process is killed and reaped. */
static enum lmr_result env_publish_locked(struct lmr_svc_env *env, char *why, size_t why_cap)
{
    pthread_t reaper;
    pthread_attr_t ta;
    pthread_attr_init(&ta);
    pthread_attr_setdetachstate(&ta, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&ta, 512 * 1024);
    int rc = pthread_create(&reaper, &ta, reaper_main, env);
    pthread_attr_destroy(&ta);
    if (rc != 0) {
        kill(-env->pid, SIGKILL);
        kill(env->pid, SIGKILL);
        waitpid(env->pid, NULL, 0);
        snprintf(why, why_cap, "cannot create a thread to watch it");
        return LMR_ERR_IO;
    }
    env->next = env->fn->envs;
    env->fn->envs = env;
    env->svc->stats.cold_starts++;
    return LMR_OK;
}

enum lmr_result lmr_svc_env_spawn_locked(struct lmr_svc_fn *fn, struct lmr_svc_env **out, char *why, size_t why_cap)
{
    struct lmr_svc_env *env = env_new(fn);
    if (!env) {
        snprintf(why, why_cap, "out of memory");
        return LMR_ERR_NOMEM;
    }
    enum lmr_result r = env_start(env, fn->path, fn->task_root, fn->envp, fn->envp_len, why, why_cap);
    if (!r)
        r = env_publish_locked(env, why, why_cap);
    if (r) {
        env_discard(env);
        return r;
    }
    fn->n_alive++;
    fn->svc->n_envs++;
    *out = env;
    return LMR_OK;
}

/* The function's path, task root and base environment, copied (an update may swap them). */
struct start_copy {
    char *path, *task_root;
    char **envp;
    size_t envp_len;
};

static void start_copy_clean_up(struct start_copy *c)
{
    for (size_t i = 0; c->envp && i < c->envp_len; i++)
        free(c->envp[i]);
    free(c->envp);
    free(c->path);
    free(c->task_root);
}

static bool start_copy_take(struct start_copy *c, const struct lmr_svc_fn *fn)
{
    *c = (struct start_copy){.path = strdup(fn->path),
                             .task_root = strdup(fn->task_root),
                             .envp = calloc(fn->envp_len + 1, sizeof *c->envp)};
    bool ok = c->path && c->task_root && c->envp;
    for (size_t i = 0; ok && i < fn->envp_len; i++, c->envp_len++)
        ok = (c->envp[i] = strdup(fn->envp[i])) != NULL;
    return ok;
}

enum lmr_result lmr_svc_env_spawn_unlocked(struct lmr_svc_fn *fn, char *why, size_t why_cap)
{
    struct lmr_lambda_service *svc = fn->svc;
    struct start_copy copy;
    struct lmr_svc_env *env = env_new(fn);
    if (!env || !start_copy_take(&copy, fn)) {
        if (env)
            start_copy_clean_up(&copy);
        free(env);
        snprintf(why, why_cap, "out of memory");
        return LMR_ERR_NOMEM;
    }
    /* Reserved: counted against the concurrency (and waited for by the service's stop) from now. */
    fn->n_alive++;
    fn->n_starting++;
    svc->n_envs++;
    pthread_mutex_unlock(&svc->mu);
    enum lmr_result r = env_start(env, copy.path, copy.task_root, copy.envp, copy.envp_len, why, why_cap);
    start_copy_clean_up(&copy);
    pthread_mutex_lock(&svc->mu);
    fn->n_starting--;
    if (!r)
        r = env_publish_locked(env, why, why_cap);
    if (r) {
        fn->n_alive--;
        svc->n_envs--;
        pthread_cond_broadcast(&svc->envs_cond);
        pthread_mutex_unlock(&svc->mu);
        env_discard(env); /* without the lock: its Runtime API threads may wait for it */
        pthread_mutex_lock(&svc->mu);
        return r;
    }
    if (svc->stopping || fn->deleted) /* the service's stop or DeleteFunction did not see it */
        lmr_svc_env_kill_locked(env, "Runtime.ExitError", "%s",
                                svc->stopping ? "the Lambda service is shutting down" : "the function was deleted");
    pthread_cond_broadcast(&svc->envs_cond); /* invocations waiting for a starting environment */
    lmr_svc_fn_pump_locked(fn);
    return LMR_OK;
}
