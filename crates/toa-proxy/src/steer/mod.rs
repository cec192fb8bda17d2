//! The seam between the proxy and whatever steers a whole port range to one socket
//! (the `toa` binary supplies toa-loader's sk_lookup steerer), so this crate builds
//! without aya. Without a steerer every port of a range gets its own sockets, as a
//! single port does; [`crate::descriptors`] then checks they fit.

use std::error::Error;
use std::fmt;
use std::os::fd::BorrowedFd;

use toa_config::{ListenAddr, Protocol};

mod held;

pub(crate) use held::first_held;

/// A range below this many ports keeps one socket set per port, even with a steerer:
/// a few ports cost a few descriptors, and a port with its own socket keeps working
/// whatever happens to the steerer. Speed does not decide it: on 2 CPUs, one network
/// namespace, toa-bench's short connections (64-byte request and reply, 32 at once, three
/// 4 s runs) went through a steered port at 2,800-3,400 connections/s and through a
/// single-port listener at 2,700-3,700: the same within the runs' spread. Start-up was
/// 87 ms and 23 descriptors for one port, 179 ms and 27 for 1,000 steered ports, 303 ms
/// and 27 for 50,001, against 152 ms and 2,021 descriptors for 1,000 ports bound one by
/// one. At 16 ports a rule holds 16 × workers sockets, a small part of any limit.
pub const STEER_MIN_PORTS: usize = 16;

/// Every port `first..=last` of `protocol` on `addr`, as one steered listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SteeredPorts {
    pub protocol: Protocol,
    pub addr: ListenAddr,
    pub first: u16,
    pub last: u16,
}

impl fmt::Display for SteeredPorts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.addr {
            ListenAddr::DualStack => write!(f, "{}/[::]", self.protocol.name())?,
            ListenAddr::Ip(ip) if ip.is_ipv6() => write!(f, "{}/[{ip}]", self.protocol.name())?,
            ListenAddr::Ip(ip) => write!(f, "{}/{ip}", self.protocol.name())?,
        }
        write!(f, ":{}-{}", self.first, self.last)
    }
}

/// Hands every port of a range to one socket (a listening TCP socket, the first of its
/// reuseport group, or an unconnected UDP socket), which keeps each connection's and
/// datagram's original destination port.
pub trait PortSteering: Send + Sync + fmt::Debug {
    /// Steers `ports` to `socket` until the returned range is dropped.
    fn steer(
        &self,
        ports: &SteeredPorts,
        socket: BorrowedFd<'_>,
    ) -> Result<Box<dyn SteeredRange>, Box<dyn Error + Send + Sync>>;
}

/// One range being steered; dropping it stops steering (the socket stays open).
pub trait SteeredRange: Send + Sync {
    /// Moves the range's last port (same socket, same first port): a reload that
    /// widens or narrows a range keeps its sockets.
    fn set_last(&self, last: u16) -> Result<(), Box<dyn Error + Send + Sync>>;
}
