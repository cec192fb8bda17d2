//! Hand-made TCP options on the handshake ACK, sent with raw sockets from the
//! edge. The source (198.18.2.77) is an address nobody owns, routed back to
//! the edge, so no kernel resets the half-made connection. Whatever the bytes,
//! the origin either reports the first valid TOA or leaves the address alone.

use crate::crafter::{Crafter, SPOOFED_SOURCE};
use crate::lab::*;
use toa_lab::addr;

/// A case: name, the ACK's option bytes, and the client the origin must
/// report (lookup form and port), or None for "address left alone".
type Case = (&'static str, Vec<u8>, Option<(&'static str, u16)>);

fn toa_v4(port: u16, ip: [u8; 4]) -> Vec<u8> {
    let mut o = vec![254, 8];
    o.extend_from_slice(&port.to_be_bytes());
    o.extend_from_slice(&ip);
    o
}

fn toa_v6(port: u16) -> Vec<u8> {
    let mut o = vec![254, 20];
    o.extend_from_slice(&port.to_be_bytes());
    o.extend_from_slice(&"fd00:1::2".parse::<std::net::Ipv6Addr>().unwrap().octets());
    o
}

/// A kind-254 option of `len` bytes that is not a TOA (wrong length).
fn wrong_length(len: u8) -> Vec<u8> {
    let mut o = vec![254, len];
    o.resize(len as usize, 0xAA);
    o
}

fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

#[test]
fn crafted_options_never_yield_a_wrong_address() {
    let mut lab = origin_lab_or_skip!(
        "crafted_options_never_yield_a_wrong_address",
        "orig-craft",
        &["--trust-any"]
    );
    // Borrowed, not moved: `lab` drops as a whole, receiver (unload) first.
    let OriginLab { origin, cg, topo } = &mut lab;
    probe_server(topo, cg, addr::ORIGIN_V4, 9000);
    let crafter = Crafter::new(topo);

    let client = [198, 18, 1, 2];
    let found_v4 = Some(("::ffff:198.18.1.2", 8080));
    let cases: Vec<Case> = vec![
        ("plain IPv4", toa_v4(8080, client), found_v4),
        (
            "NOP padding",
            cat(&[vec![1, 1, 1], toa_v4(8080, client)]),
            found_v4,
        ),
        (
            "two TOAs: first wins",
            cat(&[toa_v4(8080, client), toa_v4(9999, [198, 18, 1, 99])]),
            found_v4,
        ),
        (
            "TFO magic as port",
            toa_v4(0xF989, client),
            Some(("::ffff:198.18.1.2", 63881)),
        ),
        (
            "IPv6 at the very end",
            cat(&[vec![1; 20], toa_v6(443)]),
            Some(("fd00:1::2", 443)),
        ),
        (
            "length 7 then TOA",
            cat(&[wrong_length(7), toa_v4(8080, client)]),
            found_v4,
        ),
        (
            "length 9 then TOA",
            cat(&[wrong_length(9), toa_v4(8080, client)]),
            found_v4,
        ),
        (
            "length 19 then TOA",
            cat(&[wrong_length(19), toa_v4(8080, client)]),
            found_v4,
        ),
        (
            "length 21 then TOA",
            cat(&[wrong_length(21), toa_v4(8080, client)]),
            found_v4,
        ),
        ("length 7 alone", wrong_length(7), None),
        ("length 21 alone", wrong_length(21), None),
        (
            "truncated IPv6 TOA",
            cat(&[vec![1, 1], toa_v6(443)[..10].to_vec()]),
            None,
        ),
        (
            "length 1 stops the walk",
            cat(&[vec![3, 1, 1, 1], toa_v4(8080, client)]),
            None,
        ),
        (
            "unconfigured kind 200",
            cat(&[vec![200], toa_v4(8080, client)[1..].to_vec()]),
            None,
        ),
        ("no options", vec![], None),
    ];
    let crafted: Vec<_> = cases
        .iter()
        .enumerate()
        .map(|(i, (_, options, _))| (9000, 41000 + i as u16, options.clone()))
        .collect();
    let replies = crafter.run(topo, &crafted);
    for (((name, _, expected), (_, sport, _)), reply) in cases.iter().zip(&crafted).zip(replies) {
        let sport = sport.to_string();
        match expected {
            Some((client, port)) => {
                assert_eq!(reply["lookup"], *client, "{name}: {reply:?}");
                assert_eq!(reply["lookup_port"], port.to_string(), "{name}: {reply:?}");
                if let Some(v4) = client.strip_prefix("::ffff:") {
                    assert_eq!(reply["peer"], v4, "{name}: {reply:?}");
                } else {
                    assert_eq!(
                        reply["peer"], SPOOFED_SOURCE,
                        "{name}: IPv6 TOA on AF_INET: {reply:?}"
                    );
                }
            }
            None => {
                assert_eq!(reply["peer"], SPOOFED_SOURCE, "{name}: {reply:?}");
                assert_eq!(reply["peer_port"], sport, "{name}: {reply:?}");
                assert_eq!(reply["lookup"], "ENOENT", "{name}: {reply:?}");
            }
        }
    }
    let c = origin.counters();
    let with_toa = cases.iter().filter(|c| c.2.is_some()).count() as u64;
    assert_eq!(c.total(Counter::SynRecvSockToa), with_toa);
    assert_eq!(
        c.total(Counter::SynRecvSockNoToa),
        cases.len() as u64 - with_toa
    );
}
