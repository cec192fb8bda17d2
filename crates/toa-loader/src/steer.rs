//! The port steerer for the proxy: an sk_lookup program attached to this process's own
//! network namespace, which hands every port of a range to one socket. Nothing is
//! pinned: the attachment is a bpf_link held only by this process, so it goes away with
//! the process, on a crash too, and a restarted proxy never meets a stale steerer (a
//! pinned one would keep steering ports to sockets nobody accepts on).

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Mutex;

use aya::maps::{Array, MapData, PerCpuArray, SockMap};
use aya::programs::SkLookup;
use aya::{Ebpf, include_bytes_aligned};
use toa_common::steer::{self as shared, MAX_RANGES, SteerCounter, SteerRange};
use toa_host::preflight;

use crate::counters::Counters;
use crate::sys::{AttachType, link_create};
use crate::{LoaderError, Result};

/// The steer program, built by build.rs.
static STEER_OBJECT: &[u8] = include_bytes_aligned!(concat!(env!("OUT_DIR"), "/toa-steer"));

/// The network namespace this process's sockets live in.
const OWN_NETNS: &str = "/proc/self/ns/net";

/// A snapshot of the steerer's counters.
pub type SteerCounters = Counters<SteerCounter>;

/// The steerer attached to this process's network namespace; dropping it detaches.
/// Ranges are added to free slots, so a replacement is installed before the range it
/// replaces is removed and a port that stays is never without a socket.
pub struct PortSteerer {
    _link: OwnedFd,
    maps: Mutex<Maps>,
    counters: PerCpuArray<MapData, u64>,
}

struct Maps {
    ranges: Array<MapData, SteerRange>,
    sockets: SockMap<MapData>,
    used: [bool; MAX_RANGES as usize],
}

impl PortSteerer {
    /// Loads the steerer and attaches it to this process's network namespace. Needs
    /// CAP_BPF and CAP_NET_ADMIN (or CAP_SYS_ADMIN) and Linux 5.9 or later.
    pub fn attach_to_own_netns() -> Result<PortSteerer> {
        let mut ebpf = load()?;
        let program: &mut SkLookup = ebpf
            .program_mut(shared::PROG_STEER)
            .expect("steerer in object")
            .try_into()
            .map_err(LoaderError::ebpf("typing the port steerer"))?;
        let netns = File::open(OWN_NETNS).map_err(LoaderError::io("opening", OWN_NETNS))?;
        let program_fd = program
            .fd()
            .map_err(LoaderError::ebpf("opening the port steerer"))?;
        let link = link_create(program_fd.as_fd(), netns.as_fd(), AttachType::SkLookup).map_err(
            LoaderError::ebpf("attaching the port steerer to the network namespace"),
        )?;
        let mut take = |name: &str| ebpf.take_map(name).expect("steer map in object");
        let ranges = Array::try_from(take(shared::MAP_RANGES))
            .map_err(LoaderError::ebpf("opening the steered ranges"))?;
        let sockets = SockMap::try_from(take(shared::MAP_SOCKETS))
            .map_err(LoaderError::ebpf("opening the steered sockets"))?;
        let counters = PerCpuArray::try_from(take(shared::MAP_COUNTERS))
            .map_err(LoaderError::ebpf("opening the steer counters"))?;
        // The link keeps the program, and the program its maps, alive after `ebpf` drops.
        Ok(PortSteerer {
            _link: link,
            maps: Mutex::new(Maps {
                ranges,
                sockets,
                used: [false; MAX_RANGES as usize],
            }),
            counters,
        })
    }

    /// Whether this process could attach the steerer: loads it (the verifier runs) and
    /// drops it again, attached nowhere. `toa proxy check` asks before counting on it.
    pub fn probe() -> Result<()> {
        load().map(drop)
    }

    /// Steers `range` to `socket` (a listening TCP socket or an unconnected UDP one;
    /// the map holds its own reference) in a free slot, which it returns.
    pub fn add(&self, range: SteerRange, socket: BorrowedFd<'_>) -> Result<u32> {
        let mut maps = self.maps.lock().unwrap_or_else(|p| p.into_inner());
        let slot = maps
            .used
            .iter()
            .position(|used| !used)
            .ok_or(LoaderError::TooManyRanges { max: MAX_RANGES })? as u32;
        // The socket first: the range never points to an empty slot it could miss on.
        maps.sockets
            .set(slot, &socket, 0)
            .map_err(LoaderError::ebpf("adding a steered socket"))?;
        if let Err(e) = maps.ranges.set(slot, range, 0) {
            let _ = maps.sockets.clear_index(&slot);
            return Err(LoaderError::ebpf("adding a steered range")(e));
        }
        maps.used[slot as usize] = true;
        Ok(slot)
    }

    /// Changes the last port of the range in `slot` (same socket, same first port). The
    /// kernel copies the whole entry, and only `last` differs.
    pub fn set_last(&self, slot: u32, range: SteerRange) -> Result<()> {
        let mut maps = self.maps.lock().unwrap_or_else(|p| p.into_inner());
        maps.ranges
            .set(slot, range, 0)
            .map_err(LoaderError::ebpf("changing a steered range"))
    }

    /// Stops steering the range in `slot` and releases its socket.
    pub fn remove(&self, slot: u32) {
        let mut maps = self.maps.lock().unwrap_or_else(|p| p.into_inner());
        // The range first, then the socket: a lookup between the two steps still finds
        // the socket or no range at all. Writes to a held array map and sockmap fail
        // only out of memory; the slot is then left used, never reused half-cleared.
        let freed = maps.ranges.set(slot, SteerRange::default(), 0).is_ok()
            && maps.sockets.clear_index(&slot).is_ok();
        if freed && let Some(used) = maps.used.get_mut(slot as usize) {
            *used = false;
        }
    }

    /// Every counter of [`SteerCounter::ALL`] with its total over CPUs (zeros if the map
    /// cannot be read).
    pub fn totals(&self) -> Vec<(SteerCounter, u64)> {
        Counters::read(&self.counters)
            .unwrap_or_else(|_| SteerCounters::zero())
            .totals()
            .collect()
    }
}

/// The steerer's object with its program loaded into the kernel (not attached).
fn load() -> Result<Ebpf> {
    preflight()?;
    let mut ebpf =
        Ebpf::load(STEER_OBJECT).map_err(LoaderError::ebpf("loading the port steerer"))?;
    let program: &mut SkLookup = ebpf
        .program_mut(shared::PROG_STEER)
        .expect("steerer in object")
        .try_into()
        .map_err(LoaderError::ebpf("typing the port steerer"))?;
    program.load().map_err(LoaderError::ebpf(
        "loading the port steerer (sk_lookup needs Linux 5.9 or later)",
    ))?;
    Ok(ebpf)
}

impl std::fmt::Debug for PortSteerer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortSteerer").finish_non_exhaustive()
    }
}
