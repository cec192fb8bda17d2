//! `libtoa_preload.so`: an `LD_PRELOAD` shim giving unmodified IPv4-listening
//! programs their IPv6 clients, as Tencent's toa.ko does.
//!
//! The `toa origin` getpeername hooks cannot change a socket's family, so an
//! IPv6 client on an `AF_INET` socket stays hidden from `accept()` and
//! `getpeername()`. This shim wraps both (and `accept4`): when the kernel
//! returned an `AF_INET` address, the caller's buffer can hold a
//! `sockaddr_in6`, and the TOA lookup (crate `libtoa`) yields an IPv6 client
//! that is not v4-mapped, the caller gets that `AF_INET6` address and its
//! length. In every other case the result, `*addrlen` and `errno` are exactly
//! libc's.
//!
//! Hot path: one extra `getsockopt` per qualifying call; no allocation, no lock,
//! nothing but atomics and syscalls, so it is thread-safe and async-signal-safe.
//! The real functions are resolved with `dlsym(RTLD_NEXT)` in a load-time
//! constructor; a call that arrives before it (from another constructor)
//! resolves lazily.
//!
//! The library also exports `toa_get_peer` (it links `libtoa`).

use std::ffi::{CStr, c_int, c_void};
use std::sync::atomic::{AtomicPtr, Ordering};

use libc::{sockaddr, sockaddr_in6, socklen_t};
use libtoa::lookup::client_of;
use libtoa::sockaddr as c_addr;

type AcceptFn = unsafe extern "C" fn(c_int, *mut sockaddr, *mut socklen_t) -> c_int;
type Accept4Fn = unsafe extern "C" fn(c_int, *mut sockaddr, *mut socklen_t, c_int) -> c_int;
type GetpeernameFn = unsafe extern "C" fn(c_int, *mut sockaddr, *mut socklen_t) -> c_int;

/// A libc function found with `dlsym(RTLD_NEXT)`, cached after the first lookup.
struct Real {
    name: &'static CStr,
    addr: AtomicPtr<c_void>,
}

impl Real {
    const fn new(name: &'static CStr) -> Real {
        Real {
            name,
            addr: AtomicPtr::new(std::ptr::null_mut()),
        }
    }

    /// The real function, or null if libc has none (then the wrapper fails with ENOSYS).
    fn get(&self) -> *mut c_void {
        let cached = self.addr.load(Ordering::Acquire);
        if !cached.is_null() {
            return cached;
        }
        // Racing resolvers all store the same pointer.
        // SAFETY: RTLD_NEXT with a NUL-terminated name is dlsym's documented use.
        let found = unsafe { libc::dlsym(libc::RTLD_NEXT, self.name.as_ptr()) };
        self.addr.store(found, Ordering::Release);
        found
    }
}

static REAL_ACCEPT: Real = Real::new(c"accept");
static REAL_ACCEPT4: Real = Real::new(c"accept4");
static REAL_GETPEERNAME: Real = Real::new(c"getpeername");

/// dlsym takes locks and may allocate: do it at load time, not in the hot path
/// (which may be a signal handler).
extern "C" fn resolve_at_load() {
    for real in [&REAL_ACCEPT, &REAL_ACCEPT4, &REAL_GETPEERNAME] {
        real.get();
    }
}

#[used]
#[unsafe(link_section = ".init_array")]
static RESOLVE_AT_LOAD: extern "C" fn() = resolve_at_load;

fn no_real_function() -> c_int {
    // SAFETY: this thread's errno slot.
    unsafe { *libc::__errno_location() = libc::ENOSYS };
    -1
}

/// The capacity of the caller's address buffer before libc overwrites `*addrlen`.
///
/// # Safety
/// `addrlen` must be null or valid, as libc requires.
unsafe fn capacity(addr: *mut sockaddr, addrlen: *mut socklen_t) -> socklen_t {
    if addr.is_null() || addrlen.is_null() {
        0
    } else {
        // SAFETY: non-null and valid per libc's contract with the caller.
        unsafe { *addrlen }
    }
}

/// After a successful accept/getpeername on `fd` that wrote an `AF_INET` address:
/// replace it by the IPv6 TOA client when there is one and it fits. errno is
/// preserved whatever the lookup does.
///
/// # Safety
/// `addr` must be valid for `capacity` bytes and `addrlen` valid whenever `capacity > 0`.
unsafe fn reveal_ipv6_client(
    fd: c_int,
    addr: *mut sockaddr,
    addrlen: *mut socklen_t,
    capacity: socklen_t,
) {
    if (capacity as usize) < size_of::<sockaddr_in6>() {
        return;
    }
    // SAFETY: the kernel just wrote an address into `addr`, whose capacity exceeds the family field.
    if i32::from(unsafe { c_addr::family(addr) }) != libc::AF_INET {
        return;
    }
    // SAFETY: this thread's errno slot.
    let errno = unsafe { libc::__errno_location() };
    let saved = unsafe { *errno };
    if let Ok(client @ std::net::SocketAddr::V6(_)) = client_of(fd) {
        // SAFETY: `capacity` writable bytes at `addr`, checked to hold a sockaddr_in6.
        if let Some(len) = unsafe { c_addr::write(&client, addr, capacity) } {
            unsafe { *addrlen = len };
        }
    }
    unsafe { *errno = saved };
}

/// Calls the real function through `call` and, when `revealable` picks the
/// connected socket out of its result, reveals that socket's IPv6 client.
///
/// # Safety
/// `addr`/`addrlen` as the wrapped libc function requires; `call` must invoke
/// `real`'s function with the caller's arguments.
unsafe fn intercept(
    real: &Real,
    addr: *mut sockaddr,
    addrlen: *mut socklen_t,
    call: impl FnOnce(*mut c_void) -> c_int,
    revealable: impl FnOnce(c_int) -> Option<c_int>,
) -> c_int {
    let function = real.get();
    if function.is_null() {
        return no_real_function();
    }
    // SAFETY: forwarded from the caller.
    let capacity = unsafe { capacity(addr, addrlen) };
    let result = call(function);
    if let Some(socket) = revealable(result) {
        // SAFETY: libc succeeded, so `addr`/`addrlen` are valid for `capacity` bytes.
        unsafe { reveal_ipv6_client(socket, addr, addrlen, capacity) };
    }
    result
}

/// # Safety
/// As accept(2).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn accept(fd: c_int, addr: *mut sockaddr, addrlen: *mut socklen_t) -> c_int {
    // SAFETY: the pointer is libc's accept; the arguments are the caller's, unchanged.
    let call =
        |real| unsafe { std::mem::transmute::<*mut c_void, AcceptFn>(real)(fd, addr, addrlen) };
    unsafe {
        intercept(&REAL_ACCEPT, addr, addrlen, call, |conn| {
            (conn >= 0).then_some(conn)
        })
    }
}

/// # Safety
/// As accept4(2).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn accept4(
    fd: c_int,
    addr: *mut sockaddr,
    addrlen: *mut socklen_t,
    flags: c_int,
) -> c_int {
    // SAFETY: as in `accept`.
    let call = |real| unsafe {
        std::mem::transmute::<*mut c_void, Accept4Fn>(real)(fd, addr, addrlen, flags)
    };
    unsafe {
        intercept(&REAL_ACCEPT4, addr, addrlen, call, |conn| {
            (conn >= 0).then_some(conn)
        })
    }
}

/// # Safety
/// As getpeername(2).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn getpeername(
    fd: c_int,
    addr: *mut sockaddr,
    addrlen: *mut socklen_t,
) -> c_int {
    // SAFETY: as in `accept`.
    let call = |real| unsafe {
        std::mem::transmute::<*mut c_void, GetpeernameFn>(real)(fd, addr, addrlen)
    };
    unsafe {
        intercept(&REAL_GETPEERNAME, addr, addrlen, call, |rc| {
            (rc == 0).then_some(fd)
        })
    }
}
