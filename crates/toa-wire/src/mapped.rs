//! IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`): the one place toa turns them
//! into IPv4 and back, for user space (`core::net` values) and for the kernel
//! programs (16-byte arrays read at constant offsets, which the verifier takes).
//!
//! Everything that crosses the kernel/user boundary stores a client as 16
//! bytes with IPv4 v4-mapped; everything a user sees has IPv4 as IPv4.

use core::net::{IpAddr, Ipv6Addr, SocketAddr};

/// The first 12 bytes of every IPv4-mapped IPv6 address.
pub const V4_MAPPED_PREFIX: [u8; 12] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];

/// The IPv4 address `a.b.c.d` as the 16 bytes of `::ffff:a.b.c.d`.
#[inline(always)]
pub fn v4_mapped(v4: [u8; 4]) -> [u8; 16] {
    let [a, b, c, d] = v4;
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a, b, c, d]
}

/// Whether the 16 bytes are an IPv4-mapped address, i.e. an IPv4 client.
/// Byte by byte, not a slice comparison: in a BPF program that would become a
/// `memcmp` call, which there is nothing to link against.
#[inline(always)]
pub fn is_v4_mapped(addr: &[u8; 16]) -> bool {
    let [a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, ..] = *addr;
    a0 | a1 | a2 | a3 | a4 | a5 | a6 | a7 | a8 | a9 == 0 && a10 & a11 == 0xff
}

/// The address with an IPv4-mapped IPv6 address turned into IPv4, flow info and
/// scope id dropped: the form every decoder in this crate returns (the formats
/// carry neither), and the one libtoa hands to its users.
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// The address with an IPv4-mapped IPv6 address turned into IPv4, any other
/// address unchanged: how the proxy sees a peer that reached a dual-stack
/// socket. Unlike [`canonical`] it keeps an IPv6 scope id (and flow info),
/// which a link-local peer needs to be answered.
pub fn normalize(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => addr,
        },
        SocketAddr::V4(_) => addr,
    }
}

/// The address as IPv6, an IPv4 address v4-mapped: how formats with a single
/// 16-byte or IPv6 field carry IPv4, and how the kernel maps store clients.
pub fn mapped_v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_and_std_forms_agree() {
        let v4 = core::net::Ipv4Addr::new(198, 18, 1, 2);
        let mapped = v4_mapped(v4.octets());
        assert_eq!(mapped, mapped_v6(IpAddr::V4(v4)).octets());
        assert!(is_v4_mapped(&mapped));
        assert!(!is_v4_mapped(
            &"fd00:1::2".parse::<Ipv6Addr>().unwrap().octets()
        ));
        assert_eq!(
            canonical("[::ffff:198.18.1.2]:80".parse().unwrap()),
            "198.18.1.2:80".parse().unwrap()
        );
    }

    #[test]
    fn normalize_turns_v4_mapped_into_ipv4_and_keeps_a_scope_id() {
        let mapped: SocketAddr = "[::ffff:198.18.1.2]:4000".parse().unwrap();
        assert_eq!(normalize(mapped), "198.18.1.2:4000".parse().unwrap());
        let link_local: SocketAddr = "[fe80::1%2]:4000".parse().unwrap();
        assert_eq!(normalize(link_local), link_local);
        let v4: SocketAddr = "198.18.1.2:4000".parse().unwrap();
        assert_eq!(normalize(v4), v4);
    }
}
