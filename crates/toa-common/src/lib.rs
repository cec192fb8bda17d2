//! Everything that crosses the kernel/user boundary, defined once: the
//! `#[repr(C)]` values stored in maps, the counter ids, the map and program
//! names and the TOA wire constants.
//!
//! `toa-ebpf` (the kernel programs) and `toa-loader` (the user side, with the
//! `user` feature, which adds the `aya::Pod` impls) both build on this crate,
//! so a struct or a counter index is never declared twice.
//!
//! # Layout
//! - [`counters`]: [`counters!`], the one way a counter set is declared.
//! - [`origin`]: the receiver on origin servers (config, per-socket client
//!   address, counters).
//! - [`edge`]: the option writer on the proxy (per-socket client, counters).
//! - [`options`]: the TOA walk over a TCP header, in the verifier's shape.
//! - [`plausible`]: which client addresses a trusted TOA may carry.
#![cfg_attr(not(test), no_std)]

pub mod counters;
pub mod edge;
pub mod options;
pub mod origin;
pub mod plausible;

/// The TCP option kind DPVS, LVS and most eBPF ports use for TOA.
pub const DEFAULT_KIND: u8 = 254;
/// Length of a TOA option carrying an IPv4 address: kind, len, port, IPv4.
pub const OPTION_LEN_V4: u8 = 8;
/// Length of a TOA option carrying an IPv6 address: kind, len, port, IPv6.
pub const OPTION_LEN_V6: u8 = 20;

/// Address family tag stored next to an address (not the AF_* value: the
/// kernel side only needs to tell the two apart).
pub const FAMILY_V4: u8 = 4;
/// See [`FAMILY_V4`].
pub const FAMILY_V6: u8 = 6;

/// The `getsockopt(IPPROTO_IP, TOA_SO_GET_LOOKUP)` option name of DPVS and
/// Tencent's NAT64 module, answered by the origin's `cgroup/getsockopt` program.
pub const TOA_SO_GET_LOOKUP: i32 = 4096;
/// Size of the lookup answer: `struct { struct in6_addr saddr; __be16 port; }`.
pub const LOOKUP_ANSWER_LEN: usize = 18;
/// The lookup's "no TOA" answer on kernels where the program cannot fail with
/// ENOENT (see `OriginConfig::lookup_errno`): address `::`, port 0, which no
/// real client has.
pub const LOOKUP_NONE: [u8; LOOKUP_ANSWER_LEN] = [0; LOOKUP_ANSWER_LEN];

/// A client address as it travels in a TOA option: IPv4 addresses are kept
/// in the v4-mapped form `::ffff:a.b.c.d` so one layout serves both families.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientAddr {
    /// IPv6 address, or IPv4 as `::ffff:a.b.c.d`, network byte order.
    pub addr: [u8; 16],
    /// Port in network byte order, as on the wire.
    pub port_be: u16,
    /// [`FAMILY_V4`] or [`FAMILY_V6`]: which option length (8 or 20) it came in.
    pub family: u8,
    /// Explicit padding (zero), so the value zero-initializes.
    pub _pad: u8,
}

impl ClientAddr {
    /// The IPv4 address in network order, if this is an IPv4 client.
    pub fn ipv4(&self) -> Option<[u8; 4]> {
        (self.family == FAMILY_V4)
            .then(|| [self.addr[12], self.addr[13], self.addr[14], self.addr[15]])
    }
}

#[cfg(feature = "user")]
// SAFETY: repr(C), Copy, every field is plain data and padding is explicit.
unsafe impl aya::Pod for ClientAddr {}
