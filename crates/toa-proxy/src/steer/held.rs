//! Ports of a steered range that another socket already listens on. sk_lookup runs
//! before the kernel's own listener lookup, so steering would take such a port from its
//! socket silently; a port bound one socket at a time fails with EADDRINUSE instead.
//! The proxy refuses the range the same way, from the namespace's listener tables.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::steer::SteeredPorts;
use toa_config::{ListenAddr, Protocol};

/// The first port of `ports` (after the first, which the proxy binds itself) that a
/// TCP listener on a conflicting address holds now. UDP ranges are not steered.
pub fn first_held(ports: &SteeredPorts) -> Option<u16> {
    if ports.protocol != Protocol::Tcp {
        return None;
    }
    ["/proc/self/net/tcp", "/proc/self/net/tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .flat_map(|text| listeners(&text))
        .filter(|(ip, port)| {
            *port > ports.first && *port <= ports.last && conflicts(ports.addr, *ip)
        })
        .map(|(_, port)| port)
        .min()
}

/// Whether a listener bound to `bound` takes connections the range on `addr` would.
fn conflicts(addr: ListenAddr, bound: IpAddr) -> bool {
    let bound = bound.to_canonical();
    let ip = match addr {
        ListenAddr::DualStack => return true,
        ListenAddr::Ip(ip) => ip,
    };
    ip.is_ipv4() == bound.is_ipv4()
        && (bound.is_unspecified() || ip.is_unspecified() || ip == bound)
}

/// The (address, port) of every listening socket in a /proc/net/tcp or tcp6 table.
fn listeners(table: &str) -> Vec<(IpAddr, u16)> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let local = fields.nth(1)?;
            // st 0A: TCP_LISTEN.
            (fields.nth(1)? == "0A").then_some(())?;
            let (ip, port) = local.split_once(':')?;
            Some((parse_ip(ip)?, u16::from_str_radix(port, 16).ok()?))
        })
        .collect()
}

/// The kernel prints an address as 32-bit words in hex, each the value of the word's
/// bytes (network order in memory) read in host byte order.
fn parse_ip(hex: &str) -> Option<IpAddr> {
    let word = |i: usize| {
        let w = u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16).ok()?;
        Some(w.to_ne_bytes())
    };
    match hex.len() {
        8 => Some(Ipv4Addr::from(word(0)?).into()),
        32 => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_exact_mut(4).enumerate() {
                chunk.copy_from_slice(&word(i)?);
            }
            Some(Ipv6Addr::from(bytes).into())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
