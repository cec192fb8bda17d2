//! Throwaway network labs: network namespaces joined by veths, cgroup2
//! children and background processes, all removed when the [`Lab`] drops.
//!
//! `toa demo`, the end-to-end tests in `crates/toa/tests` and the benchmarks
//! build their hosts with this crate, so there is one way to make a topology
//! and one way to clean it up.
//!
//! # Layout
//! - [`Lab`]: owns everything it creates; `Drop` kills processes, deletes
//!   namespaces and removes cgroups, on every exit path including panics.
//! - [`Netns`]: run commands inside one namespace.
//! - [`Topology`]: the standard client ⇄ edge ⇄ origin hosts, addressed as in [`addr`].

mod lab;
mod netns;
mod topology;

pub use lab::{Lab, Spawned, create_new, write_new};
pub use netns::Netns;
pub use topology::{Topology, addr};

use std::path::PathBuf;
use std::time::Duration;

pub use toa_host::CGROUP2_ROOT;

/// `bound` times `TOA_TEST_TIME_SCALE` (a whole number, default 1): how long a
/// wait for an event may take before it counts as failed. Every such bound in
/// the labs, the demo and the tests goes through here, so one variable
/// stretches them all; scripts/kernel-test sets it in its software-emulated
/// (TCG) guests, where a python3 start or a BPF load takes seconds.
pub fn scaled(bound: Duration) -> Duration {
    let scale = std::env::var("TOA_TEST_TIME_SCALE")
        .ok()
        .and_then(|s| s.parse::<u32>().ok())
        .unwrap_or(1)
        .max(1);
    bound * scale
}

/// Whether this process can build labs (root, network namespaces, BPF).
///
/// Outside CI a missing capability skips the calling test with a message.
/// With `CI=true` it panics instead: CI must never pass by skipping.
pub fn require_privileges(test_name: &str) -> bool {
    let missing = missing_privilege();
    match missing {
        None => true,
        Some(why) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("{test_name}: cannot run in CI: {why}")
        }
        Some(why) => {
            eprintln!("skipping {test_name}: {why}");
            false
        }
    }
}

fn missing_privilege() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root (network namespaces, cgroup2 and BPF)".into());
    }
    for tool in ["ip", "mount"] {
        if which(tool).is_none() {
            return Some(format!("`{tool}` not found; run scripts/setup"));
        }
    }
    if !std::path::Path::new("/sys/kernel/btf/vmlinux").exists() {
        return Some("kernel has no BTF (/sys/kernel/btf/vmlinux)".into());
    }
    None
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| PathBuf::from(dir).join(tool))
        .find(|p| p.is_file())
}

/// A build output of the current profile (e.g. `libtoa.so`), found next to
/// the running test binary (`target/<profile>/deps/..`).
pub fn artifact(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let mut dir = exe.parent().expect("exe dir").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir.join(name)
}

/// The cgroup2 mount labs make their cgroups in: the same one `toa origin`
/// and `toa proxy` use, mounted on demand.
pub fn ensure_cgroup2() -> anyhow::Result<PathBuf> {
    Ok(toa_host::cgroup2_root()?)
}

/// Runs a command in the host namespaces; Err carries its stderr.
pub(crate) fn run_host(cmd: &[&str]) -> anyhow::Result<String> {
    let out = std::process::Command::new(cmd[0])
        .args(&cmd[1..])
        .output()?;
    if !out.status.success() {
        anyhow::bail!(
            "`{}` failed ({}): {}",
            cmd.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
