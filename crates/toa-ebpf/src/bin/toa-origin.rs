//! The origin receiver: four single-purpose programs sharing one per-socket
//! record (sk_storage) and one per-CPU counter array.
//!
//! - `toa_receiver` (sock_ops) finds the TOA of each accepted connection in the
//!   handshake ACK (or the saved SYN), checks the sender against the trust
//!   list and stores the client; it counts the release at TCP_CLOSE.
//! - `toa_getpeername4` / `toa_getpeername6` rewrite what accept() and
//!   getpeername() return.
//! - `toa_lookup` (cgroup/getsockopt) answers getsockopt(IPPROTO_IP, 4096).
//!
//! Every entry point only maps its `try_` function to a fail-safe return: a
//! program never breaks a connection or a syscall.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::{
        BPF_SK_STORAGE_GET_F_CREATE, BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB, BPF_SOCK_OPS_STATE_CB,
        BPF_SOCK_OPS_STATE_CB_FLAG, BPF_SOCK_OPS_TCP_LISTEN_CB, bpf_sock,
    },
    btf_maps::{Array, LpmTrie, PerCpuArray, SkStorage, lpm_trie::Key},
    helpers::generated::{
        bpf_getsockopt, bpf_setsockopt, bpf_sk_storage_delete, bpf_sk_storage_get,
    },
    macros::{btf_map, cgroup_sock_addr, cgroup_sockopt, sock_ops},
    programs::{SockAddrContext, SockOpsContext, SockoptContext},
};
use core::ptr::{self, write_volatile};
use toa_common::{
    ClientAddr, LOOKUP_ANSWER_LEN, LookupReply, TOA_SO_GET_LOOKUP,
    options::{CopiedHeader, MAX_TCP_HEADER, find_toa},
    origin::{
        Counter, MAX_TRUST_ENTRIES, OriginConfig, STATUS_INVALID, STATUS_TRUSTED, STATUS_UNTRUSTED,
        SocketToa, TrustAddr,
    },
    plausible::plausible,
};
use toa_ebpf::{bump, kernel::*, map_ptr, packet::PacketHeader, stored};

#[btf_map]
static TOA_CONFIG: Array<OriginConfig, 1> = Array::new();

#[btf_map]
static TOA_TRUST: LpmTrie<TrustAddr, u32, { MAX_TRUST_ENTRIES as usize }> = LpmTrie::new();

#[btf_map]
static TOA_SOCKETS: SkStorage<SocketToa> = SkStorage::new();

#[btf_map]
static TOA_COUNTERS: PerCpuArray<u64, { Counter::COUNT as usize }> = PerCpuArray::new();

#[inline(always)]
fn count(counter: Counter) {
    bump(&TOA_COUNTERS, counter as u32);
}

/// The record of `sk`, if the receiver stored one.
#[inline(always)]
fn record_of(sk: *mut bpf_sock) -> Option<SocketToa> {
    stored(&TOA_SOCKETS, sk)
}

// ---------------------------------------------------------------- sock_ops

#[sock_ops]
pub fn toa_receiver(ctx: SockOpsContext) -> u32 {
    let _ = try_toa_receiver(&ctx);
    1
}

fn try_toa_receiver(ctx: &SockOpsContext) -> Result<(), i64> {
    match ctx.op() {
        BPF_SOCK_OPS_TCP_LISTEN_CB => save_syn(ctx),
        BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB => on_passive_established(ctx),
        BPF_SOCK_OPS_STATE_CB if ctx.arg(1) == TCP_CLOSE => on_close(ctx),
        _ => Ok(()),
    }
}

/// Listeners keep each SYN's headers, so a TOA that was only on the SYN can
/// still be read when the handshake completes (not under SYN cookies).
fn save_syn(ctx: &SockOpsContext) -> Result<(), i64> {
    let mut on: i32 = 1;
    // SAFETY: valid context and a 4-byte option value.
    let ret = unsafe {
        bpf_setsockopt(
            ctx.ops.cast(),
            SOL_TCP,
            TCP_SAVE_SYN,
            ptr::from_mut(&mut on).cast(),
            4,
        )
    };
    if ret == 0 {
        Ok(())
    } else {
        count(Counter::ListenSaveSynFailed);
        Err(ret)
    }
}

fn on_passive_established(ctx: &SockOpsContext) -> Result<(), i64> {
    // A one-entry array always has entry 0: this never returns.
    let Some(config) = TOA_CONFIG.get(0) else {
        return Ok(());
    };
    let Some(client) = toa_in_ack(ctx, config).or_else(|| toa_in_saved_syn(ctx, config)) else {
        count(Counter::SynRecvSockNoToa);
        return Ok(());
    };
    // Untrusted first: a spoofed TOA is counted as such whatever it names.
    let (status, outcome) = if config.trust_enabled != 0 && !sender_trusted(ctx) {
        (STATUS_UNTRUSTED, Counter::SynRecvSockUntrusted)
    } else if !plausible(&client) {
        (STATUS_INVALID, Counter::SynRecvSockInvalid)
    } else {
        (STATUS_TRUSTED, Counter::SynRecvSockToa)
    };
    let record = SocketToa {
        client,
        status,
        _pad: [0; 3],
    };
    let Some(sk) = sock_ops_sk(ctx.ops) else {
        count(Counter::SynRecvSockNoSk);
        return Ok(());
    };
    // SAFETY: full socket from the context; `record` is a valid initial value.
    let stored = unsafe {
        bpf_sk_storage_get(
            map_ptr(&TOA_SOCKETS),
            sk.cast(),
            ptr::from_ref(&record).cast_mut().cast(),
            BPF_SK_STORAGE_GET_F_CREATE.into(),
        )
    };
    if stored.is_null() {
        count(Counter::SynRecvSockNoMem);
        return Ok(());
    }
    count(Counter::Ip6AddressAlloc);
    count(outcome);
    // STATE_CB tells us when the socket closes, to count the release.
    ctx.set_cb_flags((ctx.cb_flags() | BPF_SOCK_OPS_STATE_CB_FLAG) as i32)
        .map_err(|err| {
            count(Counter::SynRecvSockCbFailed);
            i64::from(err)
        })
}

/// The TOA in the packet that completed the handshake (normally the ACK).
fn toa_in_ack(ctx: &SockOpsContext, config: &OriginConfig) -> Option<ClientAddr> {
    // SAFETY: reading context fields; the verifier checks the accesses.
    let (data, end) = unsafe {
        (
            (*ctx.ops).__bindgen_anon_3.skb_data as usize,
            (*ctx.ops).__bindgen_anon_4.skb_data_end as usize,
        )
    };
    find_toa(&PacketHeader { data, end }, config)
}

/// The TOA in the saved SYN (absent under SYN cookies).
fn toa_in_saved_syn(ctx: &SockOpsContext, config: &OriginConfig) -> Option<ClientAddr> {
    let mut header = CopiedHeader {
        buf: [0u8; MAX_TCP_HEADER],
    };
    // SAFETY: valid context and a stack buffer of the given length.
    let ret = unsafe {
        bpf_getsockopt(
            ctx.ops.cast(),
            SOL_TCP,
            TCP_BPF_SYN,
            header.buf.as_mut_ptr().cast(),
            MAX_TCP_HEADER as i32,
        )
    };
    if ret <= 0 {
        return None;
    }
    find_toa(&header, config)
}

/// Whether the connection's source (the proxy) is in the trust list.
fn sender_trusted(ctx: &SockOpsContext) -> bool {
    let Some(addr) = sock_ops_peer(ctx.ops) else {
        return false;
    };
    TOA_TRUST.get(&Key::new(128, addr)).is_some()
}

fn on_close(ctx: &SockOpsContext) -> Result<(), i64> {
    let Some(sk) = sock_ops_sk(ctx.ops) else {
        return Ok(());
    };
    // SAFETY: full socket from the context.
    if unsafe { bpf_sk_storage_delete(map_ptr(&TOA_SOCKETS), sk.cast()) } == 0 {
        count(Counter::Ip6AddressFree);
    }
    Ok(())
}

// ------------------------------------------------------------- getpeername

#[cgroup_sock_addr(getpeername4)]
pub fn toa_getpeername4(ctx: SockAddrContext) -> i32 {
    try_getpeername4(&ctx);
    1
}

fn try_getpeername4(ctx: &SockAddrContext) {
    let Some(rec) = trusted_record(ctx) else {
        return;
    };
    let Some(ip) = rec.client.ipv4() else {
        // An AF_INET address cannot hold an IPv6 client: the lookup serves it.
        count(Counter::GetnameToaMismatch);
        return;
    };
    // SAFETY: writable context fields of getpeername4 (4-byte stores).
    unsafe {
        write_volatile(&mut (*ctx.sock_addr).user_ip4, u32::from_ne_bytes(ip));
        write_volatile(
            &mut (*ctx.sock_addr).user_port,
            u32::from(rec.client.port_be),
        );
    }
    count(Counter::GetnameToaOk);
}

#[cgroup_sock_addr(getpeername6)]
pub fn toa_getpeername6(ctx: SockAddrContext) -> i32 {
    try_getpeername6(&ctx);
    1
}

fn try_getpeername6(ctx: &SockAddrContext) {
    let Some(rec) = trusted_record(ctx) else {
        return;
    };
    // IPv4 clients are already v4-mapped in the record: `::ffff:a.b.c.d`.
    let words = bytes_to_words(&rec.client.addr);
    // SAFETY: writable context fields of getpeername6 (4-byte stores).
    unsafe {
        let sa = ctx.sock_addr;
        write_volatile(&mut (*sa).user_ip6[0], words[0]);
        write_volatile(&mut (*sa).user_ip6[1], words[1]);
        write_volatile(&mut (*sa).user_ip6[2], words[2]);
        write_volatile(&mut (*sa).user_ip6[3], words[3]);
        write_volatile(&mut (*sa).user_port, u32::from(rec.client.port_be));
    }
    count(Counter::GetnameToaOk);
}

/// The socket's trusted record; counts the empty, bypass and invalid outcomes.
#[inline(always)]
fn trusted_record(ctx: &SockAddrContext) -> Option<SocketToa> {
    // SAFETY: `sk` is always set for getpeername programs.
    let sk = unsafe { (*ctx.sock_addr).__bindgen_anon_1.sk };
    match record_of(sk) {
        None => {
            count(Counter::GetnameToaEmpty);
            None
        }
        Some(rec) if rec.status == STATUS_TRUSTED => Some(rec),
        Some(rec) => {
            count(if rec.status == STATUS_INVALID {
                Counter::GetnameToaInvalid
            } else {
                Counter::GetnameToaBypass
            });
            None
        }
    }
}

// ------------------------------------------------------------------ lookup

#[cgroup_sockopt(getsockopt)]
pub fn toa_lookup(ctx: SockoptContext) -> i32 {
    try_toa_lookup(&ctx);
    1
}

fn try_toa_lookup(ctx: &SockoptContext) {
    let opt = ctx.sockopt;
    // SAFETY: reading context fields; the verifier checks the accesses.
    let (level, name) = unsafe { ((*opt).level, (*opt).optname) };
    if level != SOL_IP || name != TOA_SO_GET_LOOKUP {
        return; // not ours: the kernel's answer stands
    }
    // SAFETY: `sk` is never null in getsockopt programs.
    let sk = unsafe { (*opt).__bindgen_anon_1.sk };
    let rec = match record_of(sk) {
        Some(rec) if rec.status == STATUS_TRUSTED => Some(rec),
        _ => {
            count(Counter::LookupToaEmpty);
            None
        }
    };
    // Before Linux 5.18 any retval but 0 becomes EFAULT: there "no TOA" is a
    // success with the all-zero answer (OriginConfig::lookup_errno).
    let errno_ok = TOA_CONFIG.get(0).is_some_and(|c| c.lookup_errno != 0);
    if rec.is_none() && errno_ok {
        // SAFETY: retval is a writable 4-byte context field.
        unsafe { write_volatile(&mut (*opt).retval, -ENOENT) };
        return;
    }
    // SAFETY: reading context fields.
    let (optval, optval_end) = unsafe {
        (
            (*opt).__bindgen_anon_2.optval as usize,
            (*opt).__bindgen_anon_3.optval_end as usize,
        )
    };
    if optval + LOOKUP_ANSWER_LEN > optval_end {
        if rec.is_some() {
            count(Counter::LookupShortBuffer);
        }
        // SAFETY: retval is a writable 4-byte context field.
        unsafe { write_volatile(&mut (*opt).retval, -EINVAL) };
        return;
    }
    let answer = match &rec {
        Some(rec) => LookupReply::from(&rec.client),
        None => LookupReply::NONE,
    };
    // SAFETY: optval..optval+LOOKUP_ANSWER_LEN was checked against optval_end above.
    unsafe {
        ptr::write_unaligned(optval as *mut LookupReply, answer);
        // Separate volatile 4-byte stores: merged into one 8-byte store, the
        // verifier rejects them (off=32 size=8).
        write_volatile(&mut (*opt).optlen, LOOKUP_ANSWER_LEN as i32);
        write_volatile(&mut (*opt).retval, 0);
    }
    if rec.is_some() {
        count(Counter::LookupToaOk);
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
