/*
 * The Runtime API peer check (common/lambda/service_guard.c) on real sockets: a connection is
 * accepted only when its client socket is held by the environment's process or a descendant,
 * found through sock_diag netlink and, with LMR_FAULT=peer-proc-net-tcp, through /proc/net/tcp.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lambda/service_internal.h"

static int listen_any(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    assert_int_equal(listen(fd, 8), 0);
    socklen_t len = sizeof sin;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    *port = ntohs(sin.sin_port);
    return fd;
}

static int connect_to(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    return fd;
}

static void check(void)
{
    uint16_t port;
    int lfd = listen_any(&port);
    /* A process that is not ours: started before the client socket exists. */
    pid_t stranger = fork();
    if (stranger == 0) {
        pause();
        _exit(0);
    }
    /* This process holds the client socket. */
    int cfd = connect_to(port);
    struct sockaddr_in peer;
    socklen_t plen = sizeof peer;
    int afd = accept(lfd, (struct sockaddr *)&peer, &plen);
    assert_true(afd >= 0);
    assert_true(lmr_svc_peer_in_env(getpid(), port, (struct sockaddr *)&peer, plen));
    assert_false(lmr_svc_peer_in_env(stranger, port, (struct sockaddr *)&peer, plen));
    assert_false(lmr_svc_peer_in_env(getpid(), (uint16_t)(port + 1), (struct sockaddr *)&peer, plen));
    close(afd);
    close(cfd);

    /* A child connects: a descendant of this process, not of the stranger. */
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t child = fork();
    if (child == 0) {
        int fd = connect_to(port);
        char c = 1;
        if (write(ready[1], &c, 1) != 1)
            _exit(1);
        pause();
        close(fd);
        _exit(0);
    }
    char c;
    assert_int_equal(read(ready[0], &c, 1), 1);
    plen = sizeof peer;
    afd = accept(lfd, (struct sockaddr *)&peer, &plen);
    assert_true(afd >= 0);
    assert_true(lmr_svc_peer_in_env(getpid(), port, (struct sockaddr *)&peer, plen));
    assert_true(lmr_svc_peer_in_env(child, port, (struct sockaddr *)&peer, plen));
    assert_false(lmr_svc_peer_in_env(stranger, port, (struct sockaddr *)&peer, plen));
    close(afd);
    kill(child, SIGKILL);
    kill(stranger, SIGKILL);
    waitpid(child, NULL, 0);
    waitpid(stranger, NULL, 0);
    close(ready[0]);
    close(ready[1]);
    close(lfd);
}

static void test_peer_by_netlink(void **state)
{
    unsetenv("LMR_FAULT");
    check();
}

static void test_peer_by_proc_net_tcp(void **state)
{
    setenv("LMR_FAULT", "peer-proc-net-tcp:*:*", 1);
    check();
    unsetenv("LMR_FAULT");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_peer_by_netlink),
        cmocka_unit_test(test_peer_by_proc_net_tcp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
