//! The user side of toa's eBPF programs: loads them into the kernel, attaches
//! them to cgroups, pins them so they outlive the loader, and reads their
//! counters. The programs themselves are in `crates/toa-ebpf` (built by this
//! crate's build.rs); the types they share with this crate are in `toa-common`;
//! the host checks and mounts it relies on (kernel, capabilities, cgroup2, bpffs)
//! are in `toa-host`.
//! The `toa` binary calls this: `toa origin ...`, and the edge writer it gives `toa proxy`.
//!
//! # Layout
//! - [`Origin`]: the receiver on one cgroup — load/update, unload, status, counters.
//! - [`Settings`]: what a receiver accepts (kinds, trust list) and what a reload changes.
//! - [`EdgeWriter`]: the proxy's option writer on the proxy's own cgroup.
//! - [`PortSteerer`]: the proxy's port-range steerer on its own network namespace.
//! - [`Counters`] ([`OriginCounters`], [`EdgeCounters`]): counter snapshots.
//! - [`LoaderError`]: one-line errors that say how to fix the problem.

mod counters;
mod edge;
mod error;
mod origin;
mod settings;
mod steer;
mod sys;
mod trust;

pub use counters::{Counters, EdgeCounters, OriginCounters};
pub use edge::EdgeWriter;
pub use error::{LoaderError, Result};
pub use origin::{AttachedProgram, LoadOutcome, Origin};
pub use settings::{Settings, TrustAny};
pub use steer::{PortSteerer, SteerCounters};
pub use sys::{OriginProgramType, try_load_trivial};
pub use toa_common::counters::CounterId;
pub use toa_common::edge::EdgeCounter;
pub use toa_common::origin::Counter;
pub use toa_common::steer::{SteerCounter, SteerRange};
pub use trust::TrustedNet;
