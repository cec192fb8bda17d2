//! toa-doctor: can this host run `toa origin`, and what is running? One
//! [`Check`] per line, ✓ or ✗ with the fix for every ✗. The `toa doctor`
//! subcommand prints [`diagnose`]'s report; the probes are plain functions so
//! other commands can ask the same questions.
//!
//! # Layout
//! - [`report`]: `Check`, `Outcome`, `Report` and how they print.
//! - [`kernel`]: version ≥ 5.10 and BTF.
//! - [`bpf`]: the program types of `toa origin` load (trivial programs, nothing attached).
//! - [`mounts`]: cgroup2 and bpffs, mounted or mountable.
//! - [`privileges`]: effective CAP_BPF / CAP_NET_ADMIN (/ CAP_SYS_ADMIN to mount).
//! - [`toa_ko`]: a loaded toa.ko conflicts.
//! - [`origin`]: where `toa origin` is attached, with kinds and trust list.
//! - [`syncookies`]: `net.ipv4.tcp_syncookies`, informational.
//! - [`tw_reuse`]: `net.ipv4.tcp_tw_reuse` and the port range, advice for `toa proxy`.
//! - [`metrics`]: a running proxy's `/metrics` endpoint.

pub mod bpf;
pub mod kernel;
pub mod metrics;
pub mod mounts;
pub mod origin;
pub mod privileges;
pub mod report;
pub mod syncookies;
pub mod toa_ko;
pub mod tw_reuse;

pub use report::{Check, Outcome, Report};

/// What to look at beyond the host itself.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// `host:port` of a running `toa proxy`'s metrics listener.
    pub metrics: Option<String>,
}

/// Runs every check. `report.all_ok()` is true only when the host can run the
/// origin side (and the proxy endpoint, if asked about, answered).
pub fn diagnose(options: &Options) -> Report {
    let cgroup2 = mounts::FsState::read("cgroup2");
    let bpffs = mounts::FsState::read("bpf");
    let needs_mount = !cgroup2.is_mounted() || !bpffs.is_mounted();
    let mut checks = vec![
        kernel::check_version(),
        bpf::check(),
        kernel::check_btf(),
        mounts::check_cgroup2(&cgroup2),
        mounts::check_bpffs(&bpffs),
        privileges::check(toa_host::effective_capabilities(), needs_mount),
        toa_ko::check(),
    ];
    checks.extend(origin::check());
    checks.push(syncookies::check());
    checks.push(tw_reuse::check());
    if let Some(endpoint) = &options.metrics {
        checks.push(metrics::check(endpoint));
    }
    Report { checks }
}
