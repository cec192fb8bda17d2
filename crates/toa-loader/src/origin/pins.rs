//! Where a receiver's pins live and how they are named and removed: one
//! directory per cgroup under `/run/toa/bpffs/origin/`, named by the cgroup's
//! inode so every path to the cgroup finds the same pins. `origin/` and every
//! pin directory are created 0700, and nothing there is used unless root
//! alone can change it (`toa_host::check_private`).

use super::PROGRAMS;
use crate::sys::{link_cgroup_id, obj_get};
use crate::{LoaderError, Result};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use toa_common::origin as shared;
use toa_host::{bpffs_root, check_private, create_private_dir, inode};

/// Removes the pins of receivers whose cgroup no longer exists: their links
/// are defunct and would otherwise hold programs and maps forever. Run on
/// every load, so a cgroup removed without `unload` leaks only until then.
pub(super) fn remove_defunct_pins(bpffs: &Path) {
    let Ok(entries) = std::fs::read_dir(bpffs.join("origin")) else {
        return;
    };
    for entry in entries.flatten() {
        let receiver = entry.path().join(link_pin(shared::PROG_RECEIVER));
        let defunct = match obj_get(&receiver) {
            Ok(link) => link_cgroup_id(link.as_fd()).is_ok_and(|id| id == 0),
            // No receiver link yet: possibly a load in progress; leave it.
            Err(_) => false,
        };
        if defunct {
            // Best effort: a concurrent unload may be removing it too.
            let _ = remove_pins(&entry.path());
        }
    }
}

/// Every program's link is pinned in `pins`.
pub(super) fn has_all_links(pins: &Path) -> bool {
    PROGRAMS
        .iter()
        .all(|(name, _)| pins.join(link_pin(name)).exists())
}

/// A receiver's pin directory is this followed by its cgroup's inode.
pub(super) const CGROUP_PREFIX: &str = "cgroup-";

/// The pin directory of `cgroup`, checked: it, `origin/` above it and every
/// pin in it are root's alone (or do not exist yet).
pub(super) fn pin_dir(cgroup: &Path) -> Result<PathBuf> {
    let ino = inode(cgroup)?;
    let origin = bpffs_root()?.join("origin");
    check_private(&origin)?;
    let pins = origin.join(format!("{CGROUP_PREFIX}{ino}"));
    check_pin_dir(&pins)?;
    Ok(pins)
}

/// Fails unless `pins` (if it exists) and everything in it are root's alone.
pub(super) fn check_pin_dir(pins: &Path) -> Result<()> {
    check_private(pins)?;
    let entries = match std::fs::read_dir(pins) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(LoaderError::io("reading", pins)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(LoaderError::io("reading", pins))?;
        check_private(&entry.path())?;
    }
    Ok(())
}

/// Creates `pins` and `origin/` above it, both 0700 (or checks them).
pub(super) fn create_pin_dir(pins: &Path) -> Result<()> {
    if let Some(origin) = pins.parent() {
        create_private_dir(origin)?;
    }
    Ok(create_private_dir(pins)?)
}

pub(super) fn prog_pin(name: &str) -> String {
    format!("prog_{name}")
}

pub(super) fn link_pin(name: &str) -> String {
    format!("link_{name}")
}

/// Removes a pin directory; unpinned links detach, unpinned programs and maps
/// are freed once nothing else holds them.
pub(super) fn remove_pins(pins: &Path) -> Result<()> {
    match std::fs::remove_dir_all(pins) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LoaderError::Io {
            action: "removing",
            path: pins.to_path_buf(),
            source: e,
        }),
    }
}

/// The per-socket records every receiver on the host shares (see
/// [`shared::MAP_SOCKETS`]): outside the per-cgroup directories.
pub(super) fn sockets_pin(bpffs: &Path) -> PathBuf {
    bpffs.join("origin").join(shared::MAP_SOCKETS)
}

/// Removes the shared socket map's pin once no receiver is left, so that
/// unloading the last one leaves nothing behind. Called under [`lock`].
pub(super) fn remove_unused_shared_pins(bpffs: &Path) -> Result<()> {
    let dir = bpffs.join("origin");
    let in_use = std::fs::read_dir(&dir)
        .map_err(LoaderError::io("reading", &dir))?
        .flatten()
        .any(|e| e.file_name().to_string_lossy().starts_with(CGROUP_PREFIX));
    if in_use {
        return Ok(());
    }
    let path = sockets_pin(bpffs);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(LoaderError::io("removing", &path)(e))
        }
        _ => Ok(()),
    }
}

/// Held while a receiver is loaded or unloaded: the first load creates the
/// shared socket map and the last unload removes it, so loads and unloads on
/// this host take turns. Released when dropped.
pub(super) struct PinLock(#[expect(dead_code, reason = "held for its drop")] std::fs::File);

pub(super) fn lock(bpffs: &Path) -> Result<PinLock> {
    use std::os::fd::AsRawFd;
    let dir = bpffs.join("origin");
    create_private_dir(&dir)?;
    // Reused by every load: root's alone, like every other pin.
    check_private(&sockets_pin(bpffs))?;
    let file = std::fs::File::open(&dir).map_err(LoaderError::io("opening", &dir))?;
    loop {
        // SAFETY: flock on a descriptor we own; released when it is closed.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
            return Ok(PinLock(file));
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(LoaderError::io("locking", &dir)(err));
        }
    }
}
