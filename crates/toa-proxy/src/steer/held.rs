//! Ports of a steered range that another socket already listens on. sk_lookup runs
//! before the kernel's own listener lookup (for UDP: before any unconnected socket's), so
//! steering would take such a port from its socket silently; a port bound one socket at a
//! time fails with EADDRINUSE instead. The proxy refuses the range the same way, from the
//! namespace's socket tables (`crate::holders`), leaving out its own sockets (a reload's
//! old range, a UDP flow's reply socket).

use std::collections::HashSet;

use crate::holders::{conflicts, held, own_sockets};
use crate::steer::SteeredPorts;

/// The first port of `ports` (after the first, which the proxy binds itself) that another
/// process's TCP listener, or unconnected UDP socket, on a conflicting address holds now.
pub fn first_held(ports: &SteeredPorts) -> Option<u16> {
    first_held_except(ports, &own_sockets())
}

/// [`first_held`], leaving out the sockets whose inodes are in `own`.
fn first_held_except(ports: &SteeredPorts, own: &HashSet<u64>) -> Option<u16> {
    held(ports.protocol)
        .into_iter()
        .filter(|h| {
            h.port > ports.first
                && h.port <= ports.last
                && conflicts(ports.addr, h.ip)
                && !own.contains(&h.inode)
        })
        .map(|h| h.port)
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use toa_config::{ListenAddr, Protocol};

    /// As another process's sockets: this process's own are left out.
    fn first_held(ports: &SteeredPorts) -> Option<u16> {
        first_held_except(ports, &HashSet::new())
    }

    #[test]
    fn a_listener_inside_a_range_on_its_address_is_found() {
        let v4 = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = v4.local_addr().unwrap().port();
        let range = |addr: &str| SteeredPorts {
            protocol: Protocol::Tcp,
            addr: ListenAddr::Ip(addr.parse().unwrap()),
            first: port - 1,
            last: port,
        };
        assert_eq!(first_held(&range("127.0.0.1")), Some(port));
        assert_eq!(first_held(&range("127.0.0.2")), None, "another address");
        assert_eq!(first_held(&range("::1")), None, "another family");
        let dual = SteeredPorts {
            addr: ListenAddr::DualStack,
            ..range("127.0.0.1")
        };
        assert_eq!(first_held(&dual), Some(port));
        let v6 = std::net::TcpListener::bind("[::1]:0").unwrap();
        let port = v6.local_addr().unwrap().port();
        let range6 = SteeredPorts {
            first: port - 1,
            last: port,
            ..range("::1")
        };
        assert_eq!(first_held(&range6), Some(port));
        assert_eq!(super::first_held(&range6), None, "the proxy's own listener");
    }

    #[test]
    fn an_unconnected_udp_socket_inside_a_range_is_found_a_connected_one_not() {
        let unconnected = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = unconnected.local_addr().unwrap().port();
        let connected = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        connected
            .connect(unconnected.local_addr().unwrap())
            .unwrap();
        let other = connected.local_addr().unwrap().port();
        let range = |first: u16, last: u16| SteeredPorts {
            protocol: Protocol::Udp,
            addr: ListenAddr::Ip("127.0.0.1".parse().unwrap()),
            first,
            last,
        };
        assert_eq!(first_held(&range(port - 1, port)), Some(port));
        assert_eq!(first_held(&range(other - 1, other)), None, "connected");
        assert_eq!(
            first_held(&SteeredPorts {
                protocol: Protocol::Tcp,
                ..range(port - 1, port)
            }),
            None,
            "another protocol"
        );
    }
}
