//! The port steerer (sk_lookup, on the proxy's network namespace): a connection or an
//! unconnected datagram to any port of a steered range goes to that range's socket, so
//! one listening socket (one reuseport group: one per accept worker) serves the whole
//! range whatever port the client chose. The socket keeps the original destination
//! (getsockname, IP_ORIGDSTADDR), which is how the proxy maps the port to its origin.
//!
//! The program only ever assigns or passes: a lookup for no range, or for a range whose
//! socket is gone, falls through to the kernel's own lookup, so nothing else in the
//! namespace changes. The kernel picks the group member after the assignment by the
//! connection's hash (no BPF_SK_LOOKUP_F_NO_REUSEPORT), the same spread SO_REUSEPORT
//! gives a single port.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::sk_action::SK_PASS,
    btf_maps::{Array, PerCpuArray, SockMap},
    macros::{btf_map, sk_lookup},
    programs::SkLookupContext,
};
use core::ptr::read_volatile;
use toa_common::{
    FAMILY_V4, FAMILY_V6,
    steer::{MAX_RANGES, SteerCounter, SteerRange},
};
use toa_ebpf::{
    bump,
    kernel::{AF_INET, AF_INET6, ENOENT, words_to_bytes},
};

#[btf_map]
static TOA_STEER_RANGES: Array<SteerRange, { MAX_RANGES as usize }> = Array::new();

#[btf_map]
static TOA_STEER_SOCKETS: SockMap<{ MAX_RANGES as usize }> = SockMap::new();

#[btf_map]
static TOA_STEER_STATS: PerCpuArray<u64, { SteerCounter::COUNT as usize }> = PerCpuArray::new();

#[sk_lookup]
pub fn toa_steer(ctx: SkLookupContext) -> u32 {
    bump(&TOA_STEER_STATS, steer(&ctx) as u32);
    SK_PASS
}

fn steer(ctx: &SkLookupContext) -> SteerCounter {
    let Some((protocol, family, addr, port)) = destination(ctx) else {
        return SteerCounter::NotOurs;
    };
    let mut slot = 0;
    while slot < MAX_RANGES {
        if let Some(range) = TOA_STEER_RANGES.get(slot)
            && range.matches(protocol, family, &addr, port)
        {
            return match TOA_STEER_SOCKETS.redirect_sk_lookup(ctx, slot, 0) {
                Ok(()) => SteerCounter::Steered,
                Err(e) if e == -ENOENT => SteerCounter::SocketMissing,
                Err(_) => SteerCounter::AssignFailed,
            };
        }
        slot += 1;
    }
    SteerCounter::NotOurs
}

/// The lookup's protocol, family, local address (IPv4 v4-mapped) and local port.
#[inline(always)]
fn destination(ctx: &SkLookupContext) -> Option<(u8, u8, [u8; 16], u16)> {
    let lookup = ctx.lookup;
    // SAFETY: reading 4-byte context fields; the verifier checks the accesses.
    let (family, protocol, port, ip4, ip6) = unsafe {
        (
            read_volatile(&(*lookup).family),
            read_volatile(&(*lookup).protocol),
            read_volatile(&(*lookup).local_port),
            read_volatile(&(*lookup).local_ip4),
            [
                read_volatile(&(*lookup).local_ip6[0]),
                read_volatile(&(*lookup).local_ip6[1]),
                read_volatile(&(*lookup).local_ip6[2]),
                read_volatile(&(*lookup).local_ip6[3]),
            ],
        )
    };
    let (family, addr) = match family {
        AF_INET => (FAMILY_V4, toa_wire::mapped::v4_mapped(ip4.to_ne_bytes())),
        AF_INET6 => (FAMILY_V6, words_to_bytes(ip6)),
        _ => return None,
    };
    Some((protocol as u8, family, addr, port as u16))
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
