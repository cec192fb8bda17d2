//! The raw bpf(2) commands toa issues itself, because aya 0.14 cannot do them
//! for us: creating + pinning cgroup links for every program type alike
//! (it cannot turn a `cgroup/getsockopt` link into a pinnable `FdLink`),
//! reading a cgroup link's cgroup id (its `LinkInfo` does not expose it),
//! detaching a link synchronously, asking whether a program id is still
//! loaded, and loading a throw-away program to see whether this process may
//! (`toa doctor`). The attribute layouts are aya-obj's bindings of the uapi
//! header (`union bpf_attr`, `struct bpf_link_info`), filled by field name;
//! this is the only module that calls bpf(2) by hand.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use aya_obj::generated::{
    bpf_attach_type, bpf_attr, bpf_cmd, bpf_insn, bpf_link_info, bpf_prog_type,
};

/// The hooks toa attaches to, as `enum bpf_attach_type`.
#[derive(Clone, Copy, Debug)]
pub(crate) enum AttachType {
    SockOps,
    GetSockopt,
    SetSockopt,
    Inet4GetPeername,
    Inet6GetPeername,
    /// sk_lookup, on a network namespace (not a cgroup).
    SkLookup,
}

impl AttachType {
    fn uapi(self) -> bpf_attach_type {
        match self {
            AttachType::SockOps => bpf_attach_type::BPF_CGROUP_SOCK_OPS,
            AttachType::GetSockopt => bpf_attach_type::BPF_CGROUP_GETSOCKOPT,
            AttachType::SetSockopt => bpf_attach_type::BPF_CGROUP_SETSOCKOPT,
            AttachType::Inet4GetPeername => bpf_attach_type::BPF_CGROUP_INET4_GETPEERNAME,
            AttachType::Inet6GetPeername => bpf_attach_type::BPF_CGROUP_INET6_GETPEERNAME,
            AttachType::SkLookup => bpf_attach_type::BPF_SK_LOOKUP,
        }
    }
}

/// An all-zero `union bpf_attr`: the kernel rejects non-zero unused bytes.
fn zeroed_attr() -> bpf_attr {
    // SAFETY: bpf_attr is a union of plain integer structs; all zeroes is valid.
    unsafe { std::mem::zeroed() }
}

fn bpf(cmd: bpf_cmd, attr: &mut bpf_attr) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a valid, fully initialized bpf_attr of the given size;
    // pointers inside it are valid for the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            std::ptr::from_mut(attr),
            size_of::<bpf_attr>() as u32,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// A file descriptor bpf(2) just returned.
fn owned_fd(fd: libc::c_long) -> OwnedFd {
    // SAFETY: the kernel returned a new file descriptor we now own.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

/// Attaches `prog` to `cgroup` (a network namespace for [`AttachType::SkLookup`])
/// through a new bpf_link. Cgroup and netns links always multi-attach (flags must
/// be 0, which aya 0.14 does not allow to express).
pub(crate) fn link_create(
    prog: BorrowedFd<'_>,
    cgroup: BorrowedFd<'_>,
    attach: AttachType,
) -> io::Result<OwnedFd> {
    let mut attr = zeroed_attr();
    attr.link_create.__bindgen_anon_1.prog_fd = prog.as_raw_fd() as u32;
    attr.link_create.__bindgen_anon_2.target_fd = cgroup.as_raw_fd() as u32;
    attr.link_create.attach_type = attach.uapi() as u32;
    bpf(bpf_cmd::BPF_LINK_CREATE, &mut attr).map(owned_fd)
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// Pins a BPF object (link, program or map) at `path` on a bpffs.
pub(crate) fn obj_pin(fd: BorrowedFd<'_>, path: &Path) -> io::Result<()> {
    let path = c_path(path)?;
    let mut attr = zeroed_attr();
    attr.__bindgen_anon_4.pathname = path.as_ptr() as u64;
    attr.__bindgen_anon_4.bpf_fd = fd.as_raw_fd() as u32;
    bpf(bpf_cmd::BPF_OBJ_PIN, &mut attr).map(drop)
}

/// Opens a pinned BPF object.
pub(crate) fn obj_get(path: &Path) -> io::Result<OwnedFd> {
    let path = c_path(path)?;
    let mut attr = zeroed_attr();
    attr.__bindgen_anon_4.pathname = path.as_ptr() as u64;
    bpf(bpf_cmd::BPF_OBJ_GET, &mut attr).map(owned_fd)
}

/// Detaches a bpf_link from its hook now, whoever else still holds the link.
pub(crate) fn link_detach(link: BorrowedFd<'_>) -> io::Result<()> {
    let mut attr = zeroed_attr();
    attr.link_detach.link_fd = link.as_raw_fd() as u32;
    bpf(bpf_cmd::BPF_LINK_DETACH, &mut attr).map(drop)
}

/// Whether a program with this id is still loaded in the kernel.
pub(crate) fn prog_exists(id: u32) -> bool {
    let mut attr = zeroed_attr();
    attr.__bindgen_anon_6.__bindgen_anon_1.prog_id = id;
    match bpf(bpf_cmd::BPF_PROG_GET_FD_BY_ID, &mut attr) {
        Ok(fd) => {
            drop(owned_fd(fd));
            true
        }
        Err(e) => e.raw_os_error() != Some(libc::ENOENT),
    }
}

/// The cgroup id a cgroup bpf_link is attached to; 0 once that cgroup has
/// been removed (the link is then defunct).
pub(crate) fn link_cgroup_id(link: BorrowedFd<'_>) -> io::Result<u64> {
    // SAFETY: bpf_link_info is plain integers and unions of them; zero is valid.
    let mut info: bpf_link_info = unsafe { std::mem::zeroed() };
    let mut attr = zeroed_attr();
    attr.info.bpf_fd = link.as_raw_fd() as u32;
    attr.info.info_len = size_of::<bpf_link_info>() as u32;
    attr.info.info = std::ptr::from_mut(&mut info) as u64;
    bpf(bpf_cmd::BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    // SAFETY: every member of the union is plain integers; for a cgroup link
    // the kernel filled `cgroup`, for any other it reads as some number.
    Ok(unsafe { info.__bindgen_anon_1.cgroup.cgroup_id })
}

/// A program type `toa origin` loads, for [`try_load_trivial`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OriginProgramType {
    /// The receiver (`sock_ops`).
    SockOps,
    /// The address rewriters (`cgroup/getpeername4` and `6`).
    GetPeername,
    /// The lookup (`cgroup/getsockopt`).
    GetSockopt,
}

impl OriginProgramType {
    /// Every type, in the order the origin loads them.
    pub const ALL: [OriginProgramType; 3] = [
        OriginProgramType::SockOps,
        OriginProgramType::GetPeername,
        OriginProgramType::GetSockopt,
    ];

    /// The name a user knows the type by.
    pub fn name(self) -> &'static str {
        match self {
            OriginProgramType::SockOps => "sock_ops",
            OriginProgramType::GetPeername => "cgroup/getpeername",
            OriginProgramType::GetSockopt => "cgroup/getsockopt",
        }
    }

    /// The program type and the attach type the kernel wants at load (0 when
    /// it wants none).
    fn uapi(self) -> (bpf_prog_type, u32) {
        match self {
            OriginProgramType::SockOps => (bpf_prog_type::BPF_PROG_TYPE_SOCK_OPS, 0),
            OriginProgramType::GetPeername => (
                bpf_prog_type::BPF_PROG_TYPE_CGROUP_SOCK_ADDR,
                AttachType::Inet4GetPeername.uapi() as u32,
            ),
            OriginProgramType::GetSockopt => (
                bpf_prog_type::BPF_PROG_TYPE_CGROUP_SOCKOPT,
                AttachType::GetSockopt.uapi() as u32,
            ),
        }
    }
}

/// `r0 = 1; exit`: "allow" for every cgroup hook, a no-op for sock_ops.
fn return_one() -> [bpf_insn; 2] {
    const BPF_ALU64_MOV_K: u8 = 0xb7;
    const BPF_JMP_EXIT: u8 = 0x95;
    let insn = |code, imm| bpf_insn {
        code,
        _bitfield_align_1: [],
        _bitfield_1: bpf_insn::new_bitfield_1(0, 0),
        off: 0,
        imm,
    };
    [insn(BPF_ALU64_MOV_K, 1), insn(BPF_JMP_EXIT, 0)]
}

/// Loads a two-instruction program of type `kind` and closes it again:
/// nothing is attached anywhere. Fails as loading `toa origin` would for lack
/// of privileges or kernel support.
pub fn try_load_trivial(kind: OriginProgramType) -> io::Result<()> {
    let insns = return_one();
    let license = c"GPL";
    let (prog_type, expected_attach_type) = kind.uapi();
    let mut attr = zeroed_attr();
    attr.__bindgen_anon_3.prog_type = prog_type as u32;
    attr.__bindgen_anon_3.insn_cnt = insns.len() as u32;
    attr.__bindgen_anon_3.insns = insns.as_ptr() as u64;
    attr.__bindgen_anon_3.license = license.as_ptr() as u64;
    attr.__bindgen_anon_3.expected_attach_type = expected_attach_type;
    bpf(bpf_cmd::BPF_PROG_LOAD, &mut attr).map(|fd| drop(owned_fd(fd)))
}
