//! The raw bpf(2) commands the loader issues itself, because aya 0.14 cannot
//! do them for us: a lock-free map update through `&self` (its
//! `SkStorage::insert` needs `&mut`), creating + pinning cgroup links for
//! every program type alike (it cannot turn a `cgroup/getsockopt` link into a
//! pinnable `FdLink`), and reading a cgroup link's cgroup id (its `LinkInfo`
//! does not expose it), detaching a link synchronously, and asking whether a
//! program id is still loaded.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_OBJ_PIN: libc::c_long = 6;
const BPF_OBJ_GET: libc::c_long = 7;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_LINK_DETACH: libc::c_long = 34;

/// `enum bpf_attach_type` values (uapi, stable) of the hooks toa uses.
#[derive(Clone, Copy, Debug)]
#[repr(u32)]
pub(crate) enum AttachType {
    SockOps = 3,
    GetSockopt = 21,
    Inet4GetPeername = 29,
    Inet6GetPeername = 30,
}

/// A zeroed `union bpf_attr` prefix; the kernel rejects non-zero unused bytes.
#[repr(C, align(8))]
struct Attr([u32; 16]);

fn bpf(cmd: libc::c_long, attr: &Attr) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a valid, fully initialized bpf_attr prefix of the
    // given size; pointers inside it are valid for the call.
    let ret =
        unsafe { libc::syscall(libc::SYS_bpf, cmd, attr, std::mem::size_of::<Attr>() as u32) };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn set_u64(attr: &mut Attr, word: usize, value: u64) {
    attr.0[word] = value as u32;
    attr.0[word + 1] = (value >> 32) as u32;
}

/// `bpf(BPF_MAP_UPDATE_ELEM, BPF_ANY)`; `key` and `value` must have the map's sizes.
pub(crate) fn map_update<K, V>(map: BorrowedFd<'_>, key: &K, value: &V) -> io::Result<()> {
    let mut attr = Attr([0; 16]);
    attr.0[0] = map.as_raw_fd() as u32;
    set_u64(&mut attr, 2, std::ptr::from_ref(key) as u64);
    set_u64(&mut attr, 4, std::ptr::from_ref(value) as u64);
    bpf(BPF_MAP_UPDATE_ELEM, &attr).map(drop)
}

/// Attaches `prog` to `cgroup` through a new bpf_link. Cgroup links always
/// multi-attach (flags must be 0, which aya 0.14 does not allow to express).
pub(crate) fn link_create(
    prog: BorrowedFd<'_>,
    cgroup: BorrowedFd<'_>,
    attach: AttachType,
) -> io::Result<OwnedFd> {
    let mut attr = Attr([0; 16]);
    attr.0[0] = prog.as_raw_fd() as u32;
    attr.0[1] = cgroup.as_raw_fd() as u32;
    attr.0[2] = attach as u32;
    let fd = bpf(BPF_LINK_CREATE, &attr)?;
    // SAFETY: the kernel returned a new file descriptor we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Pins a BPF object (link, program or map) at `path` on a bpffs.
pub(crate) fn obj_pin(fd: BorrowedFd<'_>, path: &Path) -> io::Result<()> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut attr = Attr([0; 16]);
    set_u64(&mut attr, 0, c_path.as_ptr() as u64);
    attr.0[2] = fd.as_raw_fd() as u32;
    bpf(BPF_OBJ_PIN, &attr).map(drop)
}

/// Opens a pinned BPF object.
pub(crate) fn obj_get(path: &Path) -> io::Result<OwnedFd> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut attr = Attr([0; 16]);
    set_u64(&mut attr, 0, c_path.as_ptr() as u64);
    let fd = bpf(BPF_OBJ_GET, &attr)?;
    // SAFETY: the kernel returned a new file descriptor we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Detaches a bpf_link from its hook now, whoever else still holds the link.
pub(crate) fn link_detach(link: BorrowedFd<'_>) -> io::Result<()> {
    let mut attr = Attr([0; 16]);
    attr.0[0] = link.as_raw_fd() as u32;
    bpf(BPF_LINK_DETACH, &attr).map(drop)
}

/// Whether a program with this id is still loaded in the kernel.
pub(crate) fn prog_exists(id: u32) -> bool {
    let mut attr = Attr([0; 16]);
    attr.0[0] = id;
    match bpf(BPF_PROG_GET_FD_BY_ID, &attr) {
        Ok(fd) => {
            // SAFETY: the kernel returned a new file descriptor we now own.
            drop(unsafe { OwnedFd::from_raw_fd(fd as i32) });
            true
        }
        Err(e) => e.raw_os_error() != Some(libc::ENOENT),
    }
}

/// The cgroup id a cgroup bpf_link is attached to; 0 once that cgroup has
/// been removed (the link is then defunct).
pub(crate) fn link_cgroup_id(link: BorrowedFd<'_>) -> io::Result<u64> {
    // struct bpf_link_info: type, id, prog_id (u32 each), then a union aligned
    // to 8 whose cgroup member starts with `__u64 cgroup_id` (offset 16).
    let mut info = [0u64; 16];
    let mut attr = Attr([0; 16]);
    attr.0[0] = link.as_raw_fd() as u32;
    attr.0[1] = std::mem::size_of_val(&info) as u32;
    set_u64(&mut attr, 2, info.as_mut_ptr() as u64);
    bpf(BPF_OBJ_GET_INFO_BY_FD, &attr)?;
    Ok(info[2])
}
