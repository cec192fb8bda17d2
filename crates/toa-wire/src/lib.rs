//! Pure codecs for the ways toa carries a client's address across an L4 proxy.
//!
//! This crate is the bottom layer: bytes in, typed values out (and back). It does no
//! I/O, allocates little, and never panics on any input; every rejection is a typed
//! error that says what is wrong. The proxy (`toa-proxy`) writes these formats, the
//! origin side reads them, and the kernel receiver in `toa-ebpf` mirrors the TOA
//! decisions documented in [`toa`].
//!
//! # Layout
//! - [`toa`]: the TOA TCP option (kind 254 by default): encode one option, decode
//!   one option, or find it inside a whole TCP options block.
//! - [`proxy_v1`]: the human-readable PROXY protocol line (`PROXY TCP4 ...\r\n`).
//! - [`proxy_v2`]: the binary PROXY protocol header with its TLVs (CRC32C included).
//! - [`spp`]: the 38-byte SPP header Tencent prepends to each proxied UDP datagram.
//! - [`Parsed`]: the result of an incremental (stream) parse, shared by v1 and v2.
//!
//! # Conventions shared by every codec
//! - **IPv4-mapped IPv6 addresses are IPv4.** Encoders write `::ffff:a.b.c.d` in the
//!   IPv4 form of the format (TOA length 8, `TCP4`, `AF_INET`; SPP's fields are always
//!   16 bytes, so there it is the v4-mapped form), and decoders return such an address
//!   as [`std::net::SocketAddr::V4`]. IPv6 flow info and scope id are not carried.
//! - **Incremental parsing.** Stream parsers take whatever has been received so far and
//!   return [`Parsed::Incomplete`] while more bytes could still complete a valid header,
//!   and an error as soon as no continuation could.
//!
//! Every parser here is fuzzed (see `fuzz/` and `docs/fuzzing.md`).

#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented
    )
)]

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

pub mod proxy_v1;
pub mod proxy_v2;
pub mod spp;
pub mod toa;

/// The outcome of parsing a header at the start of a byte stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed<T> {
    /// A whole, valid header; the stream's payload starts at `consumed`.
    Complete { header: T, consumed: usize },
    /// Everything so far is a valid prefix of a header: read more and parse again.
    Incomplete,
}

/// The address with an IPv4-mapped IPv6 address turned into IPv4, flow info and scope
/// id dropped: the form every decoder in this crate returns.
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// The address as IPv6, an IPv4 address v4-mapped: how formats with a single 16-byte
/// or IPv6 field carry IPv4.
pub(crate) fn mapped_v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}
