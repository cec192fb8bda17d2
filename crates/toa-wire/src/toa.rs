//! The TOA TCP option: a client's address written into the TCP header by the proxy.
//!
//! Wire format (DPVS/LVS/Tencent compatible), port and address in network order:
//! ```text
//! IPv4:  kind  len=8   port(2)  address(4)
//! IPv6:  kind  len=20  port(2)  address(16)
//! ```
//! The kind is a parameter: [`DEFAULT_KIND`] (254) by default, 200 for Tencent CLB IPv4.
//!
//! # Decisions the kernel receiver (`toa-ebpf`) must share
//! - **Lengths other than 8 and 20 are not a TOA.** Kind 254 is the shared
//!   experimental kind (RFC 6994) and 200 is unassigned, so other options legitimately
//!   use them. Such an option is skipped like any unknown option; it neither counts as a
//!   TOA nor fails the search ([`decode`] returns `Ok(None)` for it).
//! - **The first TOA wins.** [`find`] returns the first option whose kind is in `kinds`
//!   and whose length is 8 or 20, and stops there: options after it are not inspected.
//!   This is what toa.ko does, and a receiver that picked another would let a second
//!   option override the address the proxy wrote first.
//! - **TFO magic is not special.** A kind-254 option whose bytes 2-3 are `0xF989` (the
//!   experimental TCP Fast Open magic, RFC 7413) with length 8 or 20 is a TOA whose
//!   port is 63881. TOA has no magic of its own, so 63881 is a legal client port (it is
//!   inside the ephemeral range of Windows and the BSDs) and rejecting it would lose
//!   those clients. TFO cookies only travel on SYN and SYN-ACK, while TOA is read from
//!   the handshake-completing ACK, so in practice the two do not meet.
//! - **Malformed blocks are errors.** A length below 2, or an option running past the
//!   end of the block, makes the whole block unreadable: nothing after it can be
//!   trusted to be aligned on an option boundary.
//! - **IPv4-mapped addresses** are encoded in the 8-byte form and decoded as IPv4.
//! - **A decoded address is applied only if [`plausible`](crate::plausible()).** [`find`]
//!   reports what the option says; the receiver then ignores (and counts) an address no
//!   client can have.
//! - **Kinds Linux uses are never TOA kinds.** [`check_kind`] is the one rule every
//!   place that takes a kind applies (origin, edge writer, proxy config).
//!
//! # Shared with the kernel
//! [`DEFAULT_KIND`], [`LEN_V4`], [`LEN_V6`] and [`encode_mapped`] are used as they
//! are by the edge writer in `toa-ebpf` and by `toa-common`'s option walk, so they
//! are written for the verifier: `core` only, constant offsets, no panics.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::mapped::{is_v4_mapped, mapped_v6};

/// The TOA option kind used unless configured otherwise (DPVS, LVS and most eBPF
/// ports use it; Tencent CLB's IPv4 TOA uses 200, which is configured, not built in).
pub const DEFAULT_KIND: u8 = 254;
/// Length of the IPv4 form: kind, len, port(2), address(4).
pub const LEN_V4: u8 = 8;
/// Length of the IPv6 form: kind, len, port(2), address(16).
pub const LEN_V6: u8 = 20;
/// The experimental TCP Fast Open magic that may follow kind 254 (see module docs).
pub const TFO_EXPERIMENTAL_MAGIC: u16 = 0xF989;

const END_OF_OPTIONS: u8 = 0;
const NO_OPERATION: u8 = 1;

/// TCP option kinds Linux itself sends or parses (`tcp_parse_options` in
/// net/ipv4/tcp_input.c, the MD5/AO hash checks and `tcp_options_write`): as a
/// TOA kind each would be misread by the kernel, or collide with an option it
/// writes. Kind 254 stays usable: Linux reads it only on a SYN with the TCP Fast
/// Open magic (see the module docs).
pub const LINUX_KINDS: [(u8, &str); 13] = [
    (0, "End of Option List"),
    (1, "No-Operation"),
    (2, "Maximum Segment Size"),
    (3, "Window Scale"),
    (4, "SACK Permitted"),
    (5, "SACK"),
    (8, "Timestamps"),
    (19, "TCP MD5 Signature"),
    (29, "TCP Authentication Option"),
    (30, "Multipath TCP"),
    (34, "TCP Fast Open"),
    (172, "Accurate ECN order 0"),
    (174, "Accurate ECN order 1"),
];

/// A kind refused by [`check_kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("kind {kind} is {name}, which Linux itself sends or parses; use 254 (the default) or 200")]
pub struct KindError {
    pub kind: u8,
    /// The option Linux knows under this kind.
    pub name: &'static str,
}

/// `kind`, if it can carry a TOA: any kind except [`LINUX_KINDS`].
pub fn check_kind(kind: u8) -> Result<u8, KindError> {
    match LINUX_KINDS.iter().find(|(k, _)| *k == kind) {
        Some(&(kind, name)) => Err(KindError { kind, name }),
        None => Ok(kind),
    }
}

/// Why a TCP option, or a block of them, cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("empty TCP option: there is no kind byte")]
    Empty,
    #[error("TCP option of kind {kind} at offset {offset} is cut before its length byte")]
    MissingLength { kind: u8, offset: usize },
    #[error(
        "TCP option of kind {kind} at offset {offset} has length {len}, below the minimum of 2"
    )]
    LengthTooSmall { kind: u8, offset: usize, len: u8 },
    #[error(
        "TCP option of kind {kind} at offset {offset} has length {len} but only {available} bytes remain"
    )]
    Truncated {
        kind: u8,
        offset: usize,
        len: u8,
        available: usize,
    },
    #[error("TCP option of kind {kind} is {actual} bytes long but its length byte says {len}")]
    LengthMismatch { kind: u8, len: u8, actual: usize },
}

/// One encoded TOA option, ready to be copied into a TCP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encoded {
    /// The option in its first `len` bytes, zeros after it.
    bytes: [u8; LEN_V6 as usize],
    len: u8,
}

impl Encoded {
    /// The option's bytes: 8 for an IPv4 client, 20 for an IPv6 one.
    pub fn as_bytes(&self) -> &[u8] {
        let (option, _) = self
            .bytes
            .split_at(usize::from(self.len).min(self.bytes.len()));
        option
    }

    /// The option in a buffer of the longest form's size, zero after
    /// [`len`](Self::len) bytes: for callers that must pass a constant-size
    /// buffer, like the kernel's `bpf_store_hdr_opt`.
    #[inline(always)]
    pub fn buffer(&self) -> &[u8; LEN_V6 as usize] {
        &self.bytes
    }

    /// The option length, which is also its second byte.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Always false: an option holds at least kind, length and port.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl AsRef<[u8]> for Encoded {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

/// Encodes `client` as a TOA option of the given kind. An IPv4-mapped IPv6 client is
/// written in the IPv4 (length 8) form.
pub fn encode(kind: u8, client: SocketAddr) -> Encoded {
    encode_mapped(
        kind,
        client.port().to_be(),
        &mapped_v6(client.ip()).octets(),
    )
}

/// The option length a client stored as 16 bytes (IPv4 v4-mapped) is written with:
/// [`LEN_V4`] for an IPv4 client, [`LEN_V6`] otherwise.
#[inline(always)]
pub fn len_for(addr: &[u8; 16]) -> u8 {
    if is_v4_mapped(addr) { LEN_V4 } else { LEN_V6 }
}

/// Encodes a client the way the kernel maps store it: `addr` is 16 bytes with IPv4
/// v4-mapped, `port_be` is in network byte order. The option is [`len_for`]`(addr)`
/// bytes long. The one encoder: [`encode`] and the edge writer both use it.
#[inline(always)]
pub fn encode_mapped(kind: u8, port_be: u16, addr: &[u8; 16]) -> Encoded {
    let [p0, p1] = port_be.to_ne_bytes();
    let [
        a0,
        a1,
        a2,
        a3,
        a4,
        a5,
        a6,
        a7,
        a8,
        a9,
        a10,
        a11,
        a12,
        a13,
        a14,
        a15,
    ] = *addr;
    let len = len_for(addr);
    let bytes = if len == LEN_V4 {
        [
            kind, len, p0, p1, a12, a13, a14, a15, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ]
    } else {
        [
            kind, len, p0, p1, a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15,
        ]
    };
    Encoded { bytes, len }
}

/// Decodes one whole option (`option` starts at its kind byte and is exactly as long
/// as its length byte says). Returns `Ok(None)` for a well-formed option that is not a
/// TOA: its kind is not in `kinds`, or its length is neither 8 nor 20.
pub fn decode(option: &[u8], kinds: &[u8]) -> Result<Option<SocketAddr>, Error> {
    let (kind, len, value) = match *option {
        [] => return Err(Error::Empty),
        [kind] => return Err(Error::MissingLength { kind, offset: 0 }),
        [kind, len, ref value @ ..] => (kind, len, value),
    };
    if len < 2 {
        return Err(Error::LengthTooSmall {
            kind,
            offset: 0,
            len,
        });
    }
    if usize::from(len) != option.len() {
        return Err(Error::LengthMismatch {
            kind,
            len,
            actual: option.len(),
        });
    }
    Ok(address_if_toa(kind, value, kinds))
}

/// Searches a TCP options block (the bytes after the 20-byte fixed TCP header) for the
/// first TOA option whose kind is in `kinds`. NOPs are skipped and an end-of-options
/// byte ends the search; see the module docs for the rules on length, order and errors.
pub fn find(options: &[u8], kinds: &[u8]) -> Result<Option<SocketAddr>, Error> {
    let mut rest = options;
    let mut offset = 0;
    loop {
        let (kind, len) = match *rest {
            [] | [END_OF_OPTIONS, ..] => return Ok(None),
            [NO_OPERATION, ref tail @ ..] => {
                rest = tail;
                offset += 1;
                continue;
            }
            [kind] => return Err(Error::MissingLength { kind, offset }),
            [kind, len, ..] => (kind, len),
        };
        if len < 2 {
            return Err(Error::LengthTooSmall { kind, offset, len });
        }
        let Some((option, tail)) = rest.split_at_checked(usize::from(len)) else {
            return Err(Error::Truncated {
                kind,
                offset,
                len,
                available: rest.len(),
            });
        };
        if let Some(address) = address_if_toa(kind, option.get(2..).unwrap_or_default(), kinds) {
            return Ok(Some(address));
        }
        rest = tail;
        offset += usize::from(len);
    }
}

/// The client address in an option's value (the bytes after kind and length), if the
/// option is a TOA of one of `kinds`.
fn address_if_toa(kind: u8, value: &[u8], kinds: &[u8]) -> Option<SocketAddr> {
    if !kinds.contains(&kind) {
        return None;
    }
    let (port, address) = value.split_first_chunk::<2>()?;
    let port = u16::from_be_bytes(*port);
    let ip = if let Ok(v4) = <[u8; 4]>::try_from(address) {
        IpAddr::V4(Ipv4Addr::from(v4))
    } else {
        IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(address).ok()?)).to_canonical()
    };
    Some(SocketAddr::new(ip, port))
}
