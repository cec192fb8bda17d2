//! What the runner reads from the kernel about a peer: CPU time and resident
//! memory of its processes (/proc/<pid>/stat and status), summed over every
//! process, so multi-process peers (nginx workers, socat's per-connection
//! children) are counted whole.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

/// The processes now in `cgroup` (cgroup2 `cgroup.procs`).
pub fn cgroup_pids(cgroup: &Path) -> BTreeSet<u32> {
    fs::read_to_string(cgroup.join("cgroup.procs"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// User + system CPU seconds of `pids`, including their reaped children
/// (utime + stime + cutime + cstime). A process that is gone counts as zero.
pub fn cpu_secs(pids: &BTreeSet<u32>) -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let mut total = 0u64;
    for pid in pids {
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the command name, which may itself contain spaces:
        // state is field 3, utime..cstime are fields 14..17.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        total += rest
            .split_whitespace()
            .skip(11)
            .take(4)
            .filter_map(|v| v.parse::<u64>().ok())
            .sum::<u64>();
    }
    total as f64 / ticks
}

/// Open file descriptors of `pids`.
pub fn fd_count(pids: &BTreeSet<u32>) -> u64 {
    pids.iter()
        .filter_map(|pid| fs::read_dir(format!("/proc/{pid}/fd")).ok())
        .map(|dir| dir.count() as u64)
        .sum()
}

/// Sum of VmRSS over `pids`, in bytes.
pub fn rss_bytes(pids: &BTreeSet<u32>) -> u64 {
    let mut total = 0;
    for pid in pids {
        // A process may exit between listing and reading; it then holds no memory.
        if let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) {
            total += status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .unwrap_or(0)
                * 1024;
        }
    }
    total
}

/// Raises this process's descriptor limit (inherited by everything it starts)
/// as far as it may: to `want`, or without CAP_SYS_RESOURCE to the hard limit.
/// Returns the soft limit now in force.
pub fn raise_nofile(want: u64) -> anyhow::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read or write the struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            anyhow::bail!(
                "getrlimit(RLIMIT_NOFILE): {}",
                std::io::Error::last_os_error()
            );
        }
        let raised = libc::rlimit {
            rlim_cur: want,
            rlim_max: want.max(lim.rlim_max),
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
            return Ok(want);
        }
        let capped = libc::rlimit {
            rlim_cur: lim.rlim_max.min(want),
            rlim_max: lim.rlim_max,
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &capped) != 0 {
            anyhow::bail!(
                "setrlimit(RLIMIT_NOFILE): {}",
                std::io::Error::last_os_error()
            );
        }
        Ok(capped.rlim_cur)
    }
}
