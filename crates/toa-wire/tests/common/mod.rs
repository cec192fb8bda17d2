//! Strategies shared by the property tests of every codec.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use proptest::prelude::*;

/// Any IPv4 or IPv6 socket address, with v4-mapped IPv6 ones drawn on purpose (they
/// are the interesting case for every codec) and no flow info or scope id.
pub fn socket_addr() -> impl Strategy<Value = SocketAddr> {
    let ip = prop_oneof![
        any::<[u8; 4]>().prop_map(|o| IpAddr::V4(Ipv4Addr::from(o))),
        any::<[u8; 16]>().prop_map(|o| IpAddr::V6(Ipv6Addr::from(o))),
        any::<[u8; 4]>().prop_map(|o| IpAddr::V6(Ipv4Addr::from(o).to_ipv6_mapped())),
    ];
    (ip, any::<u16>()).prop_map(|(ip, port)| SocketAddr::new(ip, port))
}

pub fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test address literal")
}
