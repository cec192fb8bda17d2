//! Which client addresses a trusted TOA may carry: the one rule shared by the
//! kernel receiver (before it applies a TOA, through `toa-common`) and user
//! space (the reference decoder the tests compare the kernel against).
//!
//! A proxy only ever writes the address of a host that connected to it, so a
//! TOA naming an address no TCP client can have is forged or corrupt, and an
//! origin must not log it, rate-limit by it or allow-list it (toa.ko applies
//! them all; e.g. 127.0.0.1 would pass "localhost only" checks). Implausible:
//! - port 0;
//! - IPv4 (8-byte form, or v4-mapped in the 20-byte form): 0.0.0.0/8 ("this
//!   network"), 127.0.0.0/8 (loopback), 224.0.0.0/4 (multicast) and
//!   240.0.0.0/4 (reserved, with 255.255.255.255 broadcast);
//! - IPv6: ::/96 (unspecified `::`, loopback `::1` and the deprecated
//!   IPv4-compatible form no stack sends from) and ff00::/8 (multicast).
//!
//! Private, link-local and documentation ranges stay plausible: proxies do
//! serve clients on private networks.

use core::net::SocketAddr;

use crate::mapped::{is_v4_mapped, mapped_v6};

/// Whether `client` could be a real TCP client (the receiver ignores the TOA
/// otherwise).
pub fn plausible(client: SocketAddr) -> bool {
    plausible_mapped(&mapped_v6(client.ip()).octets(), client.port().to_be())
}

/// [`plausible`] for a client stored as the kernel stores it: 16 bytes with
/// IPv4 v4-mapped, port in network byte order. Plain byte comparisons, so the
/// verifier takes it as it is.
#[inline(always)]
pub fn plausible_mapped(addr: &[u8; 16], port_be: u16) -> bool {
    let [a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, ..] = *addr;
    if port_be == 0 {
        return false;
    }
    if is_v4_mapped(addr) {
        // IPv4: the first octet decides every excluded range.
        return a12 != 0 && a12 != 127 && a12 < 224;
    }
    if a0 | a1 | a2 | a3 | a4 | a5 | a6 | a7 | a8 | a9 | a10 | a11 == 0 {
        return false; // ::/96
    }
    a0 != 0xff
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_no_tcp_client_can_have_are_implausible() {
        for s in [
            "0.0.0.0:80",
            "0.1.2.3:80",
            "127.0.0.1:80",
            "127.255.0.9:80",
            "224.0.0.1:80",
            "239.255.255.250:80",
            "240.0.0.1:80",
            "255.255.255.255:80",
            "198.18.1.2:0",
            "[::]:80",
            "[::1]:80",
            "[::198.18.1.2]:80",
            "[ff02::1]:80",
            "[ff05::2]:80",
            "[::ffff:127.0.0.1]:80",
            "[fd00:1::2]:0",
        ] {
            assert!(!plausible(s.parse().unwrap()), "{s}");
        }
    }

    #[test]
    fn ordinary_public_and_private_clients_are_plausible() {
        for s in [
            "198.18.1.2:40000",
            "1.0.0.1:1",
            "10.0.0.1:80",
            "192.168.1.1:80",
            "169.254.1.1:80",
            "223.255.255.255:65535",
            "[fd00:1::2]:443",
            "[2001:db8::1]:80",
            "[fe80::1]:80",
            "[64:ff9b::198.18.1.2]:80",
            "[::ffff:198.18.1.2]:80",
        ] {
            assert!(plausible(s.parse().unwrap()), "{s}");
        }
    }
}
