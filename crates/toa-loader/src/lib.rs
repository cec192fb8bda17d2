//! The user side of toa's eBPF programs: loads them into the kernel, attaches
//! them to cgroups, pins them so they outlive the loader, and reads their
//! counters. The programs themselves are in `crates/toa-ebpf` (built by this
//! crate's build.rs); the types they share with this crate are in `toa-common`.
//! The `toa` binary (`toa origin ...`) and the proxy (`toa-proxy`) call this.
//!
//! # Layout
//! - [`Origin`]: the receiver on one cgroup — load/update, unload, status, counters.
//! - [`Settings`]: what a receiver accepts (kinds, trust list) and what a reload changes.
//! - [`EdgeWriter`]: the proxy's option writer on the proxy's own cgroup.
//! - [`OriginCounters`], [`EdgeStats`]: counter snapshots.
//! - [`cgroup2_root`], [`bpffs_root`], [`preflight`]: host setup and checks.
//! - [`effective_capabilities`]: this process's `CapEff`, with the checks loading needs.
//! - [`LoaderError`]: one-line errors that say how to fix the problem.

mod caps;
mod counters;
mod edge;
mod error;
mod origin;
mod settings;
mod sys;
mod system;
mod trust;

pub use caps::{CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN, Capabilities, effective_capabilities};
pub use counters::{EdgeStats, OriginCounters};
pub use edge::EdgeWriter;
pub use error::{LoaderError, Result};
pub use origin::{AttachedProgram, LoadOutcome, Origin};
pub use settings::{Settings, Widening};
pub use sys::{OriginProgramType, try_load_trivial};
pub use system::{
    BPFFS_ROOT, CGROUP2_ROOT, LOOKUP_ERRNO_KERNEL, MIN_KERNEL, bpffs_root, cgroup2_root,
    kernel_release, lookup_errno_supported, parse_version, preflight, require_cgroup2,
};
pub use toa_common::edge::EdgeCounter;
pub use toa_common::origin::Counter;
pub use trust::TrustedNet;
