//! Can this process load the BPF program types `toa origin` is made of? Each is
//! tried with a two-instruction program (`r0 = 1; exit`), loaded and closed
//! again: nothing is attached anywhere.

use std::ffi::c_long;

use crate::report::Check;

// From include/uapi/linux/bpf.h.
const BPF_PROG_LOAD: c_long = 5;
const BPF_PROG_TYPE_SOCK_OPS: u32 = 13;
const BPF_PROG_TYPE_CGROUP_SOCK_ADDR: u32 = 18;
const BPF_PROG_TYPE_CGROUP_SOCKOPT: u32 = 25;
const BPF_CGROUP_GETSOCKOPT: u32 = 21;
const BPF_CGROUP_INET4_GETPEERNAME: u32 = 29;

/// A program type `toa origin` loads, with the attach type the kernel wants at load.
struct ProgramKind {
    name: &'static str,
    prog_type: u32,
    expected_attach_type: u32,
}

const ORIGIN_PROGRAMS: [ProgramKind; 3] = [
    ProgramKind {
        name: "sock_ops",
        prog_type: BPF_PROG_TYPE_SOCK_OPS,
        expected_attach_type: 0,
    },
    ProgramKind {
        name: "cgroup/getpeername",
        prog_type: BPF_PROG_TYPE_CGROUP_SOCK_ADDR,
        expected_attach_type: BPF_CGROUP_INET4_GETPEERNAME,
    },
    ProgramKind {
        name: "cgroup/getsockopt",
        prog_type: BPF_PROG_TYPE_CGROUP_SOCKOPT,
        expected_attach_type: BPF_CGROUP_GETSOCKOPT,
    },
];

#[repr(C)]
#[derive(Clone, Copy)]
struct Insn {
    code: u8,
    /// dst_reg in the low nibble, src_reg in the high one.
    regs: u8,
    off: i16,
    imm: i32,
}

/// `r0 = 1; exit`: "allow" for every cgroup hook, a no-op for sock_ops.
const RETURN_ONE: [Insn; 2] = [
    Insn {
        code: 0xb7,
        regs: 0,
        off: 0,
        imm: 1,
    }, // BPF_ALU64 | BPF_MOV | BPF_K
    Insn {
        code: 0x95,
        regs: 0,
        off: 0,
        imm: 0,
    }, // BPF_JMP | BPF_EXIT
];

/// The prefix of `union bpf_attr` that BPF_PROG_LOAD reads, up to `expected_attach_type`.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

const _: () = assert!(std::mem::offset_of!(ProgLoadAttr, expected_attach_type) == 68);

/// Loads and closes one trivial program of `kind`; the errno on failure.
fn try_load(kind: &ProgramKind) -> Result<(), i32> {
    let license = c"GPL";
    let attr = ProgLoadAttr {
        prog_type: kind.prog_type,
        insn_cnt: RETURN_ONE.len() as u32,
        insns: RETURN_ONE.as_ptr() as u64,
        license: license.as_ptr() as u64,
        expected_attach_type: kind.expected_attach_type,
        ..ProgLoadAttr::default()
    };
    // SAFETY: `attr` is a valid BPF_PROG_LOAD attribute whose pointers outlive the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            &attr as *const ProgLoadAttr,
            size_of::<ProgLoadAttr>(),
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
    }
    // SAFETY: the kernel just handed us this fd and nobody else has it.
    unsafe { libc::close(fd as i32) };
    Ok(())
}

pub fn check() -> Check {
    for kind in &ORIGIN_PROGRAMS {
        if let Err(errno) = try_load(kind) {
            return failure(kind.name, errno);
        }
    }
    let names: Vec<&str> = ORIGIN_PROGRAMS.iter().map(|k| k.name).collect();
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
