//! The origin's side of PROXY protocol v2 (HAProxy's proxy-protocol.txt, section
//! 2.2): how long the header is, and the source address it carries. This is the
//! work a PROXY-v2-aware origin must do before it can read the first request
//! byte, which scenario 6 sets against TOA, where the kernel already did it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Signature, version/command, family/protocol, and the 2-byte length.
pub const FIXED_LEN: usize = 16;

/// Total header length once the fixed part has arrived, or None if `buf` does
/// not start with a PROXY v2 signature.
pub fn header_len(buf: &[u8]) -> Option<usize> {
    if buf.len() < FIXED_LEN || buf[..12] != SIGNATURE || buf[12] >> 4 != 2 {
        return None;
    }
    Some(FIXED_LEN + u16::from_be_bytes([buf[14], buf[15]]) as usize)
}

/// The client (source) address of a complete header; None for LOCAL
/// connections, unknown families, or a header too short for its family.
pub fn source(header: &[u8]) -> Option<SocketAddr> {
    let command = header.get(12)? & 0x0f;
    if command != 1 {
        return None;
    }
    let body = header.get(FIXED_LEN..)?;
    match header[13] >> 4 {
        1 if body.len() >= 12 => {
            let ip = Ipv4Addr::new(body[0], body[1], body[2], body[3]);
            Some(SocketAddr::new(
                IpAddr::V4(ip),
                u16::from_be_bytes([body[8], body[9]]),
            ))
        }
        2 if body.len() >= 36 => {
            let ip = Ipv6Addr::from(<[u8; 16]>::try_from(&body[..16]).ok()?);
            Some(SocketAddr::new(
                IpAddr::V6(ip),
                u16::from_be_bytes([body[32], body[33]]),
            ))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_header_yields_length_and_source() {
        let mut h = SIGNATURE.to_vec();
        h.extend_from_slice(&[0x21, 0x11, 0, 12, 198, 18, 1, 2, 198, 18, 2, 2]);
        h.extend_from_slice(&40000u16.to_be_bytes());
        h.extend_from_slice(&10000u16.to_be_bytes());
        assert_eq!(header_len(&h), Some(28));
        assert_eq!(source(&h), Some("198.18.1.2:40000".parse().unwrap()));
    }

    #[test]
    fn plain_request_is_not_a_header() {
        assert_eq!(header_len(&[b'x'; 64]), None);
    }
}
