//! One lookup: ask the kernel for a socket's real client through the getsockopt
//! convention and decode the reply. Allocation-free and errno-based, so the
//! preload shim can call it from any context (signal handlers included).

use std::net::{Ipv6Addr, SocketAddr};
use std::os::fd::RawFd;

use crate::abi::{LOOKUP_ANSWER_LEN, LookupReply, TOA_SO_GET_LOOKUP};

/// The real client of `fd`, or the errno of the failed lookup:
/// `ENOENT` when the socket carries no TOA, `ENOPROTOOPT` when nothing answers
/// the lookup (toa origin not attached to the socket's cgroup; also on Linux <
/// 5.18 when the reply is the all-zero `LookupReply::NONE`), anything else
/// from `getsockopt` itself (`EBADF`, `ENOTSOCK`, ...). A reply shorter than
/// [`LookupReply`] is `EPROTO`.
pub fn client_of(fd: RawFd) -> Result<SocketAddr, i32> {
    let mut reply = LookupReply::NONE;
    let mut len = size_of::<LookupReply>() as libc::socklen_t;
    // SAFETY: `reply` is a plain 18-byte buffer and `len` says exactly that.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_IP,
            TOA_SO_GET_LOOKUP,
            (&raw mut reply).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(errno());
    }
    if (len as usize) < LOOKUP_ANSWER_LEN {
        return Err(libc::EPROTO);
    }
    // Kernels before 5.18 cannot fail the lookup with ENOENT; "no TOA" arrives
    // as a success with this answer instead.
    if reply == LookupReply::NONE {
        return Err(libc::ENOENT);
    }
    Ok(decode(&reply))
}

/// A reply as a socket address: v4-mapped addresses become IPv4 ones, because
/// that is how the client reached the proxy.
pub fn decode(reply: &LookupReply) -> SocketAddr {
    let ip = Ipv6Addr::from(reply.addr);
    toa_wire::canonical(SocketAddr::new(ip.into(), u16::from_be(reply.port_be)))
}

pub(crate) fn errno() -> i32 {
    // SAFETY: __errno_location always returns this thread's errno slot.
    unsafe { *libc::__errno_location() }
}

pub(crate) fn set_errno(value: i32) {
    // SAFETY: as in `errno`.
    unsafe { *libc::__errno_location() = value }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(ip: &str, port: u16) -> LookupReply {
        let ip: Ipv6Addr = ip.parse().unwrap();
        LookupReply {
            addr: ip.octets(),
            port_be: port.to_be(),
        }
    }

    #[test]
    fn v4_mapped_reply_decodes_to_ipv4_client() {
        assert_eq!(
            decode(&reply("::ffff:198.18.1.2", 40000)),
            "198.18.1.2:40000".parse().unwrap()
        );
    }

    #[test]
    fn ipv6_reply_decodes_to_ipv6_client() {
        assert_eq!(
            decode(&reply("fd00:1::2", 63881)),
            "[fd00:1::2]:63881".parse().unwrap()
        );
    }

    #[test]
    fn port_is_read_in_network_order() {
        let mut r = reply("fd00:1::2", 0);
        r.port_be = u16::from_ne_bytes([0x12, 0x34]);
        assert_eq!(decode(&r).port(), 0x1234);
    }

    #[test]
    fn v4_compatible_address_stays_ipv6() {
        // ::a.b.c.d (deprecated v4-compatible) is not the mapped form.
        assert!(decode(&reply("::198.18.1.2", 1)).is_ipv6());
    }
}
