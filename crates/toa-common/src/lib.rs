//! Everything that crosses the kernel/user boundary, defined once: the
//! `#[repr(C)]` values stored in maps, the counter ids, the map and program
//! names and the lookup reply. The TOA wire constants and the option encoder
//! are `toa-wire`'s (built `no_std` here), so user space and the kernel share
//! them too.
//!
//! `toa-ebpf` (the kernel programs) and `toa-loader` (the user side, with the
//! `user` feature, which adds the `aya::Pod` impls) both build on this crate,
//! so a struct or a counter index is never declared twice.
//!
//! # Layout
//! - [`counters`]: [`counters!`], the one way a counter set is declared.
//! - [`names`]: [`names!`], the one way an enum is mapped to and from its names.
//! - [`origin`]: the receiver on origin servers (config, per-socket client
//!   address, counters).
//! - [`edge`]: the option writer on the proxy (per-socket client, counters).
//! - [`steer`]: the proxy's port-range steerer (sk_lookup ranges, counters).
//! - [`options`]: the TOA walk over a TCP header, in the verifier's shape.
//! - [`plausible`]: which client addresses a trusted TOA may carry.
#![cfg_attr(not(test), no_std)]

pub mod counters;
pub mod edge;
pub mod names;
pub mod options;
pub mod origin;
pub mod plausible;
pub mod steer;

/// Address family tag stored next to an address (not the AF_* value: the
/// kernel side only needs to tell the two apart).
pub const FAMILY_V4: u8 = 4;
/// See [`FAMILY_V4`].
pub const FAMILY_V6: u8 = 6;

/// The `getsockopt(IPPROTO_IP, TOA_SO_GET_LOOKUP)` option name of DPVS and
/// Tencent's NAT64 module, answered by the origin's `cgroup/getsockopt` program.
pub const TOA_SO_GET_LOOKUP: i32 = 4096;

/// The answer to a `TOA_SO_GET_LOOKUP` getsockopt, as the origin's program
/// writes it and libtoa reads it: `struct toa_lookup_reply` in libtoa's toa.h
/// (`struct in6_addr saddr; uint16_t port;`, packed, 18 bytes). There is no
/// padding to write out: 16 bytes then a `u16` are 18 bytes with alignment 2.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LookupReply {
    /// The client address, IPv4 as `::ffff:a.b.c.d`, network byte order.
    pub addr: [u8; 16],
    /// The client port in network byte order (`__be16`).
    pub port_be: u16,
}

impl LookupReply {
    /// The "no TOA" answer on kernels where the program cannot fail with
    /// ENOENT (see `OriginConfig::lookup_errno`): address `::`, port 0, which
    /// no real client has.
    pub const NONE: LookupReply = LookupReply {
        addr: [0; 16],
        port_be: 0,
    };
}

impl From<&ClientAddr> for LookupReply {
    #[inline(always)]
    fn from(client: &ClientAddr) -> Self {
        LookupReply {
            addr: client.addr,
            port_be: client.port_be,
        }
    }
}

/// Size of [`LookupReply`]: what the kernel writes and the smallest buffer it
/// answers into.
pub const LOOKUP_ANSWER_LEN: usize = core::mem::size_of::<LookupReply>();
const _: () = assert!(LOOKUP_ANSWER_LEN == 18);

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
    /// `client` as the maps store it: IPv4, and IPv4-mapped IPv6, as an IPv4
    /// client in the v4-mapped form; port in network byte order.
    pub fn from_socket_addr(client: core::net::SocketAddr) -> Self {
        let addr = toa_wire::mapped::mapped_v6(client.ip()).octets();
        ClientAddr {
            addr,
            port_be: client.port().to_be(),
            family: if toa_wire::mapped::is_v4_mapped(&addr) {
                FAMILY_V4
            } else {
                FAMILY_V6
            },
            _pad: 0,
        }
    }

    /// The IPv4 address in network order, if this is an IPv4 client.
    pub fn ipv4(&self) -> Option<[u8; 4]> {
        (self.family == FAMILY_V4)
            .then(|| [self.addr[12], self.addr[13], self.addr[14], self.addr[15]])
    }
}

#[cfg(feature = "user")]
// SAFETY: repr(C), Copy, every field is plain data and padding is explicit.
unsafe impl aya::Pod for ClientAddr {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_mapped_clients_are_stored_as_ipv4() {
        let entry = ClientAddr::from_socket_addr("[::ffff:198.18.1.2]:40000".parse().unwrap());
        assert_eq!(entry.family, FAMILY_V4);
        assert_eq!(entry.ipv4(), Some([198, 18, 1, 2]));
        assert_eq!(entry.port_be.to_ne_bytes(), 40000u16.to_be_bytes());
        let entry = ClientAddr::from_socket_addr("[fd00:1::2]:1".parse().unwrap());
        assert_eq!(entry.family, FAMILY_V6);
        assert_eq!(entry.addr[..2], [0xfd, 0x00]);
    }
}
