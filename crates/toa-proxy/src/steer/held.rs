//! Ports of a steered range that another socket already listens on. sk_lookup runs
//! before the kernel's own listener lookup (for UDP: before any unconnected socket's), so
//! steering would take such a port from its socket silently; a port bound one socket at a
//! time fails with EADDRINUSE instead. The proxy refuses the range the same way, from the
//! namespace's socket tables, leaving out its own sockets (a reload's old range, a UDP
//! flow's reply socket).

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::steer::SteeredPorts;
use toa_config::{ListenAddr, Protocol};

/// The first port of `ports` (after the first, which the proxy binds itself) that another
/// process's TCP listener, or unconnected UDP socket, on a conflicting address holds now.
pub fn first_held(ports: &SteeredPorts) -> Option<u16> {
    first_held_except(ports, &own_sockets())
}

/// [`first_held`], leaving out the sockets whose inodes are in `own`.
fn first_held_except(ports: &SteeredPorts, own: &HashSet<u64>) -> Option<u16> {
    let (tables, state) = match ports.protocol {
        Protocol::Tcp => (["/proc/self/net/tcp", "/proc/self/net/tcp6"], TCP_LISTEN),
        Protocol::Udp => (
            ["/proc/self/net/udp", "/proc/self/net/udp6"],
            UDP_UNCONNECTED,
        ),
    };
    tables
        .iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .flat_map(|text| bound(&text, state))
        .filter(|s| {
            s.port > ports.first
                && s.port <= ports.last
                && conflicts(ports.addr, s.ip)
                && !own.contains(&s.inode)
        })
        .map(|s| s.port)
        .min()
}

/// `st` of a listening TCP socket in /proc/net/tcp.
const TCP_LISTEN: &str = "0A";
/// `st` of a UDP socket with no peer (TCP_CLOSE): the kind sk_lookup takes ports from.
/// A connected one (01) still gets its peer's datagrams first.
const UDP_UNCONNECTED: &str = "07";

/// A socket's local address and port, and its inode.
struct Bound {
    ip: IpAddr,
    port: u16,
    inode: u64,
}

/// The inodes of this process's sockets.
fn own_sockets() -> HashSet<u64> {
    let Ok(fds) = std::fs::read_dir("/proc/self/fd") else {
        return HashSet::new();
    };
    fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_str()?;
            target
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect()
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

/// Every socket in state `state` of a /proc/net/{tcp,tcp6,udp,udp6} table.
fn bound(table: &str, state: &str) -> Vec<Bound> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st queues tr:when retrnsmt uid timeout inode
            (*fields.get(3)? == state).then_some(())?;
            let (ip, port) = fields.get(1)?.split_once(':')?;
            Some(Bound {
                ip: parse_ip(ip)?,
                port: u16::from_str_radix(port, 16).ok()?,
                inode: fields.get(9)?.parse().ok()?,
            })
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
