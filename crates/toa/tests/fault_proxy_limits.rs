//! Fault suite, proxy limits: the global and per-rule `max_connections`, UDP `max_flows`
//! and `max_connections_per_client` stay exact across any sequence of SIGHUP reloads, and
//! a flood past the limit is closed fast while other rules keep serving.

mod proxy_support;
mod udp_support;

use std::time::{Duration, Instant};

use proxy_support::{ProxyLab, eventually, field};
use toa_lab::{addr, require_privileges};

const EDGE: &str = addr::EDGE_CLIENT_SIDE_V4;

fn rule(tag: &str, port: u16, extra: &str) -> String {
    format!(
        "[[rule]]\ntag = \"{tag}\"\nports = \"{port}\"\norigins = [\"{}\"]\norigin_ports = \"8000\"\n{extra}\n",
        addr::ORIGIN_V4
    )
}

/// `peer.py hold`: (open, closed) of `conns` idle connections held for 60 s.
fn hold(
    lab: &mut ProxyLab,
    host: &str,
    port: u16,
    conns: usize,
) -> (toa_lab::Spawned, usize, usize) {
    let (s, line) = lab.spawn_peer(&["hold", host, &port.to_string(), &conns.to_string(), "60"]);
    let open = field(&line, "open").parse().unwrap();
    let closed = field(&line, "closed").parse().unwrap();
    (s, open, closed)
}

fn wait_reloads(lab: &ProxyLab, ok: u64) {
    eventually(Duration::from_secs(10), "reload applied", || {
        lab.metric("toa_proxy_reloads_total{result=\"ok\"}") == Some(ok)
    });
}

#[test]
fn global_limit_lowered_with_connections_open_holds_exactly_and_raises_from_there() {
    if !require_privileges(
        "global_limit_lowered_with_connections_open_holds_exactly_and_raises_from_there",
    ) {
        return;
    }
    let config = |max: usize| {
        format!(
            "[proxy]\nmax_connections = {max}\n\n{}",
            rule("g", 14100, "")
        )
    };
    let mut lab = ProxyLab::new("fglobal");
    lab.serve_http(addr::ORIGIN_V4, 8000, "A");
    lab.start_proxy(&config(10), 14100);
    let active = "toa_proxy_connections_active{rule=\"g\"}";

    let (first, open, _) = hold(&mut lab, EDGE, 14100, 8);
    assert_eq!(open, 8);
    // Lowered to 4 with 8 open: nothing new until fewer than 4 are open.
    lab.reload(&config(4));
    wait_reloads(&lab, 1);
    let (_s, open, closed) = hold(&mut lab, EDGE, 14100, 2);
    assert_eq!(
        (open, closed),
        (0, 2),
        "lowered limit let new connections in"
    );
    lab.topo.lab.kill(&first);
    eventually(Duration::from_secs(10), "held connections closed", || {
        lab.metric(active) == Some(0)
    });
    let (second, open, closed) = hold(&mut lab, EDGE, 14100, 6);
    assert_eq!((open, closed), (4, 2), "after the lowering the limit is 4");
    // Raised to 10 with 4 open: exactly 6 more.
    lab.reload(&config(10));
    wait_reloads(&lab, 2);
    let (_t, open, closed) = hold(&mut lab, EDGE, 14100, 8);
    assert_eq!((open, closed), (6, 2), "after raising the limit is 10");
    lab.topo.lab.kill(&second);
}

#[test]
fn rule_limit_is_not_refilled_by_reloads_and_shrinks_as_connections_end() {
    if !require_privileges("rule_limit_is_not_refilled_by_reloads_and_shrinks_as_connections_end") {
        return;
    }
    let config = rule("capped", 14200, "max_connections = 3");
    let mut lab = ProxyLab::new("frule");
    lab.serve_http(addr::ORIGIN_V4, 8000, "A");
    lab.start_proxy(&config, 14200);
    let (first, open, _) = hold(&mut lab, EDGE, 14200, 3);
    assert_eq!(open, 3);
    for n in 1..=2 {
        lab.reload(&config);
        wait_reloads(&lab, n);
    }
    let (_s, open, closed) = hold(&mut lab, EDGE, 14200, 3);
    assert_eq!((open, closed), (0, 3), "a reload granted a fresh quota");
    lab.topo.lab.kill(&first);
    eventually(Duration::from_secs(10), "held connections closed", || {
        lab.metric("toa_proxy_connections_active{rule=\"capped\"}") == Some(0)
    });
    let (_t, open, closed) = hold(&mut lab, EDGE, 14200, 5);
    assert_eq!((open, closed), (3, 2));
}

#[test]
fn udp_flow_limit_is_not_refilled_by_reloads() {
    if !require_privileges("udp_flow_limit_is_not_refilled_by_reloads") {
        return;
    }
    let config = format!(
        "[proxy]\nudp_idle_timeout = \"60s\"\n\n[[rule]]\ntag = \"flows\"\nprotocol = \"udp\"\nports = \"10103\"\norigins = [\"{}\"]\norigin_ports = \"{}\"\nmax_flows = 2\n",
        addr::ORIGIN_V4,
        udp_support::ECHO_PORT
    );
    let (mut lab, peer) = udp_support::start("fflows", &config);
    let _echo = udp_support::spp_echo(&mut lab);
    let two = udp_support::load(&lab, &peer, EDGE, 10103, 2, 3, "2");
    assert!(two.iter().all(|l| field(l, "received") == "3"), "{two:?}");
    for n in 1..=2 {
        lab.reload(&config);
        wait_reloads(&lab, n);
    }
    // Two new clients each take the place of an old flow: a reload that granted fresh
    // flows would have let them in without evicting (and left four open).
    let more = udp_support::load(&lab, &peer, EDGE, 10103, 2, 3, "2");
    assert!(more.iter().all(|l| field(l, "received") == "3"), "{more:?}");
    assert_eq!(
        lab.metric("toa_proxy_udp_flows_evicted_total{rule=\"flows\",reason=\"flow_limit\"}"),
        Some(2),
        "a reload granted fresh flows"
    );
    eventually(Duration::from_secs(5), "two flows open", || {
        lab.metric("toa_proxy_udp_flows_active{rule=\"flows\"}") == Some(2)
    });
}

#[test]
fn per_client_limit_closes_a_greedy_client_and_serves_another() {
    if !require_privileges("per_client_limit_closes_a_greedy_client_and_serves_another") {
        return;
    }
    let config = rule("fair", 14300, "max_connections_per_client = 2");
    let mut lab = ProxyLab::new("fclient");
    lab.serve_http(addr::ORIGIN_V4, 8000, "A");
    lab.start_proxy(&config, 14300);
    let (_s, open, closed) = hold(&mut lab, EDGE, 14300, 4);
    assert_eq!((open, closed), (2, 2));
    assert_eq!(
        lab.metric("toa_proxy_connections_rejected_total{rule=\"fair\",reason=\"client_limit\"}"),
        Some(2)
    );
    // The same client over IPv6 is another client address: served.
    let (_t, open, closed) = hold(&mut lab, addr::EDGE_CLIENT_SIDE_V6, 14300, 2);
    assert_eq!((open, closed), (2, 0));
}

#[test]
fn flood_past_max_connections_is_closed_fast_and_other_rules_still_serve() {
    if !require_privileges("flood_past_max_connections_is_closed_fast_and_other_rules_still_serve")
    {
        return;
    }
    let config = format!(
        "{}{}",
        rule("flooded", 14400, "max_connections = 20"),
        rule("calm", 14401, "")
    );
    let mut lab = ProxyLab::new("fflood");
    lab.serve_http(addr::ORIGIN_V4, 8000, "A");
    lab.start_proxy(&config, 14400);
    // 500 connections at once against a cap of 20.
    let (_flood, line) = lab.spawn_peer(&["idle", EDGE, "14400", "500", "30"]);
    assert_eq!(field(&line, "open"), "500", "{line}");
    eventually(Duration::from_secs(10), "excess closed", || {
        lab.metric("toa_proxy_connections_rejected_total{rule=\"flooded\",reason=\"rule_limit\"}")
            == Some(480)
    });
    assert_eq!(
        lab.metric("toa_proxy_connections_active{rule=\"flooded\"}"),
        Some(20)
    );
    let started = Instant::now();
    for _ in 0..20 {
        assert_eq!(lab.who(EDGE, 14401).as_deref(), Ok("A"));
    }
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the other rule was starved"
    );
}
