//! Binding listeners. No `listen` key means one `[::]` socket that takes IPv4 too
//! (IPV6_V6ONLY off); an explicit IPv6 address is IPv6 only so it can sit beside an
//! explicit IPv4 listener on the same port.

use std::io;
use std::net::{Ipv6Addr, SocketAddr};

use socket2::{Domain, Socket, Type};
use tokio::net::TcpListener;

use crate::config::ListenAddr;
use crate::rules::ListenKey;

/// Pending connections the kernel queues per listener while the accept loop is busy.
const LISTEN_BACKLOG: i32 = 4096;

pub fn bind_tcp(key: &ListenKey) -> io::Result<TcpListener> {
    let (addr, v6only) = match key.addr {
        ListenAddr::DualStack => (
            SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), key.port),
            Some(false),
        ),
        ListenAddr::Ip(ip) => (SocketAddr::new(ip, key.port), ip.is_ipv6().then_some(true)),
    };
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    if let Some(only) = v6only {
        socket.set_only_v6(only)?;
    }
    // Lets a restarted proxy bind while old connections sit in TIME_WAIT.
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    TcpListener::from_std(socket.into())
}
