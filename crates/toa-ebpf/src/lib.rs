//! Code shared by toa's kernel programs: the packet-memory TCP header reader, address helpers
//! and kernel constants missing from `aya_ebpf::bindings`.
//!
//! The programs themselves are the binaries: `toa-origin` (receiver,
//! getpeername rewrite, getsockopt lookup), `toa-edge` (option writer) and
//! `toa-steer` (the proxy's port-range steerer, sk_lookup).
//! Their maps and counter ids come from `toa-common`; `toa-loader` loads them.
#![no_std]

pub mod kernel;
pub mod packet;

use aya_ebpf::{
    bindings::{bpf_sock, bpf_sockopt},
    btf_maps::{PerCpuArray, SkStorage},
    helpers::generated::bpf_sk_storage_get,
};
use core::ptr;

/// Adds one to counter `index` of a per-CPU counter array.
#[inline(always)]
pub fn bump<const N: usize>(counters: &PerCpuArray<u64, N>, index: u32) {
    if let Some(value) = counters.get_ptr_mut(index) {
        // SAFETY: this CPU's slot; programs on one CPU do not run concurrently.
        unsafe { *value += 1 };
    }
}

/// The address of a map definition, as the map helpers take it.
#[inline(always)]
pub fn map_ptr<M>(map: &M) -> *mut core::ffi::c_void {
    ptr::from_ref(map).cast_mut().cast()
}

/// A copy of `sk`'s value in an sk_storage map, if it has one.
#[inline(always)]
pub fn stored<T: Copy>(map: &SkStorage<T>, sk: *mut bpf_sock) -> Option<T> {
    // SAFETY: `sk` is a socket pointer from the program context; without the
    // create flag the helper only looks up, and null means "no value".
    let value = unsafe { bpf_sk_storage_get(map_ptr(map), sk.cast(), ptr::null_mut(), 0) };
    if value.is_null() {
        None
    } else {
        // SAFETY: non-null storage holding a T.
        Some(unsafe { *(value as *const T) })
    }
}

/// Leaves a get/setsockopt to the kernel from a cgroup sockopt program. A
/// program sees at most a page of the caller's value; when the value is
/// larger, kernels before 6.5 fail the call with EFAULT unless the program
/// sets optlen to 0, which means "the caller's own value" (kernel docs,
/// prog_cgroup_sockopt, "Large optval"; the kernel's selftests compare with
/// 4096 as here: 0 is harmless on a larger page too). iptables-legacy's calls
/// are that large.
#[inline(always)]
pub fn pass_to_kernel(opt: *mut bpf_sockopt) {
    // SAFETY: reading and writing optlen, a 4-byte context field.
    unsafe {
        if ptr::read_volatile(&(*opt).optlen) > 4096 {
            ptr::write_volatile(&mut (*opt).optlen, 0);
        }
    }
}
