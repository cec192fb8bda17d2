//! TOA option parsing over a TCP header, in the shape the BPF verifier accepts.
//! The origin receiver runs it on the handshake ACK (packet memory) and on the
//! saved SYN (copied to the stack); here it is also unit-tested on the host.
//!
//! The rules match `toa-wire`: options are walked from byte 20 to the header
//! length; End of Options stops, NOP advances one byte; any other option needs
//! a length byte of at least 2 that stays inside the header, otherwise the walk
//! stops (malformed). An option of a configured kind is a TOA only with length
//! 8 (IPv4) or 20 (IPv6); other lengths are skipped like unknown options. The
//! first TOA wins.
//!
//! Verifier shape: a plain `off += len` loop with a counter exhausted the
//! verifier (1M instructions), and a `u32` offset into a stack buffer failed
//! with `invalid variable-offset read from stack`. So the walk
//! visits the fixed positions 20..=59 one by one (unrolled by a macro); `next`,
//! where the next option starts, is only compared against the constant
//! position, and every read is at a constant offset.

use crate::{ClientAddr, FAMILY_V4, FAMILY_V6, origin::OriginConfig};
use toa_wire::mapped::{is_v4_mapped, v4_mapped};
use toa_wire::toa::{LEN_V4, LEN_V6};

/// Largest TCP header (doff = 15).
pub const MAX_TCP_HEADER: usize = 60;
const MIN_TCP_HEADER: usize = 20;

/// A TCP header that can be read at constant offsets with a bounds check.
pub trait TcpHeader {
    /// `N` bytes at `off`, or None when they are outside the readable data.
    fn bytes<const N: usize>(&self, off: usize) -> Option<[u8; N]>;
}

/// A TCP header copied into a stack buffer (the saved SYN), zero-filled.
pub struct CopiedHeader {
    pub buf: [u8; MAX_TCP_HEADER],
}

impl TcpHeader for CopiedHeader {
    #[inline(always)]
    fn bytes<const N: usize>(&self, off: usize) -> Option<[u8; N]> {
        let slice = self.buf.get(off..off + N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Some(out)
    }
}

struct Walk {
    /// Where the next option starts.
    next: usize,
    /// Header length from the data offset field.
    header_len: usize,
    /// The walk ended (TOA found, End of Options, or malformed header).
    done: bool,
    found: Option<ClientAddr>,
}

/// The first TOA of a configured kind in `header`, if any.
#[inline(always)]
pub fn find_toa<H: TcpHeader>(header: &H, config: &OriginConfig) -> Option<ClientAddr> {
    let [offset_byte] = header.bytes::<1>(12)?;
    let header_len = ((offset_byte >> 4) as usize) * 4;
    if header_len <= MIN_TCP_HEADER {
        return None;
    }
    let mut walk = Walk {
        next: MIN_TCP_HEADER,
        header_len,
        done: false,
        found: None,
    };
    macro_rules! positions {
        ($($i:literal)*) => { $( step::<H, $i>(header, config, &mut walk); )* };
    }
    positions!(20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39
               40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59);
    walk.found
}

#[inline(always)]
fn step<H: TcpHeader, const I: usize>(header: &H, config: &OriginConfig, walk: &mut Walk) {
    if walk.done || walk.next != I {
        return;
    }
    if I >= walk.header_len {
        walk.done = true;
        return;
    }
    let Some([kind]) = header.bytes::<1>(I) else {
        walk.done = true;
        return;
    };
    match kind {
        0 => walk.done = true,
        1 => walk.next = I + 1,
        _ => {
            let Some([len]) = header.bytes::<1>(I + 1) else {
                walk.done = true;
                return;
            };
            let len = len as usize;
            if len < 2 || I + 1 >= walk.header_len || I + len > walk.header_len {
                walk.done = true;
                return;
            }
            if config.accepts(kind)
                && let Some(client) = toa_at::<H, I>(header, len)
            {
                walk.found = Some(client);
                walk.done = true;
                return;
            }
            walk.next = I + len;
        }
    }
}

/// The client carried by a configured-kind option of length `len` at `I`:
/// IPv4 for length 8, IPv6 for length 20, nothing for any other length.
#[inline(always)]
fn toa_at<H: TcpHeader, const I: usize>(header: &H, len: usize) -> Option<ClientAddr> {
    if len == LEN_V4 as usize {
        let opt = header.bytes::<8>(I)?;
        Some(ClientAddr {
            addr: v4_mapped([opt[4], opt[5], opt[6], opt[7]]),
            port_be: u16::from_ne_bytes([opt[2], opt[3]]),
            family: FAMILY_V4,
            _pad: 0,
        })
    } else if len == LEN_V6 as usize {
        let opt = header.bytes::<20>(I)?;
        let mut addr = [0u8; 16];
        addr.copy_from_slice(&opt[4..20]);
        // A v4-mapped address in the long form is an IPv4 client (as in toa-wire).
        let family = if is_v4_mapped(&addr) {
            FAMILY_V4
        } else {
            FAMILY_V6
        };
        Some(ClientAddr {
            addr,
            port_be: u16::from_ne_bytes([opt[2], opt[3]]),
            family,
            _pad: 0,
        })
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(kinds: &[u8]) -> OriginConfig {
        let mut c = OriginConfig::default();
        c.kinds[..kinds.len()].copy_from_slice(kinds);
        c
    }

    /// A TCP header with `options` (padded with EOL to a multiple of 4).
    fn header(options: &[u8]) -> CopiedHeader {
        let mut buf = [0u8; MAX_TCP_HEADER];
        let len = (20 + options.len()).div_ceil(4) * 4;
        assert!(len <= MAX_TCP_HEADER);
        buf[12] = ((len / 4) as u8) << 4;
        buf[20..20 + options.len()].copy_from_slice(options);
        CopiedHeader { buf }
    }

    const V4: [u8; 8] = [254, 8, 0x1f, 0x90, 198, 18, 1, 2];

    fn v6(kind: u8) -> [u8; 20] {
        let mut o = [0u8; 20];
        o[..4].copy_from_slice(&[kind, 20, 0x00, 0x50]);
        o[4..6].copy_from_slice(&[0xfd, 0x00]);
        o[6..8].copy_from_slice(&[0x00, 0x01]);
        o[19] = 2;
        o
    }

    #[test]
    fn ipv4_toa_is_found_as_v4_mapped_with_port() {
        let toa = find_toa(&header(&V4), &config(&[254])).unwrap();
        assert_eq!(toa.family, FAMILY_V4);
        assert_eq!(toa.ipv4(), Some([198, 18, 1, 2]));
        assert_eq!(u16::from_be_bytes(toa.port_be.to_ne_bytes()), 8080);
    }

    #[test]
    fn ipv6_toa_after_nop_padding_and_timestamps_is_found() {
        let mut opts = vec![1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2];
        opts.extend_from_slice(&v6(254));
        let toa = find_toa(&header(&opts), &config(&[254])).unwrap();
        assert_eq!(toa.family, FAMILY_V6);
        assert_eq!(toa.addr[..4], [0xfd, 0, 0, 1]);
        assert_eq!(toa.addr[15], 2);
    }

    #[test]
    fn unconfigured_kind_is_ignored_and_configured_one_accepted() {
        let mut opt = V4;
        opt[0] = 200;
        assert_eq!(find_toa(&header(&opt), &config(&[254])), None);
        assert!(find_toa(&header(&opt), &config(&[254, 200])).is_some());
    }

    #[test]
    fn first_of_two_toas_wins() {
        let mut opts = v6(254).to_vec();
        opts.extend_from_slice(&V4);
        assert_eq!(
            find_toa(&header(&opts), &config(&[254])).unwrap().family,
            FAMILY_V6
        );
    }

    #[test]
    fn wrong_lengths_are_skipped_not_misread() {
        for bad_len in [7u8, 9, 19, 21] {
            let mut opts = vec![254, bad_len];
            opts.resize(bad_len as usize, 0xAA);
            opts.extend_from_slice(&V4);
            let toa = find_toa(&header(&opts), &config(&[254])).unwrap();
            assert_eq!(toa.ipv4(), Some([198, 18, 1, 2]), "len {bad_len}");
        }
    }

    #[test]
    fn truncated_or_malformed_options_yield_nothing() {
        // Length runs past the header end.
        assert_eq!(find_toa(&header(&[254, 20, 0, 80]), &config(&[254])), None);
        // Length below 2 stops the walk before a later TOA.
        let mut opts = vec![3, 1, 1, 1];
        opts.extend_from_slice(&V4);
        assert_eq!(find_toa(&header(&opts), &config(&[254])), None);
        // End of Options stops the walk.
        let mut opts = vec![0, 1, 1, 1];
        opts.extend_from_slice(&V4);
        assert_eq!(find_toa(&header(&opts), &config(&[254])), None);
    }

    #[test]
    fn toa_at_the_very_end_of_a_full_header_is_found() {
        let mut opts = vec![1u8; 40 - 20];
        opts.extend_from_slice(&v6(254));
        assert_eq!(opts.len(), 40);
        assert_eq!(
            find_toa(&header(&opts), &config(&[254])).unwrap().family,
            FAMILY_V6
        );
    }

    #[test]
    fn v4_mapped_address_in_the_long_form_is_an_ipv4_client() {
        let mut opt = v6(254);
        opt[4..20].copy_from_slice(&v4_mapped([198, 18, 1, 2]));
        let toa = find_toa(&header(&opt), &config(&[254])).unwrap();
        assert_eq!((toa.family, toa.ipv4()), (FAMILY_V4, Some([198, 18, 1, 2])));
    }

    #[test]
    fn client_port_looking_like_tfo_magic_is_read_as_port() {
        let opt = [254, 8, 0xF9, 0x89, 198, 18, 1, 2];
        let toa = find_toa(&header(&opt), &config(&[254])).unwrap();
        assert_eq!(u16::from_be_bytes(toa.port_be.to_ne_bytes()), 63881);
    }
}

/// The kernel-shaped walk must agree with `toa-wire`'s reference decoder on
/// any options block: same TOA, or none where toa-wire finds none or an error.
#[cfg(test)]
mod agrees_with_toa_wire {
    use super::*;
    use proptest::prelude::*;
    use std::net::{IpAddr, Ipv6Addr, SocketAddr};

    fn as_socket_addr(c: ClientAddr) -> SocketAddr {
        let ip = Ipv6Addr::from(c.addr);
        let ip = if c.family == FAMILY_V4 {
            IpAddr::V4(ip.to_ipv4_mapped().unwrap())
        } else {
            IpAddr::V6(ip)
        };
        SocketAddr::new(ip, u16::from_be_bytes(c.port_be.to_ne_bytes()))
    }

    /// Option blocks built from plausible pieces, so TOAs and traps are common.
    fn block() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            Just(vec![1u8]),
            Just(vec![0u8]),
            (
                prop_oneof![Just(254u8), Just(200u8), any::<u8>()],
                prop_oneof![Just(8u8), Just(20u8), 0u8..24]
            )
                .prop_flat_map(|(kind, len)| {
                    proptest::collection::vec(any::<u8>(), len.saturating_sub(2) as usize).prop_map(
                        move |mut v| {
                            v.splice(0..0, [kind, len]);
                            v
                        },
                    )
                }),
        ];
        proptest::collection::vec(piece, 0..6).prop_map(|p| {
            let mut b = p.concat();
            b.truncate(40);
            b
        })
    }

    proptest! {
        #[test]
        fn find_toa_matches_toa_wire_find(block in block(), two_kinds in any::<bool>()) {
            let kinds: &[u8] = if two_kinds { &[254, 200] } else { &[254] };
            let mut cfg = OriginConfig::default();
            cfg.kinds[..kinds.len()].copy_from_slice(kinds);
            let mut buf = [0u8; MAX_TCP_HEADER];
            let padded = block.len().div_ceil(4) * 4;
            buf[12] = (((20 + padded) / 4) as u8) << 4;
            buf[20..20 + block.len()].copy_from_slice(&block);
            let ours = find_toa(&CopiedHeader { buf }, &cfg).map(as_socket_addr);
            // The header is zero-padded to a multiple of 4: the reference sees the same bytes.
            let reference = toa_wire::toa::find(&buf[20..20 + padded], kinds).ok().flatten();
            prop_assert_eq!(ours, reference);
        }
    }
}
