//! Where toa keeps state that outlives it (pins): only where root alone can
//! change it. A user who can write there could rename a receiver's pins away
//! (`unload` then says "nothing loaded" while the receiver stays attached) or
//! put their own in their place. Checked before use, and created that way.
//!
//! "Root" is uid 0 or this process's own effective uid: toa run with
//! capabilities but without uid 0 owns what it pins.

use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::Path;

use crate::HostError;

type Result<T> = std::result::Result<T, HostError>;

/// What makes a path unfit to hold toa's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exposure {
    /// A symbolic link: whoever made it chose where toa's state goes.
    Symlink,
    /// Owned by another user, who can change its mode and contents.
    Owner { uid: u32 },
    /// Group or others may write to it.
    Writable { mode: u32 },
    /// Others may write to the mount's root and it lacks the sticky bit, so
    /// they can rename or remove what toa made there.
    NotSticky { mode: u32 },
}

impl std::fmt::Display for Exposure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Exposure::Symlink => write!(f, "it is a symbolic link"),
            Exposure::Owner { uid } => write!(f, "it is owned by uid {uid}, not root"),
            Exposure::Writable { mode } => {
                write!(f, "group or others can write to it (mode {mode:04o})")
            }
            Exposure::NotSticky { mode } => write!(
                f,
                "others can write to it and it has no sticky bit (mode {mode:04o})"
            ),
        }
    }
}

/// Fails unless `path`, if it exists, is root's alone: not a symlink, owned
/// by root, writable by nobody else. A missing path passes: toa creates it
/// with [`create_private_dir`].
pub fn check_private(path: &Path) -> Result<()> {
    check(path, false)
}

/// Fails unless the root of a mount toa pins into is safe for its own
/// directory: owned by root, and writable by others only with the sticky bit
/// (so only root can rename or remove what root made there).
pub(crate) fn check_mount_root(path: &Path) -> Result<()> {
    check(path, true)
}

/// Creates the directory `path` with mode 0700, or accepts it if it already
/// exists and [`check_private`] passes (someone may have made it first).
pub fn create_private_dir(path: &Path) -> Result<()> {
    match std::fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(HostError::io("creating", path)(e)),
    }
    check_private(path)
}

/// Checks `path` if it exists.
fn check(path: &Path, sticky_ok: bool) -> Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(HostError::io("reading", path)(e)),
    };
    match exposure(&meta, sticky_ok) {
        None => Ok(()),
        Some(exposure) => Err(HostError::Untrusted {
            path: path.to_path_buf(),
            exposure,
        }),
    }
}

fn exposure(meta: &std::fs::Metadata, sticky_ok: bool) -> Option<Exposure> {
    let mode = meta.mode() & 0o7777;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.file_type().is_symlink() {
        Some(Exposure::Symlink)
    } else if meta.uid() != 0 && meta.uid() != me {
        Some(Exposure::Owner { uid: meta.uid() })
    } else if mode & 0o022 == 0 {
        None
    } else if !sticky_ok {
        Some(Exposure::Writable { mode })
    } else if mode & libc::S_ISVTX == 0 {
        Some(Exposure::NotSticky { mode })
    } else {
        None
    }
}
