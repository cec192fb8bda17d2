//! The kernel-facing lookup convention: `getsockopt(fd, IPPROTO_IP, TOA_SO_GET_LOOKUP)`
//! answered by toa's `cgroup/getsockopt` program (and by Tencent's/DPVS's toa.ko).
//!
//! Defined here until `toa-common` carries it; then these two items become
//! `pub use toa_common::{TOA_SO_GET_LOOKUP, LookupReply};` and nothing else changes.

/// `optname` of the lookup at level `IPPROTO_IP` (DPVS/Tencent `TOA_SO_GET_LOOKUP`).
pub const TOA_SO_GET_LOOKUP: i32 = 4096;

/// What the lookup writes: the client address (IPv4 clients as `::ffff:a.b.c.d`)
/// and port, both in network byte order. 18 bytes, no padding.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LookupReply {
    pub saddr: [u8; 16],
    /// Big-endian (`__be16`).
    pub port: u16,
}

const _: () = assert!(core::mem::size_of::<LookupReply>() == 18);
