//! The port steerer's shared definitions: an sk_lookup program on the proxy's network
//! namespace hands every port of a range to one listening socket (one reuseport group),
//! so a 60,000-port rule costs a socket per worker instead of one per port and worker.

/// Program name of the steerer (sk_lookup) in `toa-ebpf`'s steer binary.
pub const PROG_STEER: &str = "toa_steer";
/// Array of [`SteerRange`], [`MAX_RANGES`] slots; a slot with `last == 0` is free.
pub const MAP_RANGES: &str = "TOA_STEER_RANGES";
/// Sockmap: slot `i` holds the socket that the range in slot `i` of [`MAP_RANGES`] steers to.
pub const MAP_SOCKETS: &str = "TOA_STEER_SOCKETS";
/// Per-CPU array of `u64`, indexed by [`SteerCounter`].
pub const MAP_COUNTERS: &str = "TOA_STEER_STATS";

/// How many ranges one steerer holds: one per (ranged rule, listen address). The program
/// looks at every slot on each lookup it sees; array lookups are inlined by the verifier,
/// so 64 slots cost a few hundred instructions per new connection or unconnected datagram.
pub const MAX_RANGES: u32 = 64;

/// `protocol` of a [`SteerRange`] (IPPROTO_TCP).
pub const PROTO_TCP: u8 = 6;
/// `protocol` of a [`SteerRange`] (IPPROTO_UDP).
pub const PROTO_UDP: u8 = 17;
/// `family` of a [`SteerRange`] that takes both IPv4 and IPv6 (a dual-stack socket).
pub const FAMILY_ANY: u8 = 0;

/// One steered range: packets of `protocol` and `family` to `addr` (or any address when
/// `any_addr` is set) on ports `first..=last` go to the socket in the same slot.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SteerRange {
    /// IPv6, or IPv4 as `::ffff:a.b.c.d`, network byte order; ignored with `any_addr`.
    pub addr: [u8; 16],
    /// First port, host byte order (as `bpf_sk_lookup.local_port`).
    pub first: u16,
    /// Last port, host byte order; 0 marks a free slot.
    pub last: u16,
    /// [`PROTO_TCP`] or [`PROTO_UDP`].
    pub protocol: u8,
    /// [`crate::FAMILY_V4`], [`crate::FAMILY_V6`] or [`FAMILY_ANY`].
    pub family: u8,
    /// 1: any local address of the family (a wildcard listen address).
    pub any_addr: u8,
    /// Explicit padding (zero).
    pub _pad: u8,
}

const _: () = assert!(core::mem::size_of::<SteerRange>() == 24);

impl SteerRange {
    /// The range of a listener on `listen` (`None`: a dual-stack socket, which takes both
    /// families on any address; an unspecified address: any address of its family; an
    /// explicit one: just that address), ports `first..=last`, TCP or UDP.
    pub fn for_listener(
        tcp: bool,
        listen: Option<core::net::IpAddr>,
        first: u16,
        last: u16,
    ) -> Self {
        let (family, addr) = match listen {
            None => (FAMILY_ANY, None),
            Some(ip) => (
                if ip.is_ipv4() {
                    crate::FAMILY_V4
                } else {
                    crate::FAMILY_V6
                },
                (!ip.is_unspecified()).then_some(ip),
            ),
        };
        SteerRange {
            addr: addr.map_or([0; 16], |ip| toa_wire::mapped::mapped_v6(ip).octets()),
            first,
            last,
            protocol: if tcp { PROTO_TCP } else { PROTO_UDP },
            family,
            any_addr: u8::from(addr.is_none()),
            _pad: 0,
        }
    }

    /// Whether a lookup for `protocol`/`family` to `addr` (v4-mapped for IPv4), `port` matches.
    #[inline(always)]
    pub fn matches(&self, protocol: u8, family: u8, addr: &[u8; 16], port: u16) -> bool {
        self.last != 0
            && self.protocol == protocol
            && (self.family == FAMILY_ANY || self.family == family)
            && port >= self.first
            && port <= self.last
            && (self.any_addr != 0 || same_addr(&self.addr, addr))
    }
}

/// `a == b` without `memcmp`, which a BPF program cannot call: two 8-byte compares.
#[inline(always)]
fn same_addr(a: &[u8; 16], b: &[u8; 16]) -> bool {
    let half = |x: &[u8; 16], at: usize| {
        u64::from_ne_bytes([
            x[at],
            x[at + 1],
            x[at + 2],
            x[at + 3],
            x[at + 4],
            x[at + 5],
            x[at + 6],
            x[at + 7],
        ])
    };
    half(a, 0) == half(b, 0) && half(a, 8) == half(b, 8)
}

#[cfg(feature = "user")]
// SAFETY: repr(C), Copy, plain data, padding explicit.
unsafe impl aya::Pod for SteerRange {}

crate::counters! {
    /// The steerer's per-CPU counters, one per outcome of a lookup.
    pub enum SteerCounter {
        Steered = 0 {
            name: "steered",
            help: "Lookups (new connections, datagrams to unconnected sockets) handed to a range's socket.",
        },
        NotOurs = 1 {
            name: "not_ours",
            help: "Lookups for no steered range: left to the kernel's own socket lookup.",
        },
        /// The slot's socket was closed (the proxy is replacing it): the kernel's own lookup
        /// then finds the range's first port, or refuses.
        SocketMissing = 2 {
            name: "socket_missing",
            help: "Lookups for a range whose socket is gone: left to the kernel's own lookup.",
        },
        AssignFailed = 3 {
            name: "assign_failed",
            help: "Lookups whose socket the kernel refused (wrong family or state): left to its own lookup.",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range() -> SteerRange {
        SteerRange {
            addr: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 18, 0, 1],
            first: 1024,
            last: 2048,
            protocol: PROTO_TCP,
            family: crate::FAMILY_V4,
            any_addr: 0,
            _pad: 0,
        }
    }

    #[test]
    fn a_range_matches_its_protocol_family_address_and_ports_only() {
        let r = range();
        let addr = r.addr;
        assert!(r.matches(PROTO_TCP, crate::FAMILY_V4, &addr, 1024));
        assert!(r.matches(PROTO_TCP, crate::FAMILY_V4, &addr, 2048));
        assert!(!r.matches(PROTO_TCP, crate::FAMILY_V4, &addr, 2049));
        assert!(!r.matches(PROTO_TCP, crate::FAMILY_V4, &addr, 1023));
        assert!(!r.matches(PROTO_UDP, crate::FAMILY_V4, &addr, 1500));
        assert!(!r.matches(PROTO_TCP, crate::FAMILY_V6, &addr, 1500));
        let mut other = addr;
        other[15] = 2;
        assert!(!r.matches(PROTO_TCP, crate::FAMILY_V4, &other, 1500));
        let any = SteerRange {
            any_addr: 1,
            family: FAMILY_ANY,
            ..r
        };
        assert!(any.matches(PROTO_TCP, crate::FAMILY_V6, &other, 1500));
        assert!(
            !SteerRange::default().matches(0, 0, &[0; 16], 0),
            "free slot"
        );
    }

    #[test]
    fn listen_addresses_become_the_kernel_side_match() {
        let dual = SteerRange::for_listener(true, None, 1024, 65000);
        assert_eq!((dual.family, dual.any_addr), (FAMILY_ANY, 1));
        let v4: core::net::IpAddr = "198.18.10.1".parse().unwrap();
        let one = SteerRange::for_listener(true, Some(v4), 1024, 65000);
        assert_eq!((one.family, one.any_addr), (crate::FAMILY_V4, 0));
        let mapped = toa_wire::mapped::mapped_v6(v4).octets();
        assert!(one.matches(PROTO_TCP, crate::FAMILY_V4, &mapped, 2000));
        assert!(!one.matches(PROTO_UDP, crate::FAMILY_V4, &mapped, 2000));
        let any6 = SteerRange::for_listener(false, Some("::".parse().unwrap()), 1, 2);
        assert_eq!(
            (any6.family, any6.any_addr, any6.protocol),
            (crate::FAMILY_V6, 1, PROTO_UDP)
        );
    }

    #[test]
    fn every_steer_counter_is_listed_once_in_index_order() {
        for (i, c) in SteerCounter::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i, "{}", c.name());
        }
    }
}
