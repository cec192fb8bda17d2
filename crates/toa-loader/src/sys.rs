//! The three raw bpf(2) commands the loader issues itself, because aya 0.14
//! cannot do them for us: a lock-free map update through `&self` (its
//! `SkStorage::insert` needs `&mut`), and creating + pinning cgroup links for
//! every program type alike (it cannot turn a `cgroup/getsockopt` link into a
//! pinnable `FdLink`).

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_OBJ_PIN: libc::c_long = 6;
const BPF_LINK_CREATE: libc::c_long = 28;

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
