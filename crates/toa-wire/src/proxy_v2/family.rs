//! The PROXY v2 address block: the family/transport byte and the addresses after it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::{Addresses, Error, Transport, UNIX_ADDR_LEN};

/// The address family, as the high nibble of the 14th byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Family {
    Unspec,
    Inet,
    Inet6,
    Unix,
}

impl Family {
    pub(super) fn address_len(self) -> usize {
        match self {
            Family::Unspec => 0,
            Family::Inet => 12,
            Family::Inet6 => 36,
            Family::Unix => 2 * UNIX_ADDR_LEN,
        }
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            Family::Unspec => "AF_UNSPEC",
            Family::Inet => "AF_INET",
            Family::Inet6 => "AF_INET6",
            Family::Unix => "AF_UNIX",
        }
    }

    pub(super) fn from_byte(byte: u8) -> Option<(Family, Transport)> {
        Some(match byte {
            0x00 => (Family::Unspec, Transport::Unspec),
            0x11 => (Family::Inet, Transport::Stream),
            0x12 => (Family::Inet, Transport::Dgram),
            0x21 => (Family::Inet6, Transport::Stream),
            0x22 => (Family::Inet6, Transport::Dgram),
            0x31 => (Family::Unix, Transport::Stream),
            0x32 => (Family::Unix, Transport::Dgram),
            _ => return None,
        })
    }

    /// Reads the address block, which the caller sized with [`Family::address_len`].
    pub(super) fn decode(self, block: &[u8]) -> Addresses {
        let mut fields = Fields(block);
        match self {
            Family::Unspec => Addresses::Unspec,
            Family::Inet | Family::Inet6 => {
                let (src, dst) = if self == Family::Inet {
                    let src = IpAddr::V4(Ipv4Addr::from(fields.take::<4>()));
                    (src, IpAddr::V4(Ipv4Addr::from(fields.take::<4>())))
                } else {
                    let src = IpAddr::V6(Ipv6Addr::from(fields.take::<16>()));
                    (src, IpAddr::V6(Ipv6Addr::from(fields.take::<16>())))
                };
                let src_port = u16::from_be_bytes(fields.take());
                let dst_port = u16::from_be_bytes(fields.take());
                Addresses::Inet {
                    src: crate::canonical(SocketAddr::new(src, src_port)),
                    dst: crate::canonical(SocketAddr::new(dst, dst_port)),
                }
            }
            Family::Unix => Addresses::Unix {
                src: fields.take(),
                dst: fields.take(),
            },
        }
    }
}

/// Reads fixed-size fields off a block whose length was checked beforehand; a short
/// block would yield zeros rather than panic.
struct Fields<'a>(&'a [u8]);

impl Fields<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        match self.0.split_first_chunk::<N>() {
            Some((field, rest)) => {
                self.0 = rest;
                *field
            }
            None => [0; N],
        }
    }
}

/// Appends the family/transport byte, a zero length (filled in by the caller) and the
/// address block.
pub(super) fn encode(
    addresses: &Addresses,
    transport: Transport,
    out: &mut Vec<u8>,
) -> Result<(), Error> {
    let mismatch = |addresses| Error::AddressesTransportMismatch {
        addresses,
        transport,
    };
    let transport = match transport {
        Transport::Unspec => 0x0,
        Transport::Stream => 0x1,
        Transport::Dgram => 0x2,
    };
    match (addresses, transport) {
        (Addresses::Unspec, 0) => out.extend_from_slice(&[0x00, 0, 0]),
        (Addresses::Unspec, _) => return Err(mismatch("AF_UNSPEC")),
        (Addresses::Inet { .. }, 0) => return Err(mismatch("IP")),
        (Addresses::Unix { .. }, 0) => return Err(mismatch("AF_UNIX")),
        (Addresses::Inet { src, dst }, _) => {
            let (src, dst) = (crate::canonical(*src), crate::canonical(*dst));
            match (src.ip(), dst.ip()) {
                (IpAddr::V4(s), IpAddr::V4(d)) => {
                    out.extend_from_slice(&[0x10 | transport, 0, 0]);
                    out.extend_from_slice(&s.octets());
                    out.extend_from_slice(&d.octets());
                }
                (s, d) => {
                    out.extend_from_slice(&[0x20 | transport, 0, 0]);
                    out.extend_from_slice(&crate::mapped::mapped_v6(s).octets());
                    out.extend_from_slice(&crate::mapped::mapped_v6(d).octets());
                }
            }
            out.extend_from_slice(&src.port().to_be_bytes());
            out.extend_from_slice(&dst.port().to_be_bytes());
        }
        (Addresses::Unix { src, dst }, _) => {
            out.extend_from_slice(&[0x30 | transport, 0, 0]);
            out.extend_from_slice(src);
            out.extend_from_slice(dst);
        }
    }
    Ok(())
}
