//! The C ABI of `libtoa.so`, declared in `include/toa.h`. Keep the two in step.

use std::os::raw::c_int;

use libc::{sockaddr_storage, socklen_t};

use crate::lookup::{client_of, set_errno};
use crate::sockaddr;

/// `int toa_get_peer(int fd, struct sockaddr_storage *out, socklen_t *len)`:
/// see `toa.h` for the contract.
///
/// # Safety
/// `out` must be NULL or valid for writes of `*len` bytes; `len` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn toa_get_peer(
    fd: c_int,
    out: *mut sockaddr_storage,
    len: *mut socklen_t,
) -> c_int {
    if out.is_null() || len.is_null() {
        set_errno(libc::EINVAL);
        return -1;
    }
    let client = match client_of(fd) {
        Ok(client) => client,
        Err(errno) => {
            set_errno(errno);
            return -1;
        }
    };
    // SAFETY: the caller vouches for `len` and for `*len` writable bytes at `out`.
    unsafe {
        match sockaddr::write(&client, out.cast(), *len) {
            Some(written) => {
                *len = written;
                0
            }
            None => {
                set_errno(libc::EINVAL);
                -1
            }
        }
    }
}
