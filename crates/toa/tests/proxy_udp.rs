//! UDP forwarding end to end, IPv4 and IPv6: `toa proxy` on the edge, `toa spp-echo` (or an
//! odd origin) in the origin namespace, Python UDP clients in the client namespace.
//! - SPP: 50 clients x 100 datagrams each get back exactly their own payloads, and the
//!   origin logs every client's real address; a datagram that the header would push past
//!   65,507 bytes is dropped and counted, one that just fits goes through.
//! - PROXY v2: the origin sees the header on each flow's first datagram only.
//! - Malformed SPP replies from the origin are forwarded, dropped and counted as specified.
//!
//! Flow lifetime (expiry, cap, persistence, reload) is in `proxy_udp_flows.rs`.

mod proxy_support;
mod udp_support;

use std::time::Duration;

use proxy_support::{eventually, field};
use toa_lab::{addr, require_privileges};
use udp_support::*;

#[test]
fn spp_fifty_clients_each_get_back_exactly_their_own_datagrams_and_the_origin_logs_them() {
    if !require_privileges(
        "spp_fifty_clients_each_get_back_exactly_their_own_datagrams_and_the_origin_logs_them",
    ) {
        return;
    }
    // IPv4 clients reach an IPv4 origin, IPv6 clients an IPv6 one, both through the
    // dual-stack default listener.
    let config = format!(
        r#"
[[rule]]
tag = "spp4"
protocol = "udp"
ports = "10000"
origins = ["{o4}"]
origin_ports = "{ECHO_PORT}"
pass_client_ip = "spp"

[[rule]]
tag = "spp6"
protocol = "udp"
ports = "10001"
origins = ["{o6}"]
origin_ports = "{ECHO_PORT}"
pass_client_ip = "spp"
"#,
        o4 = addr::ORIGIN_V4,
        o6 = addr::ORIGIN_V6,
    );
    let (mut lab, peer) = start("udp-spp", &config);
    let echo = spp_echo(&mut lab);
    for (v6, port, tag) in [(false, 10000, "spp4"), (true, 10001, "spp6")] {
        let lines = load(&lab, &peer, edge(v6), port, CLIENTS, DATAGRAMS, "5");
        assert_eq!(lines.len(), CLIENTS, "{lines:?}");
        for line in &lines {
            assert_eq!(
                field(line, "received"),
                DATAGRAMS.to_string(),
                "{line}\n{}",
                lab.proxy_log()
            );
            assert_eq!(field(line, "own"), "true", "{line}");
            assert_eq!(field(line, "foreign"), "0", "{line}");
        }
        let proxy = socket_addr(edge(v6), port);
        eventually(
            Duration::from_secs(5),
            "the origin logging every client",
            || {
                let log = log_of(&echo);
                lines.iter().all(|l| {
                    log.lines()
                        .any(|x| x == format!("spp client {} via proxy {proxy}", field(l, "local")))
                })
            },
        );
        let client_ip = if v6 { addr::CLIENT_V6 } else { addr::CLIENT_V4 };
        assert!(
            lines.iter().all(|l| field(l, "local").contains(client_ip)),
            "clients use their own address: {lines:?}"
        );
        let total = (CLIENTS * DATAGRAMS) as u64;
        let series = |name: &str, labels: &str| format!("{name}{{rule=\"{tag}\"{labels}}}");
        assert_eq!(
            lab.metric(&series("toa_proxy_udp_flows_total", "")),
            Some(CLIENTS as u64)
        );
        assert_eq!(
            lab.metric(&series("toa_proxy_udp_flows_active", "")),
            Some(CLIENTS as u64)
        );
        for direction in ["client_to_origin", "origin_to_client"] {
            let labels = format!(",direction=\"{direction}\"");
            assert_eq!(
                lab.metric(&series("toa_proxy_udp_datagrams_total", &labels)),
                Some(total)
            );
        }
        assert_eq!(
            lab.metric(&series("toa_proxy_udp_replies_unmarked_total", "")),
            Some(0)
        );
    }
    // 65,469 payload bytes + the 38-byte header is the largest datagram (65,507) that fits;
    // one byte more is dropped and counted.
    let out = send(
        &lab,
        &peer,
        edge(false),
        "10000",
        "2",
        &["@65469", "@65470"],
    );
    let replies: Vec<&str> = out.lines().filter(|l| l.starts_with("reply")).collect();
    assert_eq!(replies, ["reply-len 65469"], "{out}");
    assert_eq!(
        lab.metric("toa_proxy_udp_drops_total{rule=\"spp4\",reason=\"too_large\"}"),
        Some(1)
    );
    assert!(
        !log_of(&echo).contains("malformed"),
        "origin saw a malformed datagram:\n{}",
        log_of(&echo)
    );
}

#[test]
fn ppv2_header_reaches_the_origin_on_the_first_datagram_of_each_flow_only() {
    if !require_privileges("ppv2_header_reaches_the_origin_on_the_first_datagram_of_each_flow_only")
    {
        return;
    }
    let config = format!(
        r#"
[[rule]]
tag = "pp"
protocol = "udp"
listen = ["{e4}", "{e6}"]
ports = "10002"
origins = ["{o4}"]
origin_ports = "{ECHO_PORT}"
pass_client_ip = "ppv2"
"#,
        e4 = addr::EDGE_CLIENT_SIDE_V4,
        e6 = addr::EDGE_CLIENT_SIDE_V6,
        o4 = addr::ORIGIN_V4,
    );
    let (mut lab, peer) = start("udp-ppv2", &config);
    let echo = spp_echo(&mut lab);
    let (clients, count) = (3, 10);
    for v6 in [false, true] {
        let lines = load(&lab, &peer, edge(v6), 10002, clients, count, "5");
        for line in &lines {
            // spp-echo strips the header, so every echo is exactly what the client sent.
            assert_eq!(field(line, "received"), count.to_string(), "{line}");
            assert_eq!(field(line, "own"), "true", "{line}");
        }
        let proxy = socket_addr(edge(v6), 10002);
        eventually(Duration::from_secs(5), "one ppv2 line per client", || {
            let log = log_of(&echo);
            lines.iter().all(|l| {
                let want = format!(
                    "ppv2 client {} via proxy {proxy} (dgram)",
                    field(l, "local")
                );
                log.lines().filter(|x| *x == want).count() == 1
            })
        });
    }
    let log = log_of(&echo);
    assert_eq!(
        log.lines().filter(|l| l.starts_with("ppv2 ")).count(),
        2 * clients,
        "the header is on the first datagram of each flow only:\n{log}"
    );
    assert!(!log.contains("malformed"), "{log}");
}

#[test]
fn malformed_spp_replies_are_forwarded_unmarked_or_dropped_and_counted() {
    if !require_privileges("malformed_spp_replies_are_forwarded_unmarked_or_dropped_and_counted") {
        return;
    }
    let config = format!(
        r#"
[[rule]]
tag = "odd"
protocol = "udp"
ports = "10004"
origins = ["{o4}"]
origin_ports = "{ECHO_PORT}"
pass_client_ip = "spp"
"#,
        o4 = addr::ORIGIN_V4,
    );
    let (mut lab, peer) = start("udp-odd", &config);
    let _odd = spawn_udp_origin(
        &mut lab,
        &[
            "python3",
            &peer,
            "odd-origin",
            addr::ORIGIN_V4,
            &ECHO_PORT.to_string(),
        ],
        ECHO_PORT,
    );
    for v6 in [false, true] {
        let out = send(
            &lab,
            &peer,
            edge(v6),
            "10004",
            "2",
            &["good-1", "short-1", "wrong-1", "good-2"],
        );
        let replies: Vec<&str> = out
            .lines()
            .filter_map(|l| l.strip_prefix("reply "))
            .collect();
        let hex = |s: &[u8]| s.iter().map(|b| format!("{b:02x}")).collect::<String>();
        let mut want = vec![hex(b"good-1"), hex(b"\x12\x34wrong-1"), hex(b"good-2")];
        let mut got: Vec<String> = replies.iter().map(|s| s.to_string()).collect();
        want.sort();
        got.sort();
        assert_eq!(
            got, want,
            "stripped, unmarked passed on, short dropped:\n{out}"
        );
    }
    assert_eq!(
        lab.metric("toa_proxy_udp_replies_unmarked_total{rule=\"odd\"}"),
        Some(2)
    );
    assert_eq!(
        lab.metric("toa_proxy_udp_drops_total{rule=\"odd\",reason=\"short_spp_reply\"}"),
        Some(2)
    );
    assert!(lab.proxy_running(), "proxy survived:\n{}", lab.proxy_log());
}
