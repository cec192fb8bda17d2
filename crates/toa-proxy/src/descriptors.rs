//! Whether the listening sockets a (re)load opens fit under the open-file limit, checked
//! before the first one is bound: a config that cannot fit is refused whole with one
//! line, never started halfway to "Too many open files".

use std::io;

/// Descriptors left for everything but listeners at a (re)load: the runtimes, metrics,
/// health checks and the first connections. A proxy at its limit still starts; this only
/// keeps a config from taking every descriptor before the first client arrives.
pub const RESERVED: u64 = 256;

/// What a (re)load needs and why it cannot have it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "proxy: the config needs {needed} more descriptors for its listening sockets ({open} open, {RESERVED} kept for connections), above the open-file limit of {limit}: raise LimitNOFILE= (ulimit -n), narrow the port ranges, or let ranges use sk_lookup (Linux 5.9+, CAP_BPF and CAP_NET_ADMIN at start)"
)]
pub struct TooFewDescriptors {
    pub needed: u64,
    pub open: u64,
    pub limit: u64,
}

/// Sockets a set of listeners takes: `workers` per TCP key, one per UDP key.
pub fn sockets(tcp_keys: usize, udp_keys: usize, workers: usize) -> u64 {
    (tcp_keys * workers.max(1) + udp_keys) as u64
}

/// Checks that `needed` more descriptors fit next to the ones open now.
pub fn check(needed: u64) -> Result<(), TooFewDescriptors> {
    let limit = open_file_limit().unwrap_or(u64::MAX);
    let open = open_now().unwrap_or(0);
    fits(needed, open, limit)
}

fn fits(needed: u64, open: u64, limit: u64) -> Result<(), TooFewDescriptors> {
    if open.saturating_add(needed).saturating_add(RESERVED) <= limit {
        Ok(())
    } else {
        Err(TooFewDescriptors {
            needed,
            open,
            limit,
        })
    }
}

/// The soft RLIMIT_NOFILE (the proxy raises it to the hard limit at start).
pub fn open_file_limit() -> io::Result<u64> {
    rlimit().map(|l| l.rlim_cur)
}

/// The hard RLIMIT_NOFILE: what a proxy started now will have (`toa proxy check`).
pub fn hard_open_file_limit() -> io::Result<u64> {
    rlimit().map(|l| l.rlim_max)
}

fn rlimit() -> io::Result<libc::rlimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(limit)
}

/// Descriptors this process has open.
fn open_now() -> io::Result<u64> {
    Ok(std::fs::read_dir("/proc/self/fd")?.count() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_fits_only_with_room_left_for_connections() {
        assert!(fits(1000, 20, 2000).is_ok());
        let err = fits(24_002, 20, 20_000).unwrap_err();
        assert_eq!(err.needed, 24_002);
        assert!(
            err.to_string().starts_with(
                "proxy: the config needs 24002 more descriptors for its listening sockets (20 open"
            ),
            "{err}"
        );
        assert!(fits(2000 - 20 - RESERVED, 20, 2000).is_ok());
        assert!(fits(2000 - 20 - RESERVED + 1, 20, 2000).is_err());
    }

    #[test]
    fn sockets_count_every_worker_of_a_tcp_key() {
        assert_eq!(sockets(12_000, 10, 2), 24_010);
    }
}
