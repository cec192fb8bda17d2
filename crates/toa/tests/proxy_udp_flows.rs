//! UDP flow lifetime end to end: flows expire after the idle timeout, a new flow at the
//! flow cap evicts the least recently active one (counted),
//! session persistence keeps a client
//! IP on one origin, and a reload keeps listeners and open flows while opening new rules.

#[path = "support/log.rs"]
mod logs;
mod proxy_support;
mod udp_support;

use std::time::Duration;

use logs::wait_log;
use proxy_support::{eventually, field};
use toa_lab::{Spawned, addr, require_privileges};
use udp_support::*;

#[test]
fn a_new_flow_at_the_cap_evicts_the_least_recently_active() {
    if !require_privileges("a_new_flow_at_the_cap_evicts_the_least_recently_active") {
        return;
    }
    // The idle timeout outlasts the test: every flow is still open when the next client
    // comes, however slowly the host starts it, so each eviction is the cap's doing.
    let config = format!(
        r#"
[proxy]
udp_idle_timeout = "600s"

[[rule]]
tag = "capped4"
protocol = "udp"
ports = "10003"
origins = ["{o6}"]
origin_ports = "{ECHO_PORT}"
max_flows = 2

[[rule]]
tag = "capped6"
protocol = "udp"
ports = "10004"
origins = ["{o6}"]
origin_ports = "{ECHO_PORT}"
max_flows = 2
"#,
        o6 = addr::ORIGIN_V6,
    );
    let (mut lab, peer) = start("udp-evict", &config);
    let _echo = spp_echo(&mut lab);
    for (v6, tag, port) in [(false, "capped4", 10003), (true, "capped6", 10004)] {
        let active = format!("toa_proxy_udp_flows_active{{rule=\"{tag}\"}}");
        let evicted =
            format!("toa_proxy_udp_flows_evicted_total{{rule=\"{tag}\",reason=\"flow_limit\"}}");
        let two = load(&lab, &peer, edge(v6), port, 2, 5, "3");
        assert!(two.iter().all(|l| field(l, "received") == "5"), "{two:?}");
        assert_eq!(lab.metric(&active), Some(2));
        assert_eq!(lab.metric(&evicted), Some(0));
        // A third client at the cap takes the place of the least recently active flow.
        let third = load(&lab, &peer, edge(v6), port, 1, 3, "3");
        assert_eq!(field(&third[0], "received"), "3", "{third:?}");
        assert_eq!(lab.metric(&evicted), Some(1));
        eventually(Duration::from_secs(5), "two flows open", || {
            lab.metric(&active) == Some(2)
        });
        let total = format!("toa_proxy_udp_flows_total{{rule=\"{tag}\"}}");
        assert_eq!(lab.metric(&total), Some(3));
        let refused = format!("toa_proxy_udp_drops_total{{rule=\"{tag}\",reason=\"flow_limit\"}}");
        assert_eq!(lab.metric(&refused), Some(0));
    }
}

#[test]
fn idle_flows_expire_and_a_new_client_then_gets_a_new_flow() {
    if !require_privileges("idle_flows_expire_and_a_new_client_then_gets_a_new_flow") {
        return;
    }
    let config = format!(
        r#"
[proxy]
udp_idle_timeout = "2s"

[[rule]]
tag = "idle"
protocol = "udp"
ports = "10003"
origins = ["{o6}"]
origin_ports = "{ECHO_PORT}"
"#,
        o6 = addr::ORIGIN_V6,
    );
    let (mut lab, peer) = start("udp-idle", &config);
    let _echo = spp_echo(&mut lab);
    let active = "toa_proxy_udp_flows_active{rule=\"idle\"}";
    let total = "toa_proxy_udp_flows_total{rule=\"idle\"}";
    for v6 in [false, true] {
        // Only "at least": a host that stalls a client for the idle timeout between two of
        // its datagrams rightly ends its flow, and the next datagram opens another.
        let before = lab.metric(total).unwrap();
        let two = load(&lab, &peer, edge(v6), 10003, 2, 5, "3");
        assert!(two.iter().all(|l| field(l, "received") == "5"), "{two:?}");
        assert!(lab.metric(total).unwrap() >= before + 2);
        eventually(Duration::from_secs(8), "idle flows to expire", || {
            lab.metric(active) == Some(0)
        });
        let before = lab.metric(total).unwrap();
        let later = load(&lab, &peer, edge(v6), 10003, 1, 3, "3");
        assert_eq!(field(&later[0], "received"), "3", "{later:?}");
        assert!(lab.metric(total).unwrap() > before);
        eventually(Duration::from_secs(8), "the last flow to expire", || {
            lab.metric(active) == Some(0)
        });
    }
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
            wait_log(&s.log, "spp-echo listening");
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
                "30",
                "0.1",
            ],
        )
        .unwrap();
    wait_log(&echo.log, "spp client");
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
    assert!(
        !log_of(&pulse).contains("received"),
        "the flow must span the reload"
    );
    let added = load(&lab, &peer, edge(true), 10008, 1, 3, "3");
    assert_eq!(field(&added[0], "own"), "true", "{added:?}");
    wait_log(&pulse.log, "\"received\"");
    let result = log_of(&pulse);
    assert_eq!(
        field(result.trim(), "received"),
        "30",
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
    // Open UDP flows do not hold a drain: SIGTERM ends them and the proxy exits at once.
    lab.signal("TERM");
    eventually(Duration::from_secs(5), "the proxy to exit", || {
        !lab.proxy_running()
    });
}
