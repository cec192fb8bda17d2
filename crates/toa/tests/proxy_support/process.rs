//! The proxy process seen from outside: whether it exited, and the descriptors and
//! splice pipes it holds (through /proc and pidfd_getfd).

use super::ProxyLab;

/// Whether process `pid` is gone (a zombie — exited, not yet reaped — counts as gone).
pub fn exited(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The state letter follows the ")" that closes the command name.
    stat.rsplit_once(") ")
        .is_none_or(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X'))
}

impl ProxyLab {
    /// Open descriptors of the proxy process now.
    pub fn proxy_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.proxy().pid))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// The size (F_GETPIPE_SZ) of every pipe the proxy holds now: its splice buffers.
    pub fn proxy_pipe_sizes(&self) -> Vec<usize> {
        let pid = self.proxy().pid;
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            return Vec::new();
        };
        fds.flatten()
            .filter(|e| {
                std::fs::read_link(e.path())
                    .is_ok_and(|target| target.to_string_lossy().starts_with("pipe:"))
            })
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            // A pipe closed since the listing is simply gone.
            .filter_map(|fd| peer_fd(pid, fd).ok())
            .filter_map(|pipe| {
                // SAFETY: F_GETPIPE_SZ on a descriptor we own.
                let size = unsafe {
                    libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&pipe), libc::F_GETPIPE_SZ)
                };
                usize::try_from(size).ok()
            })
            .collect()
    }
}

/// A duplicate of descriptor `fd` of process `pid`, to inspect a socket or pipe the proxy
/// holds (pidfd_getfd, Linux 5.6+; the tests run as root).
pub fn peer_fd(pid: u32, fd: i32) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    // SAFETY: plain syscalls; every returned descriptor is owned, so closed on drop.
    unsafe {
        let pidfd = libc::syscall(libc::SYS_pidfd_open, pid, 0);
        if pidfd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let pidfd = OwnedFd::from_raw_fd(pidfd as i32);
        let dup = libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0);
        if dup < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(OwnedFd::from_raw_fd(dup as i32))
    }
}
