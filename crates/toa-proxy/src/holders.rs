//! Who holds a port in the proxy's network namespace, from the kernel's socket tables
//! (`/proc/self/net/{tcp,tcp6,udp,udp6}`), and whether it is this process: a second
//! proxy's TCP listeners would join the first's `SO_REUSEPORT` groups without a word
//! (same user, same options), and sk_lookup would take a steered port from its socket.
//! Both are refused with what this finds (`open`, `steer::held`).

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use toa_config::{ListenAddr, Protocol};

/// A socket holding a port: a TCP listener, or an unconnected bound UDP socket.
#[derive(Debug, Clone, Copy)]
pub struct Held {
    pub ip: IpAddr,
    pub port: u16,
    pub inode: u64,
}

/// The sockets holding ports for `protocol` now. TCP tables list the listening sockets
/// before any other (the kernel walks its listener hash first), so reading stops at the
/// first that is not: a busy proxy's connections are never read.
pub fn held(protocol: Protocol) -> Vec<Held> {
    let tables = match protocol {
        Protocol::Tcp => ["/proc/self/net/tcp", "/proc/self/net/tcp6"],
        Protocol::Udp => ["/proc/self/net/udp", "/proc/self/net/udp6"],
    };
    let mut out = Vec::new();
    for table in tables {
        let Ok(file) = std::fs::File::open(table) else {
            continue;
        };
        for line in BufReader::new(file).lines().skip(1) {
            let Ok(line) = line else { break };
            match parse(&line, protocol) {
                Some(Some(h)) => out.push(h),
                Some(None) if protocol == Protocol::Tcp => break,
                _ => {}
            }
        }
    }
    out
}

/// One table line: `None` if it does not parse, `Some(None)` if the socket holds no port
/// (a TCP socket not listening, a connected UDP socket).
fn parse(line: &str, protocol: Protocol) -> Option<Option<Held>> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let (local, remote, state) = (fields.get(1)?, fields.get(2)?, fields.get(3)?);
    let inode = fields.get(9)?.parse().ok()?;
    let holds = match protocol {
        // TCP_LISTEN
        Protocol::Tcp => *state == "0A",
        // TCP_CLOSE with no peer: bound, not connected.
        Protocol::Udp => *state == "07" && remote.ends_with(":0000"),
    };
    if !holds {
        return Some(None);
    }
    let (ip, port) = local.split_once(':')?;
    Some(Some(Held {
        ip: parse_ip(ip)?,
        port: u16::from_str_radix(port, 16).ok()?,
        inode,
    }))
}

/// Whether a socket bound to `bound` takes connections a listener on `addr` would.
pub fn conflicts(addr: ListenAddr, bound: IpAddr) -> bool {
    let bound = bound.to_canonical();
    let ip = match addr {
        ListenAddr::DualStack => return true,
        ListenAddr::Ip(ip) => ip,
    };
    ip.is_ipv4() == bound.is_ipv4()
        && (bound.is_unspecified() || ip.is_unspecified() || ip == bound)
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

/// The inodes of this process's sockets (`/proc/self/fd` links `socket:[N]`).
pub fn own_sockets() -> HashSet<u64> {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return HashSet::new();
    };
    dir.filter_map(|e| {
        let link = std::fs::read_link(e.ok()?.path()).ok()?;
        let link = link.to_str()?;
        link.strip_prefix("socket:[")?
            .strip_suffix(']')?
            .parse()
            .ok()
    })
    .collect()
}

/// Refuses listeners on ports another process holds; the tables and this process's own
/// sockets are read once, when first needed, for all the keys of one (re)load.
#[derive(Default)]
pub struct Others {
    tcp: Option<Vec<Held>>,
    udp: Option<Vec<Held>>,
    own: Option<HashSet<u64>>,
}

impl Others {
    /// Whether a socket of another process holds `port` on an address that conflicts
    /// with `addr`. This process's own sockets (a reload's listeners) do not count.
    pub fn hold(&mut self, protocol: Protocol, addr: ListenAddr, port: u16) -> bool {
        let table = match protocol {
            Protocol::Tcp => &mut self.tcp,
            Protocol::Udp => &mut self.udp,
        };
        let table = table.get_or_insert_with(|| held(protocol));
        let mut holders = table
            .iter()
            .filter(|h| h.port == port && conflicts(addr, h.ip))
            .peekable();
        if holders.peek().is_none() {
            return false;
        }
        let own = self.own.get_or_insert_with(own_sockets);
        holders.any(|h| !own.contains(&h.inode))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(addr: &str) -> ListenAddr {
        ListenAddr::Ip(addr.parse().unwrap())
    }

    #[test]
    fn own_sockets_do_not_count_and_others_are_found() {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let udp = std::net::UdpSocket::bind("[::1]:0").unwrap();
        let tcp_port = tcp.local_addr().unwrap().port();
        let udp_port = udp.local_addr().unwrap().port();
        let mut others = Others::default();
        assert!(!others.hold(Protocol::Tcp, ip("127.0.0.1"), tcp_port));
        assert!(!others.hold(Protocol::Udp, ip("::1"), udp_port));
        // Seen as another process's: what a second proxy would see.
        others.own = Some(HashSet::new());
        assert!(others.hold(Protocol::Tcp, ip("127.0.0.1"), tcp_port));
        assert!(others.hold(Protocol::Udp, ip("::1"), udp_port));
        assert!(others.hold(Protocol::Tcp, ListenAddr::DualStack, tcp_port));
        assert!(
            !others.hold(Protocol::Tcp, ip("127.0.0.2"), tcp_port),
            "another address"
        );
        assert!(
            !others.hold(Protocol::Tcp, ip("::1"), tcp_port),
            "another family"
        );
    }
}
