//! SPP: the 38-byte header Tencent's proxies put in front of every proxied UDP datagram.
//!
//! Layout, all big-endian:
//! ```text
//! offset  0  magic 0x56EC           (2)
//! offset  2  client address         (16, IPv4 as ::ffff:a.b.c.d)
//! offset 18  proxy address          (16, IPv4 as ::ffff:a.b.c.d)
//! offset 34  client port            (2)
//! offset 36  proxy port             (2)
//! offset 38  the client's original datagram payload
//! ```

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// Length of the header in front of the payload.
pub const HEADER_LEN: usize = 38;
/// The first two bytes of every SPP datagram.
pub const MAGIC: u16 = 0x56EC;

/// Why a datagram does not start with an SPP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("datagram is {len} bytes, shorter than the {HEADER_LEN}-byte SPP header")]
    TooShort { len: usize },
    #[error("datagram starts with {found:#06x}, not the SPP magic {MAGIC:#06x}")]
    BadMagic { found: u16 },
}

/// The addresses an SPP header carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    /// The client that sent the datagram to the proxy.
    pub client: SocketAddr,
    /// The proxy address the client sent it to.
    pub proxy: SocketAddr,
}

impl Header {
    /// The 38 header bytes; the payload follows them in the same datagram.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut header = [0; HEADER_LEN];
        let magic = MAGIC.to_be_bytes();
        let client_ip = crate::mapped::mapped_v6(self.client.ip()).octets();
        let proxy_ip = crate::mapped::mapped_v6(self.proxy.ip()).octets();
        let client_port = self.client.port().to_be_bytes();
        let proxy_port = self.proxy.port().to_be_bytes();
        let fields = [&magic[..], &client_ip, &proxy_ip, &client_port, &proxy_port];
        for (slot, byte) in header.iter_mut().zip(fields.into_iter().flatten()) {
            *slot = *byte;
        }
        header
    }
}

/// True if `datagram` starts with the SPP magic (it may still be too short to parse).
pub fn starts_with_magic(datagram: &[u8]) -> bool {
    datagram.starts_with(&MAGIC.to_be_bytes())
}

/// Splits a datagram into its SPP header and the client's payload. IPv4-mapped
/// addresses come back as IPv4.
pub fn parse(datagram: &[u8]) -> Result<(Header, &[u8]), Error> {
    let Some((header, payload)) = datagram.split_first_chunk::<HEADER_LEN>() else {
        return Err(Error::TooShort {
            len: datagram.len(),
        });
    };
    let (magic, rest) = split::<2>(header);
    let (client_ip, rest) = split::<16>(rest);
    let (proxy_ip, rest) = split::<16>(rest);
    let (client_port, rest) = split::<2>(rest);
    let (proxy_port, _) = split::<2>(rest);
    let magic = u16::from_be_bytes(magic);
    if magic != MAGIC {
        return Err(Error::BadMagic { found: magic });
    }
    let address = |ip: [u8; 16], port: [u8; 2]| {
        SocketAddr::new(
            IpAddr::V6(Ipv6Addr::from(ip)).to_canonical(),
            u16::from_be_bytes(port),
        )
    };
    let header = Header {
        client: address(client_ip, client_port),
        proxy: address(proxy_ip, proxy_port),
    };
    Ok((header, payload))
}

/// Splits a fixed-size field off the front of the (already length-checked) header;
/// a short slice yields zeros, which cannot happen for a 38-byte header.
fn split<const N: usize>(bytes: &[u8]) -> ([u8; N], &[u8]) {
    match bytes.split_first_chunk::<N>() {
        Some((field, rest)) => (*field, rest),
        None => ([0; N], &[]),
    }
}
