//! UDP forwarding end to end, IPv4 and IPv6: `toa proxy` on the edge, `toa spp-echo` (or an
//! odd origin) in the origin namespace, Python UDP clients in the client namespace.
//! - SPP: 50 clients x 100 datagrams each get back exactly their own payloads, and the
//!   origin logs every client's real address; a datagram that the header would push past
//!   65,507 bytes is dropped and counted, one that just fits goes through.
//! - PROXY v2: the origin sees the header on each flow's first datagram only.
//! - Flows expire after the idle timeout; the flow cap drops new flows and counts them.
//! - Malformed SPP replies from the origin are forwarded, dropped and counted as specified.

mod proxy_support;

use std::time::Duration;

use proxy_support::{ProxyLab, eventually, field};
use toa_lab::{Spawned, addr, require_privileges};

const UDP_PEER_PY: &str = include_str!("udp_support/udp_peer.py");
const ECHO_PORT: u16 = 9000;
const CLIENTS: usize = 50;
const DATAGRAMS: usize = 100;

/// `toa proxy` running `config`. It serves metrics only after binding every listener, so
/// waiting for the metrics port waits for the UDP listeners too.
fn start(tag: &str, config: &str) -> (ProxyLab, String) {
    let lab = ProxyLab::start(tag, config, METRICS_PORT);
    // Resolve every neighbour first: a burst to an unresolved one overflows the kernel's
    // ARP/NDP queue, and losing datagrams there would say nothing about the proxy.
    for target in [
        addr::CLIENT_V4,
        addr::CLIENT_V6,
        addr::ORIGIN_V4,
        addr::ORIGIN_V6,
    ] {
        lab.topo
            .edge
            .run(&["ping", "-c1", "-W2", target])
            .unwrap_or_else(|e| panic!("edge cannot reach {target}: {e}"));
    }
    let peer = lab.topo.lab.dir().join("udp_peer.py");
    std::fs::write(&peer, UDP_PEER_PY).unwrap();
    (lab, peer.to_string_lossy().into_owned())
}

/// The port of `proxy_support::METRICS`.
const METRICS_PORT: u16 = 9100;

/// Starts `cmd` in the origin namespace and waits until it listens on UDP `port`.
fn spawn_udp_origin(lab: &mut ProxyLab, cmd: &[&str], port: u16) -> Spawned {
    let s = lab.topo.lab.spawn(&lab.topo.origin, None, cmd).unwrap();
    if let Err(e) = lab
        .topo
        .origin
        .wait_listening(port, true, Duration::from_secs(10))
    {
        panic!(
            "{e}\n{}",
            std::fs::read_to_string(&s.log).unwrap_or_default()
        );
    }
    s
}

fn spp_echo(lab: &mut ProxyLab) -> Spawned {
    let listen = format!("[::]:{ECHO_PORT}");
    spawn_udp_origin(
        lab,
        &[env!("CARGO_BIN_EXE_toa"), "spp-echo", "--listen", &listen],
        ECHO_PORT,
    )
}

fn log_of(s: &Spawned) -> String {
    std::fs::read_to_string(&s.log).unwrap_or_default()
}

/// `udp_peer.py load` from the client namespace: one JSON line per client.
fn load(
    lab: &ProxyLab,
    peer: &str,
    host: &str,
    port: u16,
    clients: usize,
    count: usize,
    quiet: &str,
) -> Vec<String> {
    let out = lab
        .topo
        .client
        .run(&[
            "timeout",
            "60",
            "python3",
            peer,
            "load",
            host,
            &port.to_string(),
            &clients.to_string(),
            &count.to_string(),
            quiet,
        ])
        .unwrap_or_else(|e| panic!("udp clients failed: {e}\nproxy log:\n{}", lab.proxy_log()));
    out.lines().map(str::to_string).collect()
}

fn edge(v6: bool) -> &'static str {
    if v6 {
        addr::EDGE_CLIENT_SIDE_V6
    } else {
        addr::EDGE_CLIENT_SIDE_V4
    }
}

fn socket_addr(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

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
    let out = lab
        .topo
        .client
        .run(&[
            "timeout",
            "30",
            "python3",
            &peer,
            "send",
            edge(false),
            "10000",
            "2",
            "@65469",
            "@65470",
        ])
        .unwrap();
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
fn idle_flows_expire_and_flows_above_the_cap_are_dropped_and_counted() {
    if !require_privileges("idle_flows_expire_and_flows_above_the_cap_are_dropped_and_counted") {
        return;
    }
    let config = format!(
        r#"
[proxy]
udp_idle_timeout = "2s"
access_log = true

[[rule]]
tag = "capped"
protocol = "udp"
ports = "10003"
origins = ["{o6}"]
origin_ports = "{ECHO_PORT}"
max_flows = 2
"#,
        o6 = addr::ORIGIN_V6,
    );
    let (mut lab, peer) = start("udp-flows", &config);
    let _echo = spp_echo(&mut lab);
    for v6 in [false, true] {
        let active = "toa_proxy_udp_flows_active{rule=\"capped\"}";
        let capped = "toa_proxy_udp_drops_total{rule=\"capped\",reason=\"flow_limit\"}";
        let dropped_before = lab.metric(capped).unwrap();
        let two = load(&lab, &peer, edge(v6), 10003, 2, 5, "3");
        assert!(two.iter().all(|l| field(l, "received") == "5"), "{two:?}");
        assert_eq!(lab.metric(active), Some(2));
        // A third client is over the cap while the first two are open.
        let third = load(&lab, &peer, edge(v6), 10003, 1, 3, "1");
        assert_eq!(field(&third[0], "received"), "0", "{third:?}");
        assert_eq!(lab.metric(capped), Some(dropped_before + 3));
        // After the idle timeout the flows are gone and a new client gets through.
        eventually(Duration::from_secs(8), "idle flows to expire", || {
            lab.metric(active) == Some(0)
        });
        let later = load(&lab, &peer, edge(v6), 10003, 1, 3, "3");
        assert_eq!(field(&later[0], "received"), "3", "{later:?}");
        eventually(Duration::from_secs(8), "the last flow to expire", || {
            lab.metric(active) == Some(0)
        });
    }
    assert_eq!(
        lab.metric("toa_proxy_udp_flows_total{rule=\"capped\"}"),
        Some(6)
    );
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
        let out = lab
            .topo
            .client
            .run(&[
                "timeout",
                "30",
                "python3",
                &peer,
                "send",
                edge(v6),
                "10004",
                "2",
                "good-1",
                "short-1",
                "wrong-1",
                "good-2",
            ])
            .unwrap();
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

/// Waits until `s`'s log contains `text`.
fn wait_log(s: &Spawned, text: &str) {
    eventually(Duration::from_secs(10), text, || log_of(s).contains(text));
}

#[test]
fn session_persist_keeps_a_client_ip_on_one_origin_and_round_robin_spreads_it() {
    if !require_privileges(
        "session_persist_keeps_a_client_ip_on_one_origin_and_round_robin_spreads_it",
    ) {
        return;
    }
    // The origin host's two addresses are two origins, each with its own spp-echo.
    let config = format!(
        r#"
[[rule]]
tag = "sticky"
protocol = "udp"
ports = "10005"
origins = ["{o4}", "{o6}"]
origin_ports = "{ECHO_PORT}"
pass_client_ip = "spp"
session_persist = true

[[rule]]
tag = "spread"
protocol = "udp"
ports = "10006"
origins = ["{o4}", "{o6}"]
origin_ports = "{ECHO_PORT}"
pass_client_ip = "spp"
"#,
        o4 = addr::ORIGIN_V4,
        o6 = addr::ORIGIN_V6,
    );
    let (mut lab, peer) = start("udp-persist", &config);
    let echoes: Vec<Spawned> = [addr::ORIGIN_V4, addr::ORIGIN_V6]
        .iter()
        .map(|ip| {
            let listen = socket_addr(ip, ECHO_PORT);
            let cmd = [env!("CARGO_BIN_EXE_toa"), "spp-echo", "--listen", &listen];
            let s = lab.topo.lab.spawn(&lab.topo.origin, None, &cmd).unwrap();
            wait_log(&s, "spp-echo listening");
            s
        })
        .collect();
    let clients = 20;
    for (port, sticky) in [(10005, true), (10006, false)] {
        let lines = load(&lab, &peer, edge(false), port, clients, 5, "5");
        assert!(lines.iter().all(|l| field(l, "own") == "true"), "{lines:?}");
        let proxy = socket_addr(edge(false), port);
        // Which origin logged each client (every client is logged by exactly one).
        let mut per_origin = [0usize; 2];
        eventually(Duration::from_secs(5), "every client logged", || {
            per_origin = [0, 0];
            for (i, echo) in echoes.iter().enumerate() {
                let log = log_of(echo);
                per_origin[i] = lines
                    .iter()
                    .filter(|l| {
                        let want = format!("spp client {} via proxy {proxy}", field(l, "local"));
                        log.lines().any(|x| x == want)
                    })
                    .count();
            }
            per_origin[0] + per_origin[1] == clients
        });
        if sticky {
            assert!(
                per_origin.contains(&clients),
                "one origin for one client IP: {per_origin:?}"
            );
        } else {
            assert!(
                per_origin.iter().all(|n| *n > 0),
                "round robin uses both: {per_origin:?}"
            );
        }
    }
}

#[test]
fn reload_keeps_udp_listeners_and_open_flows_and_opens_new_rules() {
    if !require_privileges("reload_keeps_udp_listeners_and_open_flows_and_opens_new_rules") {
        return;
    }
    let rule = |tag: &str, port: u16, mode: &str| {
        format!(
            "[[rule]]\ntag = \"{tag}\"\nprotocol = \"udp\"\nports = \"{port}\"\norigins = [\"{}\"]\norigin_ports = \"{ECHO_PORT}\"\npass_client_ip = \"{mode}\"\n",
            addr::ORIGIN_V4
        )
    };
    let (mut lab, peer) = start("udp-reload", &rule("kept", 10007, "spp"));
    let echo = spp_echo(&mut lab);
    let pulse = lab
        .topo
        .lab
        .spawn(
            &lab.topo.client,
            None,
            &[
                "python3",
                &peer,
                "pulse",
                addr::EDGE_CLIENT_SIDE_V6,
                "10007",
                "20",
                "0.1",
            ],
        )
        .unwrap();
    wait_log(&echo, "spp client");
    // Same listener, its mode changed, and a new rule: the open flow keeps its origin and
    // mode, the new rule is live at once.
    lab.reload(&format!(
        "{}{}",
        rule("kept", 10007, "off"),
        rule("added", 10008, "spp")
    ));
    eventually(Duration::from_secs(10), "the reload", || {
        lab.proxy_log().contains("reloaded")
    });
    let added = load(&lab, &peer, edge(true), 10008, 1, 3, "3");
    assert_eq!(field(&added[0], "own"), "true", "{added:?}");
    wait_log(&pulse, "\"received\"");
    let result = log_of(&pulse);
    assert_eq!(
        field(result.trim(), "received"),
        "20",
        "{result}\n{}",
        lab.proxy_log()
    );
    assert_eq!(
        lab.metric("toa_proxy_udp_flows_total{rule=\"kept\"}"),
        Some(1)
    );
    assert!(
        !log_of(&echo).contains("plain datagram"),
        "the open flow kept spp:\n{}",
        log_of(&echo)
    );
    assert!(log_of(&echo).contains(&format!(
        "spp client {} via proxy [{}]:10008",
        field(&added[0], "local"),
        addr::EDGE_CLIENT_SIDE_V6
    )));
}
