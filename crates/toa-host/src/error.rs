//! The host checks' one error type: each variant is a one-line message that says
//! what is missing and how to fix it.

use std::path::PathBuf;

/// What the host lacks for toa, or a mount or file operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error(
        "permission denied: loading eBPF needs root (or CAP_BPF and CAP_NET_ADMIN); run with sudo"
    )]
    NotPrivileged,
    #[error(
        "kernel {found} is too old: toa needs Linux >= 5.10 (TCP header options for BPF); upgrade the kernel"
    )]
    KernelTooOld { found: String },
    #[error(
        "kernel has no BTF (/sys/kernel/btf/vmlinux is missing): use a kernel built with CONFIG_DEBUG_INFO_BTF=y"
    )]
    NoBtf,
    #[error("{} is not a cgroup2 directory: pass a directory of a cgroup v2 mount, e.g. /run/toa/cgroup2/<name>", path.display())]
    NotCgroup2 { path: PathBuf },
    #[error(
        "toa.ko is loaded (/proc/net/toa_stats exists): unload it first with `rmmod toa`, both would rewrite addresses"
    )]
    ToaKoLoaded,
    #[error("cannot mount {fs} at {}: {source}", path.display())]
    Mount {
        fs: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "cannot drop capabilities with {threads} threads running: capabilities are per thread, so drop them before starting any"
    )]
    Threaded { threads: usize },
    #[error("cannot drop capabilities: {reason}")]
    DropCapabilities { reason: String },
    #[error(
        "refusing {}: {exposure}, so another user could rename or replace toa's pins there; remove it, or make it root's alone (chown root, chmod go-w)",
        path.display()
    )]
    Untrusted {
        path: PathBuf,
        exposure: crate::Exposure,
    },
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

impl HostError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| HostError::Io {
            action,
            path,
            source,
        }
    }
}
