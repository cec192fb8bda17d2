//! The effective capability set of this process, read once from the `CapEff`
//! line of /proc/self/status, with the checks loading needs. Root with its
//! capabilities dropped (`capsh --drop`) holds none of them, so privilege is
//! decided by capabilities, not by uid.

/// Configure interfaces, and attach cgroup programs.
pub const CAP_NET_ADMIN: u32 = 12;
/// Mount filesystems; before Linux 5.8 (no CAP_BPF) also what bpf() asks for.
pub const CAP_SYS_ADMIN: u32 = 21;
/// Load BPF programs and create maps (Linux >= 5.8).
pub const CAP_BPF: u32 = 39;

/// An effective capability mask (`CapEff`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities(pub u64);

/// This process's effective capabilities, or None if /proc/self/status has
/// no readable `CapEff` line (e.g. /proc not mounted).
pub fn effective_capabilities() -> Option<Capabilities> {
    Capabilities::from_status(&std::fs::read_to_string("/proc/self/status").ok()?)
}

impl Capabilities {
    /// Parses the `CapEff:` line of a /proc/<pid>/status text.
    pub fn from_status(status: &str) -> Option<Capabilities> {
        let hex = status
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))?
            .trim();
        u64::from_str_radix(hex, 16).ok().map(Capabilities)
    }

    /// Whether capability number `cap` is held.
    pub fn has(self, cap: u32) -> bool {
        cap < 64 && self.0 & (1 << cap) != 0
    }

    /// bpf() is allowed: CAP_BPF, or CAP_SYS_ADMIN (which the kernel accepts
    /// wherever it asks for CAP_BPF, and the only way before Linux 5.8).
    pub fn bpf(self) -> bool {
        self.has(CAP_BPF) || self.has(CAP_SYS_ADMIN)
    }

    /// Cgroup programs can be attached.
    pub fn net_admin(self) -> bool {
        self.has(CAP_NET_ADMIN)
    }

    /// cgroup2 and bpffs can be mounted.
    pub fn sys_admin(self) -> bool {
        self.has(CAP_SYS_ADMIN)
    }

    /// Everything loading and attaching toa's programs needs (not mounting).
    pub fn can_load(self) -> bool {
        self.bpf() && self.net_admin()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_eff_is_read_from_proc_status() {
        let status = "Name:\ttoa\nCapInh:\t0000000000000000\nCapEff:\t000001fffeffffff\n";
        assert_eq!(
            Capabilities::from_status(status),
            Some(Capabilities(0x1fffeffffff))
        );
        assert_eq!(Capabilities::from_status("Name:\ttoa\n"), None);
    }

    #[test]
    fn loading_needs_bpf_and_net_admin() {
        assert!(Capabilities(0x1fffeffffff).can_load());
        assert!(Capabilities((1 << CAP_BPF) | (1 << CAP_NET_ADMIN)).can_load());
        // Kernels before 5.8 have no CAP_BPF: CAP_SYS_ADMIN stands in.
        assert!(Capabilities((1 << CAP_SYS_ADMIN) | (1 << CAP_NET_ADMIN)).can_load());
        assert!(!Capabilities(1 << CAP_BPF).can_load());
        assert!(!Capabilities(1 << CAP_NET_ADMIN).can_load());
        // Root under `capsh --drop=...`: uid 0, nothing effective.
        assert!(!Capabilities(0).can_load());
    }
}
