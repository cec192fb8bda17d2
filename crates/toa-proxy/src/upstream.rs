//! Opening one upstream TCP connection: the rule's next source address (if it lists any),
//! the pass-client-IP mode's socket setup, and `connect()` under `connect_timeout`.
//!
//! Each source address adds its own ephemeral port range towards every origin. A socket
//! bound to an address with port 0 would reserve a port at `bind()` time, unique across
//! every destination; `IP_BIND_ADDRESS_NO_PORT` defers the choice to `connect()`, where
//! the kernel only needs the full 4-tuple to be unique, as for an unbound socket.

use std::io;
use std::net::{IpAddr, SocketAddr};

use std::sync::atomic::Ordering;

use nix::sys::socket::{setsockopt, sockopt};
use tokio::net::{TcpSocket, TcpStream};

use crate::client_ip::ConnInfo;
use crate::error::{ConnectError, LocalResource};
use crate::state::TcpRule;

/// Connects to `origin` for `conn`. With source addresses, a source that has run out of
/// ports towards this origin is skipped for the next one before giving up.
pub(crate) async fn connect(
    rule: &TcpRule,
    origin: SocketAddr,
    conn: &ConnInfo,
) -> Result<TcpStream, ConnectError> {
    let sources: Vec<IpAddr> = rule
        .source_addresses
        .iter()
        .copied()
        .filter(|s| s.is_ipv4() == origin.is_ipv4())
        .collect();
    if sources.is_empty() {
        return connect_from(rule, None, origin, conn).await;
    }
    let start = rule.next_source.fetch_add(1, Ordering::Relaxed);
    let mut last = None;
    for k in 0..sources.len() {
        let source = sources[(start + k) % sources.len()];
        match connect_from(rule, Some(source), origin, conn).await {
            Err(
                e @ ConnectError::Local {
                    resource: LocalResource::Ports,
                    ..
                },
            ) => last = Some(e),
            other => return other,
        }
    }
    Err(last.expect("at least one source was tried"))
}

async fn connect_from(
    rule: &TcpRule,
    source: Option<IpAddr>,
    origin: SocketAddr,
    conn: &ConnInfo,
) -> Result<TcpStream, ConnectError> {
    let socket_error = |e: io::Error| ConnectError::socket(origin, e);
    let socket = if origin.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(socket_error)?;
    if let Some(source) = source {
        bind_address_no_port(&socket).map_err(socket_error)?;
        socket
            .bind(SocketAddr::new(source, 0))
            .map_err(|e| ConnectError::from_io(origin, e))?;
    }
    rule.mode.prepare(&socket, conn).map_err(socket_error)?;
    let timeout = rule.settings.connect_timeout;
    match tokio::time::timeout(timeout, socket.connect(origin)).await {
        Err(_) => Err(ConnectError::Timeout { origin, timeout }),
        Ok(Err(e)) => Err(ConnectError::from_io(origin, e)),
        Ok(Ok(stream)) => Ok(stream),
    }
}

/// `IP_BIND_ADDRESS_NO_PORT` (Linux 4.2+; also applies to IPv6 sockets): the port is
/// picked at connect(), by the 4-tuple, so source addresses do not run out of ports at bind().
fn bind_address_no_port(socket: &TcpSocket) -> io::Result<()> {
    setsockopt(socket, sockopt::IpBindAddressNoPort, &true).map_err(io::Error::from)
}
