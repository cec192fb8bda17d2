//! The cgroup2 and bpffs mounts toa uses, both under /run/toa, outside /sys,
//! because `ip netns exec` remounts /sys and would hide them.

use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::HostError;
use crate::private::check_mount_root;

type Result<T> = std::result::Result<T, HostError>;

/// Where toa mounts cgroup2 when it is not mounted there yet.
pub const CGROUP2_ROOT: &str = "/run/toa/cgroup2";
/// Where toa mounts bpffs; pins live below it.
pub const BPFFS_ROOT: &str = "/run/toa/bpffs";

const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// bpffs mounts 1777 by default: anyone could make directories beside toa's.
const BPFFS_OPTIONS: &str = "mode=0700";

/// The cgroup2 mount toa uses, mounting it at [`CGROUP2_ROOT`] if absent.
pub fn cgroup2_root() -> Result<PathBuf> {
    ensure_mounted(CGROUP2_ROOT, "cgroup2", CGROUP2_SUPER_MAGIC, None)
}

/// The bpffs mount toa pins into, mounting it at [`BPFFS_ROOT`] (mode 0700)
/// if absent. A mount already there keeps its mode: it may be the host's
/// `/sys/fs/bpf` bound in by a container, whose mode is not toa's to change;
/// it is refused if others could rename what root made in it.
pub fn bpffs_root() -> Result<PathBuf> {
    let root = ensure_mounted(BPFFS_ROOT, "bpf", BPF_FS_MAGIC, Some(BPFFS_OPTIONS))?;
    check_mount_root(&root)?;
    Ok(root)
}

fn ensure_mounted(
    dir: &str,
    fs: &'static str,
    magic: i64,
    options: Option<&str>,
) -> Result<PathBuf> {
    let path = PathBuf::from(dir);
    if fs_magic(&path) == Some(magic) {
        return Ok(path);
    }
    std::fs::create_dir_all(&path).map_err(HostError::io("creating", &path))?;
    // Check again under a lock: two toa processes starting on a fresh boot
    // both saw nothing mounted and both mounted, and the second mount hid the
    // pins the first was writing (BPF_OBJ_PIN: ENOENT; scripts/kernel-test).
    let lock_path = path.with_extension("mount-lock");
    let lock = std::fs::File::create(&lock_path).map_err(HostError::io("creating", &lock_path))?;
    // SAFETY: flock on a descriptor we own; released when `lock` is dropped.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(HostError::io("locking", &lock_path)(
            std::io::Error::last_os_error(),
        ));
    }
    if fs_magic(&path) == Some(magic) {
        return Ok(path);
    }
    let target = CString::new(dir).expect("no NUL in constant path");
    let fstype = CString::new(fs).expect("no NUL in fs name");
    let data = options.map(|o| CString::new(o).expect("no NUL in constant options"));
    // SAFETY: valid NUL-terminated strings; data is null or a C string.
    let ret = unsafe {
        libc::mount(
            fstype.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            data.as_ref()
                .map_or(std::ptr::null(), |d| d.as_ptr().cast()),
        )
    };
    if ret != 0 {
        let source = std::io::Error::last_os_error();
        if source.raw_os_error() == Some(libc::EPERM) {
            return Err(HostError::NotPrivileged);
        }
        return Err(HostError::Mount { fs, path, source });
    }
    Ok(path)
}

/// A cgroup2 mount showing this host's tree, mounting nothing: toa's own
/// ([`CGROUP2_ROOT`]) if mounted, else the first one in /proc/self/mounts.
pub fn mounted_cgroup2() -> Option<PathBuf> {
    let own = Path::new(CGROUP2_ROOT);
    if fs_magic(own) == Some(CGROUP2_SUPER_MAGIC) {
        return Some(own.to_path_buf());
    }
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts.lines().find_map(|line| {
        let mut fields = line.split_whitespace().skip(1);
        let (dir, fs) = (fields.next()?, fields.next()?);
        (fs == "cgroup2").then(|| PathBuf::from(dir))
    })
}

/// toa's bpffs at [`BPFFS_ROOT`] if it is mounted (mounting nothing),
/// checked as [`bpffs_root`] checks it.
pub fn mounted_bpffs() -> Result<Option<PathBuf>> {
    let root = Path::new(BPFFS_ROOT);
    if fs_magic(root) != Some(BPF_FS_MAGIC) {
        return Ok(None);
    }
    check_mount_root(root)?;
    Ok(Some(root.to_path_buf()))
}

/// The filesystem magic of `path`, or None if it cannot be read.
fn fs_magic(path: &Path) -> Option<i64> {
    let c_path = CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: statfs fills the zeroed struct; the path is NUL-terminated.
    unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        (libc::statfs(c_path.as_ptr(), &mut st) == 0).then_some(st.f_type as i64)
    }
}

/// Fails unless `path` is a directory of a cgroup v2 mount.
pub fn require_cgroup2(path: &Path) -> Result<()> {
    if path.is_dir() && fs_magic(path) == Some(CGROUP2_SUPER_MAGIC) {
        Ok(())
    } else {
        Err(HostError::NotCgroup2 {
            path: path.to_path_buf(),
        })
    }
}

/// The inode number of a directory: identifies a cgroup however it is reached.
pub fn inode(path: &Path) -> Result<u64> {
    use std::os::unix::fs::MetadataExt;
    Ok(std::fs::metadata(path)
        .map_err(HostError::io("reading", path))?
        .ino())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without the lock, 2 of 3 runs stacked 2 to 8 bpffs mounts here.
    #[test]
    fn concurrent_first_mounts_mount_once() {
        if unsafe { libc::geteuid() } != 0 {
            assert!(std::env::var("CI").is_err(), "CI runs as root");
            return;
        }
        let dir = std::env::temp_dir().join(format!("toa-mount-race-{}", std::process::id()));
        let dir_str = dir.to_str().unwrap().to_string();
        let start = std::sync::Barrier::new(8);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    start.wait();
                    ensure_mounted(&dir_str, "bpf", BPF_FS_MAGIC, Some(BPFFS_OPTIONS)).unwrap()
                });
            }
        });
        let mounts = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.split(' ').nth(4) == Some(dir_str.as_str()))
            .count();
        let target = CString::new(dir_str.as_str()).unwrap();
        // SAFETY: unmounting what this test mounted.
        while unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) } == 0 {}
        let _ = std::fs::remove_dir(&dir);
        let _ = std::fs::remove_file(dir.with_extension("mount-lock"));
        assert_eq!(mounts, 1, "bpffs mounted {mounts} times at {dir_str}");
    }
}
