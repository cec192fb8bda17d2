//! The effective capability set of this process (read with the `caps` crate), with
//! the checks loading needs, and [`keep_only_capabilities`], how a long-running toa
//! process gives up the rest once it has set up. Root with its capabilities dropped
//! (`capsh --drop`) holds none of them, so privilege is decided by capabilities, not
//! by uid.

use caps::{CapSet, Capability, CapsHashSet};

use crate::HostError;

/// An effective capability set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Capabilities(CapsHashSet);

/// This process's effective capabilities, or None if the kernel does not say
/// (capget failed).
pub fn effective_capabilities() -> Option<Capabilities> {
    caps::read(None, CapSet::Effective).ok().map(Capabilities)
}

impl FromIterator<Capability> for Capabilities {
    fn from_iter<I: IntoIterator<Item = Capability>>(caps: I) -> Self {
        Capabilities(caps.into_iter().collect())
    }
}

impl Capabilities {
    /// Whether `cap` is held.
    pub fn has(&self, cap: Capability) -> bool {
        self.0.contains(&cap)
    }

    /// bpf() is allowed: CAP_BPF, or CAP_SYS_ADMIN (which the kernel accepts
    /// wherever it asks for CAP_BPF, and the only way before Linux 5.8).
    pub fn bpf(&self) -> bool {
        self.has(Capability::CAP_BPF) || self.has(Capability::CAP_SYS_ADMIN)
    }

    /// Cgroup programs can be attached.
    pub fn net_admin(&self) -> bool {
        self.has(Capability::CAP_NET_ADMIN)
    }

    /// cgroup2 and bpffs can be mounted.
    pub fn sys_admin(&self) -> bool {
        self.has(Capability::CAP_SYS_ADMIN)
    }

    /// Everything loading and attaching toa's programs needs (not mounting).
    pub fn can_load(&self) -> bool {
        self.bpf() && self.net_admin()
    }
}

/// Reduces this process to `keep` (those of them it holds): effective and permitted
/// sets, the bounding set (while CAP_SETPCAP allows it, so not even an exec of a
/// set-uid-root file gets the rest back), and no inheritable or ambient capabilities.
/// Returns the effective set left.
///
/// Linux keeps capabilities per thread and a new thread copies its creator's, so this
/// must run while the process has one thread: every thread created later then starts
/// with the reduced sets. With more threads it changes nothing and fails.
pub fn keep_only_capabilities(keep: &[Capability]) -> Result<Capabilities, HostError> {
    let threads = std::fs::read_dir("/proc/self/task")
        .map_err(HostError::io("reading", "/proc/self/task"))?
        .count();
    if threads != 1 {
        return Err(HostError::Threaded { threads });
    }
    let failed = |source: caps::errors::CapsError| HostError::DropCapabilities {
        reason: source.to_string(),
    };
    let permitted = caps::read(None, CapSet::Permitted).map_err(failed)?;
    let kept: CapsHashSet = keep
        .iter()
        .copied()
        .filter(|c| permitted.contains(c))
        .collect();
    if caps::has_cap(None, CapSet::Effective, Capability::CAP_SETPCAP).map_err(failed)? {
        // Only what the bounding set holds: a capability this kernel does not know
        // (newer than it) cannot be dropped and is not there.
        let bounding = caps::read(None, CapSet::Bounding).map_err(failed)?;
        for cap in bounding.difference(&kept) {
            caps::drop(None, CapSet::Bounding, *cap).map_err(failed)?;
        }
    }
    caps::clear(None, CapSet::Ambient).map_err(failed)?;
    caps::clear(None, CapSet::Inheritable).map_err(failed)?;
    // Effective first: it may never exceed permitted.
    caps::set(None, CapSet::Effective, &kept).map_err(failed)?;
    caps::set(None, CapSet::Permitted, &kept).map_err(failed)?;
    Ok(Capabilities(kept))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Capability::{CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN};

    #[test]
    fn loading_needs_bpf_and_net_admin() {
        assert!(Capabilities(caps::all()).can_load());
        assert!(Capabilities::from_iter([CAP_BPF, CAP_NET_ADMIN]).can_load());
        // Kernels before 5.8 have no CAP_BPF: CAP_SYS_ADMIN stands in.
        assert!(Capabilities::from_iter([CAP_SYS_ADMIN, CAP_NET_ADMIN]).can_load());
        assert!(!Capabilities::from_iter([CAP_BPF]).can_load());
        assert!(!Capabilities::from_iter([CAP_NET_ADMIN]).can_load());
        // Root under `capsh --drop=...`: uid 0, nothing effective.
        assert!(!Capabilities::default().can_load());
    }

    #[test]
    fn root_reads_its_own_effective_set() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            assert!(std::env::var("CI").is_err(), "CI runs as root");
            return;
        }
        let own = effective_capabilities().expect("capget works for this process");
        assert!(
            own.can_load(),
            "root here holds CAP_BPF and CAP_NET_ADMIN: {own:?}"
        );
    }
}
