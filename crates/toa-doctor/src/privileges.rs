//! Privileges `toa origin load` needs, read from the effective capability set
//! (root without capabilities, e.g. under `capsh --drop`, cannot load BPF).

use toa_host::{Capabilities, Capability};

use crate::report::Check;

/// `caps`: from [`toa_host::effective_capabilities`]. `needs_mount`: cgroup2
/// or bpffs still has to be mounted, which takes CAP_SYS_ADMIN.
pub fn check(caps: Option<Capabilities>, needs_mount: bool) -> Check {
    let Some(caps) = caps else {
        return Check::problem(
            "privileges",
            "cannot read this process's effective capabilities (capget failed)",
            "run as root (sudo), or grant CAP_BPF and CAP_NET_ADMIN",
        );
    };
    let mut missing = Vec::new();
    if !caps.bpf() {
        missing.push("CAP_BPF");
    }
    if !caps.net_admin() {
        missing.push("CAP_NET_ADMIN");
    }
    if needs_mount && !caps.sys_admin() {
        missing.push("CAP_SYS_ADMIN (to mount cgroup2/bpffs)");
    }
    // SAFETY: geteuid cannot fail.
    let euid = unsafe { libc::geteuid() };
    if missing.is_empty() {
        let held: Vec<&str> = [
            (Capability::CAP_BPF, "CAP_BPF"),
            (Capability::CAP_NET_ADMIN, "CAP_NET_ADMIN"),
            (Capability::CAP_SYS_ADMIN, "CAP_SYS_ADMIN"),
        ]
        .into_iter()
        .filter(|&(cap, _)| caps.has(cap))
        .map(|(_, name)| name)
        .collect();
        Check::ok(
            "privileges",
            format!("uid {euid}, effective {}", held.join(", ")),
        )
    } else {
        Check::problem(
            "privileges",
            format!("uid {euid} lacks {}", missing.join(", ")),
            "run as root (sudo), or grant CAP_BPF and CAP_NET_ADMIN",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Capability::{CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN};

    #[test]
    fn bpf_net_admin_and_sys_admin_are_enough_to_mount_and_load() {
        let caps = Capabilities::from_iter([CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN]);
        assert!(check(Some(caps), true).is_ok());
    }

    #[test]
    fn cap_bpf_and_net_admin_suffice_when_filesystems_are_mounted() {
        let caps = Capabilities::from_iter([CAP_BPF, CAP_NET_ADMIN]);
        assert!(check(Some(caps.clone()), false).is_ok());
        assert!(
            !check(Some(caps), true).is_ok(),
            "mounting needs CAP_SYS_ADMIN"
        );
    }

    #[test]
    fn dropped_capabilities_are_named() {
        let line = check(Some(Capabilities::default()), false).to_string();
        assert!(line.starts_with("✗ privileges:"), "{line}");
        assert!(
            line.contains("CAP_BPF") && line.contains("CAP_NET_ADMIN"),
            "{line}"
        );
    }
}
