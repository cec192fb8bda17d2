//! The two filesystems `toa origin` lives in: cgroup2 (where its programs attach)
//! and bpffs (where they are pinned to outlive the loader). Mounted already, or
//! at least supported by the kernel so `toa origin load` can mount them.

use crate::report::Check;

/// What the host has of one filesystem type.
#[derive(Debug, PartialEq, Eq)]
pub struct FsState {
    /// Mount points, in mount order.
    pub mounted_at: Vec<String>,
    /// Listed in /proc/filesystems: the kernel can mount it.
    pub supported: bool,
}

impl FsState {
    pub fn read(fstype: &str) -> FsState {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let filesystems = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
        FsState {
            mounted_at: mount_points(&mountinfo, fstype),
            supported: filesystems
                .lines()
                .any(|l| l.split_whitespace().last() == Some(fstype)),
        }
    }

    pub fn is_mounted(&self) -> bool {
        !self.mounted_at.is_empty()
    }
}

/// Mount points of `fstype` in /proc/self/mountinfo text (`... mountpoint ... - fstype source opts`).
pub fn mount_points(mountinfo: &str, fstype: &str) -> Vec<String> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            (right.split_whitespace().next()? == fstype)
                .then(|| unescape(left.split_whitespace().nth(4)?))
        })
        .flatten()
        .collect()
}

/// mountinfo writes space, tab, newline and backslash as `\ooo` octal escapes.
fn unescape(field: &str) -> Option<String> {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            out.push(u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 4]).ok()?, 8).ok()?);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

pub fn check_cgroup2(state: &FsState) -> Check {
    fs_check(
        "cgroup2",
        state,
        "use a kernel with cgroup v2 (CONFIG_CGROUPS=y, Linux 4.5+)",
    )
}

pub fn check_bpffs(state: &FsState) -> Check {
    fs_check(
        "bpffs",
        state,
        "use a kernel built with CONFIG_BPF_SYSCALL=y (bpffs comes with it)",
    )
}

fn fs_check(subject: &'static str, state: &FsState, fix_unsupported: &str) -> Check {
    if state.is_mounted() {
        Check::ok(
            subject,
            format!("mounted at {}", state.mounted_at.join(", ")),
        )
    } else if state.supported {
        Check::ok(
            subject,
            "not mounted; supported, `toa origin load` mounts it",
        )
    } else {
        Check::problem(
            subject,
            "not mounted and not supported by this kernel",
            fix_unsupported,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
25 1 0:23 / /sys rw,nosuid - sysfs sysfs rw
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
46 27 0:38 / /run/toa/cgroup2 rw,relatime - cgroup2 none rw
47 27 0:39 / /run/my\\040bpf rw,relatime shared:5 - bpf bpf rw,mode=700
";

    #[test]
    fn mount_points_are_found_by_filesystem_type() {
        assert_eq!(
            mount_points(MOUNTINFO, "cgroup2"),
            ["/sys/fs/cgroup/unified", "/run/toa/cgroup2"]
        );
        assert_eq!(
            mount_points(MOUNTINFO, "bpf"),
            ["/run/my bpf"],
            "octal escapes are decoded"
        );
        assert!(mount_points(MOUNTINFO, "tracefs").is_empty());
    }

    #[test]
    fn unmounted_but_supported_filesystem_is_fine() {
        let state = FsState {
            mounted_at: vec![],
            supported: true,
        };
        assert!(check_bpffs(&state).is_ok());
    }

    #[test]
    fn unsupported_filesystem_is_a_problem() {
        let state = FsState {
            mounted_at: vec![],
            supported: false,
        };
        assert!(!check_cgroup2(&state).is_ok());
    }
}
