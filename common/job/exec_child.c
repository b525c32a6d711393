#define _GNU_SOURCE /* pipe2, F_SETPIPE_SZ, posix_spawn_file_actions_addchdir_np */
#include "job/exec_child.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

struct lmr_exec_child {
    char *command, *what, *context;
    size_t max_line_bytes;
    lmr_exec_line_fn on_line;
    void *user;
    pid_t pid;
    bool reaped;
    int status;
    int in_fd, out_fd, err_fd; /* our ends; -1 once closed */
    uint8_t *obuf;             /* an unfinished line, then room for one read */
    size_t olen, ocap;
    char ehead[LMR_EXEC_STDERR_HEAD_BYTES + 1];
    size_t elen;
    bool etrunc;
};

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* A sentence about the child's stderr: "; its stderr began: a | b" or "; its stderr was empty". */
static void stderr_summary(const struct lmr_exec_child *c, char *out, size_t n)
{
    if (!c->elen) {
        snprintf(out, n, "; its stderr was empty");
        return;
    }
    char head[LMR_EXEC_STDERR_HEAD_BYTES + 1];
    size_t j = 0, lines = 0;
    for (size_t i = 0; i < c->elen && j < sizeof head - 4 && lines < 5; i++) {
        unsigned char ch = (unsigned char)c->ehead[i];
        if (ch == '\n') {
            lines++;
            if (i + 1 < c->elen && lines < 5) {
                memcpy(head + j, " | ", 3);
                j += 3;
            }
        } else {
            head[j++] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
        }
    }
    head[j] = '\0';
    snprintf(out, n, "; its stderr began: %s%s", head, c->etrunc || lines >= 5 ? " …" : "");
}

static enum lmr_result child_fail(struct lmr_exec_child *c, struct lmr_err *err, enum lmr_result code,
                                  const char *cause, const char *hint)
{
    char se[LMR_EXEC_STDERR_HEAD_BYTES + 64];
    stderr_summary(c, se, sizeof se);
    return lmr_fail(err, code, "exec %s '%s'%s %s%s%s", c->what, c->command, c->context, cause, se, hint ? hint : "");
}

/* Deliver the whole lines in obuf; keep the unfinished tail at the front. */
static enum lmr_result deliver_lines(struct lmr_exec_child *c, struct lmr_err *err)
{
    uint8_t *p = c->obuf, *end = c->obuf + c->olen;
    for (;;) {
        uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            break;
        enum lmr_result r = c->on_line(c->user, lmr_slice_make(p, (size_t)(nl - p)), err);
        if (r) {
            kill(c->pid, SIGKILL);
            if (err && !strncmp(err->msg, "exec ", 5))
                return r; /* another child's complete message (a combiner fed by this mapper) */
            char cause[LMR_ERR_MSG_BYTES];
            snprintf(cause, sizeof cause, "%s", err && err->msg[0] ? err->msg : lmr_result_str(r));
            return child_fail(c, err, r, cause, NULL);
        }
        p = nl + 1;
    }
    c->olen = (size_t)(end - p);
    if (c->olen && p != c->obuf)
        memmove(c->obuf, p, c->olen);
    if (c->olen > c->max_line_bytes) {
        char cause[160];
        snprintf(cause, sizeof cause, "wrote an output line longer than %zu bytes (the limit at this memory size)",
                 c->max_line_bytes);
        kill(c->pid, SIGKILL);
        return child_fail(c, err, LMR_ERR_TOO_LARGE, cause, NULL);
    }
    return LMR_OK;
}

static enum lmr_result read_stdout(struct lmr_exec_child *c, struct lmr_err *err)
{
    if (c->ocap - c->olen < LMR_EXEC_READ_BYTES) {
        size_t want = c->olen + LMR_EXEC_READ_BYTES;
        size_t cap = c->ocap ? c->ocap * 2 : 2 * LMR_EXEC_READ_BYTES;
        if (cap < want)
            cap = want;
        uint8_t *b = realloc(c->obuf, cap);
        if (!b)
            return lmr_fail(err, LMR_ERR_NOMEM, "out of memory reading the output of exec %s '%s'", c->what,
                            c->command);
        c->obuf = b;
        c->ocap = cap;
    }
    ssize_t n = read(c->out_fd, c->obuf + c->olen, c->ocap - c->olen);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return LMR_OK;
    if (n < 0)
        return lmr_fail(err, LMR_ERR_IO, "reading the output of exec %s '%s': %s", c->what, c->command,
                        strerror(errno));
    if (n == 0) {
        close_fd(&c->out_fd);
        return LMR_OK;
    }
    c->olen += (size_t)n;
    return deliver_lines(c, err);
}

static void read_stderr(struct lmr_exec_child *c)
{
    char scratch[16384];
    ssize_t n = read(c->err_fd, scratch, sizeof scratch);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        close_fd(&c->err_fd);
        return;
    }
    size_t room = LMR_EXEC_STDERR_HEAD_BYTES - c->elen, k = (size_t)n < room ? (size_t)n : room;
    memcpy(c->ehead + c->elen, scratch, k);
    c->elen += k;
    c->etrunc |= k < (size_t)n;
}

/* Wait until something can move: stdin writable (when want_in), stdout or stderr readable. */
static enum lmr_result service(struct lmr_exec_child *c, bool want_in, struct lmr_err *err)
{
    struct pollfd fds[3];
    int n = 0, iin = -1, iout = -1, ierr = -1;
    if (want_in && c->in_fd >= 0) {
        iin = n;
        fds[n++] = (struct pollfd){.fd = c->in_fd, .events = POLLOUT};
    }
    if (c->out_fd >= 0) {
        iout = n;
        fds[n++] = (struct pollfd){.fd = c->out_fd, .events = POLLIN};
    }
    if (c->err_fd >= 0) {
        ierr = n;
        fds[n++] = (struct pollfd){.fd = c->err_fd, .events = POLLIN};
    }
    if (!n)
        return LMR_OK;
    if (poll(fds, (nfds_t)n, -1) < 0) {
        if (errno == EINTR)
            return LMR_OK;
        return lmr_fail(err, LMR_ERR_IO, "waiting on exec %s '%s': %s", c->what, c->command, strerror(errno));
    }
    (void)iin;
    if (ierr >= 0 && fds[ierr].revents)
        read_stderr(c);
    if (iout >= 0 && fds[iout].revents)
        return read_stdout(c, err);
    return LMR_OK;
}

static char **child_env(const struct lmr_exec_child_options *o)
{
    size_t n_environ = 0, n_extra = 0;
    while (environ && environ[n_environ])
        n_environ++;
    while (o->env && o->env[n_extra])
        n_extra++;
    char **envp = calloc(n_environ + n_extra + 2, sizeof *envp);
    if (!envp)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n_extra; i++)
        envp[k++] = strdup(o->env[i]);
    for (size_t i = 0; i < n_environ; i++) {
        const char *e = environ[i], *eq = strchr(e, '=');
        if (!eq)
            continue;
        bool overridden = false;
        for (size_t j = 0; j < n_extra && !overridden; j++)
            overridden = !strncmp(o->env[j], e, (size_t)(eq - e) + 1);
        if (o->path_prefix && !strncmp(e, "PATH=", 5)) {
            size_t len = strlen(o->path_prefix) + strlen(e) + 2;
            char *p = malloc(len);
            if (p)
                snprintf(p, len, "PATH=%s:%s", o->path_prefix, e + 5);
            envp[k++] = p;
            continue;
        }
        if (!overridden)
            envp[k++] = strdup(e);
    }
    for (size_t i = 0; i < k; i++) {
        if (!envp[i]) {
            for (size_t j = 0; j < k; j++)
                free(envp[j]);
            free(envp);
            return NULL;
        }
    }
    return envp;
}

enum lmr_result lmr_exec_child_start(const struct lmr_exec_child_options *o, struct lmr_exec_child **out,
                                     struct lmr_err *err)
{
    signal(SIGPIPE, SIG_IGN); /* a child that stops reading gives EPIPE, not a dead task */
    struct lmr_exec_child *c = calloc(1, sizeof *c);
    if (!c)
        return lmr_fail(err, LMR_ERR_NOMEM, "out of memory starting exec %s '%s'", o->what, o->command);
    c->in_fd = c->out_fd = c->err_fd = -1;
    c->pid = -1;
    c->command = strdup(o->command);
    c->what = strdup(o->what);
    c->context = strdup(o->context ? o->context : "");
    c->max_line_bytes = o->max_line_bytes;
    c->on_line = o->on_line;
    c->user = o->user;
    int pin[2] = {-1, -1}, pout[2] = {-1, -1}, perr[2] = {-1, -1};
    char **envp = child_env(o);
    enum lmr_result r = LMR_OK;
    if (!c->command || !c->what || !c->context || !envp) {
        r = lmr_fail(err, LMR_ERR_NOMEM, "out of memory starting exec %s '%s'", o->what, o->command);
        goto done;
    }
    if (pipe2(pin, O_CLOEXEC) || pipe2(pout, O_CLOEXEC) || pipe2(perr, O_CLOEXEC)) {
        r = lmr_fail(err, LMR_ERR_IO, "cannot create pipes for exec %s '%s': %s", o->what, o->command, strerror(errno));
        goto done;
    }
    /* Large pipes: fewer wake-ups. The system maximum (fs/pipe-max-size) may be lower: keep the default. */
    fcntl(pin[1], F_SETPIPE_SZ, LMR_EXEC_PIPE_BYTES);
    fcntl(pout[0], F_SETPIPE_SZ, LMR_EXEC_PIPE_BYTES);
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_adddup2(&fa, pin[0], 0);
    posix_spawn_file_actions_adddup2(&fa, pout[1], 1);
    posix_spawn_file_actions_adddup2(&fa, perr[1], 2);
    if (o->cwd)
        posix_spawn_file_actions_addchdir_np(&fa, o->cwd);
    sigset_t def, none;
    sigemptyset(&def);
    sigaddset(&def, SIGPIPE);
    sigemptyset(&none);
    posix_spawnattr_setsigdefault(&attr, &def);
    posix_spawnattr_setsigmask(&attr, &none);
    /* The child stays in the function's process group: when the execution environment is ended
       (timeout, memory limit), its children end with it, as in a Lambda sandbox. */
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    char *argv[] = {"/bin/sh", "-c", c->command, NULL};
    int e = posix_spawn(&c->pid, "/bin/sh", &fa, &attr, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (e) {
        c->pid = -1;
        r = lmr_fail(err, LMR_ERR_IO, "cannot start exec %s '%s' with /bin/sh%s: %s", o->what, o->command,
                     e == ENOENT && o->cwd ? " (or its folder " : "", strerror(e));
        goto done;
    }
    c->in_fd = pin[1];
    c->out_fd = pout[0];
    c->err_fd = perr[0];
    pin[1] = pout[0] = perr[0] = -1;
    fcntl(c->in_fd, F_SETFL, O_NONBLOCK);
    fcntl(c->out_fd, F_SETFL, O_NONBLOCK);
    fcntl(c->err_fd, F_SETFL, O_NONBLOCK);
done:
    for (int i = 0; i < 2; i++) {
        close_fd(&pin[i]);
        close_fd(&pout[i]);
        close_fd(&perr[i]);
    }
    if (envp) {
        for (char **p = envp; *p; p++)
            free(*p);
        free(envp);
    }
    if (r) {
        lmr_exec_child_destroy(c);
        return r;
    }
    *out = c;
    return LMR_OK;
}

enum lmr_result lmr_exec_child_write(struct lmr_exec_child *c, const void *data, size_t len, struct lmr_err *err)
{
    const uint8_t *p = data;
    while (len && c->in_fd >= 0) {
        ssize_t n = write(c->in_fd, p, len);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EPIPE) {
            close_fd(&c->in_fd); /* it stopped reading: the rest goes nowhere, the exit status decides */
            break;
        }
        if (n < 0 && errno != EAGAIN)
            return lmr_fail(err, LMR_ERR_IO, "writing to exec %s '%s': %s", c->what, c->command, strerror(errno));
        enum lmr_result r = service(c, true, err);
        if (r)
            return r;
    }
    return LMR_OK;
}

enum lmr_result lmr_exec_child_finish(struct lmr_exec_child *c, struct lmr_err *err)
{
    close_fd(&c->in_fd);
    while (c->out_fd >= 0 || c->err_fd >= 0) {
        enum lmr_result r = service(c, false, err);
        if (r)
            return r;
    }
    if (!c->reaped) {
        while (waitpid(c->pid, &c->status, 0) < 0 && errno == EINTR)
            ;
        c->reaped = true;
    }
    char cause[200];
    if (WIFSIGNALED(c->status)) {
        int sig = WTERMSIG(c->status);
        snprintf(cause, sizeof cause, "was killed by signal %d (%s)", sig, strsignal(sig));
        return child_fail(c, err, LMR_ERR_FUNCTION, cause, NULL);
    }
    int code = WIFEXITED(c->status) ? WEXITSTATUS(c->status) : -1;
    if (code != 0) {
        snprintf(cause, sizeof cause, "exited with status %d", code);
        const char *hint = code == 126 || code == 127
                               ? "; the command or its interpreter was not found or not executable: ship scripts "
                                 "and binaries with --file (found as files/NAME), and note that AWS's provided.al2023 "
                                 "runtime has no Python (ship a compiled binary, or a /bin/sh script)"
                               : NULL;
        return child_fail(c, err, LMR_ERR_FUNCTION, cause, hint);
    }
    if (c->olen) { /* a last line without "\n" */
        enum lmr_result r = c->on_line(c->user, lmr_slice_make(c->obuf, c->olen), err);
        c->olen = 0;
        if (r) {
            char msg[LMR_ERR_MSG_BYTES];
            snprintf(msg, sizeof msg, "%s", err && err->msg[0] ? err->msg : lmr_result_str(r));
            return child_fail(c, err, r, msg, NULL);
        }
    }
    return LMR_OK;
}

void lmr_exec_child_destroy(struct lmr_exec_child *c)
{
    if (!c)
        return;
    close_fd(&c->in_fd);
    close_fd(&c->out_fd);
    close_fd(&c->err_fd);
    if (c->pid > 0 && !c->reaped) {
        kill(c->pid, SIGKILL);
        while (waitpid(c->pid, &c->status, 0) < 0 && errno == EINTR)
            ;
    }
    free(c->obuf);
    free(c->command);
    free(c->what);
    free(c->context);
    free(c);
}
