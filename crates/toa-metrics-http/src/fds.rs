//! The process's file descriptors: how many are open, the limit, and how many are free
//! (what the endpoint's descriptor reserve is checked against).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Descriptors this process has open.
pub fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64)
}

/// The soft RLIMIT_NOFILE.
pub fn fd_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        limit.rlim_cur
    } else {
        u64::MAX
    }
}

/// Descriptors still free, recounted at most every 250 ms: counting walks /proc/self/fd,
/// and a flood of metrics connections must not turn into a flood of directory walks.
pub fn free_fds() -> u64 {
    static CACHED: AtomicU64 = AtomicU64::new(0);
    static AT_MS: AtomicU64 = AtomicU64::new(0);
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let now = EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1;
    let at = AT_MS.load(Ordering::Relaxed);
    if at != 0 && now.saturating_sub(at) < Duration::from_millis(250).as_millis() as u64 {
        return CACHED.load(Ordering::Relaxed);
    }
    let free = fd_limit().saturating_sub(open_fds());
    CACHED.store(free, Ordering::Relaxed);
    AT_MS.store(now, Ordering::Relaxed);
    free
}
