//! libtoa: how an application behind `toa origin` asks for its client's real
//! address when `getpeername()` cannot carry it — an IPv6 client on an
//! IPv4-only (`AF_INET`) socket.
//!
//! `toa origin` (crates `toa-ebpf`/`toa-loader`) answers the DPVS/Tencent lookup
//! `getsockopt(fd, IPPROTO_IP, TOA_SO_GET_LOOKUP = 4096)` for sockets in its
//! cgroup; this crate wraps that call. It needs no privilege. Three faces:
//! - Rust: [`peer_addr`] (the lookup) and [`client_addr`] (lookup, else `getpeername`).
//! - C: `libtoa.so` + `include/toa.h`, `toa_get_peer()`.
//! - Unmodified programs: the `LD_PRELOAD` shim in `crates/libtoa-preload`, built on [`lookup`] and [`sockaddr`].
//!
//! # Layout
//! - [`abi`]: the getsockopt number and reply struct.
//! - [`lookup`]: the raw, allocation-free lookup returning an errno.
//! - [`sockaddr`]: `SocketAddr` <-> C `sockaddr_in`/`sockaddr_in6`.
//! - `capi`: `toa_get_peer` for C.

pub mod abi;
mod capi;
pub mod lookup;
pub mod sockaddr;

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd};

pub use capi::toa_get_peer;

/// The real client of a connected TCP socket, as carried by TOA.
///
/// `Ok(None)`: the socket carries no TOA (the connection did not come through a
/// TOA proxy); its `peer_addr()` is the client. `Err` with
/// `ErrorKind`/raw errno `ENOPROTOOPT`: `toa origin` is not attached to the
/// socket's cgroup, so nothing answers the lookup.
pub fn peer_addr(socket: impl AsFd) -> io::Result<Option<SocketAddr>> {
    match lookup::client_of(socket.as_fd().as_raw_fd()) {
        Ok(client) => Ok(Some(client)),
        Err(libc::ENOENT) => Ok(None),
        Err(errno) => Err(io::Error::from_raw_os_error(errno)),
    }
}

/// The client address to log or authorize by: the TOA client when there is
/// one, else the socket's own peer (`getpeername`), also when `toa origin` is
/// not loaded for this socket.
pub fn client_addr(socket: impl AsFd) -> io::Result<SocketAddr> {
    let fd = socket.as_fd().as_raw_fd();
    match lookup::client_of(fd) {
        Ok(client) => return Ok(client),
        Err(libc::ENOENT | libc::ENOPROTOOPT) => {}
        Err(errno) => return Err(io::Error::from_raw_os_error(errno)),
    }
    // SAFETY: sockaddr_storage is plain bytes; getpeername writes at most `len` of them.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    let out = (&raw mut storage).cast::<libc::sockaddr>();
    if unsafe { libc::getpeername(fd, out, &mut len) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel wrote `len` bytes into `storage`.
    unsafe { sockaddr::read(out, len) }
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EAFNOSUPPORT))
}
