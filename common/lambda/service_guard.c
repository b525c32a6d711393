/*
 * Connection guards of the embedded Lambda service (see service_internal.h).
 *
 * The Runtime API peer check. Each execution environment has its own Runtime API port on
 * 127.0.0.1, and any local process can connect to it; a neighbour (another function's process,
 * same uid) could take the environment's invocations or post forged answers. A secret in the
 * environment would not stop it (same-uid processes can read /proc/PID/environ), so the check
 * identifies the process that owns the connecting socket: the kernel's socket table gives the
 * client socket's inode (sock_diag netlink, an exact lookup by its four-tuple; /proc/net/tcp
 * if netlink is unavailable), and the connection is accepted only if that inode is an open
 * file of the environment's process or one of its descendants (/proc/PID/fd/N ->
 * "socket:[INODE]"). Everything here works without privileges for processes of our own uid,
 * and it runs once per connection (the runtime keeps its connection alive).
 *
 * The Invoke API request deadline. libmicrohttpd's connection timeout counts inactivity, so a
 * client sending a header line a second holds its connection forever, and 512 of them filled
 * the daemon. A watchdog gives every request a deadline for arriving completely (from the
 * connection's start, or from the end of the previous response on a kept-alive connection),
 * and when the table is full a new connection evicts the oldest one still sending its request
 * (a slow client's) instead of being refused. On 127.0.0.1 every client has the same address,
 * so a per-address cap would be a cap on everyone; evicting the oldest unfinished request
 * keeps a slot free for whoever sends a whole request promptly.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "lambda/service_internal.h"
#include "util/fault.h"
#include "util/log.h"
#include "util/misc.h"

/* ---- the socket's inode ------------------------------------------------------------------- */

/* Exact lookup of the TCP socket whose local end is `local` and remote end `remote`. */
static bool inode_by_netlink(const struct sockaddr_in *local, const struct sockaddr_in *remote, unsigned long *inode)
{
    int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (fd < 0)
        return false;
    struct {
        struct nlmsghdr nlh;
        struct inet_diag_req_v2 r;
    } req;
    memset(&req, 0, sizeof req);
    req.nlh.nlmsg_len = sizeof req;
    req.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    req.nlh.nlmsg_flags = NLM_F_REQUEST;
    req.r.sdiag_family = AF_INET;
    req.r.sdiag_protocol = IPPROTO_TCP;
    req.r.idiag_states = ~0u;
    req.r.id.idiag_sport = local->sin_port;
    req.r.id.idiag_dport = remote->sin_port;
    req.r.id.idiag_src[0] = local->sin_addr.s_addr;
    req.r.id.idiag_dst[0] = remote->sin_addr.s_addr;
    req.r.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
    req.r.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
    struct sockaddr_nl nl = {.nl_family = AF_NETLINK};
    bool found = false;
    if (sendto(fd, &req, sizeof req, 0, (struct sockaddr *)&nl, sizeof nl) == (ssize_t)sizeof req) {
        long buf[2048 / sizeof(long)];
        struct pollfd p = {.fd = fd, .events = POLLIN};
        ssize_t n = poll(&p, 1, 1000) == 1 ? recv(fd, buf, sizeof buf, 0) : -1;
        for (struct nlmsghdr *h = (struct nlmsghdr *)buf; n > 0 && NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
            if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY || h->nlmsg_len < NLMSG_LENGTH(sizeof(struct inet_diag_msg)))
                break; /* NLMSG_ERROR (no such socket) or NLMSG_DONE */
            const struct inet_diag_msg *m = NLMSG_DATA(h);
            *inode = m->idiag_inode;
            found = true;
            break;
        }
    }
    close(fd);
    return found;
}

/* The same from /proc/net/tcp ("sl local rem st ... uid timeout inode"), if netlink is refused. */
static bool inode_by_proc(const struct sockaddr_in *local, const struct sockaddr_in *remote, unsigned long *inode)
{
    FILE *f = fopen("/proc/net/tcp", "re");
    if (!f)
        return false;
    char line[512], want_local[32], want_remote[32];
    /* The file prints addresses as the raw 32-bit value in hex and ports in host order. */
    snprintf(want_local, sizeof want_local, "%08X:%04X", (unsigned)local->sin_addr.s_addr, ntohs(local->sin_port));
    snprintf(want_remote, sizeof want_remote, "%08X:%04X", (unsigned)remote->sin_addr.s_addr, ntohs(remote->sin_port));
    bool found = false;
    while (!found && fgets(line, sizeof line, f)) {
        char l[32], r[32];
        unsigned long ino;
        if (sscanf(line, " %*s %31s %31s %*s %*s %*s %*s %*s %*s %lu", l, r, &ino) == 3 && !strcmp(l, want_local) &&
            !strcmp(r, want_remote)) {
            *inode = ino;
            found = true;
        }
    }
    fclose(f);
    return found;
}

/* ---- who holds it --------------------------------------------------------------------------- */

/* Does process pid have "socket:[inode]" open? */
static bool holds_socket(pid_t pid, const char *target)
{
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(dir);
    if (!d)
        return false;
    bool found = false;
    struct dirent *e;
    char path[96], link[64];
    while (!found && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        ssize_t n = readlink(path, link, sizeof link - 1);
        if (n > 0) {
            link[n] = '\0';
            found = !strcmp(link, target);
        }
    }
    closedir(d);
    return found;
}

#define MAX_PROCS 65536

/* Does a descendant of root hold the socket? Parents come from /proc/N/stat. */
static bool descendant_holds_socket(pid_t root, const char *target)
{
    DIR *d = opendir("/proc");
    if (!d)
        return false;
    pid_t *pids = malloc(MAX_PROCS * sizeof *pids), *ppids = malloc(MAX_PROCS * sizeof *ppids);
    size_t n = 0;
    struct dirent *e;
    while (pids && ppids && n < MAX_PROCS && (e = readdir(d))) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end || pid <= 0)
            continue;
        char path[64], text[512];
        snprintf(path, sizeof path, "/proc/%ld/stat", pid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t len = read(fd, text, sizeof text - 1);
        close(fd);
        if (len <= 0)
            continue;
        text[len] = '\0';
        /* "pid (comm) state ppid ...": comm may hold anything, so parse after the last ')'. */
        const char *rp = strrchr(text, ')');
        int ppid;
        if (rp && sscanf(rp + 1, " %*c %d", &ppid) == 1) {
            pids[n] = (pid_t)pid;
            ppids[n] = (pid_t)ppid;
            n++;
        }
    }
    closedir(d);
    bool found = false;
    /* Walk each process's ancestors; a chain reaching root makes it a descendant. */
    for (size_t i = 0; i < n && !found; i++) {
        pid_t p = ppids[i];
        for (int depth = 0; p > 1 && depth < 64; depth++) {
            if (p == root) {
                found = holds_socket(pids[i], target);
                break;
            }
            size_t j = 0;
            while (j < n && pids[j] != p)
                j++;
            if (j == n)
                break;
            p = ppids[j];
        }
    }
    free(pids);
    free(ppids);
    return found;
}

bool lmr_svc_peer_in_env(pid_t env_pid, uint16_t port, const struct sockaddr *peer, socklen_t peer_len)
{
    if (env_pid <= 0 || !peer || peer->sa_family != AF_INET || peer_len < (socklen_t)sizeof(struct sockaddr_in))
        return false;
    const struct sockaddr_in *client = (const struct sockaddr_in *)peer;
    struct sockaddr_in server = {.sin_family = AF_INET, .sin_port = htons(port)};
    server.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    unsigned long inode = 0;
    /* LMR_FAULT=peer-proc-net-tcp:*:* skips netlink, so tests reach the /proc/net/tcp path too. */
    bool netlink = !lmr_fault("peer-proc-net-tcp", 0, 0) && inode_by_netlink(client, &server, &inode);
    if (!netlink && !inode_by_proc(client, &server, &inode))
        return false;
    char target[64];
    snprintf(target, sizeof target, "socket:[%lu]", inode);
    return holds_socket(env_pid, target) || descendant_holds_socket(env_pid, target);
}

/* ---- request deadlines for the Invoke API ---------------------------------------------------- */

struct guard_conn {
    int fd;
    bool receiving;  /* the current request has not fully arrived yet */
    double since_ms; /* when the current request began (or the connection, or the last response ended) */
    bool evicted;    /* shut down by the guard */
    struct guard_conn *prev, *next;
};

struct lmr_svc_guard {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    struct guard_conn *head; /* oldest first */
    struct guard_conn *tail;
    unsigned n, soft_limit;
    uint32_t deadline_ms;
    bool stopping;
    pthread_t watchdog;
    uint64_t evicted, expired;
};

static void unlink_conn(struct lmr_svc_guard *g, struct guard_conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        g->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        g->tail = c->prev;
    c->prev = c->next = NULL;
}

static void append_conn(struct lmr_svc_guard *g, struct guard_conn *c)
{
    c->prev = g->tail;
    c->next = NULL;
    if (g->tail)
        g->tail->next = c;
    else
        g->head = c;
    g->tail = c;
}

/* Close a connection from outside its thread: its next read sees the end and libmicrohttpd
 * closes it. The fd stays valid (libmicrohttpd closes it only after the CLOSED notification,
 * which takes g->mu first). */
static void cut_locked(struct guard_conn *c)
{
    if (!c->evicted) {
        c->evicted = true;
        shutdown(c->fd, SHUT_RDWR);
    }
}

static void *watchdog_main(void *arg)
{
    struct lmr_svc_guard *g = arg;
    pthread_mutex_lock(&g->mu);
    while (!g->stopping) {
        double now = lmr_mono_ms();
        for (struct guard_conn *c = g->head; c; c = c->next) {
            if (c->receiving && !c->evicted && now - c->since_ms > g->deadline_ms) {
                cut_locked(c);
                g->expired++;
            }
        }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        long step_ms = g->deadline_ms / 4 < 100 ? (long)(g->deadline_ms / 4) + 1 : 100;
        ts.tv_nsec += step_ms * 1000000L;
        while (ts.tv_nsec >= 1000000000L)
            ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&g->cond, &g->mu, &ts);
    }
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

enum lmr_result lmr_svc_guard_new(uint32_t deadline_ms, unsigned soft_limit, struct lmr_svc_guard **out)
{
    struct lmr_svc_guard *g = calloc(1, sizeof *g);
    if (!g)
        return LMR_ERR_NOMEM;
    pthread_mutex_init(&g->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&g->cond, &ca);
    pthread_condattr_destroy(&ca);
    g->deadline_ms = deadline_ms ? deadline_ms : 1;
    g->soft_limit = soft_limit;
    if (pthread_create(&g->watchdog, NULL, watchdog_main, g) != 0) {
        pthread_cond_destroy(&g->cond);
        pthread_mutex_destroy(&g->mu);
        free(g);
        return LMR_ERR_NOMEM;
    }
    *out = g;
    return LMR_OK;
}

void lmr_svc_guard_destroy(struct lmr_svc_guard *g)
{
    if (!g)
        return;
    pthread_mutex_lock(&g->mu);
    g->stopping = true;
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->mu);
    pthread_join(g->watchdog, NULL);
    while (g->head) { /* none are left once the daemon has stopped; be safe anyway */
        struct guard_conn *c = g->head;
        unlink_conn(g, c);
        free(c);
    }
    pthread_cond_destroy(&g->cond);
    pthread_mutex_destroy(&g->mu);
    free(g);
}

enum MHD_Result lmr_svc_guard_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    struct lmr_svc_guard *g = cls;
    pthread_mutex_lock(&g->mu);
    enum MHD_Result ok = MHD_YES;
    if (g->n >= g->soft_limit) {
        /* Full: the oldest connection still sending its request makes room; if every
         * connection is busy with a request that arrived whole, the newcomer is refused. */
        struct guard_conn *c = g->head;
        while (c && !(c->receiving && !c->evicted))
            c = c->next;
        if (c) {
            cut_locked(c);
            g->evicted++;
        } else {
            ok = MHD_NO;
        }
    }
    pthread_mutex_unlock(&g->mu);
    return ok;
}

void lmr_svc_guard_notify(void *cls, struct MHD_Connection *connection, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    struct lmr_svc_guard *g = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
        struct guard_conn *c = info ? calloc(1, sizeof *c) : NULL;
        if (!c)
            return; /* untracked: it gets libmicrohttpd's own timeout only */
        c->fd = info->connect_fd;
        c->receiving = true;
        c->since_ms = lmr_mono_ms();
        pthread_mutex_lock(&g->mu);
        append_conn(g, c);
        g->n++;
        pthread_mutex_unlock(&g->mu);
        *socket_context = c;
        return;
    }
    struct guard_conn *c = *socket_context;
    if (!c)
        return;
    pthread_mutex_lock(&g->mu);
    unlink_conn(g, c);
    g->n--;
    pthread_mutex_unlock(&g->mu);
    free(c);
    *socket_context = NULL;
}

static struct guard_conn *conn_of(struct MHD_Connection *connection)
{
    const union MHD_ConnectionInfo *info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return info ? info->socket_context : NULL;
}

void lmr_svc_guard_request_received(struct lmr_svc_guard *g, struct MHD_Connection *connection)
{
    struct guard_conn *c = conn_of(connection);
    if (!c)
        return;
    pthread_mutex_lock(&g->mu);
    c->receiving = false;
    pthread_mutex_unlock(&g->mu);
}

void lmr_svc_guard_request_done(struct lmr_svc_guard *g, struct MHD_Connection *connection)
{
    struct guard_conn *c = conn_of(connection);
    if (!c)
        return;
    pthread_mutex_lock(&g->mu);
    /* Kept alive: the next request must arrive within the deadline too (the oldest first). */
    c->receiving = true;
    c->since_ms = lmr_mono_ms();
    unlink_conn(g, c);
    append_conn(g, c);
    pthread_mutex_unlock(&g->mu);
}

void lmr_svc_guard_counts(struct lmr_svc_guard *g, uint64_t *expired, uint64_t *evicted)
{
    pthread_mutex_lock(&g->mu);
    *expired = g->expired;
    *evicted = g->evicted;
    pthread_mutex_unlock(&g->mu);
}
