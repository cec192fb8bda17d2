//! Kernel constants (linux/tcp.h, linux/in.h, errno) that `aya_ebpf::bindings`
//! does not export, and small helpers around the raw sock_ops context.

use aya_ebpf::bindings::{bpf_sock, bpf_sock_ops};
use core::ptr::read_volatile;

pub const AF_INET: u32 = 2;
pub const AF_INET6: u32 = 10;
pub const SOL_IP: i32 = 0;
pub const SOL_TCP: i32 = 6;
/// setsockopt(TCP_NODELAY): no Nagle delay for small writes.
pub const TCP_NODELAY: i32 = 1;
/// setsockopt(TCP_SAVE_SYN): keep the SYN's headers for TCP_BPF_SYN.
pub const TCP_SAVE_SYN: i32 = 27;
/// bpf_getsockopt(SOL_TCP, TCP_BPF_SYN): the saved SYN's TCP header.
pub const TCP_BPF_SYN: i32 = 1005;
/// tcp_states.h
pub const TCP_CLOSE: u32 = 7;
/// HDR_OPT_LEN_CB / WRITE_HDR_OPT_CB args[0] flag: the kernel is sizing
/// segments (no packet yet).
pub const BPF_WRITE_HDR_TCP_CURRENT_MSS: u32 = 1;
pub const ENOENT: i32 = 2;
pub const EINVAL: i32 = 22;

/// The full socket behind a sock_ops context, if there is one.
#[inline(always)]
pub fn sock_ops_sk(ops: *mut bpf_sock_ops) -> Option<*mut bpf_sock> {
    // SAFETY: reading a context field; the verifier checks the access.
    let sk = unsafe { (*ops).__bindgen_anon_2.sk };
    (!sk.is_null()).then_some(sk)
}

/// The peer address of a sock_ops socket as 16 bytes, IPv4 v4-mapped.
///
/// All fields are read up front, unconditionally: with one load per branch,
/// LLVM sinks the loads into one through a computed pointer, which the
/// verifier rejects ("dereference of modified ctx ptr").
#[inline(always)]
pub fn sock_ops_peer(ops: *mut bpf_sock_ops) -> Option<[u8; 16]> {
    // SAFETY: reading context fields; the verifier checks the accesses.
    let (family, ip4, ip6) = unsafe {
        (
            read_volatile(&(*ops).family),
            read_volatile(&(*ops).remote_ip4),
            [
                read_volatile(&(*ops).remote_ip6[0]),
                read_volatile(&(*ops).remote_ip6[1]),
                read_volatile(&(*ops).remote_ip6[2]),
                read_volatile(&(*ops).remote_ip6[3]),
            ],
        )
    };
    match family {
        AF_INET => Some(toa_wire::mapped::v4_mapped(ip4.to_ne_bytes())),
        AF_INET6 => Some(words_to_bytes(ip6)),
        _ => None,
    }
}

/// Four 32-bit words in network order (as the kernel stores IPv6 addresses in
/// context structs) to 16 bytes.
#[inline(always)]
pub fn words_to_bytes(w: [u32; 4]) -> [u8; 16] {
    let mut out = [0u8; 16];
    let mut i = 0;
    while i < 4 {
        let b = w[i].to_ne_bytes();
        out[i * 4] = b[0];
        out[i * 4 + 1] = b[1];
        out[i * 4 + 2] = b[2];
        out[i * 4 + 3] = b[3];
        i += 1;
    }
    out
}

/// The inverse of [`words_to_bytes`].
#[inline(always)]
pub fn bytes_to_words(b: &[u8; 16]) -> [u32; 4] {
    [
        u32::from_ne_bytes([b[0], b[1], b[2], b[3]]),
        u32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
        u32::from_ne_bytes([b[8], b[9], b[10], b[11]]),
        u32::from_ne_bytes([b[12], b[13], b[14], b[15]]),
    ]
}
