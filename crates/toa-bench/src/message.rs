//! The 64-byte request/reply exchanged by the load generator and the origin
//! responder. The reply carries what the origin saw (the client address it
//! believes in) and what it measured (time to first byte, getpeername cost),
//! so origin-side numbers travel back to the load generator with no side channel.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Size of the request and of the reply (scenario 1: "64-byte request, 64-byte response").
pub const MESSAGE_LEN: usize = 64;
const MAGIC: &[u8; 4] = b"TOAB";

/// What the origin reports about one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    /// The client address as the origin sees it: getpeername(), or the PROXY v2 source.
    pub peer: SocketAddr,
    /// From accept() returning to the first request byte being available (after the
    /// PROXY v2 header, if any, was read and parsed).
    pub ttfb_ns: u64,
    /// Mean duration of one getpeername() call on the accepted socket.
    pub getpeername_ns: u64,
    /// Time spent parsing the PROXY v2 header (0 without one).
    pub parse_ns: u64,
}

impl Reply {
    pub fn encode(&self) -> [u8; MESSAGE_LEN] {
        let mut b = [0u8; MESSAGE_LEN];
        b[..4].copy_from_slice(MAGIC);
        match self.peer.ip() {
            IpAddr::V4(ip) => {
                b[4] = 4;
                b[8..12].copy_from_slice(&ip.octets());
            }
            IpAddr::V6(ip) => {
                b[4] = 6;
                b[8..24].copy_from_slice(&ip.octets());
            }
        }
        b[6..8].copy_from_slice(&self.peer.port().to_be_bytes());
        b[24..32].copy_from_slice(&self.ttfb_ns.to_le_bytes());
        b[32..40].copy_from_slice(&self.getpeername_ns.to_le_bytes());
        b[40..48].copy_from_slice(&self.parse_ns.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8; MESSAGE_LEN]) -> Option<Reply> {
        if &b[..4] != MAGIC {
            return None;
        }
        let ip = match b[4] {
            4 => IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(&b[8..12]).ok()?)),
            6 => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(&b[8..24]).ok()?)),
            _ => return None,
        };
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        Some(Reply {
            peer: SocketAddr::new(ip, u16::from_be_bytes([b[6], b[7]])),
            ttfb_ns: u64_at(24),
            getpeername_ns: u64_at(32),
            parse_ns: u64_at(40),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_survives_encode_decode_for_both_families() {
        for peer in ["198.18.1.2:40000", "[fd00:1::2]:1"] {
            let r = Reply {
                peer: peer.parse().unwrap(),
                ttfb_ns: 12_345,
                getpeername_ns: 678,
                parse_ns: 9,
            };
            assert_eq!(Reply::decode(&r.encode()), Some(r));
        }
    }

    #[test]
    fn request_bytes_are_not_a_reply() {
        assert_eq!(Reply::decode(&[b'x'; MESSAGE_LEN]), None);
    }
}
