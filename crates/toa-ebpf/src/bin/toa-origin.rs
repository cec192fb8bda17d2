//! The origin receiver: four single-purpose programs sharing one per-socket
//! record (sk_storage) and one per-CPU counter array.
//!
//! - `toa_receiver` (sock_ops) finds the TOA of each accepted connection in the
//!   handshake ACK (or the saved SYN), checks the sender against the trust
//!   list and stores the client; at TCP_CLOSE it marks the record released
//!   and counts it (the record's memory is freed with the socket).
//! - `toa_getpeername4` / `toa_getpeername6` rewrite what accept() and
//!   getpeername() return.
//! - `toa_lookup` (cgroup/getsockopt) answers getsockopt(IPPROTO_IP, 4096).
//!
//! Receivers on nested cgroups share the per-socket records (one pinned
//! map): the kernel runs the programs of the socket's own cgroup first, then
//! its ancestors', so the receiver nearest the socket records its decision
//! (a TOA or none) and the outer ones find it, count it as nested and leave
//! it. The rewrite and the lookup then apply that one record, whichever load
//! runs them: never the union of the trust lists.
//!
//! Every entry point only counts the outcome its `try_` function returns and
//! maps it to a fail-safe return: a program never breaks a connection or a
//! syscall, and no return path can skip its counter.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::{
        BPF_SK_STORAGE_GET_F_CREATE, BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB, BPF_SOCK_OPS_STATE_CB,
        BPF_SOCK_OPS_STATE_CB_FLAG, BPF_SOCK_OPS_TCP_LISTEN_CB, bpf_sock,
    },
    btf_maps::{Array, LpmTrie, PerCpuArray, SkStorage, lpm_trie::Key},
    helpers::generated::{bpf_getsockopt, bpf_setsockopt, bpf_sk_storage_get},
    macros::{btf_map, cgroup_sock_addr, cgroup_sockopt, sock_ops},
    programs::{SockAddrContext, SockOpsContext, SockoptContext},
};
use core::ptr::{self, write_volatile};
use toa_common::{
    ClientAddr, LOOKUP_ANSWER_LEN, LookupReply, TOA_SO_GET_LOOKUP,
    options::{CopiedHeader, MAX_TCP_HEADER, find_toa},
    origin::{
        Counter, MAX_TRUST_ENTRIES, OriginConfig, STATUS_INVALID, STATUS_NO_TOA, STATUS_RELEASED,
        STATUS_TRUSTED, STATUS_UNTRUSTED, SocketToa, TrustAddr,
    },
    plausible::plausible,
};
use toa_ebpf::{bump, kernel::*, map_ptr, pass_to_kernel, packet::PacketHeader, stored};

#[btf_map]
static TOA_CONFIG: Array<OriginConfig, 1> = Array::new();

/// The two tries of the trust list; `OriginConfig::trust_slot` names the one
/// in force (see `toa_common::origin::MAP_TRUST`).
#[btf_map]
static TOA_TRUST0: LpmTrie<TrustAddr, u32, { MAX_TRUST_ENTRIES as usize }> = LpmTrie::new();

#[btf_map]
static TOA_TRUST1: LpmTrie<TrustAddr, u32, { MAX_TRUST_ENTRIES as usize }> = LpmTrie::new();

#[btf_map]
static TOA_SOCKETS: SkStorage<SocketToa> = SkStorage::new();

#[btf_map]
static TOA_COUNTERS: PerCpuArray<u64, { Counter::COUNT as usize }> = PerCpuArray::new();

#[inline(always)]
fn count(counter: Counter) {
    bump(&TOA_COUNTERS, counter as u32);
}

/// What one receiver callback did; [`toa_receiver`] counts it.
enum ReceiverOutcome {
    /// Nothing to count: a callback the receiver does not use, TCP_SAVE_SYN
    /// set on a listener, or the close of a socket without a counted record.
    Uncounted,
    /// One counter.
    Counted(Counter),
    /// A record was stored for a completed handshake: counted as created
    /// (`ip6_address_alloc`) and as what its TOA was (`outcome`: usable,
    /// untrusted or invalid), and as `syn_recv_sock_cb_failed` unless its
    /// close can be counted.
    Stored {
        outcome: Counter,
        close_tracked: bool,
    },
}

/// The record of `sk`, if the receiver stored one.
#[inline(always)]
fn record_of(sk: *mut bpf_sock) -> Option<SocketToa> {
    stored(&TOA_SOCKETS, sk)
}

// ---------------------------------------------------------------- sock_ops

#[sock_ops]
pub fn toa_receiver(ctx: SockOpsContext) -> u32 {
    match try_toa_receiver(&ctx) {
        ReceiverOutcome::Uncounted => {}
        ReceiverOutcome::Counted(counter) => count(counter),
        ReceiverOutcome::Stored {
            outcome,
            close_tracked,
        } => {
            count(Counter::Ip6AddressAlloc);
            count(outcome);
            if !close_tracked {
                count(Counter::SynRecvSockCbFailed);
            }
        }
    }
    1
}

fn try_toa_receiver(ctx: &SockOpsContext) -> ReceiverOutcome {
    match ctx.op() {
        BPF_SOCK_OPS_TCP_LISTEN_CB => save_syn(ctx),
        BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB => on_passive_established(ctx),
        BPF_SOCK_OPS_STATE_CB if ctx.arg(1) == TCP_CLOSE => on_close(ctx),
        _ => ReceiverOutcome::Uncounted,
    }
}

/// Listeners keep each SYN's headers, so a TOA that was only on the SYN can
/// still be read when the handshake completes (not under SYN cookies).
fn save_syn(ctx: &SockOpsContext) -> ReceiverOutcome {
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
        ReceiverOutcome::Uncounted
    } else {
        ReceiverOutcome::Counted(Counter::ListenSaveSynFailed)
    }
}

fn on_passive_established(ctx: &SockOpsContext) -> ReceiverOutcome {
    let Some(sk) = sock_ops_sk(ctx.ops) else {
        return ReceiverOutcome::Counted(Counter::SynRecvSockNoSk);
    };
    // A receiver on a nearer cgroup ran first and decided.
    if record_of(sk).is_some() {
        return ReceiverOutcome::Counted(Counter::SynRecvSockNested);
    }
    // A one-entry array always has entry 0: this never returns.
    let Some(config) = TOA_CONFIG.get(0) else {
        return ReceiverOutcome::Uncounted;
    };
    let Some(client) = toa_in_ack(ctx, config).or_else(|| toa_in_saved_syn(ctx, config)) else {
        return store_no_toa(sk);
    };
    // Untrusted first: a spoofed TOA is counted as such whatever it names.
    let (status, outcome) = if config.trust_enabled != 0 && !sender_trusted(ctx, config) {
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
    if !store(sk, &record) {
        return ReceiverOutcome::Counted(Counter::SynRecvSockNoMem);
    }
    // STATE_CB tells us when the socket closes, to count the release.
    let close_tracked = ctx
        .set_cb_flags((ctx.cb_flags() | BPF_SOCK_OPS_STATE_CB_FLAG) as i32)
        .is_ok();
    ReceiverOutcome::Stored {
        outcome,
        close_tracked,
    }
}

/// Records that the handshake had no TOA, so that receivers on ancestor
/// cgroups leave the socket alone (see `STATUS_NO_TOA`). Its close is not
/// tracked: only records with a TOA are counted.
fn store_no_toa(sk: *mut bpf_sock) -> ReceiverOutcome {
    let record = SocketToa {
        client: ClientAddr::default(),
        status: STATUS_NO_TOA,
        _pad: [0; 3],
    };
    if !store(sk, &record) {
        return ReceiverOutcome::Counted(Counter::SynRecvSockNoMem);
    }
    ReceiverOutcome::Counted(Counter::SynRecvSockNoToa)
}

/// Creates `sk`'s record with `record`; false without memory for it.
#[inline(always)]
fn store(sk: *mut bpf_sock, record: &SocketToa) -> bool {
    // SAFETY: full socket from the context; `record` is a valid initial value.
    let stored = unsafe {
        bpf_sk_storage_get(
            map_ptr(&TOA_SOCKETS),
            sk.cast(),
            ptr::from_ref(record).cast_mut().cast(),
            BPF_SK_STORAGE_GET_F_CREATE.into(),
        )
    };
    !stored.is_null()
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

/// Whether the connection's source (the proxy) is in the trust list in force.
fn sender_trusted(ctx: &SockOpsContext, config: &OriginConfig) -> bool {
    let Some(addr) = sock_ops_peer(ctx.ops) else {
        return false;
    };
    let key = Key::new(128, addr);
    if config.trust_slot == 0 {
        TOA_TRUST0.get(&key).is_some()
    } else {
        TOA_TRUST1.get(&key).is_some()
    }
}

/// Releases the socket's record: from now on it reads as no TOA. It is
/// marked, not deleted: the socket's destruction frees it anyway, after an
/// ordinary RCU grace period, while a delete from a program waits for an
/// RCU-tasks-trace one; the delete took ~280 ns of this program's ~1.1 µs
/// per connection, and the tasks-trace kthread's work went with it.
fn on_close(ctx: &SockOpsContext) -> ReceiverOutcome {
    let Some(sk) = sock_ops_sk(ctx.ops) else {
        return ReceiverOutcome::Uncounted;
    };
    // SAFETY: full socket from the context; without the create flag the
    // helper only looks up.
    let record = unsafe {
        bpf_sk_storage_get(map_ptr(&TOA_SOCKETS), sk.cast(), ptr::null_mut(), 0)
    }
    .cast::<SocketToa>();
    if record.is_null() {
        return ReceiverOutcome::Uncounted;
    }
    // SAFETY: non-null storage holding a SocketToa. A second TCP_CLOSE (or
    // the close callback of a receiver on an ancestor cgroup) finds it
    // released already and counts nothing; a record of no TOA was never
    // counted as created.
    unsafe {
        let status = (*record).status;
        if status == STATUS_RELEASED || status == STATUS_NO_TOA {
            return ReceiverOutcome::Uncounted;
        }
        (*record).status = STATUS_RELEASED;
    }
    ReceiverOutcome::Counted(Counter::Ip6AddressFree)
}

// ------------------------------------------------------------- getpeername

#[cgroup_sock_addr(getpeername4)]
pub fn toa_getpeername4(ctx: SockAddrContext) -> i32 {
    count(try_getpeername4(&ctx));
    1
}

fn try_getpeername4(ctx: &SockAddrContext) -> Counter {
    let rec = match trusted_record(ctx) {
        Ok(rec) => rec,
        Err(untrusted) => return untrusted,
    };
    let Some(ip) = rec.client.ipv4() else {
        // An AF_INET address cannot hold an IPv6 client: the lookup serves it.
        return Counter::GetnameToaMismatch;
    };
    // SAFETY: writable context fields of getpeername4 (4-byte stores).
    unsafe {
        write_volatile(&mut (*ctx.sock_addr).user_ip4, u32::from_ne_bytes(ip));
        write_volatile(
            &mut (*ctx.sock_addr).user_port,
            u32::from(rec.client.port_be),
        );
    }
    Counter::GetnameToaOk
}

#[cgroup_sock_addr(getpeername6)]
pub fn toa_getpeername6(ctx: SockAddrContext) -> i32 {
    count(try_getpeername6(&ctx));
    1
}

fn try_getpeername6(ctx: &SockAddrContext) -> Counter {
    let rec = match trusted_record(ctx) {
        Ok(rec) => rec,
        Err(untrusted) => return untrusted,
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
    Counter::GetnameToaOk
}

/// The socket's trusted record, or the outcome that leaves the address
/// unchanged: no record or a released one (empty), an untrusted one (bypass)
/// or an implausible one (invalid).
#[inline(always)]
fn trusted_record(ctx: &SockAddrContext) -> Result<SocketToa, Counter> {
    // SAFETY: `sk` is always set for getpeername programs.
    let sk = unsafe { (*ctx.sock_addr).__bindgen_anon_1.sk };
    match record_of(sk) {
        Some(rec) if rec.status == STATUS_TRUSTED => Ok(rec),
        Some(rec) if rec.status == STATUS_INVALID => Err(Counter::GetnameToaInvalid),
        Some(rec) if rec.status == STATUS_UNTRUSTED => Err(Counter::GetnameToaBypass),
        _ => Err(Counter::GetnameToaEmpty),
    }
}

// ------------------------------------------------------------------ lookup

#[cgroup_sockopt(getsockopt)]
pub fn toa_lookup(ctx: SockoptContext) -> i32 {
    match try_toa_lookup(&ctx) {
        Some(counter) => count(counter),
        None => pass_to_kernel(ctx.sockopt),
    }
    1
}

/// Answers the lookup; `None` for any other getsockopt (not counted: the
/// kernel's answer stands).
fn try_toa_lookup(ctx: &SockoptContext) -> Option<Counter> {
    let opt = ctx.sockopt;
    // SAFETY: reading context fields; the verifier checks the accesses.
    let (level, name) = unsafe { ((*opt).level, (*opt).optname) };
    if level != SOL_IP || name != TOA_SO_GET_LOOKUP {
        return None;
    }
    // SAFETY: `sk` is never null in getsockopt programs.
    let sk = unsafe { (*opt).__bindgen_anon_1.sk };
    // Both arms give fully initialized values: an `Option<SocketToa>` kept
    // across the helper calls below gets its undefined `None` payload spilled,
    // which the verifier rejects ("R4 !read_ok").
    let (found, answer) = match record_of(sk) {
        Some(rec) if rec.status == STATUS_TRUSTED => (true, LookupReply::from(&rec.client)),
        _ => (false, LookupReply::NONE),
    };
    // Without a record the outcome is "empty" whatever the buffer: a short
    // buffer only counts as such when there was an answer to give.
    let answered = |counter| Some(if found { counter } else { Counter::LookupToaEmpty });
    // Before Linux 5.18 any retval but 0 becomes EFAULT: there "no TOA" is a
    // success with the all-zero answer (OriginConfig::lookup_errno).
    let errno_ok = TOA_CONFIG.get(0).is_some_and(|c| c.lookup_errno != 0);
    if !found && errno_ok {
        // SAFETY: retval is a writable 4-byte context field.
        unsafe { write_volatile(&mut (*opt).retval, -ENOENT) };
        return Some(Counter::LookupToaEmpty);
    }
    // SAFETY: reading context fields.
    let (optval, optval_end) = unsafe {
        (
            (*opt).__bindgen_anon_2.optval as usize,
            (*opt).__bindgen_anon_3.optval_end as usize,
        )
    };
    if optval + LOOKUP_ANSWER_LEN > optval_end {
        // SAFETY: retval is a writable 4-byte context field.
        unsafe { write_volatile(&mut (*opt).retval, -EINVAL) };
        return answered(Counter::LookupShortBuffer);
    }
    // SAFETY: optval..optval+LOOKUP_ANSWER_LEN was checked against optval_end above.
    unsafe {
        ptr::write_unaligned(optval as *mut LookupReply, answer);
        // Separate volatile 4-byte stores: merged into one 8-byte store, the
        // verifier rejects them (off=32 size=8).
        write_volatile(&mut (*opt).optlen, LOOKUP_ANSWER_LEN as i32);
        write_volatile(&mut (*opt).retval, 0);
    }
    answered(Counter::LookupToaOk)
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
