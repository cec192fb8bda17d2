//! Readers for the per-CPU counter arrays: a snapshot with one documented
//! accessor per counter (summed over CPUs) and the per-CPU columns for
//! `toa origin stats`.

use crate::{LoaderError, Result};
use aya::maps::{Map, MapData, PerCpuArray};
use std::path::Path;
use toa_common::edge::EdgeCounter;
use toa_common::origin::Counter;

/// Reads every counter of a per-CPU `u64` array: `rows[counter][cpu]`.
pub(crate) fn read_per_cpu(map: &PerCpuArray<MapData, u64>, rows: usize) -> Result<Vec<Vec<u64>>> {
    (0..rows as u32)
        .map(|i| {
            let values = map
                .get(&i, 0)
                .map_err(LoaderError::ebpf("reading counters"))?;
            Ok(values.iter().copied().collect())
        })
        .collect()
}

/// Opens a pinned per-CPU counter array.
pub(crate) fn open_pinned(path: &Path) -> Result<PerCpuArray<MapData, u64>> {
    let data = MapData::from_pin(path)
        .map_err(LoaderError::ebpf(format!("opening {}", path.display())))?;
    let map = Map::from_map_data(data).map_err(LoaderError::ebpf("opening counters"))?;
    PerCpuArray::try_from(map).map_err(LoaderError::ebpf("opening counters"))
}

/// A snapshot of the origin receiver's counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OriginCounters {
    rows: Vec<Vec<u64>>,
}

impl OriginCounters {
    pub(crate) fn read(path: &Path) -> Result<OriginCounters> {
        let rows = read_per_cpu(&open_pinned(path)?, Counter::COUNT as usize)?;
        Ok(OriginCounters { rows })
    }

    /// Number of CPU columns (possible CPUs).
    pub fn cpus(&self) -> usize {
        self.rows.first().map_or(0, Vec::len)
    }

    /// One counter, per CPU.
    pub fn per_cpu(&self, counter: Counter) -> &[u64] {
        &self.rows[counter as usize]
    }

    /// One counter, summed over CPUs.
    pub fn total(&self, counter: Counter) -> u64 {
        self.per_cpu(counter).iter().sum()
    }

    /// Handshakes that carried a usable TOA (address stored).
    pub fn syn_recv_sock_toa(&self) -> u64 {
        self.total(Counter::SynRecvSockToa)
    }
    /// Handshakes without a TOA of a configured kind.
    pub fn syn_recv_sock_no_toa(&self) -> u64 {
        self.total(Counter::SynRecvSockNoToa)
    }
    /// getpeername/accept calls rewritten to the client.
    pub fn getname_toa_ok(&self) -> u64 {
        self.total(Counter::GetnameToaOk)
    }
    /// getpeername on AF_INET sockets with an IPv6 TOA (left unchanged).
    pub fn getname_toa_mismatch(&self) -> u64 {
        self.total(Counter::GetnameToaMismatch)
    }
    /// getpeername on sockets whose TOA was ignored as untrusted.
    pub fn getname_toa_bypass(&self) -> u64 {
        self.total(Counter::GetnameToaBypass)
    }
    /// getpeername on sockets without TOA.
    pub fn getname_toa_empty(&self) -> u64 {
        self.total(Counter::GetnameToaEmpty)
    }
    /// Per-socket address records created.
    pub fn ip6_address_alloc(&self) -> u64 {
        self.total(Counter::Ip6AddressAlloc)
    }
    /// Per-socket address records released at close.
    pub fn ip6_address_free(&self) -> u64 {
        self.total(Counter::Ip6AddressFree)
    }
    /// TOAs from untrusted sources, ignored.
    pub fn syn_recv_sock_untrusted(&self) -> u64 {
        self.total(Counter::SynRecvSockUntrusted)
    }
    /// TOAs found but not stored (no memory for the record).
    pub fn syn_recv_sock_nomem(&self) -> u64 {
        self.total(Counter::SynRecvSockNoMem)
    }
    /// getsockopt(IPPROTO_IP, 4096) lookups answered.
    pub fn lookup_toa_ok(&self) -> u64 {
        self.total(Counter::LookupToaOk)
    }
    /// Lookups on sockets without (trusted) TOA: ENOENT.
    pub fn lookup_toa_empty(&self) -> u64 {
        self.total(Counter::LookupToaEmpty)
    }
    /// Lookups with a buffer under 18 bytes: EINVAL.
    pub fn lookup_short_buffer(&self) -> u64 {
        self.total(Counter::LookupShortBuffer)
    }
    /// Listeners on which TCP_SAVE_SYN could not be set.
    pub fn listen_save_syn_failed(&self) -> u64 {
        self.total(Counter::ListenSaveSynFailed)
    }
    /// Handshakes whose callback had no full socket.
    pub fn syn_recv_sock_no_sk(&self) -> u64 {
        self.total(Counter::SynRecvSockNoSk)
    }
    /// Stored records whose close callback could not be switched on.
    pub fn syn_recv_sock_cb_failed(&self) -> u64 {
        self.total(Counter::SynRecvSockCbFailed)
    }
    /// Trusted TOAs with an implausible client address, not applied.
    pub fn syn_recv_sock_invalid(&self) -> u64 {
        self.total(Counter::SynRecvSockInvalid)
    }
    /// getpeername on sockets whose TOA was implausible.
    pub fn getname_toa_invalid(&self) -> u64 {
        self.total(Counter::GetnameToaInvalid)
    }
}

/// The edge writer's counters, summed over CPUs. [`EdgeStats::total`] reads
/// any of them by [`EdgeCounter`] (exhaustive: a new counter needs a field).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EdgeStats {
    /// Options written into outgoing packets.
    pub written: u64,
    /// Packets that had no room for the option (-ENOSPC) and went out without it.
    pub reserve_failed: u64,
    /// Reserved options that could not be written.
    pub store_failed: u64,
    /// Connections whose callbacks could not be switched on (no TOA at all).
    pub flags_failed: u64,
    /// connect() calls on registered sockets.
    pub connects_registered: u64,
    /// connect() calls on sockets nobody registered (left alone).
    pub connects_unregistered: u64,
    /// Connections where writing stopped at the origin's first packet.
    pub writing_stopped: u64,
    /// Connections where writing could not be switched off (option kept going out).
    pub stop_failed: u64,
    /// Packets sent without TOA because the writer's config (kind) was missing.
    pub config_missing: u64,
}

impl EdgeStats {
    pub(crate) fn read(map: &PerCpuArray<MapData, u64>) -> Result<EdgeStats> {
        let rows = read_per_cpu(map, EdgeCounter::COUNT as usize)?;
        let sum = |c: EdgeCounter| rows[c as usize].iter().sum();
        Ok(EdgeStats {
            written: sum(EdgeCounter::OptionsWritten),
            reserve_failed: sum(EdgeCounter::ReserveFailed),
            store_failed: sum(EdgeCounter::StoreFailed),
            flags_failed: sum(EdgeCounter::FlagsFailed),
            connects_registered: sum(EdgeCounter::ConnectRegistered),
            connects_unregistered: sum(EdgeCounter::ConnectUnregistered),
            writing_stopped: sum(EdgeCounter::WritingStopped),
            stop_failed: sum(EdgeCounter::StopFailed),
            config_missing: sum(EdgeCounter::ConfigMissing),
        })
    }

    /// One counter, by id (e.g. to export every counter in a loop over
    /// [`EdgeCounter::ALL`], named by [`EdgeCounter::name`]).
    pub fn total(&self, counter: EdgeCounter) -> u64 {
        match counter {
            EdgeCounter::ConnectRegistered => self.connects_registered,
            EdgeCounter::ConnectUnregistered => self.connects_unregistered,
            EdgeCounter::OptionsWritten => self.written,
            EdgeCounter::ReserveFailed => self.reserve_failed,
            EdgeCounter::StoreFailed => self.store_failed,
            EdgeCounter::FlagsFailed => self.flags_failed,
            EdgeCounter::WritingStopped => self.writing_stopped,
            EdgeCounter::StopFailed => self.stop_failed,
            EdgeCounter::ConfigMissing => self.config_missing,
            // Sizes the array; not a counter, never in EdgeCounter::ALL.
            EdgeCounter::COUNT => 0,
        }
    }
}
