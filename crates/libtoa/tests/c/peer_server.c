/* peer_server: a plain C TCP server that reports who it thinks its clients are,
 * the way an unmodified IPv4 program would, plus through libtoa.
 *
 *   peer_server BIND_ADDR PORT COUNT
 *
 * Binds BIND_ADDR:PORT (PORT 0 = any), prints "listening ADDR:PORT", then for
 * each of COUNT connections (even ones via accept, odd ones via accept4), with a
 * struct sockaddr_in6 buffer as Tencent's toa.ko users pass:
 *   accept ADDR len=N          what accept()/accept4() returned
 *   getpeername ADDR len=N     what getpeername() returned (same buffer type)
 *   toa_get_peer ADDR | toa_get_peer error ENAME
 * and "errno FAIL ..." if a successful call changed errno. Before serving it
 * checks that failing calls keep libc's errno ("selfcheck ok"/"selfcheck FAIL").
 * Addresses print as a.b.c.d:port or [v6]:port. Output is line-buffered.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "toa.h"

static void format_addr(const struct sockaddr *sa, char *out, size_t size)
{
    char ip[INET6_ADDRSTRLEN];
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const void *)sa;
        inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof ip);
        snprintf(out, size, "%s:%u", ip, ntohs(sin->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const void *)sa;
        inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof ip);
        snprintf(out, size, "[%s]:%u", ip, ntohs(sin6->sin6_port));
    } else {
        snprintf(out, size, "family=%d", sa->sa_family);
    }
}

static void expect_errno(const char *what, int rc, int want)
{
    if (rc == -1 && errno == want)
        printf("selfcheck ok %s %s\n", what, strerrorname_np(want));
    else
        printf("selfcheck FAIL %s rc=%d errno=%s want %s\n", what, rc,
               strerrorname_np(errno), strerrorname_np(want));
}

/* A successful call must leave errno as it was: set a sentinel first. */
#define SENTINEL EDOM
static void check_errno_kept(const char *what)
{
    if (errno != SENTINEL)
        printf("errno FAIL %s changed errno to %s\n", what, strerrorname_np(errno));
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s BIND_ADDR PORT COUNT\n", argv[0]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    int count = atoi(argv[3]);

    struct sockaddr_storage bind_addr = {0};
    socklen_t bind_len;
    struct sockaddr_in *sin = (void *)&bind_addr;
    struct sockaddr_in6 *sin6 = (void *)&bind_addr;
    if (inet_pton(AF_INET, argv[1], &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons(atoi(argv[2]));
        bind_len = sizeof *sin;
    } else if (inet_pton(AF_INET6, argv[1], &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(atoi(argv[2]));
        bind_len = sizeof *sin6;
    } else {
        fprintf(stderr, "peer_server: bad address %s\n", argv[1]);
        return 2;
    }

    int listener = socket(bind_addr.ss_family, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (listener < 0 || bind(listener, (void *)&bind_addr, bind_len) < 0 || listen(listener, 16) < 0) {
        perror("peer_server: listen");
        return 1;
    }

    struct sockaddr_in6 probe;
    socklen_t probe_len = sizeof probe;
    expect_errno("accept-bad-fd", accept(-1, (void *)&probe, &probe_len), EBADF);
    expect_errno("accept4-bad-fd", accept4(-1, (void *)&probe, &probe_len, 0), EBADF);
    expect_errno("getpeername-unconnected", getpeername(listener, (void *)&probe, &probe_len), ENOTCONN);

    struct sockaddr_storage local;
    socklen_t local_len = sizeof local;
    char text[128];
    getsockname(listener, (void *)&local, &local_len);
    format_addr((void *)&local, text, sizeof text);
    printf("listening %s\n", text);

    for (int i = 0; i < count; i++) {
        struct sockaddr_in6 peer;
        socklen_t len = sizeof peer;
        errno = SENTINEL;
        int conn = i % 2 == 0 ? accept(listener, (void *)&peer, &len)
                              : accept4(listener, (void *)&peer, &len, SOCK_CLOEXEC);
        if (conn < 0) {
            perror("peer_server: accept");
            return 1;
        }
        check_errno_kept("accept");
        format_addr((void *)&peer, text, sizeof text);
        printf("%s %s len=%u\n", i % 2 == 0 ? "accept" : "accept4", text, len);

        len = sizeof peer;
        errno = SENTINEL;
        if (getpeername(conn, (void *)&peer, &len) == 0) {
            check_errno_kept("getpeername");
            format_addr((void *)&peer, text, sizeof text);
            printf("getpeername %s len=%u\n", text, len);
        } else {
            printf("getpeername error %s\n", strerrorname_np(errno));
        }

        struct sockaddr_storage real;
        socklen_t real_len = sizeof real;
        if (toa_get_peer(conn, &real, &real_len) == 0) {
            format_addr((void *)&real, text, sizeof text);
            printf("toa_get_peer %s\n", text);
        } else {
            printf("toa_get_peer error %s\n", strerrorname_np(errno));
        }
        close(conn);
    }
    return 0;
}
