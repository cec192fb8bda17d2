/* toa.h — the real client address of a connection that came through a TOA proxy.
 *
 * On a host running `toa origin load`, getpeername()/accept() already return the
 * real client for IPv4 clients, and for any client on an AF_INET6 socket. One case
 * cannot go through getpeername(): an IPv6 client on an IPv4-only (AF_INET)
 * socket. toa_get_peer() answers it, and every other case too.
 *
 * It asks the kernel with getsockopt(fd, IPPROTO_IP, TOA_SO_GET_LOOKUP), the
 * DPVS/Tencent NAT64 lookup convention, which toa origin (and toa.ko) answer.
 * No privilege is needed. Thread-safe and async-signal-safe; no allocation.
 *
 * Build: cc app.c -I<libtoa>/include -L<dir of libtoa.so> -ltoa
 */
#ifndef TOA_H
#define TOA_H

#include <sys/socket.h>
#include <netinet/in.h>

#ifdef __cplusplus
extern "C" {
#endif

/* getsockopt(fd, IPPROTO_IP, TOA_SO_GET_LOOKUP, &reply, &len) with
 * len = sizeof(struct toa_lookup_reply): the raw lookup toa_get_peer() wraps. */
#define TOA_SO_GET_LOOKUP 4096

/* What the raw lookup writes: 18 bytes, packed. IPv4 clients come as
 * ::ffff:a.b.c.d; both fields are in network byte order. */
struct toa_lookup_reply {
    struct in6_addr saddr;
    uint16_t port;
} __attribute__((packed));
#ifndef __cplusplus
_Static_assert(sizeof(struct toa_lookup_reply) == 18, "the lookup answer is 18 bytes");
#endif
/* Raw getsockopt(IPPROTO_IP, TOA_SO_GET_LOOKUP) users: on Linux < 5.18 a
 * getsockopt BPF program cannot fail with ENOENT, so "no TOA" is a success
 * with an all-zero reply (address ::, port 0). toa_get_peer() hides this. */

/* Store the real client of the connected TCP socket `fd` in `*out`.
 *
 * On input *len is the size of the buffer at `out` (pass
 * sizeof(struct sockaddr_storage)). On success returns 0, writes a
 * struct sockaddr_in (IPv4 client) or struct sockaddr_in6 (IPv6 client) and sets
 * *len to its size. On failure returns -1, leaves *out unchanged and sets errno:
 *   ENOENT       the socket carries no TOA (it did not come through a TOA proxy):
 *                call getpeername(), its peer is the client.
 *   ENOPROTOOPT  toa origin is not loaded for this socket's cgroup (nothing
 *                answered the lookup): getpeername() is the best you have.
 *   EINVAL       out or len is NULL, or *len is too small for the address.
 *   EBADF, ENOTSOCK, ...  as from getsockopt(2).
 */
int toa_get_peer(int fd, struct sockaddr_storage *out, socklen_t *len);

#ifdef __cplusplus
}
#endif

#endif /* TOA_H */
