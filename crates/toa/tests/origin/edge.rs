//! The edge writer seen on the wire: tcpdump on the origin shows the option on
//! the SYN, the handshake ACK and early data, in IPv4 form for an IPv4 client
//! whatever the upstream family, and never after the origin has answered.

use crate::lab::*;
use std::path::Path;
use toa_common::options::{CopiedHeader, MAX_TCP_HEADER, find_toa};
use toa_common::origin::OriginConfig;
use toa_common::{ClientAddr, FAMILY_V4};
use toa_lab::addr;

/// One TCP segment of a capture.
struct Segment {
    src_port: u16,
    dst_port: u16,
    flags: u8,
    toa: Option<ClientAddr>,
    payload: usize,
}

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const FIN: u8 = 0x01;

/// The capture once it holds the edge's FIN of each of `connections` upstream
/// connections to port 9000: the last segment the assertions read.
fn capture_with_fins(pcap: &Path, connections: usize) -> Vec<Segment> {
    let deadline = std::time::Instant::now() + toa_lab::scaled(WAIT);
    loop {
        let segments = segments(pcap);
        let fins = segments
            .iter()
            .filter(|s| s.dst_port == 9000 && s.flags & FIN != 0)
            .count();
        if fins >= connections {
            return segments;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{fins} of {connections} FINs captured: {}",
            describe(&segments)
        );
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
}

/// TCP segments of a pcap file (Ethernet, IPv4 or IPv6 without extension headers).
fn segments(pcap: &Path) -> Vec<Segment> {
    let data = std::fs::read(pcap).unwrap();
    if data.len() < 24 {
        // tcpdump has not written the file header yet.
        return Vec::new();
    }
    assert_eq!(
        &data[..4],
        &[0xd4, 0xc3, 0xb2, 0xa1],
        "little-endian microsecond pcap"
    );
    let config = OriginConfig {
        kinds: [254, 0, 0, 0],
        ..Default::default()
    };
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= data.len() {
        let len = u32::from_le_bytes(data[at + 8..at + 12].try_into().unwrap()) as usize;
        let Some(frame) = data.get(at + 16..at + 16 + len) else {
            break; // a record tcpdump is writing now
        };
        at += 16 + len;
        let (ip_len, l4) = match u16::from_be_bytes([frame[12], frame[13]]) {
            0x0800 => {
                let ihl = (frame[14] & 15) as usize * 4;
                (
                    u16::from_be_bytes([frame[16], frame[17]]) as usize,
                    &frame[14 + ihl..],
                )
            }
            0x86dd => (
                40 + u16::from_be_bytes([frame[18], frame[19]]) as usize,
                &frame[54..],
            ),
            _ => continue,
        };
        let header_len = (l4[12] >> 4) as usize * 4;
        let mut header = CopiedHeader {
            buf: [0; MAX_TCP_HEADER],
        };
        header.buf[..header_len].copy_from_slice(&l4[..header_len]);
        let ip_header = if frame[12] == 0x08 {
            (frame[14] & 15) as usize * 4
        } else {
            40
        };
        out.push(Segment {
            src_port: u16::from_be_bytes([l4[0], l4[1]]),
            dst_port: u16::from_be_bytes([l4[2], l4[3]]),
            flags: l4[13],
            toa: find_toa(&header, &config),
            payload: ip_len - ip_header - header_len,
        });
    }
    out
}

/// `sport>dport flags toa` per segment, for failure messages.
fn describe(segments: &[Segment]) -> String {
    let line = |s: &Segment| {
        let toa = s
            .toa
            .map(|t| format!(" toa={:?}:{}", t.ipv4(), u16::from_be(t.port_be)));
        format!(
            "{}>{} {:#04x} len {}{}",
            s.src_port,
            s.dst_port,
            s.flags,
            s.payload,
            toa.unwrap_or_default()
        )
    };
    segments.iter().map(line).collect::<Vec<_>>().join("\n")
}

#[test]
fn edge_writer_puts_the_option_on_syn_handshake_ack_and_early_data() {
    let mut lab = origin_lab_or_skip!(
        "edge_writer_puts_the_option_on_syn_handshake_ack_and_early_data",
        "orig-edge",
        &["--trust-any"]
    );
    // Borrowed, not moved: `lab` drops as a whole, receiver (unload) first.
    let OriginLab { cg, topo, .. } = &mut lab;
    probe_server(topo, cg, "::", 9000);
    let (origin_if, _) = interface(&topo.origin, addr::ORIGIN_V4);
    let pcap = topo.lab.dir().join("origin.pcap");
    let pcap_arg = pcap.to_str().unwrap().to_string();
    let tcpdump = topo
        .lab
        .spawn(
            &topo.origin,
            None,
            &[
                "tcpdump",
                "-i",
                &origin_if,
                "-nn",
                // Deliver each packet at once: buffered ones are lost on SIGTERM.
                "--immediate-mode",
                "-U",
                "-w",
                &pcap_arg,
                "tcp port 9000",
            ],
        )
        .unwrap();
    wait_log(&tcpdump.log, "listening on");
    // IPv4 client over an IPv6 upstream: the option must still be the 8-byte form.
    let relay = relay(topo, "198.18.1.1:9000", "[fd00:2::2]:9000");

    let replies: Vec<_> = (0..2)
        .map(|_| probe(&topo.client, addr::EDGE_CLIENT_SIDE_V4, 9000))
        .collect();
    topo.lab.kill(&relay);
    let stats = fields(
        wait_log(&relay.log, "edge-stats")
            .lines()
            .find(|l| l.starts_with("edge-stats"))
            .unwrap(),
    );
    let segments = capture_with_fins(&pcap, replies.len());
    topo.lab.kill(&tcpdump);
    for reply in &replies {
        assert_eq!(reply["peer"], "::ffff:198.18.1.2", "{reply:?}");
        let client_port: u16 = reply["local_port"].parse().unwrap();
        // The upstream connection is the one whose TOA names this client port.
        let upstream = segments
            .iter()
            .find(|s| {
                s.flags & SYN != 0
                    && s.dst_port == 9000
                    && s.toa
                        .is_some_and(|t| u16::from_be(t.port_be) == client_port)
            })
            .unwrap_or_else(|| {
                panic!(
                    "no SYN with a TOA for client port {client_port} in {}",
                    describe(&segments)
                )
            })
            .src_port;
        let conn: Vec<&Segment> = segments
            .iter()
            .filter(|s| s.src_port == upstream || s.dst_port == upstream)
            .collect();
        let from_edge = |s: &&&Segment| s.src_port == upstream;
        let syn = conn
            .iter()
            .find(|s| from_edge(s) && s.flags & SYN != 0)
            .unwrap();
        let toa = syn.toa.unwrap();
        assert_eq!(
            (toa.family, toa.ipv4()),
            (FAMILY_V4, Some([198, 18, 1, 2])),
            "8-byte IPv4 form on an IPv6 SYN"
        );
        let handshake_ack = conn
            .iter()
            .find(|s| from_edge(s) && s.flags == ACK && s.payload == 0)
            .unwrap();
        assert_eq!(
            handshake_ack.toa,
            Some(toa),
            "handshake ACK carries the option"
        );
        let first_data = conn.iter().find(|s| from_edge(s) && s.payload > 0).unwrap();
        assert_eq!(
            first_data.toa,
            Some(toa),
            "data before the origin answered carries it"
        );
        assert!(
            conn.iter()
                .filter(|s| !from_edge(s))
                .all(|s| s.toa.is_none()),
            "origin never echoes it"
        );
        let fin = conn
            .iter()
            .find(|s| from_edge(s) && s.flags & FIN != 0)
            .unwrap();
        assert_eq!(fin.toa, None, "writing stopped once the origin answered");
    }
    // Every edge counter, exact where the test knows it: SYN, handshake ACK
    // and first data per connection are at least 3 options each.
    for counter in toa_loader::EdgeCounter::ALL {
        let name = counter.name();
        let value: u64 = stats
            .get(name)
            .unwrap_or_else(|| panic!("no {name} in {stats:?}"))
            .parse()
            .unwrap();
        match name {
            "registered" | "connect_registered" | "writing_stopped" => {
                assert_eq!(value, 2, "{name}")
            }
            "options_written" => assert!(value >= 6, "{name}: {value}"),
            _ => assert_eq!(value, 0, "{name}"),
        }
    }
}
