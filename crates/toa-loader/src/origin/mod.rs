//! The origin receiver on one cgroup: load, attach and pin (so it outlives the
//! loading process, like `insmod`), update the config in place, report, and
//! unload (detach and unpin, nothing left).
//!
//! Pins live in `/run/toa/bpffs/origin/cgroup-<inode>/`: one directory per
//! cgroup, named by the cgroup's inode so every path to it finds the same pins,
//! used only while root alone can change them.
//!
//! # Layout
//! - this file: the [`Origin`] handle, [`Origin::load`] and what it reports.
//! - `attach`: load, attach and pin; detach and unpin ([`Origin::unload`]).
//! - `settings`: the config and trust list, read back and updated in place.
//! - `pins`: the pin directory, its names and its removal.
//! - `discover`: every cgroup the receiver is attached to ([`Origin::attached`]).

mod attach;
mod discover;
mod pins;
mod settings;

use crate::counters::OriginCounters;
use crate::settings::{Settings, TrustAny};
use crate::sys::AttachType;
use crate::{LoaderError, Result};
use aya::programs::links::{FdLink, PinnedLink};
use pins::{
    create_pin_dir, has_all_links, link_pin, lock, pin_dir, remove_defunct_pins, remove_pins,
    remove_unused_shared_pins,
};
use std::path::{Path, PathBuf};
use toa_common::origin as shared;
use toa_host::{bpffs_root, preflight, require_cgroup2};

/// The programs, in attach order (the receiver first, so no socket is
/// rewritten before its TOA can be recorded).
const PROGRAMS: [(&str, AttachType); 4] = [
    (shared::PROG_RECEIVER, AttachType::SockOps),
    (shared::PROG_GETPEERNAME4, AttachType::Inet4GetPeername),
    (shared::PROG_GETPEERNAME6, AttachType::Inet6GetPeername),
    (shared::PROG_LOOKUP, AttachType::GetSockopt),
];

/// What [`Origin::load`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoadOutcome {
    /// Programs were loaded, attached and pinned.
    Attached,
    /// Already attached: kinds and trust list were updated in place; these
    /// were the settings before.
    Updated { before: Settings },
}

/// One attached program, as seen through its pinned link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttachedProgram {
    pub name: &'static str,
    pub program_id: u32,
    pub link_id: u32,
}

/// The origin receiver attached to one cgroup (a handle to its pins).
#[derive(Debug)]
pub struct Origin {
    cgroup: PathBuf,
    pins: PathBuf,
}

impl Origin {
    /// Loads, attaches and pins the receiver on `cgroup`; if it is already
    /// attached there, updates kinds and trust list in place instead. Bad
    /// settings, and an empty trust list without [`TrustAny::Allow`], are
    /// rejected before anything changes; a failed update keeps the old
    /// settings whole; a failed first load leaves nothing behind.
    ///
    /// Receivers may sit on nested cgroups (a node-wide default, narrower
    /// ones on some pods): for each socket the one nearest it decides, with
    /// its own kinds and trust list, and the others leave it alone.
    pub fn load(
        cgroup: &Path,
        settings: &Settings,
        trust_any: TrustAny,
    ) -> Result<(Origin, LoadOutcome)> {
        let mut config = settings.to_config()?;
        preflight()?;
        config.lookup_errno = u8::from(toa_host::lookup_errno_supported());
        require_cgroup2(cgroup)?;
        let bpffs = bpffs_root()?;
        let _lock = lock(&bpffs)?;
        remove_defunct_pins(&bpffs);
        let origin = Origin {
            cgroup: cgroup.to_path_buf(),
            pins: pin_dir(cgroup)?,
        };
        if origin.is_attached() {
            let before = origin.settings()?;
            settings.check_trust(Some(&before), trust_any, cgroup)?;
            origin.apply(config, &settings.trust)?;
            return Ok((origin, LoadOutcome::Updated { before }));
        }
        settings.check_trust(None, trust_any, cgroup)?;
        // Leftovers of a cgroup that was removed, or of a crash mid-load.
        remove_pins(&origin.pins)?;
        create_pin_dir(&origin.pins)?;
        if let Err(err) = origin.attach(config, &settings.trust) {
            let _ = remove_pins(&origin.pins);
            let _ = remove_unused_shared_pins(&bpffs);
            return Err(err);
        }
        Ok((origin, LoadOutcome::Attached))
    }

    /// The receiver attached to `cgroup`, or [`LoaderError::NotLoaded`].
    pub fn open(cgroup: &Path) -> Result<Origin> {
        let origin = Origin {
            cgroup: cgroup.to_path_buf(),
            pins: pin_dir(cgroup)?,
        };
        if origin.is_attached() {
            Ok(origin)
        } else {
            Err(LoaderError::NotLoaded {
                cgroup: cgroup.to_path_buf(),
            })
        }
    }

    /// The cgroup this receiver is attached to (as given).
    pub fn cgroup(&self) -> &Path {
        &self.cgroup
    }

    /// The bpffs directory holding the pins.
    pub fn pin_dir(&self) -> &Path {
        &self.pins
    }

    /// The attached programs, read from their pinned links.
    pub fn programs(&self) -> Result<Vec<AttachedProgram>> {
        PROGRAMS
            .iter()
            .map(|&(name, _)| {
                let path = self.pins.join(link_pin(name));
                let link = PinnedLink::from_pin(&path)
                    .map_err(LoaderError::ebpf(format!("opening {}", path.display())))?;
                let info = FdLink::from(link)
                    .info()
                    .map_err(LoaderError::ebpf("reading link info"))?;
                Ok(AttachedProgram {
                    name,
                    program_id: info.program_id(),
                    link_id: info.id(),
                })
            })
            .collect()
    }

    /// The per-CPU counters.
    pub fn counters(&self) -> Result<OriginCounters> {
        OriginCounters::read_pinned(&self.pins.join(shared::MAP_COUNTERS))
    }

    fn is_attached(&self) -> bool {
        has_all_links(&self.pins)
    }
}
