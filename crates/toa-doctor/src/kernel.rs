//! The kernel itself: its version (sock_ops header-option callbacks need 5.10)
//! and BTF (`bpf_sk_storage` maps are BTF-typed).

use std::path::Path;

use crate::report::Check;

/// Oldest kernel with everything `toa origin` uses (sock_ops TCP header-option callbacks).
pub const MIN_KERNEL: (u32, u32) = (5, 10);

pub const BTF_VMLINUX: &str = "/sys/kernel/btf/vmlinux";

pub fn check_version() -> Check {
    let release = match std::fs::read_to_string("/proc/sys/kernel/osrelease") {
        Ok(release) => release.trim().to_string(),
        Err(err) => {
            return Check::problem(
                "kernel",
                format!("cannot read /proc/sys/kernel/osrelease: {err}"),
                "mount /proc",
            );
        }
    };
    version_check(&release)
}

fn version_check(release: &str) -> Check {
    let (major, minor) = MIN_KERNEL;
    match parse_version(release) {
        Some(found) if found >= MIN_KERNEL => {
            Check::ok("kernel", format!("{release} (≥ {major}.{minor})"))
        }
        Some(_) => Check::problem(
            "kernel",
            format!("{release} is older than {major}.{minor}"),
            format!(
                "boot a Linux {major}.{minor} or newer kernel (TCP header-option BPF callbacks)"
            ),
        ),
        None => Check::problem(
            "kernel",
            format!("cannot parse the version {release:?}"),
            format!("make sure the kernel is {major}.{minor} or newer"),
        ),
    }
}

/// `(major, minor)` from a release string such as `6.18.44-fc-v669` or `5.10.0-28-amd64`.
pub fn parse_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(['.', '-', '+']);
    let major = parts.next()?.parse().ok()?;
    let minor_text: String = parts
        .next()?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    Some((major, minor_text.parse().ok()?))
}

pub fn check_btf() -> Check {
    btf_check(Path::new(BTF_VMLINUX))
}

fn btf_check(path: &Path) -> Check {
    if path.exists() {
        Check::ok("BTF", path.display().to_string())
    } else {
        Check::problem(
            "BTF",
            format!("{} is missing", path.display()),
            "use a kernel built with CONFIG_DEBUG_INFO_BTF=y (most distribution kernels since 5.10 are)",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_from_distribution_release_strings() {
        assert_eq!(parse_version("6.18.44-fc-v669"), Some((6, 18)));
        assert_eq!(parse_version("5.10.0-28-amd64"), Some((5, 10)));
        assert_eq!(parse_version("5.4.0"), Some((5, 4)));
        assert_eq!(parse_version("6.1rc3"), Some((6, 1)));
        assert_eq!(parse_version("garbage"), None);
    }

    #[test]
    fn kernel_older_than_5_10_is_a_problem_with_a_fix() {
        assert!(version_check("5.10.0-28-amd64").is_ok());
        assert!(version_check("6.1.0").is_ok());
        let old = version_check("5.4.0-150-generic");
        assert!(!old.is_ok());
        assert!(old.to_string().contains("older than 5.10"), "{old}");
    }

    #[test]
    fn missing_btf_is_a_problem() {
        assert!(!btf_check(Path::new("/nonexistent/btf/vmlinux")).is_ok());
    }
}
