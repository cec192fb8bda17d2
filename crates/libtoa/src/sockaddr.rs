//! Conversions between `std::net::SocketAddr` and the C `sockaddr_in`/`sockaddr_in6`
//! a caller's buffer holds. No allocation: used by the C ABI and the preload shim.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use libc::{sa_family_t, sockaddr, sockaddr_in, sockaddr_in6, socklen_t};

/// Bytes `addr` takes as a C socket address.
pub fn encoded_len(addr: &SocketAddr) -> socklen_t {
    match addr {
        SocketAddr::V4(_) => size_of::<sockaddr_in>() as socklen_t,
        SocketAddr::V6(_) => size_of::<sockaddr_in6>() as socklen_t,
    }
}

/// Writes `addr` as `sockaddr_in` (IPv4) or `sockaddr_in6` (IPv6) to `out` and
/// returns its length, or `None` (nothing written) when `capacity` is too small.
///
/// # Safety
/// `out` must be valid for writes of `capacity` bytes. No alignment is required.
pub unsafe fn write(
    addr: &SocketAddr,
    out: *mut sockaddr,
    capacity: socklen_t,
) -> Option<socklen_t> {
    let len = encoded_len(addr);
    if capacity < len {
        return None;
    }
    // SAFETY: the caller guarantees `capacity` writable bytes and we write `len <= capacity`.
    unsafe {
        match addr {
            SocketAddr::V4(v4) => out
                .cast::<sockaddr_in>()
                .write_unaligned(to_sockaddr_in(v4)),
            SocketAddr::V6(v6) => out
                .cast::<sockaddr_in6>()
                .write_unaligned(to_sockaddr_in6(v6)),
        }
    }
    Some(len)
}

/// The address family stored in a C socket address (its first field).
///
/// # Safety
/// `addr` must be valid for reads of `size_of::<sa_family_t>()` bytes.
pub unsafe fn family(addr: *const sockaddr) -> sa_family_t {
    // SAFETY: `sa_family` is the first field of every sockaddr; the caller vouches for the bytes.
    unsafe { addr.cast::<sa_family_t>().read_unaligned() }
}

/// Reads an `AF_INET`/`AF_INET6` socket address of `len` bytes; `None` for
/// other families or a length too short for the family.
///
/// # Safety
/// `addr` must be valid for reads of `len` bytes.
pub unsafe fn read(addr: *const sockaddr, len: socklen_t) -> Option<SocketAddr> {
    if (len as usize) < size_of::<sa_family_t>() {
        return None;
    }
    let len = len as usize;
    // SAFETY: every read below is guarded by `len` covering the whole struct.
    unsafe {
        match i32::from(family(addr)) {
            libc::AF_INET if len >= size_of::<sockaddr_in>() => {
                let sin = addr.cast::<sockaddr_in>().read_unaligned();
                let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                Some(SocketAddr::V4(SocketAddrV4::new(
                    ip,
                    u16::from_be(sin.sin_port),
                )))
            }
            libc::AF_INET6 if len >= size_of::<sockaddr_in6>() => {
                let sin6 = addr.cast::<sockaddr_in6>().read_unaligned();
                Some(SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                    u16::from_be(sin6.sin6_port),
                    u32::from_be(sin6.sin6_flowinfo),
                    sin6.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }
}

fn to_sockaddr_in(addr: &SocketAddrV4) -> sockaddr_in {
    sockaddr_in {
        sin_family: libc::AF_INET as sa_family_t,
        sin_port: addr.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*addr.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
}

fn to_sockaddr_in6(addr: &SocketAddrV6) -> sockaddr_in6 {
    sockaddr_in6 {
        sin6_family: libc::AF_INET6 as sa_family_t,
        sin6_port: addr.port().to_be(),
        sin6_flowinfo: addr.flowinfo().to_be(),
        sin6_addr: libc::in6_addr {
            s6_addr: addr.ip().octets(),
        },
        sin6_scope_id: addr.scope_id(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libc::sockaddr_storage;

    fn storage() -> sockaddr_storage {
        // SAFETY: sockaddr_storage is plain bytes; all-zero is valid.
        unsafe { std::mem::zeroed() }
    }

    fn round_trip(text: &str) {
        let addr: SocketAddr = text.parse().unwrap();
        let mut ss = storage();
        let out = (&raw mut ss).cast::<sockaddr>();
        let len = unsafe { write(&addr, out, size_of::<sockaddr_storage>() as socklen_t) }.unwrap();
        assert_eq!(len, encoded_len(&addr));
        assert_eq!(unsafe { read(out, len) }, Some(addr));
    }

    #[test]
    fn ipv4_address_round_trips_as_sockaddr_in() {
        round_trip("198.18.1.2:40000");
    }

    #[test]
    fn ipv6_address_round_trips_as_sockaddr_in6() {
        round_trip("[fd00:1::2]:443");
    }

    #[test]
    fn ipv4_is_written_in_network_order() {
        let addr: SocketAddr = "198.18.1.2:258".parse().unwrap();
        let mut ss = storage();
        let out = (&raw mut ss).cast::<sockaddr>();
        unsafe { write(&addr, out, 128) }.unwrap();
        let sin = unsafe { out.cast::<sockaddr_in>().read() };
        assert_eq!(i32::from(sin.sin_family), libc::AF_INET);
        assert_eq!(sin.sin_port.to_ne_bytes(), [1, 2]);
        assert_eq!(sin.sin_addr.s_addr.to_ne_bytes(), [198, 18, 1, 2]);
    }

    #[test]
    fn ipv6_address_does_not_fit_sockaddr_in_capacity() {
        let addr: SocketAddr = "[fd00:1::2]:443".parse().unwrap();
        let mut ss = storage();
        let out = (&raw mut ss).cast::<sockaddr>();
        let cap = size_of::<sockaddr_in>() as socklen_t;
        assert_eq!(unsafe { write(&addr, out, cap) }, None);
        assert_eq!(
            unsafe { family(out) },
            0,
            "nothing is written on a short buffer"
        );
    }

    #[test]
    fn unknown_family_or_short_length_reads_as_none() {
        let mut ss = storage();
        let out = (&raw mut ss).cast::<sockaddr>();
        assert_eq!(unsafe { read(out, 128) }, None);
        unsafe { write(&"[fd00:1::2]:1".parse().unwrap(), out, 128) }.unwrap();
        assert_eq!(unsafe { read(out, 16) }, None);
    }
}
