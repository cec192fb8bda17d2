//! Loading the origin programs, attaching them to the cgroup and pinning
//! programs, maps and links (so they outlive the loader, like `insmod`);
//! and the reverse, detaching and unpinning.

use super::pins::{
    link_pin, lock, pin_dir, prog_pin, remove_pins, remove_unused_shared_pins, sockets_pin,
};
use super::{Origin, PROGRAMS};
use crate::sys::{self, AttachType, link_create, obj_get, obj_pin};
use crate::trust::TrustedNet;
use crate::{LoaderError, Result};
use aya::programs::{CgroupSockAddr, CgroupSockopt, SockOps};
use aya::{EbpfLoader, include_bytes_aligned};
use std::fs::File;
use std::os::fd::AsFd;
use std::path::Path;
use toa_common::origin::{self as shared, OriginConfig};
use toa_host::{bpffs_root, preflight};

/// The origin programs, built by build.rs.
static ORIGIN_OBJECT: &[u8] = include_bytes_aligned!(concat!(env!("OUT_DIR"), "/toa-origin"));

/// The maps of one receiver, pinned next to its programs. The socket map is
/// shared by every receiver (`sockets_pin`).
const MAPS: [&str; 4] = [
    shared::MAP_CONFIG,
    shared::MAP_TRUST[0],
    shared::MAP_TRUST[1],
    shared::MAP_COUNTERS,
];

impl Origin {
    /// Detaches and unpins everything on `cgroup`. Returns false if nothing
    /// was loaded there.
    pub fn unload(cgroup: &Path) -> Result<bool> {
        preflight()?;
        let _lock = lock(&bpffs_root()?)?;
        let pins = pin_dir(cgroup)?;
        if !pins.exists() {
            return Ok(false);
        }
        let programs = Origin::open(cgroup)
            .and_then(|o| o.programs())
            .unwrap_or_default();
        // Unpinning alone detaches only after an RCU grace period and a
        // workqueue run (bpffs frees inodes asynchronously), so a `bpftool`
        // right after `unload` could still see the hooks. Detach explicitly,
        // then wait (bounded) until the kernel has freed the programs, so that
        // "unloaded" means nothing is left.
        for &(name, _) in PROGRAMS.iter() {
            if let Ok(link) = obj_get(&pins.join(link_pin(name))) {
                let _ = sys::link_detach(link.as_fd());
            }
        }
        remove_pins(&pins)?;
        remove_unused_shared_pins(&bpffs_root()?)?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        while programs.iter().any(|p| sys::prog_exists(p.program_id))
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        Ok(true)
    }

    pub(super) fn attach(&self, config: OriginConfig, trust: &[TrustedNet]) -> Result<()> {
        // The socket map is opened from its pin, or created and pinned by
        // the first load (the caller holds the lock, so only one does).
        let sockets = sockets_pin(&bpffs_root()?);
        let mut ebpf = EbpfLoader::new()
            .map_pin_path(shared::MAP_SOCKETS, sockets.as_path())
            .load(ORIGIN_OBJECT)
            .map_err(LoaderError::ebpf("loading the origin programs"))?;
        for name in MAPS {
            let map = ebpf.map(name).expect("map in object");
            map.pin(self.pins.join(name))
                .map_err(LoaderError::ebpf(format!("pinning map {name}")))?;
        }
        // Settings go in before any program is attached.
        self.apply(config, trust)?;
        let cgroup_fd =
            File::open(&self.cgroup).map_err(LoaderError::io("opening", &self.cgroup))?;
        for (name, attach) in PROGRAMS {
            let program = ebpf.program_mut(name).expect("program in object");
            let action = |what: &str| format!("{what} {name}");
            let prog_path = self.pins.join(prog_pin(name));
            // Only loading needs the concrete program type.
            match attach {
                AttachType::SockOps => <&mut SockOps>::try_from(&mut *program).map(|p| p.load()),
                AttachType::GetSockopt | AttachType::SetSockopt => {
                    <&mut CgroupSockopt>::try_from(&mut *program).map(|p| p.load())
                }
                AttachType::Inet4GetPeername | AttachType::Inet6GetPeername => {
                    <&mut CgroupSockAddr>::try_from(&mut *program).map(|p| p.load())
                }
                AttachType::SkLookup => unreachable!("the origin has no sk_lookup program"),
            }
            .map_err(LoaderError::ebpf(action("typing")))?
            .map_err(LoaderError::ebpf(action("loading (verifier)")))?;
            program
                .pin(&prog_path)
                .map_err(LoaderError::ebpf(action("pinning")))?;
            let prog_fd = program
                .fd()
                .map_err(LoaderError::ebpf(action("opening")))?
                .as_fd()
                .try_clone_to_owned()
                .map_err(LoaderError::io("duplicating the fd of", &prog_path))?;
            let link = link_create(prog_fd.as_fd(), cgroup_fd.as_fd(), attach)
                .map_err(LoaderError::ebpf(action("attaching")))?;
            let link_path = self.pins.join(link_pin(name));
            obj_pin(link.as_fd(), &link_path)
                .map_err(LoaderError::ebpf(action("pinning the link of")))?;
        }
        Ok(())
    }
}
