//! The kernel itself: its version (sock_ops header-option callbacks need 5.10)
//! and BTF (`bpf_sk_storage` maps are BTF-typed).

use std::path::Path;

use toa_host::{MIN_KERNEL, kernel_release, parse_version};

use crate::report::Check;

pub const BTF_VMLINUX: &str = "/sys/kernel/btf/vmlinux";

pub fn check_version() -> Check {
    version_check(&kernel_release())
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
