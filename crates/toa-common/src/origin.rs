//! The origin receiver's shared definitions: its config, the record kept per
//! accepted socket, the trusted-proxy key and the `/proc/net/toa_stats` counters.

use crate::ClientAddr;

/// How many option kinds one origin accepts at once (e.g. 254 and 200).
pub const MAX_KINDS: usize = 4;
/// Capacity of the trusted-proxy allowlist (of each of its two tries).
pub const MAX_TRUST_ENTRIES: u32 = 1024;

/// Program names (the Rust function names in `toa-ebpf`'s origin binary).
pub const PROG_RECEIVER: &str = "toa_receiver";
/// See [`PROG_RECEIVER`].
pub const PROG_GETPEERNAME4: &str = "toa_getpeername4";
/// See [`PROG_RECEIVER`].
pub const PROG_GETPEERNAME6: &str = "toa_getpeername6";
/// See [`PROG_RECEIVER`].
pub const PROG_LOOKUP: &str = "toa_lookup";

/// Map names (at most 15 bytes: the kernel's object name limit).
pub const MAP_CONFIG: &str = "TOA_CONFIG";
/// [`TrustAddr`] prefix → 1: the trusted-proxy allowlist, two LPM tries of
/// which [`OriginConfig::trust_slot`] names the one in force. A change is
/// written whole into the other one before the config switches to it, so the
/// kernel never sees a list that is part old, part new.
pub const MAP_TRUST: [&str; 2] = ["TOA_TRUST0", "TOA_TRUST1"];
/// sk_storage: accepted socket → [`SocketToa`]. One map for every receiver on
/// the host (pinned once, reused by each load), so that with receivers on
/// nested cgroups the one nearest the socket decides and the others see it.
pub const MAP_SOCKETS: &str = "TOA_SOCKETS";
/// Per-CPU array of `u64`, indexed by [`Counter`].
pub const MAP_COUNTERS: &str = "TOA_COUNTERS";

/// Runtime configuration, the single entry of [`MAP_CONFIG`]. Updated in place
/// by `toa origin load` on an already loaded cgroup.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OriginConfig {
    /// Accepted option kinds; 0 marks an unused slot (kind 0 is End of Options).
    pub kinds: [u8; MAX_KINDS],
    /// 1: only TOAs from sources in [`MAP_TRUST`] are used; 0: every source is trusted.
    pub trust_enabled: u8,
    /// 1: the kernel lets a getsockopt program fail with any errno (Linux ≥
    /// 5.18), so the lookup answers "no TOA" with ENOENT. 0: older kernels turn
    /// any retval but 0 into EFAULT, so "no TOA" is a success with the all-zero
    /// answer [`LookupReply::NONE`](crate::LookupReply::NONE), which libtoa reads as ENOENT.
    pub lookup_errno: u8,
    /// Which of the two tries of [`MAP_TRUST`] is the trust list (0 or 1).
    pub trust_slot: u8,
    /// Explicit padding (zero).
    pub _pad: u8,
}

impl OriginConfig {
    /// Whether `kind` is one of the configured kinds.
    #[inline(always)]
    pub fn accepts(&self, kind: u8) -> bool {
        kind != 0
            && (kind == self.kinds[0]
                || kind == self.kinds[1]
                || kind == self.kinds[2]
                || kind == self.kinds[3])
    }
}

/// The socket reached TCP_CLOSE: the record is released (counted as
/// `ip6_address_free`) and reads as no TOA; its memory is freed with the
/// socket. Marking costs a byte store; deleting the record from the program
/// cost more than the rest of the receiver's work (see `on_close`).
pub const STATUS_RELEASED: u8 = 0;
/// The TOA was used: getpeername/accept and the lookup report the client.
pub const STATUS_TRUSTED: u8 = 1;
/// The TOA came from a source outside the allowlist and is ignored.
pub const STATUS_UNTRUSTED: u8 = 2;
/// The TOA came from a trusted source but names an address no client can
/// have (see [`crate::plausible`]) and is ignored.
pub const STATUS_INVALID: u8 = 3;
/// The handshake carried no TOA of the receiver's kinds. Recorded all the
/// same: receivers on ancestor cgroups run after the nearest one and must
/// find its decision, or one accepting other kinds or trusting other sources
/// would apply a TOA the nearest one ignored. Not counted as a record.
pub const STATUS_NO_TOA: u8 = 4;

/// What the receiver stored for one accepted socket (sk_storage value).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SocketToa {
    /// The address carried by the option.
    pub client: ClientAddr,
    /// [`STATUS_TRUSTED`], [`STATUS_UNTRUSTED`], [`STATUS_INVALID`],
    /// [`STATUS_NO_TOA`] or, once a socket with a TOA closed, [`STATUS_RELEASED`].
    pub status: u8,
    /// Explicit padding (zero).
    pub _pad: [u8; 3],
}

/// Data part of the allowlist's LPM trie key (the key is aya's
/// `lpm_trie::Key<TrustAddr>`: a `u32` prefix length, then this). IPv4
/// networks are stored v4-mapped (`::ffff:a.b.c.d/(96 + len)`), so one trie
/// serves both families and a proxy that reached a dual-stack listener over
/// IPv4 matches its IPv4 entry. The value is always 1.
pub type TrustAddr = [u8; 16];

crate::counters! {
    /// The origin's per-CPU counters, one row each in `toa origin stats`. The
    /// first eight keep toa.ko's `/proc/net/toa_stats` names and order; new ones
    /// go at the end, so existing rows keep their index and name.
    pub enum Counter {
        SynRecvSockToa = 0 {
            name: "syn_recv_sock_toa",
            help: "Handshakes completed with a usable TOA; address stored.",
        },
        /// The socket is left alone.
        SynRecvSockNoToa = 1 {
            name: "syn_recv_sock_no_toa",
            help: "Handshakes completed without a TOA of a configured kind.",
        },
        GetnameToaOk = 2 {
            name: "getname_toa_ok",
            help: "getpeername/accept calls rewritten to the client address.",
        },
        /// The family cannot change: the getsockopt lookup serves these.
        GetnameToaMismatch = 3 {
            name: "getname_toa_mismatch",
            help: "getpeername on an AF_INET socket whose TOA is IPv6 (left unchanged).",
        },
        GetnameToaBypass = 4 {
            name: "getname_toa_bypass",
            help: "getpeername on a socket whose TOA was ignored as untrusted (left unchanged).",
        },
        GetnameToaEmpty = 5 {
            name: "getname_toa_empty",
            help: "getpeername on a socket without TOA (left unchanged).",
        },
        /// One per socket with a TOA, whatever its status.
        Ip6AddressAlloc = 6 {
            name: "ip6_address_alloc",
            help: "Per-socket address records created.",
        },
        Ip6AddressFree = 7 {
            name: "ip6_address_free",
            help: "Per-socket address records released at TCP_CLOSE.",
        },
        /// Anti-spoofing: the sender is not in the `--trust` allowlist.
        SynRecvSockUntrusted = 8 {
            name: "syn_recv_sock_untrusted",
            help: "TOAs from sources outside the --trust list, ignored.",
        },
        /// Receivers on ancestor cgroups then decide for the socket.
        SynRecvSockNoMem = 9 {
            name: "syn_recv_sock_nomem",
            help: "Handshakes whose record could not be stored (no memory): TOA ignored.",
        },
        LookupToaOk = 10 {
            name: "lookup_toa_ok",
            help: "getsockopt(IPPROTO_IP, 4096) lookups answered.",
        },
        /// No trusted, plausible TOA on the socket.
        LookupToaEmpty = 11 {
            name: "lookup_toa_empty",
            help: "Lookups on sockets without (trusted) TOA: ENOENT.",
        },
        LookupShortBuffer = 12 {
            name: "lookup_short_buffer",
            help: "Lookups with a buffer under 18 bytes: EINVAL.",
        },
        /// A TOA carried only on the SYN (not on the handshake ACK) is lost on
        /// the listener's connections.
        ListenSaveSynFailed = 13 {
            name: "listen_save_syn_failed",
            help: "Listeners where TCP_SAVE_SYN could not be set (a SYN-only TOA is lost).",
        },
        SynRecvSockNoSk = 14 {
            name: "syn_recv_sock_no_sk",
            help: "Handshakes whose callback had no full socket: nothing stored.",
        },
        /// The record is still freed with the socket, but `ip6_address_free`
        /// will not count it.
        SynRecvSockCbFailed = 15 {
            name: "syn_recv_sock_cb_failed",
            help: "Records whose close callback could not be enabled (freed, not counted).",
        },
        /// 0.0.0.0, loopback, multicast, broadcast, ::, port 0, … (see
        /// [`crate::plausible`]).
        SynRecvSockInvalid = 16 {
            name: "syn_recv_sock_invalid",
            help: "Trusted TOAs naming an implausible client address: not applied.",
        },
        GetnameToaInvalid = 17 {
            name: "getname_toa_invalid",
            help: "getpeername on a socket whose TOA was implausible (left unchanged).",
        },
        /// With receivers on nested cgroups, the one nearest the socket runs
        /// first and decides; those on its ancestors count this and leave
        /// the record as it is.
        SynRecvSockNested = 18 {
            name: "syn_recv_sock_nested",
            help: "Handshakes already decided by a receiver on a nearer cgroup: left to it.",
        },
    }
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY (both): repr(C), Copy, plain data, padding explicit.
    unsafe impl aya::Pod for super::OriginConfig {}
    unsafe impl aya::Pod for super::SocketToa {}
}

#[cfg(test)]
mod tests {
    use super::Counter;

    #[test]
    fn every_counter_is_listed_once_in_index_order_with_its_own_name() {
        for (i, c) in Counter::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i, "{}", c.name());
        }
        let mut names: Vec<_> = Counter::ALL.iter().map(|c| c.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Counter::COUNT as usize);
        // `toa origin stats` pads names to 25 columns, as /proc/net/toa_stats.
        assert!(names.iter().all(|n| n.len() < 25), "{names:?}");
    }
}
