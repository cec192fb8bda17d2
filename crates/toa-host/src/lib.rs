//! Facts about the host toa runs on, read without aya: the kernel version and BTF,
//! this process's capabilities, whether toa.ko is loaded, and the cgroup2 and bpffs
//! mounts toa uses. `toa-loader` checks them before it touches the kernel; `toa-doctor`
//! reports them; `toa-lab` finds cgroup2 with them.
//!
//! # Layout
//! - [`Capabilities`], [`effective_capabilities`]: this process's effective set (the
//!   `caps` crate), with the checks loading needs; [`keep_only_capabilities`] drops
//!   the rest once a process has set up.
//! - [`kernel_release`], [`parse_version`], [`MIN_KERNEL`], [`preflight`]: the kernel.
//! - [`cgroup2_root`], [`bpffs_root`] and friends: the mounts under /run/toa.
//! - [`check_private`], [`create_private_dir`]: state only root can change.
//! - [`HostError`]: one-line errors that say how to fix the problem.

mod error;
mod kernel;
mod mounts;
mod private;
mod privileges;

pub use caps::Capability;
pub use error::HostError;
pub use kernel::{
    LOOKUP_ERRNO_KERNEL, MIN_KERNEL, kernel_release, lookup_errno_supported, parse_version,
    preflight,
};
pub use mounts::{
    BPFFS_ROOT, CGROUP2_ROOT, bpffs_root, cgroup2_root, inode, mounted_bpffs, mounted_cgroup2,
    require_cgroup2,
};
pub use private::{Exposure, check_private, create_private_dir};
pub use privileges::{Capabilities, effective_capabilities, keep_only_capabilities};
