//! Fault suite: the kernel option parser against toa-wire's reference decoder,
//! by crafted packets. Each run sends at least 1,000 random option areas
//! (TOAs of both forms with plausible and implausible addresses, wrong and
//! too-small lengths, NOP runs, EOL, duplicates, options running past the
//! header) on handshake ACKs to a loaded origin, and checks that accept(),
//! getpeername() and the lookup report exactly what `toa::find` plus
//! `toa_wire::plausible` say, or the sender itself where they find nothing.

use crate::crafter::{CraftCase, Crafter, SPOOFED_SOURCE};
use crate::lab::*;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use toa_lab::addr;
use toa_wire::toa;

const CASES: usize = 1_000;
const V4_PORT: u16 = 9000;
const DUAL_PORT: u16 = 9001;
const KINDS: &[u8] = &[toa::DEFAULT_KIND];

fn port() -> impl Strategy<Value = [u8; 2]> {
    prop_oneof![Just([0, 0]), any::<[u8; 2]>()]
}

fn ipv4() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        any::<[u8; 2]>().prop_map(|[c, d]| vec![198, 18, c, d]),
        Just(vec![0, 0, 0, 0]),
        Just(vec![127, 0, 0, 1]),
        Just(vec![255, 255, 255, 255]),
        Just(vec![224, 0, 0, 251]),
        any::<[u8; 4]>().prop_map(|a| a.to_vec()),
    ]
}

fn ipv6() -> impl Strategy<Value = Vec<u8>> {
    let v6 = |s: &str| s.parse::<std::net::Ipv6Addr>().unwrap().octets().to_vec();
    prop_oneof![
        any::<[u8; 6]>().prop_map(|t| [&[0xfd, 0, 0, 1][..], &[0; 6], &t].concat()),
        Just(v6("::")),
        Just(v6("::1")),
        Just(v6("ff02::1")),
        ipv4().prop_map(|a| [&[0u8; 10][..], &[0xff, 0xff], &a].concat()),
        any::<[u8; 16]>().prop_map(|a| a.to_vec()),
    ]
}

/// A kind the kernel ignores and the origin does not accept.
fn other_kind() -> impl Strategy<Value = u8> {
    any::<u8>().prop_filter("kernel-parsed or configured kind", |&k| {
        toa::check_kind(k).is_ok() && !KINDS.contains(&k)
    })
}

/// One option area of at most 40 bytes, built from pieces that make TOAs and
/// traps common.
fn option_area() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        3 => (port(), ipv4()).prop_map(|(p, a)| [&[254, 8][..], &p, &a].concat()),
        3 => (port(), ipv6()).prop_map(|(p, a)| [&[254, 20][..], &p, &a].concat()),
        2 => (1usize..5).prop_map(|n| vec![1; n]),
        1 => Just(vec![0]),
        2 => (prop_oneof![2u8..8, 9u8..20, 21u8..40], any::<[u8; 40]>())
            .prop_map(|(len, fill)| [&[254, len][..], &fill[..len as usize - 2]].concat()),
        2 => (other_kind(), 2u8..12, any::<[u8; 10]>())
            .prop_map(|(kind, len, fill)| [&[kind, len][..], &fill[..len as usize - 2]].concat()),
        1 => (prop_oneof![Just(254u8), other_kind()], 0u8..2).prop_map(|(k, l)| vec![k, l]),
    ];
    proptest::collection::vec(piece, 0..6).prop_map(|pieces| {
        let mut area = pieces.concat();
        area.truncate(40);
        area
    })
}

/// The option area as the kernel sees it: craft.py pads it with zeros to a
/// multiple of 4.
fn padded(area: &[u8]) -> Vec<u8> {
    let mut padded = area.to_vec();
    padded.resize(area.len().div_ceil(4) * 4, 0);
    padded
}

/// How many option bytes must remain for Linux's MD5/AO check
/// (`tcp_do_parse_auth_options`) to walk on: 5 with CONFIG_TCP_AO, 18 with
/// CONFIG_TCP_MD5SIG only, None without either (no walk). Kernels before 6.7
/// (before TCP-AO) only look for an MD5 option and drop nothing they cannot
/// walk: seen under scripts/kernel-test on 5.10, where such segments were applied.
fn auth_walk_minlen() -> Option<usize> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let mut numbers = release.split(|c: char| !c.is_ascii_digit());
    let major: u32 = numbers.next().unwrap().parse().unwrap();
    let minor: u32 = numbers.next().unwrap().parse().unwrap();
    if (major, minor) < (6, 7) {
        return None;
    }
    let config = std::process::Command::new("zcat")
        .arg("/proc/config.gz")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .or_else(|| {
            let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
            std::fs::read_to_string(format!("/boot/config-{}", release.trim())).ok()
        })
        .expect("the kernel config (/proc/config.gz or /boot/config-*) decides which segments Linux drops");
    if config.lines().any(|l| l == "CONFIG_TCP_AO=y") {
        Some(5)
    } else if config.lines().any(|l| l == "CONFIG_TCP_MD5SIG=y") {
        Some(18)
    } else {
        None
    }
}

/// Whether Linux drops the segment before any BPF program sees it: its
/// MD5/AO check walks the options while at least `minlen` bytes remain and
/// drops the segment (SKB_DROP_REASON_TCP_AUTH_HDR) at an option of length
/// below 2 or past the end. The data segment after it then completes the
/// handshake, without options. A real proxy's kernel never writes such a header.
fn kernel_drops(area: &[u8], minlen: Option<usize>) -> bool {
    let Some(minlen) = minlen else { return false };
    let mut rest = area;
    while rest.len() >= minlen {
        match rest {
            [0, ..] => return false,
            [1, tail @ ..] => rest = tail,
            [_, len, ..] if (*len as usize) < 2 || *len as usize > rest.len() => return true,
            [_, len, ..] => rest = &rest[*len as usize..],
            _ => return false,
        }
    }
    false
}

/// The first TOA the reference decoder finds in what the receiver gets to see.
fn decoded(area: &[u8], minlen: Option<usize>) -> Option<SocketAddr> {
    let area = padded(area);
    if kernel_drops(&area, minlen) {
        return None;
    }
    toa::find(&area, KINDS).ok().flatten()
}

fn ip(reply: &HashMap<String, String>, key: &str) -> Option<IpAddr> {
    reply
        .get(key)?
        .parse::<IpAddr>()
        .ok()
        .map(|i| i.to_canonical())
}

/// Why `reply` is wrong for the case, or None.
fn mismatch(
    case: &CraftCase,
    minlen: Option<usize>,
    reply: &HashMap<String, String>,
) -> Option<String> {
    let (dport, sport, area) = case;
    let want = decoded(area, minlen).filter(|a| toa_wire::plausible(*a));
    let sender: IpAddr = SPOOFED_SOURCE.parse().unwrap();
    let (peer, peer_port) = match want {
        // An AF_INET socket cannot show an IPv6 client: it stays the sender.
        Some(a) if *dport == V4_PORT && a.is_ipv6() => (sender, *sport),
        Some(a) => (a.ip(), a.port()),
        None => (sender, *sport),
    };
    let lookup = want.map_or(("ENOENT".to_string(), None), |a| {
        (a.ip().to_string(), Some(a.port().to_string()))
    });
    let got_lookup = reply.get("lookup").and_then(|l| {
        l.parse::<IpAddr>()
            .map(|i| i.to_canonical().to_string())
            .ok()
            .or(Some(l.clone()))
    });
    let ok = ip(reply, "peer") == Some(peer)
        && reply.get("peer_port") == Some(&peer_port.to_string())
        && ip(reply, "accept") == Some(peer)
        && got_lookup == Some(lookup.0.clone())
        && reply.get("lookup_port").cloned() == lookup.1;
    (!ok).then(|| {
        let hex: String = area.iter().map(|b| format!("{b:02x}")).collect();
        format!("port {dport} options {hex}: expected {want:?}, got {reply:?}")
    })
}

#[test]
fn fault_kernel_parser_agrees_with_the_reference_decoder_on_random_options() {
    let mut lab = origin_lab_or_skip!(
        "fault_kernel_parser_agrees_with_the_reference_decoder_on_random_options",
        "fo-prop",
        &["--trust-any"]
    );
    let OriginLab { origin, cg, topo } = &mut lab;
    probe_server(topo, cg, addr::ORIGIN_V4, V4_PORT);
    probe_server(topo, cg, "::", DUAL_PORT);
    let crafter = Crafter::new(topo);
    let minlen = auth_walk_minlen();

    let mut runner = TestRunner::default();
    let strategy = option_area();
    let cases: Vec<CraftCase> = (0..CASES)
        .map(|i| {
            let area = strategy.new_tree(&mut runner).unwrap().current();
            let dport = if i % 2 == 0 { V4_PORT } else { DUAL_PORT };
            (dport, 20_000 + i as u16, area)
        })
        .collect();
    let replies = crafter.run(topo, &cases);

    let wrong: Vec<String> = cases
        .iter()
        .zip(&replies)
        .filter_map(|(case, reply)| mismatch(case, minlen, reply))
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {CASES} disagree with toa-wire:\n{}",
        wrong.len(),
        wrong.join("\n")
    );

    // Every handshake is one outcome, each counted exactly.
    let decoded: Vec<Option<SocketAddr>> = cases
        .iter()
        .map(|(_, _, area)| decoded(area, minlen))
        .collect();
    let applied = decoded
        .iter()
        .flatten()
        .filter(|a| toa_wire::plausible(**a))
        .count() as u64;
    let invalid = decoded.iter().flatten().count() as u64 - applied;
    let c = origin.wait_all_released();
    assert_eq!(c.total(Counter::SynRecvSockToa), applied);
    assert_eq!(c.total(Counter::SynRecvSockInvalid), invalid);
    assert_eq!(
        c.total(Counter::SynRecvSockNoToa),
        CASES as u64 - applied - invalid
    );
    assert_eq!(c.total(Counter::Ip6AddressAlloc), applied + invalid);
    assert_eq!(
        c.total(Counter::Ip6AddressAlloc),
        c.total(Counter::Ip6AddressFree)
    );
    assert_eq!(
        c.total(Counter::SynRecvSockNoMem) + c.total(Counter::SynRecvSockNoSk),
        0
    );
}
