/* This user's background `lambdamr serve`: its folder, state file, lock and start (background.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* close_range */
#endif
#include "background.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "job/task.h"
#include "util/misc.h"

#define STATE_MAX_BYTES 4096
#define START_WAIT_MS 10000u
#define LOG_KEEP_BYTES (4u << 20)

/* One folder level: made 0700 if missing; refused if it is a link, not ours, or writable by others. */
static enum lmr_result safe_dir(const char *path, bool create, struct lmr_err *err)
{
    if (create && mkdir(path, 0700) && errno != EEXIST)
        return lmr_fail(err, LMR_ERR_IO, "cannot create the folder %s for the background lambdamr serve: %s", path,
                        strerror(errno));
    struct stat st;
    if (lstat(path, &st))
        return lmr_fail(err, LMR_ERR_IO, "cannot use the folder %s for the background lambdamr serve: %s", path,
                        strerror(errno));
    if (!S_ISDIR(st.st_mode) || st.st_uid != getuid() || (st.st_mode & 022))
        return lmr_fail(err, LMR_ERR_INVALID,
                        "the folder %s of the background lambdamr serve is not a private folder of this user (it "
                        "must be a directory, not a link, owned by uid %u and writable by nobody else); remove it "
                        "or set XDG_RUNTIME_DIR",
                        path, (unsigned)getuid());
    return LMR_OK;
}

enum lmr_result lmr_background_dir(char *out, size_t cap, struct lmr_err *err)
{
    const char *xdg = getenv("XDG_RUNTIME_DIR"), *home = getenv("HOME");
    int n;
    if (xdg && xdg[0] == '/') {
        n = snprintf(out, cap, "%s/lambdamr", xdg);
    } else if (home && home[0] == '/') {
        char cache[LMR_BACKGROUND_DIR_MAX];
        snprintf(cache, sizeof cache, "%s/.cache", home);
        if (mkdir(cache, 0700) && errno != EEXIST)
            return lmr_fail(err, LMR_ERR_IO, "cannot create %s: %s", cache, strerror(errno));
        n = snprintf(out, cap, "%s/.cache/lambdamr", home);
    } else {
        return lmr_fail(err, LMR_ERR_INVALID,
                        "neither XDG_RUNTIME_DIR nor HOME is set: there is no folder for the background lambdamr "
                        "serve's state; set one of them");
    }
    if (n < 0 || (size_t)n >= cap)
        return lmr_fail(err, LMR_ERR_TOO_LARGE, "the folder of the background lambdamr serve has too long a path");
    enum lmr_result r = safe_dir(out, true, err);
    if (!r)
        chmod(out, 0700);
    return r;
}

int lmr_background_lock(const char *dir, uint32_t wait_ms, struct lmr_err *err)
{
    char path[LMR_BACKGROUND_DIR_MAX + 32];
    snprintf(path, sizeof path, "%s/serve.lock", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        lmr_fail(err, LMR_ERR_IO, "cannot open the lock %s of the background lambdamr serve: %s", path,
                 strerror(errno));
        return -1;
    }
    for (uint32_t waited = 0;; waited += 50) {
        if (!flock(fd, LOCK_EX | LOCK_NB))
            return fd;
        if (errno != EWOULDBLOCK || waited >= wait_ms)
            break;
        lmr_sleep_ms(50);
    }
    lmr_fail(err, LMR_ERR_TIMEOUT,
             "another lambdamr process has held the lock %s for %u s (it starts or stops the background serve); "
             "try again, or remove the lock if no lambdamr process runs",
             path, wait_ms / 1000);
    close(fd);
    return -1;
}

void lmr_background_unlock(int fd)
{
    if (fd >= 0) {
        flock(fd, LOCK_UN);
        close(fd);
    }
}

uint64_t lmr_background_start_ticks(int pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    /* Fields after "(comm)": state is field 3, starttime field 22. */
    char *p = strrchr(buf, ')');
    if (!p || p[1] != ' ' || p[2] == 'Z' || p[2] == 'X') /* a zombie has exited */
        return 0;
    p += 2;
    for (int field = 3; field < 22 && p; field++) {
        p = strchr(p, ' ');
        if (p)
            p++;
    }
    return p ? strtoull(p, NULL, 10) : 0;
}

/* Does something accept connections on 127.0.0.1:port (within 1 s)? */
static bool port_answers(uint16_t port)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s < 0)
        return false;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = connect(s, (struct sockaddr *)&a, sizeof a) == 0;
    if (!ok && errno == EINPROGRESS) {
        struct pollfd p = {.fd = s, .events = POLLOUT};
        int e = 0;
        socklen_t el = sizeof e;
        ok = poll(&p, 1, 1000) == 1 && !getsockopt(s, SOL_SOCKET, SO_ERROR, &e, &el) && e == 0;
    }
    close(s);
    return ok;
}

static enum lmr_result read_state(const char *dir, struct lmr_background_state *st, struct lmr_err *err)
{
    char path[LMR_BACKGROUND_DIR_MAX + 32], *text = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, "%s/serve.json", dir);
    memset(st, 0, sizeof *st);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return errno == ENOENT ? LMR_ERR_NOT_FOUND
                               : lmr_fail(err, LMR_ERR_IO, "cannot read %s: %s", path, strerror(errno));
    close(fd);
    enum lmr_result r = lmr_read_file(path, STATE_MAX_BYTES, &text, &len, err);
    json_t *j = r ? NULL : json_loadb(text ? text : "", len, 0, NULL);
    free(text);
    if (r)
        return r;
    uint64_t pid = lmr_json_u64(j, "pid", 0), port = lmr_json_u64(j, "port", 0);
    st->pid = pid > 0 && pid < (1u << 22) ? (int)pid : 0;
    st->port = port > 0 && port < 65536 ? (uint16_t)port : 0;
    st->start_ticks = lmr_json_u64(j, "start_ticks", 0);
    st->started_ms = lmr_json_u64(j, "started_ms", 0);
    snprintf(st->aws_env, sizeof st->aws_env, "%s", lmr_json_str(j, "aws_env", ""));
    json_decref(j);
    return st->pid && st->port ? LMR_OK : LMR_ERR_NOT_FOUND; /* unreadable: stale */
}

enum lmr_result lmr_background_find(const char *dir, struct lmr_background_state *st, struct lmr_err *err)
{
    enum lmr_result r = read_state(dir, st, err);
    if (r)
        return r;
    uint64_t ticks = lmr_background_start_ticks(st->pid);
    if (!ticks || ticks != st->start_ticks || !port_answers(st->port))
        return LMR_ERR_NOT_FOUND;
    return LMR_OK;
}

#define PLACEHOLDER_KEY "lambdamr-local"

void lmr_background_aws_env_digest(char out[17])
{
    static const char *const names[] = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                        "AWS_SESSION_TOKEN", "AWS_PROFILE",
                                        "AWS_REGION",        "AWS_DEFAULT_REGION"};
    bool none = !getenv("AWS_ACCESS_KEY_ID") && !getenv("AWS_PROFILE");
    unsigned char md[EVP_MAX_MD_SIZE] = {0};
    unsigned int len = 0;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    bool ok = c && EVP_DigestInit_ex(c, EVP_sha256(), NULL);
    for (size_t i = 0; ok && i < sizeof names / sizeof names[0]; i++) {
        const char *v = none && i < 2 ? PLACEHOLDER_KEY : getenv(names[i]);
        ok = EVP_DigestUpdate(c, names[i], strlen(names[i]) + 1) &&
             EVP_DigestUpdate(c, v ? v : "", v ? strlen(v) + 1 : 0);
    }
    if (ok)
        EVP_DigestFinal_ex(c, md, &len);
    EVP_MD_CTX_free(c);
    for (int i = 0; i < 8; i++)
        sprintf(out + 2 * i, "%02x", md[i]);
}

/*
 * The serve's environment: this one without LMR_* (a job's LMR_* variables reach its functions
 * through their configuration, never from whichever driver started the serve; LMR_LOG stays),
 * with credentials to sign with when none are set (the service does not check them).
 */
static char **serve_environment(void)
{
    extern char **environ;
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = calloc(n + 3, sizeof *env), **e = env;
    if (!env)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "LMR_", 4) || !strncmp(environ[i], "LMR_LOG=", 8))
            *e++ = environ[i];
    if (!getenv("AWS_ACCESS_KEY_ID") && !getenv("AWS_PROFILE")) {
        *e++ = (char *)"AWS_ACCESS_KEY_ID=" PLACEHOLDER_KEY;
        *e++ = (char *)"AWS_SECRET_ACCESS_KEY=" PLACEHOLDER_KEY;
    }
    return env;
}

enum lmr_result lmr_background_ensure(const char *dir, const char *self, struct lmr_background_state *st,
                                      struct lmr_err *err)
{
    enum lmr_result r = lmr_background_find(dir, st, err);
    if (r != LMR_ERR_NOT_FOUND)
        return r;
    r = LMR_OK;
    char path[LMR_BACKGROUND_DIR_MAX + 32], log[LMR_BACKGROUND_DIR_MAX + 32], idle[32];
    snprintf(path, sizeof path, "%s/serve.json", dir);
    snprintf(log, sizeof log, "%s/serve.log", dir);
    unlink(path); /* stale (we hold the lock: nobody else writes it now) */
    const char *e = getenv("LMR_SERVE_IDLE_EXIT_S");
    uint64_t secs;
    snprintf(idle, sizeof idle, "%llu",
             (unsigned long long)(e && !lmr_parse_u64(e, 1, 86400, &secs) ? secs : LMR_BACKGROUND_IDLE_EXIT_DEFAULT_S));
    char *argv[] = {(char *)"lambdamr",
                    (char *)"serve",
                    (char *)"--background",
                    (char *)"--idle-exit",
                    idle,
                    (char *)"--update-delay-ms",
                    (char *)"20",
                    NULL};
    /* The log is kept across serves, up to LOG_KEEP_BYTES and one older file (serve.log.1). */
    struct stat lst;
    if (!stat(log, &lst) && lst.st_size > LOG_KEEP_BYTES) {
        char old[LMR_BACKGROUND_DIR_MAX + 40];
        snprintf(old, sizeof old, "%s.1", log);
        rename(log, old);
    }
    char **envp = serve_environment();
    int lfd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
    int nfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (!envp || lfd < 0 || nfd < 0) {
        r = lmr_fail(err, LMR_ERR_IO, "cannot start the background lambdamr serve: its log %s: %s", log,
                     envp ? strerror(errno) : "out of memory");
        goto out;
    }
    /* Twice forked, in a session of its own: not our child, not in our terminal's process group.
     * Between fork and exec only async-signal-safe calls (this process may have other threads). */
    pid_t child = fork();
    if (child < 0) {
        r = lmr_fail(err, LMR_ERR_IO, "cannot start the background lambdamr serve: fork: %s", strerror(errno));
        goto out;
    }
    if (child == 0) {
        setsid();
        signal(SIGHUP, SIG_IGN);
        if (fork() != 0)
            _exit(0);
        if (dup2(nfd, 0) < 0 || dup2(lfd, 1) < 0 || dup2(lfd, 2) < 0)
            _exit(127);
        close_range(3, ~0u, 0); /* nothing of ours (pipes, sockets) stays open in the serve */
        execve(self, argv, envp);
        _exit(127);
    }
    int status = 0;
    waitpid(child, &status, 0);
    for (uint32_t waited = 0; waited < START_WAIT_MS; waited += 50) {
        if (lmr_background_find(dir, st, NULL) == LMR_OK)
            goto out;
        lmr_sleep_ms(50);
    }
    r = lmr_fail(err, LMR_ERR_TIMEOUT,
                 "the background lambdamr serve (%s serve --background) did not start within %u s; see its log %s",
                 self, START_WAIT_MS / 1000, log);
out:
    if (lfd >= 0)
        close(lfd);
    if (nfd >= 0)
        close(nfd);
    free(envp);
    return r;
}

enum lmr_result lmr_background_write_state(const char *dir, uint16_t port, struct lmr_err *err)
{
    char path[LMR_BACKGROUND_DIR_MAX + 32], tmp[LMR_BACKGROUND_DIR_MAX + 64];
    snprintf(path, sizeof path, "%s/serve.json", dir);
    snprintf(tmp, sizeof tmp, "%s/.serve.json.%d", dir, (int)getpid());
    char aws_env[17];
    lmr_background_aws_env_digest(aws_env);
    json_t *j = json_pack("{s:i, s:i, s:I, s:I, s:s}", "pid", (int)getpid(), "port", (int)port, "start_ticks",
                          (json_int_t)lmr_background_start_ticks((int)getpid()), "started_ms",
                          (json_int_t)lmr_wall_ms(), "aws_env", aws_env);
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!text)
        return lmr_fail(err, LMR_ERR_NOMEM, "out of memory writing %s", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    size_t n = strlen(text);
    bool ok = fd >= 0 && write(fd, text, n) == (ssize_t)n && write(fd, "\n", 1) == 1;
    int e = errno;
    if (fd >= 0 && close(fd))
        ok = false;
    free(text);
    if (!ok || rename(tmp, path)) {
        e = ok ? errno : e;
        unlink(tmp);
        return lmr_fail(err, LMR_ERR_IO, "cannot write the state file %s of the background lambdamr serve: %s", path,
                        strerror(e));
    }
    return LMR_OK;
}

void lmr_background_remove_state(const char *dir)
{
    struct lmr_background_state st;
    char path[LMR_BACKGROUND_DIR_MAX + 32];
    snprintf(path, sizeof path, "%s/serve.json", dir);
    if (read_state(dir, &st, NULL) == LMR_OK && st.pid == (int)getpid())
        unlink(path);
}
