//! The edge writer (sock_ops): puts the registered client's address into a TOA
//! option on the upstream connection's SYN (and its retransmits), on the
//! handshake ACK and on data packets until the origin's first packet after
//! the handshake arrives, which survives the loss of the handshake ACK.
//!
//! The proxy registers each upstream socket between socket() and connect() with
//! a setsockopt that `toa_register` (cgroup/setsockopt) turns into a
//! `TOA_EDGE_CLIENT` (sk_storage) entry plus the TCP_NODELAY the proxy wants
//! anyway: one system call for both. Unregistered sockets are never touched. A
//! packet without room for the option (-ENOSPC) goes out without it and is
//! counted: the connection always keeps working.
//!
//! Each callback returns its outcome and the entry point counts it, so no
//! return path can skip its counter. Callbacks with nothing to count (no
//! packet, an unregistered socket, a reserve that worked) return `None`.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::{
        BPF_SK_STORAGE_GET_F_CREATE, BPF_SOCK_OPS_HDR_OPT_LEN_CB, BPF_SOCK_OPS_PARSE_ALL_HDR_OPT_CB_FLAG,
        BPF_SOCK_OPS_PARSE_HDR_OPT_CB, BPF_SOCK_OPS_TCP_CONNECT_CB, BPF_SOCK_OPS_WRITE_HDR_OPT_CB,
        BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG,
    },
    btf_maps::{Array, PerCpuArray, SkStorage},
    helpers::generated::{bpf_reserve_hdr_opt, bpf_sk_storage_get, bpf_store_hdr_opt},
    macros::{btf_map, cgroup_sockopt, sock_ops},
    programs::{SockOpsContext, SockoptContext},
};
use core::ptr::{self, write_volatile};
use toa_common::edge::{EdgeClient, EdgeConfig, EdgeCounter, EdgeRegistration, REGISTER_OPTNAME};
use toa_ebpf::{
    bump,
    kernel::{BPF_WRITE_HDR_TCP_CURRENT_MSS, SOL_TCP, TCP_NODELAY, sock_ops_sk},
    map_ptr, pass_to_kernel, stored,
};
use toa_wire::toa::{self, LEN_V4, LEN_V6};

#[btf_map]
static TOA_EDGE_CLIENT: SkStorage<EdgeClient> = SkStorage::new();

#[btf_map]
static TOA_EDGE_CONFIG: Array<EdgeConfig, 1> = Array::new();

#[btf_map]
static TOA_EDGE_STATS: PerCpuArray<u64, { EdgeCounter::COUNT as usize }> = PerCpuArray::new();

/// The callbacks that stay on while the option is being written.
const WRITING_FLAGS: u32 =
    BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG | BPF_SOCK_OPS_PARSE_ALL_HDR_OPT_CB_FLAG;

#[inline(always)]
fn count(counter: EdgeCounter) {
    bump(&TOA_EDGE_STATS, counter as u32);
}

#[sock_ops]
pub fn toa_writer(ctx: SockOpsContext) -> u32 {
    if let Some(counter) = try_toa_writer(&ctx) {
        count(counter);
    }
    1
}

fn try_toa_writer(ctx: &SockOpsContext) -> Option<EdgeCounter> {
    match ctx.op() {
        BPF_SOCK_OPS_TCP_CONNECT_CB => Some(on_connect(ctx)),
        BPF_SOCK_OPS_HDR_OPT_LEN_CB => reserve(ctx),
        BPF_SOCK_OPS_WRITE_HDR_OPT_CB => write(ctx),
        BPF_SOCK_OPS_PARSE_HDR_OPT_CB => stop_writing(ctx),
        _ => None,
    }
}

/// The client registered for this socket, if any.
#[inline(always)]
fn registered_client(ctx: &SockOpsContext) -> Option<EdgeClient> {
    stored(&TOA_EDGE_CLIENT, sock_ops_sk(ctx.ops)?)
}

/// connect() runs before the SYN is built: switch writing on for registered sockets.
fn on_connect(ctx: &SockOpsContext) -> EdgeCounter {
    if registered_client(ctx).is_none() {
        return EdgeCounter::ConnectUnregistered;
    }
    match ctx.set_cb_flags((ctx.cb_flags() | WRITING_FLAGS) as i32) {
        Ok(()) => EdgeCounter::ConnectRegistered,
        Err(_) => EdgeCounter::FlagsFailed,
    }
}

/// Room for the option, on every packet while writing is on, and during the
/// kernel's MSS sizing (no packet) so full-sized data segments still fit.
fn reserve(ctx: &SockOpsContext) -> Option<EdgeCounter> {
    let client = registered_client(ctx)?;
    // SAFETY: valid sock_ops context in HDR_OPT_LEN_CB.
    let ret = unsafe { bpf_reserve_hdr_opt(ctx.ops, toa::len_for(&client.addr).into(), 0) };
    let sizing_only = ctx.arg(0) & BPF_WRITE_HDR_TCP_CURRENT_MSS != 0;
    (ret != 0 && !sizing_only).then_some(EdgeCounter::ReserveFailed)
}

fn write(ctx: &SockOpsContext) -> Option<EdgeCounter> {
    let client = registered_client(ctx)?;
    // Kind 0 is an unset config (the loader never writes it): writing it
    // would end the option list, so the reserved room stays NOPs instead.
    let kind = match TOA_EDGE_CONFIG.get(0) {
        Some(config) if config.kind != 0 => config.kind,
        _ => return Some(EdgeCounter::ConfigMissing),
    };
    let option = toa::encode_mapped(kind, client.port_be, &client.addr);
    let buffer = option.buffer().as_ptr().cast();
    // SAFETY (both stores): valid context in WRITE_HDR_OPT_CB and a stack
    // buffer of 20 bytes, the option in its first `len`. A store without a
    // matching reserve (reserve failed) returns an error, counted below. The
    // two branches pass the helper a constant size, which it requires.
    let ret = if option.len() == usize::from(LEN_V4) {
        unsafe { bpf_store_hdr_opt(ctx.ops, buffer, LEN_V4.into(), 0) }
    } else {
        unsafe { bpf_store_hdr_opt(ctx.ops, buffer, LEN_V6.into(), 0) }
    };
    Some(if ret == 0 {
        EdgeCounter::OptionsWritten
    } else {
        EdgeCounter::StoreFailed
    })
}

/// The origin's first packet after the handshake proves it has the
/// handshake ACK (and with it the option): stop writing.
fn stop_writing(ctx: &SockOpsContext) -> Option<EdgeCounter> {
    if ctx.cb_flags() & BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG == 0 {
        return None;
    }
    Some(match ctx.set_cb_flags((ctx.cb_flags() & !WRITING_FLAGS) as i32) {
        Ok(()) => EdgeCounter::WritingStopped,
        Err(_) => EdgeCounter::StopFailed,
    })
}

// ------------------------------------------------------------ registration

/// What the registration hook did with one setsockopt.
enum Registration {
    /// Not a registration: left to the kernel, uncounted.
    NotOurs,
    /// Stored, and turned into TCP_NODELAY = 1.
    Stored,
    /// Another writer's token: left to the kernel (which refuses the unknown option
    /// unless that writer's hook takes it), counted.
    Foreign,
    /// Refused with EPERM, counted.
    Refused(EdgeCounter),
}

/// The proxy's registration: `setsockopt(SOL_TCP, REGISTER_OPTNAME, &EdgeRegistration)`.
/// Every other setsockopt passes through untouched.
#[cgroup_sockopt(setsockopt)]
pub fn toa_register(ctx: SockoptContext) -> i32 {
    match try_register(&ctx) {
        Registration::NotOurs => {
            pass_to_kernel(ctx.sockopt);
            1
        }
        Registration::Stored => {
            count(EdgeCounter::Registered);
            1
        }
        Registration::Foreign => {
            count(EdgeCounter::RegisterForeign);
            1
        }
        // 0 fails the setsockopt with EPERM: the proxy must not connect a
        // socket whose handshake would go out without the client.
        Registration::Refused(counter) => {
            count(counter);
            0
        }
    }
}

fn try_register(ctx: &SockoptContext) -> Registration {
    let opt = ctx.sockopt;
    // SAFETY: reading context fields; the verifier checks the accesses.
    let (level, name) = unsafe { ((*opt).level, (*opt).optname) };
    if level != SOL_TCP || name != REGISTER_OPTNAME {
        return Registration::NotOurs;
    }
    // SAFETY: reading context fields.
    let (optval, optval_end) = unsafe {
        (
            (*opt).__bindgen_anon_2.optval as usize,
            (*opt).__bindgen_anon_3.optval_end as usize,
        )
    };
    if optval + size_of::<EdgeRegistration>() > optval_end {
        return Registration::Refused(EdgeCounter::RegisterMalformed);
    }
    // SAFETY: optval..optval+size_of::<EdgeRegistration>() was checked against optval_end.
    let registration = unsafe { ptr::read_unaligned(optval as *const EdgeRegistration) };
    match TOA_EDGE_CONFIG.get(0) {
        Some(config) if config.token == registration.token => {}
        _ => return Registration::Foreign,
    }
    // SAFETY: `sk` is never null in sockopt programs; with the create flag the
    // helper returns the socket's storage (made now if it had none) or null.
    let stored = unsafe {
        bpf_sk_storage_get(
            map_ptr(&TOA_EDGE_CLIENT),
            (*opt).__bindgen_anon_1.sk.cast(),
            ptr::null_mut(),
            BPF_SK_STORAGE_GET_F_CREATE.into(),
        )
    };
    if stored.is_null() {
        return Registration::Refused(EdgeCounter::RegisterFailed);
    }
    // SAFETY: non-null storage holding an EdgeClient; optval's first 4 bytes
    // are inside the checked range; separate volatile 4-byte context stores,
    // which the verifier requires (merged, they are one 8-byte store it rejects).
    unsafe {
        *(stored as *mut EdgeClient) = registration.client;
        ptr::write_unaligned(optval as *mut i32, 1);
        write_volatile(&mut (*opt).optname, TCP_NODELAY);
        write_volatile(&mut (*opt).optlen, size_of::<i32>() as i32);
    }
    Registration::Stored
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
