//! Can this process load the BPF program types `toa origin` is made of? Each is
//! tried with a two-instruction program (`r0 = 1; exit`), loaded and closed
//! again: nothing is attached anywhere.

use toa_loader::{OriginProgramType, try_load_trivial};

use crate::report::Check;

pub fn check() -> Check {
    for kind in OriginProgramType::ALL {
        if let Err(error) = try_load_trivial(kind) {
            return failure(kind.name(), error.raw_os_error().unwrap_or(0));
        }
    }
    let names: Vec<&str> = OriginProgramType::ALL.iter().map(|k| k.name()).collect();
    Check::ok("BPF", format!("{} programs load", names.join(", ")))
}

fn failure(program: &str, errno: i32) -> Check {
    let error = std::io::Error::from_raw_os_error(errno);
    let detail = format!("loading a {program} program failed: {error}");
    let fix = match errno {
        libc::EPERM | libc::EACCES => "run as root (or with CAP_BPF and CAP_NET_ADMIN)",
        libc::ENOSYS => "use a kernel built with CONFIG_BPF_SYSCALL=y",
        _ => "use a Linux 5.10+ kernel built with CONFIG_BPF_SYSCALL=y and CONFIG_CGROUP_BPF=y",
    };
    Check::problem("BPF", detail, fix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_load_names_the_privilege_fix() {
        let line = failure("sock_ops", libc::EPERM).to_string();
        assert!(
            line.starts_with("✗ BPF: loading a sock_ops program failed"),
            "{line}"
        );
        assert!(line.contains("CAP_BPF"), "{line}");
    }

    #[test]
    fn missing_syscall_names_the_kernel_option() {
        assert!(
            failure("sock_ops", libc::ENOSYS)
                .to_string()
                .contains("CONFIG_BPF_SYSCALL")
        );
    }
}
