//! What the runner reads from the kernel about a peer: CPU time and resident
//! memory of every process in its cgroup, so multi-process peers (nginx workers,
//! socat's per-connection children) are counted whole.

use anyhow::Context;
use std::fs;
use std::path::Path;

/// CPU time (user + system) used by everything that ever ran in the cgroup,
/// exited processes included (cgroup2 `cpu.stat`, present without any controller).
pub fn cgroup_cpu_secs(cgroup: &Path) -> anyhow::Result<f64> {
    let path = cgroup.join("cpu.stat");
    let stat = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let usec = stat
        .lines()
        .find_map(|l| l.strip_prefix("usage_usec "))
        .with_context(|| format!("no usage_usec in {}", path.display()))?;
    Ok(usec.trim().parse::<f64>()? / 1e6)
}

/// Sum of VmRSS over the processes now in the cgroup, in bytes.
pub fn cgroup_rss_bytes(cgroup: &Path) -> anyhow::Result<u64> {
    let procs = fs::read_to_string(cgroup.join("cgroup.procs"))?;
    let mut total = 0;
    for pid in procs.split_whitespace() {
        // A process may exit between the two reads; it then holds no memory.
        if let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) {
            total += status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .unwrap_or(0)
                * 1024;
        }
    }
    Ok(total)
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
