//! The edge writer's shared definitions: the client registered per upstream
//! socket, the config and the counters.

/// Program name of the writer (sock_ops) in `toa-ebpf`'s edge binary.
pub const PROG_WRITER: &str = "toa_writer";
/// Program name of the registration hook (cgroup/setsockopt) in the same binary.
pub const PROG_REGISTER: &str = "toa_register";

/// `setsockopt(fd, SOL_TCP, REGISTER_OPTNAME, &EdgeRegistration, 32)` registers an
/// upstream socket's client with the writer: the [`PROG_REGISTER`] hook checks the
/// token, stores the client and turns the call into `TCP_NODELAY = 1`, which the proxy
/// sets on every upstream socket anyway, so TOA costs no system call of its own.
/// Without the hook, or with another writer's token, the kernel answers ENOPROTOOPT
/// (TCP has no such option; it is "TOAR").
pub const REGISTER_OPTNAME: i32 = 0x544F_4152;

/// sk_storage: upstream socket → [`EdgeClient`], filled through [`REGISTER_OPTNAME`]
/// before connect().
pub const MAP_CLIENTS: &str = "TOA_EDGE_CLIENT";
/// The single [`EdgeConfig`].
pub const MAP_CONFIG: &str = "TOA_EDGE_CONFIG";
/// Per-CPU array of `u64`, indexed by [`EdgeCounter`].
pub const MAP_COUNTERS: &str = "TOA_EDGE_STATS";

/// The writer's configuration, the single entry of [`MAP_CONFIG`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EdgeConfig {
    /// Option kind written (254 by default, 200 for Tencent-CLB-style receivers).
    pub kind: u8,
    /// Explicit padding (zero).
    pub _pad: [u8; 7],
    /// Random per attachment, known only to the process that attached the writer: a
    /// registration must carry it ([`EdgeRegistration::token`]), so another process in
    /// the same cgroup cannot make its own connections carry a client address of its
    /// choosing, and two proxies in one cgroup (a restart overlap) each keep their own.
    pub token: u64,
}

/// The value of a [`REGISTER_OPTNAME`] setsockopt.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EdgeRegistration {
    pub client: EdgeClient,
    /// Explicit padding (zero).
    pub _pad: [u8; 4],
    /// The writer's [`EdgeConfig::token`].
    pub token: u64,
}

const _: () = assert!(core::mem::size_of::<EdgeRegistration>() == 32);

/// The client of one upstream connection, registered by the proxy.
/// The address picks the option form (`toa_wire::toa::len_for`): 8 bytes for
/// IPv4 (stored v4-mapped, as `ClientAddr::from_socket_addr` stores v4-mapped
/// IPv6 clients too), 20 bytes for IPv6, whatever family the upstream socket has.
pub type EdgeClient = crate::ClientAddr;

crate::counters! {
    /// The edge writer's per-CPU counters.
    pub enum EdgeCounter {
        ConnectRegistered = 0 {
            name: "connect_registered",
            help: "connect() calls on registered sockets: option writing switched on.",
        },
        ConnectUnregistered = 1 {
            name: "connect_unregistered",
            help: "connect() calls on sockets nobody registered: left alone.",
        },
        OptionsWritten = 2 {
            name: "options_written",
            help: "Options written into outgoing packets (SYN, retransmits, ACK, early data).",
        },
        /// -ENOSPC from reserve.
        ReserveFailed = 3 {
            name: "reserve_failed",
            help: "Packets with no room left in the TCP header, sent without TOA.",
        },
        StoreFailed = 4 {
            name: "store_failed",
            help: "Reserved options that could not be written: packet sent without TOA.",
        },
        FlagsFailed = 5 {
            name: "flags_failed",
            help: "Connections whose callback flags could not be set: no TOA at all.",
        },
        WritingStopped = 6 {
            name: "writing_stopped",
            help: "Connections where writing stopped at the server's first packet.",
        },
        /// Harmless: the receiver reads the first option it sees.
        StopFailed = 7 {
            name: "stop_failed",
            help: "Connections where writing could not be switched off (the option keeps going out).",
        },
        ConfigMissing = 8 {
            name: "config_missing",
            help: "Packets sent without TOA because the writer's config (the kind) was missing or zero.",
        },
        Registered = 9 {
            name: "registered",
            help: "Upstream sockets registered (their client stored, TCP_NODELAY set) before connect().",
        },
        /// The kernel could not allocate the socket's storage; the proxy sees EPERM.
        RegisterFailed = 10 {
            name: "register_failed",
            help: "Registrations refused because the client could not be stored: the proxy closes that client.",
        },
        RegisterMalformed = 11 {
            name: "register_malformed",
            help: "Registrations refused because the value was shorter than a registration.",
        },
        RegisterForeign = 12 {
            name: "register_foreign",
            help: "Registrations with another writer's token (another proxy in this cgroup, or a forgery): not stored here.",
        },
    }
}

#[cfg(feature = "user")]
// SAFETY: repr(C), Copy, plain data, padding explicit.
unsafe impl aya::Pod for EdgeConfig {}

#[cfg(test)]
mod tests {
    use super::EdgeCounter;

    #[test]
    fn every_edge_counter_is_listed_once_in_index_order_with_its_own_name() {
        for (i, c) in EdgeCounter::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i, "{}", c.name());
        }
        let mut names: Vec<_> = EdgeCounter::ALL.iter().map(|c| c.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), EdgeCounter::COUNT as usize);
    }
}
