//! PROXY protocol version 2: the binary header a proxy sends before any data.
//!
//! ```text
//! signature(12) ver_cmd(1) fam_transport(1) len(2, big-endian) | addresses | TLVs
//! ```
//! `len` counts everything after the first 16 bytes. The address block is 12 bytes for
//! `AF_INET`, 36 for `AF_INET6`, 216 for `AF_UNIX` and empty for `AF_UNSPEC`; TLVs fill
//! the rest (see [`Tlv`]), so with `AF_UNSPEC` they start right after the fixed 16 bytes.
//!
//! Parsing is incremental and strict: it fails as soon as the bytes so far cannot start
//! a valid header, rejects a length too short for the address family, TLVs that overrun
//! the header, and a CRC32C TLV whose checksum does not match. Two exceptions, both from
//! proxy-protocol.txt: a `LOCAL` header's family byte is ignored when it is not one of
//! the seven defined combinations (the block is skipped whole), and TLV types this crate
//! does not know are kept as [`Tlv::Other`] rather than rejected.

mod crc32c;
mod family;
mod tlv;

use std::net::SocketAddr;

use family::Family;

pub use tlv::{
    CUSTOM_KINDS, SSL_CLIENT_CERT_CONN, SSL_CLIENT_CERT_SESS, SSL_CLIENT_SSL, SslTlv, Tlv,
    UNIQUE_ID_MAX_LEN,
};

use crate::Parsed;

/// The 12 bytes every v2 header starts with.
pub const SIGNATURE: [u8; 12] = [
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
];
/// Signature, version/command, family/transport and length.
pub const FIXED_LEN: usize = 16;
/// The longest possible header: the length field is 16 bits.
pub const MAX_LEN: usize = FIXED_LEN + u16::MAX as usize;
/// Size of each `AF_UNIX` address (a `sockaddr_un.sun_path`).
pub const UNIX_ADDR_LEN: usize = 108;
const VERSION: u8 = 2;

/// Why bytes are not a valid PROXY v2 header, or a header cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("not a PROXY v2 header: the 12-byte signature does not match")]
    NotProxyV2,
    #[error("PROXY v2 header has version {version}; only version 2 exists")]
    UnsupportedVersion { version: u8 },
    #[error("PROXY v2 header has command {command:#x}; only LOCAL (0) and PROXY (1) exist")]
    UnknownCommand { command: u8 },
    #[error(
        "PROXY v2 family/transport byte {byte:#04x} is not one of 0x00, 0x11, 0x12, 0x21, 0x22, 0x31, 0x32"
    )]
    UnknownFamilyTransport { byte: u8 },
    #[error("PROXY v2 length {len} is shorter than the {needed}-byte {family} address block")]
    LengthTooShort {
        len: u16,
        family: &'static str,
        needed: usize,
    },
    #[error(
        "PROXY v2 TLV at offset {offset} needs {needed} bytes but only {available} remain in the header"
    )]
    TlvTruncated {
        offset: usize,
        needed: usize,
        available: usize,
    },
    #[error("PROXY v2 CRC32C TLV has a {len}-byte value; it must be 4")]
    Crc32cLength { len: usize },
    #[error("PROXY v2 header has more than one CRC32C TLV")]
    DuplicateCrc32c,
    #[error(
        "PROXY v2 CRC32C mismatch: header says {received:#010x}, bytes hash to {computed:#010x}"
    )]
    ChecksumMismatch { received: u32, computed: u32 },
    #[error("PROXY v2 UNIQUE_ID TLV is {len} bytes; at most {UNIQUE_ID_MAX_LEN} are allowed")]
    UniqueIdTooLong { len: usize },
    #[error("PROXY v2 SSL TLV is {len} bytes, shorter than its 5-byte client and verify fields")]
    SslTooShort { len: usize },
    #[error("PROXY v2 TLV type {kind:#04x} holds text that is not valid UTF-8")]
    InvalidUtf8 { kind: u8 },
    #[error("PROXY v2 TLV type {kind:#04x} value is {len} bytes; at most 65535 fit")]
    TlvTooLong { kind: u8, len: usize },
    #[error("custom PROXY v2 TLV type {kind:#04x} is outside 0xE0..=0xEF")]
    CustomKindOutOfRange { kind: u8 },
    #[error("TLV type {kind:#04x} has its own variant; it cannot be encoded as Other")]
    ReservedKind { kind: u8 },
    #[error("PROXY v2 cannot pair {addresses} addresses with transport {transport:?}")]
    AddressesTransportMismatch {
        addresses: &'static str,
        transport: Transport,
    },
    #[error("PROXY v2 addresses and TLVs take {len} bytes; the length field holds at most 65535")]
    HeaderTooLong { len: usize },
}

/// Whether the header describes a relayed connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// The proxy opened the connection itself (e.g. a health check): use the real
    /// connection endpoints.
    Local,
    /// The connection is relayed: the addresses are the original client's.
    Proxy,
}

/// The socket type of the proxied connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Unspec,
    /// TCP or a UNIX stream socket.
    Stream,
    /// UDP or a UNIX datagram socket.
    Dgram,
}

/// The proxied connection's endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Addresses {
    /// No addresses (`AF_UNSPEC`), as in LOCAL headers.
    Unspec,
    /// IPv4 or IPv6 endpoints. Encoded as `AF_INET` when both are IPv4 (IPv4-mapped
    /// counts), otherwise as `AF_INET6` with any IPv4 address v4-mapped.
    Inet { src: SocketAddr, dst: SocketAddr },
    /// `AF_UNIX` paths, NUL-padded as in `sockaddr_un`.
    Unix {
        src: [u8; UNIX_ADDR_LEN],
        dst: [u8; UNIX_ADDR_LEN],
    },
}

/// A PROXY v2 header.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Header {
    pub command: Command,
    pub transport: Transport,
    pub addresses: Addresses,
    /// In wire order. Put [`Tlv::Crc32c`] here to have the header checksummed.
    pub tlvs: Vec<Tlv>,
}

impl Header {
    /// A PROXY-command header for a relayed `transport` connection from `src` to `dst`.
    pub fn proxy(transport: Transport, src: SocketAddr, dst: SocketAddr) -> Header {
        Header {
            command: Command::Proxy,
            transport,
            addresses: Addresses::Inet { src, dst },
            tlvs: Vec::new(),
        }
    }

    /// A LOCAL header without addresses, as a proxy sends on its own health checks.
    pub fn local() -> Header {
        Header {
            command: Command::Local,
            transport: Transport::Unspec,
            addresses: Addresses::Unspec,
            tlvs: Vec::new(),
        }
    }

    /// The header bytes, with the CRC32C filled in if [`Tlv::Crc32c`] is among the TLVs.
    pub fn encode(&self) -> Result<Vec<u8>, Error> {
        let mut out = Vec::with_capacity(FIXED_LEN + Family::Inet6.address_len());
        out.extend_from_slice(&SIGNATURE);
        out.push(
            VERSION << 4
                | match self.command {
                    Command::Local => 0x0,
                    Command::Proxy => 0x1,
                },
        );
        family::encode(&self.addresses, self.transport, &mut out)?;
        let mut crc_field = None;
        for tlv in &self.tlvs {
            if let Some(field) = tlv.encode_into(&mut out)?
                && crc_field.replace(field).is_some()
            {
                return Err(Error::DuplicateCrc32c);
            }
        }
        let body_len = out.len().saturating_sub(FIXED_LEN);
        let len = u16::try_from(body_len).map_err(|_| Error::HeaderTooLong { len: body_len })?;
        write_at(&mut out, 14, len.to_be_bytes());
        if let Some(field) = crc_field
            && let Some(crc) = crc32c::with_field_zeroed(&out, field)
        {
            write_at(&mut out, field, crc.to_be_bytes());
        }
        Ok(out)
    }
}

/// Parses a PROXY v2 header at the start of `buf`, which holds the bytes received so far.
pub fn parse(buf: &[u8]) -> Result<Parsed<Header>, Error> {
    let seen = buf.len().min(SIGNATURE.len());
    if buf.get(..seen) != SIGNATURE.get(..seen) {
        return Err(Error::NotProxyV2);
    }
    let Some(&version_command) = buf.get(12) else {
        return Ok(Parsed::Incomplete);
    };
    let version = version_command >> 4;
    if version != VERSION {
        return Err(Error::UnsupportedVersion { version });
    }
    let command = match version_command & 0x0F {
        0x0 => Command::Local,
        0x1 => Command::Proxy,
        command => return Err(Error::UnknownCommand { command }),
    };
    let Some(&family_byte) = buf.get(13) else {
        return Ok(Parsed::Incomplete);
    };
    let layout = match (Family::from_byte(family_byte), command) {
        (Some(layout), _) => Some(layout),
        (None, Command::Local) => None,
        (None, Command::Proxy) => {
            return Err(Error::UnknownFamilyTransport { byte: family_byte });
        }
    };
    let Some(&[len_hi, len_lo]) = buf.get(14..FIXED_LEN) else {
        return Ok(Parsed::Incomplete);
    };
    let len = u16::from_be_bytes([len_hi, len_lo]);
    if let Some((family, _)) = layout
        && usize::from(len) < family.address_len()
    {
        return Err(Error::LengthTooShort {
            len,
            family: family.name(),
            needed: family.address_len(),
        });
    }
    let consumed = FIXED_LEN + usize::from(len);
    let Some(header) = buf.get(..consumed) else {
        return Ok(Parsed::Incomplete);
    };
    let Some((family, transport)) = layout else {
        // LOCAL with an undefined family: proxy-protocol.txt says to ignore the block.
        return Ok(Parsed::Complete {
            header: Header::local(),
            consumed,
        });
    };
    let tlv_start = FIXED_LEN + family.address_len();
    let address_block = header.get(FIXED_LEN..tlv_start).unwrap_or_default();
    let tlv_block = header.get(tlv_start..).unwrap_or_default();
    let mut tlvs = Vec::new();
    let mut crc_received = None;
    for raw in tlv::split(tlv_block, tlv_start) {
        let raw = raw?;
        let tlv = Tlv::from_raw(&raw)?;
        if tlv == Tlv::Crc32c {
            let value = raw.value.first_chunk::<4>().copied().unwrap_or_default();
            let field = raw.offset + 3;
            if crc_received
                .replace((field, u32::from_be_bytes(value)))
                .is_some()
            {
                return Err(Error::DuplicateCrc32c);
            }
        }
        tlvs.push(tlv);
    }
    if let Some((field, received)) = crc_received {
        let computed = crc32c::with_field_zeroed(header, field).unwrap_or(!received);
        if computed != received {
            return Err(Error::ChecksumMismatch { received, computed });
        }
    }
    let header = Header {
        command,
        transport,
        addresses: family.decode(address_block),
        tlvs,
    };
    Ok(Parsed::Complete { header, consumed })
}

/// Overwrites `out[at..at + N]`; `at` always lies inside bytes already written.
fn write_at<const N: usize>(out: &mut [u8], at: usize, bytes: [u8; N]) {
    if let Some(slot) = out
        .get_mut(at..)
        .and_then(|tail| tail.first_chunk_mut::<N>())
    {
        *slot = bytes;
    }
}
