//! Privileges `toa origin load` needs, read from the effective capability set
//! (root without capabilities, e.g. under `capsh --drop`, cannot load BPF).

use crate::report::Check;

pub const CAP_NET_ADMIN: u32 = 12;
pub const CAP_SYS_ADMIN: u32 = 21;
pub const CAP_BPF: u32 = 39;

/// The effective capability mask of this process (`CapEff` in /proc/self/status).
pub fn effective() -> Option<u64> {
    parse_cap_eff(&std::fs::read_to_string("/proc/self/status").ok()?)
}

pub fn parse_cap_eff(status: &str) -> Option<u64> {
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))?
        .trim();
    u64::from_str_radix(hex, 16).ok()
}

fn has(mask: u64, cap: u32) -> bool {
    mask & (1 << cap) != 0
}

/// `needs_mount`: cgroup2 or bpffs still has to be mounted, which takes CAP_SYS_ADMIN.
pub fn check(cap_eff: Option<u64>, needs_mount: bool) -> Check {
    let Some(mask) = cap_eff else {
        return Check::problem(
            "privileges",
            "cannot read CapEff from /proc/self/status",
            "mount /proc and run as root",
        );
    };
    // The kernel accepts CAP_SYS_ADMIN wherever it asks for CAP_BPF.
    let mut missing = Vec::new();
    if !has(mask, CAP_BPF) && !has(mask, CAP_SYS_ADMIN) {
        missing.push("CAP_BPF");
    }
    if !has(mask, CAP_NET_ADMIN) {
        missing.push("CAP_NET_ADMIN");
    }
    if needs_mount && !has(mask, CAP_SYS_ADMIN) {
        missing.push("CAP_SYS_ADMIN (to mount cgroup2/bpffs)");
    }
    // SAFETY: geteuid cannot fail.
    let euid = unsafe { libc::geteuid() };
    if missing.is_empty() {
        let held: Vec<&str> = [
            (CAP_BPF, "CAP_BPF"),
            (CAP_NET_ADMIN, "CAP_NET_ADMIN"),
            (CAP_SYS_ADMIN, "CAP_SYS_ADMIN"),
        ]
        .into_iter()
        .filter(|&(cap, _)| has(mask, cap))
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

    #[test]
    fn cap_eff_is_read_from_proc_status() {
        let status = "Name:\ttoa\nCapInh:\t0000000000000000\nCapEff:\t000001fffeffffff\n";
        assert_eq!(parse_cap_eff(status), Some(0x1fffeffffff));
        assert_eq!(parse_cap_eff("Name:\ttoa\n"), None);
    }

    #[test]
    fn full_root_capabilities_are_enough() {
        assert!(check(Some(0x1fffeffffff), true).is_ok());
    }

    #[test]
    fn cap_bpf_and_net_admin_suffice_when_filesystems_are_mounted() {
        let mask = (1 << CAP_BPF) | (1 << CAP_NET_ADMIN);
        assert!(check(Some(mask), false).is_ok());
        assert!(
            !check(Some(mask), true).is_ok(),
            "mounting needs CAP_SYS_ADMIN"
        );
    }

    #[test]
    fn dropped_capabilities_are_named() {
        let line = check(Some(0), false).to_string();
        assert!(line.starts_with("✗ privileges:"), "{line}");
        assert!(
            line.contains("CAP_BPF") && line.contains("CAP_NET_ADMIN"),
            "{line}"
        );
    }
}
