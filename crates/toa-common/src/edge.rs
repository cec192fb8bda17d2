//! The edge writer's shared definitions: the client registered per upstream
//! socket, the config and the counters behind `EdgeStats`.

/// Program name of the writer (sock_ops) in `toa-ebpf`'s edge binary.
pub const PROG_WRITER: &str = "toa_writer";

/// sk_storage: upstream socket → [`EdgeClient`], filled by the proxy before connect().
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
    pub _pad: [u8; 3],
}

/// The client of one upstream connection, registered by the proxy.
/// The address picks the option form (`toa_wire::toa::len_for`): 8 bytes for
/// IPv4 (stored v4-mapped, as `ClientAddr::from_socket_addr` stores v4-mapped
/// IPv6 clients too), 20 bytes for IPv6, whatever family the upstream socket has.
pub type EdgeClient = crate::ClientAddr;

/// The edge writer's per-CPU counters.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EdgeCounter {
    /// connect() on a registered socket: option writing switched on.
    ConnectRegistered = 0,
    /// connect() on a socket nobody registered: left alone.
    ConnectUnregistered,
    /// Options written into outgoing packets (SYN, retransmits, ACK, early data).
    OptionsWritten,
    /// No room left in the TCP header (-ENOSPC from reserve): packet sent without TOA.
    ReserveFailed,
    /// Writing the reserved option failed: packet sent without TOA.
    StoreFailed,
    /// The callback flags could not be set: connection left without TOA.
    FlagsFailed,
    /// First packet from the server after the handshake: writing stopped.
    WritingStopped,
    /// Writing could not be switched off at the server's first packet: the
    /// option keeps going out (harmless, the receiver reads the first one).
    StopFailed,
    /// The writer's config (the option kind) is missing or zero: packet sent
    /// without TOA.
    ConfigMissing,
    /// Number of counters; sizes the per-CPU array.
    COUNT,
}

impl EdgeCounter {
    /// Every counter, in row order.
    pub const ALL: [EdgeCounter; EdgeCounter::COUNT as usize] = [
        EdgeCounter::ConnectRegistered,
        EdgeCounter::ConnectUnregistered,
        EdgeCounter::OptionsWritten,
        EdgeCounter::ReserveFailed,
        EdgeCounter::StoreFailed,
        EdgeCounter::FlagsFailed,
        EdgeCounter::WritingStopped,
        EdgeCounter::StopFailed,
        EdgeCounter::ConfigMissing,
    ];

    /// Row / metric name.
    pub const fn name(self) -> &'static str {
        match self {
            EdgeCounter::ConnectRegistered => "connect_registered",
            EdgeCounter::ConnectUnregistered => "connect_unregistered",
            EdgeCounter::OptionsWritten => "options_written",
            EdgeCounter::ReserveFailed => "reserve_failed",
            EdgeCounter::StoreFailed => "store_failed",
            EdgeCounter::FlagsFailed => "flags_failed",
            EdgeCounter::WritingStopped => "writing_stopped",
            EdgeCounter::StopFailed => "stop_failed",
            EdgeCounter::ConfigMissing => "config_missing",
            EdgeCounter::COUNT => "count",
        }
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
