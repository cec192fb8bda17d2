//! The running kernel: its version, the features toa needs from it, and the
//! checks that must hold before toa touches it.

use std::path::Path;

use crate::HostError;
use crate::privileges::effective_capabilities;

/// The oldest kernel with everything toa uses (sock_ops TCP header-option callbacks).
pub const MIN_KERNEL: (u32, u32) = (5, 10);
/// The first kernel whose getsockopt programs may fail with any errno
/// (commit c4dcfdd406aa, "bpf: Move getsockopt retval to struct
/// bpf_cg_run_ctx"); before it, any retval but 0 or the kernel's own became
/// EFAULT. Found by scripts/kernel-test on 5.10.
pub const LOOKUP_ERRNO_KERNEL: (u32, u32) = (5, 18);

/// Whether the running kernel lets the lookup fail with ENOENT/EINVAL.
pub fn lookup_errno_supported() -> bool {
    parse_version(&kernel_release()).is_some_and(|v| v >= LOOKUP_ERRNO_KERNEL)
}

/// Everything that must hold before toa touches the kernel: no toa.ko,
/// effective CAP_BPF (or CAP_SYS_ADMIN) + CAP_NET_ADMIN, Linux >= 5.10 with BTF.
pub fn preflight() -> Result<(), HostError> {
    if Path::new("/proc/net/toa_stats").exists() {
        return Err(HostError::ToaKoLoaded);
    }
    if !privileged() {
        return Err(HostError::NotPrivileged);
    }
    let release = kernel_release();
    match parse_version(&release) {
        Some(v) if v >= MIN_KERNEL => {}
        _ => return Err(HostError::KernelTooOld { found: release }),
    }
    if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        return Err(HostError::NoBtf);
    }
    Ok(())
}

/// Decided by the effective capabilities, not the uid: root with its
/// capabilities dropped cannot load. Only if they cannot be read does uid 0
/// count, and the kernel has the last word.
fn privileged() -> bool {
    match effective_capabilities() {
        Some(caps) => caps.can_load(),
        // SAFETY: geteuid has no preconditions.
        None => (unsafe { libc::geteuid() }) == 0,
    }
}

/// The running kernel's release string (`/proc/sys/kernel/osrelease`), or `unknown`.
pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// `(major, minor)` of a kernel release string like `6.18.0-1-amd64`.
pub fn parse_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_versions_parse_major_minor() {
        assert_eq!(parse_version("6.18.0-1-amd64"), Some((6, 18)));
        assert_eq!(parse_version("5.10.0"), Some((5, 10)));
        assert_eq!(parse_version("4.19.112+"), Some((4, 19)));
        assert!(parse_version("5.9.1").unwrap() < (5, 10));
        assert_eq!(parse_version("weird"), None);
    }
}
