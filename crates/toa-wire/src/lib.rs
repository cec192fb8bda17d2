//! Pure codecs for the ways toa carries a client's address across an L4 proxy.
//!
//! This crate is the bottom layer: bytes in, typed values out (and back). It does no
//! I/O, allocates little, and never panics on any input; every rejection is a typed
//! error that says what is wrong. The proxy (`toa-proxy`) writes these formats, the
//! origin side reads them, and the kernel receiver in `toa-ebpf` mirrors the TOA
//! decisions documented in [`toa`].
//!
//! # Layout
//! - [`toa`]: the TOA TCP option (kind 254 by default): its kinds and lengths,
//!   encode one option, decode one option, or find it inside a whole TCP options
//!   block. The kernel programs use it too (see "`no_std`" below).
//! - [`mapped`]: IPv4-mapped IPv6 addresses, turned into IPv4 and back.
//! - [`plausible`](mod@plausible): which client addresses a TOA may carry (shared with the kernel).
//! - [`proxy_v1`]: the human-readable PROXY protocol line (`PROXY TCP4 ...\r\n`).
//! - [`proxy_v2`]: the binary PROXY protocol header with its TLVs (CRC32C included).
//! - [`spp`]: the 38-byte SPP header Tencent prepends to each proxied UDP datagram.
//! - [`Parsed`]: the result of an incremental (stream) parse, shared by v1 and v2.
//!
//! # Conventions shared by every codec
//! - **IPv4-mapped IPv6 addresses are IPv4.** Encoders write `::ffff:a.b.c.d` in the
//!   IPv4 form of the format (TOA length 8, `TCP4`, `AF_INET`; SPP's fields are always
//!   16 bytes, so there it is the v4-mapped form), and decoders return such an address
//!   as [`core::net::SocketAddr::V4`]. IPv6 flow info and scope id are not carried.
//! - **Incremental parsing.** Stream parsers take whatever has been received so far and
//!   return [`Parsed::Incomplete`] while more bytes could still complete a valid header,
//!   and an error as soon as no continuation could.
//!
//! Every parser here is fuzzed (see `fuzz/` and `docs/fuzzing.md`).
//!
//! # `no_std`
//! Without the default `std` feature only [`toa`], [`mapped`], [`plausible`](mod@plausible) and
//! [`Parsed`]
//! are built, on `core` alone: that is how `toa-ebpf` (the edge writer) and
//! `toa-common` (the origin's option walk) share the TOA constants, the encoder
//! and the v4-mapped rule with user space instead of copying them. The PROXY
//! protocol and SPP codecs allocate, so they need `std`.

#![cfg_attr(not(feature = "std"), no_std)]
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

pub mod mapped;
pub mod plausible;
#[cfg(feature = "std")]
pub mod proxy_v1;
#[cfg(feature = "std")]
pub mod proxy_v2;
#[cfg(feature = "std")]
pub mod spp;
pub mod toa;

pub use mapped::{canonical, normalize};
pub use plausible::plausible;

/// The outcome of parsing a header at the start of a byte stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed<T> {
    /// A whole, valid header; the stream's payload starts at `consumed`.
    Complete { header: T, consumed: usize },
    /// Everything so far is a valid prefix of a header: read more and parse again.
    Incomplete,
}
