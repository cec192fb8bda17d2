//! Binding listeners, TCP and UDP alike. No `listen` key means one `[::]` socket that takes
//! IPv4 too (IPV6_V6ONLY off); an explicit IPv6 address is IPv6 only so it can sit beside an
//! explicit IPv4 listener on the same port. A TCP key is bound once per accept worker
//! (`SO_REUSEPORT`, see `workers`); a port held by another socket without it still
//! fails the bind, and with it the (re)load. A UDP key gets one `toa_pktinfo::ListenSocket`.

use std::io;
use std::net::{Ipv6Addr, SocketAddr};

use socket2::{Domain, Socket, Type};
use toa_pktinfo::ListenSocket;

use crate::rules::ListenKey;
use toa_config::ListenAddr;

/// Pending connections the kernel queues per listener while the accept loop is busy.
const LISTEN_BACKLOG: i32 = 4096;

/// The address connections to `key` arrive on, when that does not depend on the
/// connection (the listener is bound to one address): no getsockname() per connection.
pub fn fixed_local_addr(key: &ListenKey) -> Option<SocketAddr> {
    match key.addr {
        ListenAddr::DualStack => None,
        ListenAddr::Ip(ip) => Some(SocketAddr::new(ip, key.port)),
    }
}

/// `count` sockets bound to `key`, sharing its port through `SO_REUSEPORT`.
pub fn bind_tcp(key: &ListenKey, count: usize) -> io::Result<Vec<std::net::TcpListener>> {
    (0..count.max(1)).map(|_| bind_one(key)).collect()
}

/// The UDP socket for `key`.
pub fn bind_udp(key: &ListenKey) -> io::Result<ListenSocket> {
    let (addr, v6only) = bind_address(key);
    ListenSocket::bind(addr, v6only)
}

/// The UDP socket for a steered range whose first port is `key`'s: it learns each
/// datagram's original destination port.
pub fn bind_udp_range(key: &ListenKey) -> io::Result<ListenSocket> {
    let (addr, v6only) = bind_address(key);
    ListenSocket::bind_range(addr, v6only)
}

/// A flow's reply socket on `key` (a port of a steered range other than its first), with
/// SO_REUSEADDR: the flows of other clients on that port bind it too, and so do the
/// proxy's upstream sockets (`udp::upstream::connect`), whose ephemeral ports a range may
/// cover. Unconnected, so it takes nothing from the steered socket: the kernel prefers a
/// connected socket to the sk_lookup program (5.9 and later alike), an unconnected one
/// never. Anything else holding the port without SO_REUSEADDR (bound after the range
/// started) refuses the bind, and the flow with it.
pub fn bind_udp_reply(key: &ListenKey) -> io::Result<ListenSocket> {
    let (addr, v6only) = bind_address(key);
    ListenSocket::bind_reply(addr, v6only)
}

/// Where `key` binds, and its IPV6_V6ONLY (`None`: an IPv4 socket, which has none).
fn bind_address(key: &ListenKey) -> (SocketAddr, Option<bool>) {
    match key.addr {
        ListenAddr::DualStack => (
            SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), key.port),
            Some(false),
        ),
        ListenAddr::Ip(ip) => (SocketAddr::new(ip, key.port), ip.is_ipv6().then_some(true)),
    }
}

fn bind_one(key: &ListenKey) -> io::Result<std::net::TcpListener> {
    let (addr, v6only) = bind_address(key);
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    if let Some(only) = v6only {
        socket.set_only_v6(only)?;
    }
    // Lets a restarted proxy bind while old connections sit in TIME_WAIT.
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    // Accepted sockets inherit TCP_NODELAY from the listener (Linux copies it into every
    // child), which saves one setsockopt per connection.
    socket.set_tcp_nodelay(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use toa_config::Protocol;

    #[tokio::test]
    async fn accepted_sockets_inherit_nodelay_from_the_listener() {
        let key = ListenKey {
            protocol: Protocol::Tcp,
            addr: ListenAddr::Ip("127.0.0.1".parse().unwrap()),
            port: 0,
        };
        let listener = bind_tcp(&key, 1).unwrap().remove(0);
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, accepted) =
            tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
        let (accepted, _) = accepted.unwrap();
        assert!(
            accepted.nodelay().unwrap(),
            "accepted socket has TCP_NODELAY"
        );
        drop(client);
    }

    #[test]
    fn a_port_held_without_reuseport_still_fails_the_bind() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let key = ListenKey {
            protocol: Protocol::Tcp,
            addr: ListenAddr::Ip("127.0.0.1".parse().unwrap()),
            port: held.local_addr().unwrap().port(),
        };
        let err = bind_tcp(&key, 2).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    }
}
