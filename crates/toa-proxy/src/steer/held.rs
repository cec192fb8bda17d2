//! Ports of a steered range that another socket already listens on. sk_lookup runs
//! before the kernel's own listener lookup, so steering would take such a port from its
//! socket silently; a port bound one socket at a time fails with EADDRINUSE instead.
//! The proxy refuses the range the same way, from the namespace's listener tables
//! (`crate::holders`).

use crate::holders::{conflicts, held};
use crate::steer::SteeredPorts;
use toa_config::Protocol;

/// The first port of `ports` (after the first, which the proxy binds itself) that a
/// TCP listener on a conflicting address holds now. UDP ranges are not steered.
pub fn first_held(ports: &SteeredPorts) -> Option<u16> {
    if ports.protocol != Protocol::Tcp {
        return None;
    }
    held(Protocol::Tcp)
        .into_iter()
        .filter(|h| h.port > ports.first && h.port <= ports.last && conflicts(ports.addr, h.ip))
        .map(|h| h.port)
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use toa_config::ListenAddr;

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
    }
}
