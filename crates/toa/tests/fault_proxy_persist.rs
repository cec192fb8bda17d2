//! Fault suite, session persistence: the table of remembered clients is bounded by
//! `session_persist_max`; the least recently seen client is evicted and counted; and a
//! client stays on its origin across a reload that reorders and adds origins.

mod proxy_support;

use std::time::Duration;

use proxy_support::{ProxyLab, add_address, eventually};
use toa_lab::{addr, require_privileges};

#[test]
fn session_table_is_bounded_and_evictions_are_counted() {
    if !require_privileges("session_table_is_bounded_and_evictions_are_counted") {
        return;
    }
    let config = format!(
        "[[rule]]\ntag = \"sticky\"\nports = \"14800\"\norigins = [\"{}\"]\norigin_ports = \"8000\"\nsession_persist = true\nsession_persist_max = 2\n",
        addr::ORIGIN_V4
    );
    let mut lab = ProxyLab::new("fpersist");
    lab.serve_http(addr::ORIGIN_V4, 8000, "A");
    lab.start_proxy(&config, 14800);
    let clients = [
        "198.18.1.2",
        "198.18.1.3",
        "198.18.1.4",
        "198.18.1.5",
        "198.18.1.6",
    ];
    for c in &clients[1..] {
        add_address(&lab.topo.client, addr::CLIENT_V4, c);
    }
    for c in clients {
        assert_eq!(who_from(&lab, c, 14800), "A");
    }
    assert_eq!(
        lab.metric("toa_proxy_session_persist_evictions_total{rule=\"sticky\"}"),
        Some(3),
        "{}",
        lab.metrics()
    );
    assert_eq!(
        lab.metric("toa_proxy_session_persist_clients{rule=\"sticky\"}"),
        Some(2)
    );
}

/// GET /who through `port` from client address `client`.
fn who_from(lab: &ProxyLab, client: &str, port: u16) -> String {
    let url = format!("http://{}:{port}/who", addr::EDGE_CLIENT_SIDE_V4);
    lab.topo
        .client
        .run(&[
            "curl",
            "-sS",
            "--fail",
            "--max-time",
            "10",
            "--interface",
            client,
            &url,
        ])
        .unwrap_or_else(|e| panic!("{client}: {e}\n{}", lab.proxy_log()))
}

#[test]
fn client_keeps_its_origin_across_a_reload_that_reorders_and_adds_origins() {
    if !require_privileges("client_keeps_its_origin_across_a_reload_that_reorders_and_adds_origins")
    {
        return;
    }
    let (a, b, c) = (addr::ORIGIN_V4, "198.18.2.3", "198.18.2.4");
    let config = |origins: &[&str]| {
        format!(
            "[[rule]]\ntag = \"sticky\"\nports = \"14810\"\norigins = {origins:?}\norigin_ports = \"8000\"\nsession_persist = true\n"
        )
    };
    let mut lab = ProxyLab::new("fpersist2");
    add_address(&lab.topo.origin, a, b);
    add_address(&lab.topo.origin, a, c);
    for (host, name) in [(a, "A"), (b, "B"), (c, "C")] {
        lab.serve_http(host, 8000, name);
    }
    lab.start_proxy(&config(&[a, b]), 14810);
    let clients: Vec<String> = (2..10).map(|n| format!("198.18.1.{n}")).collect();
    for client in &clients[1..] {
        add_address(&lab.topo.client, addr::CLIENT_V4, client);
    }
    let before: Vec<String> = clients.iter().map(|cl| who_from(&lab, cl, 14810)).collect();
    assert!(
        before.iter().any(|o| o == "B"),
        "the hash puts some client on B: {before:?}"
    );

    // B moves from second to second-to-last, behind a new origin: by index (and by a fresh
    // hash over three origins) most clients would land elsewhere.
    lab.reload(&config(&[c, b, a]));
    eventually(Duration::from_secs(10), "the reload", || {
        lab.metric("toa_proxy_reloads_total{result=\"ok\"}") == Some(1)
    });
    let after: Vec<String> = clients.iter().map(|cl| who_from(&lab, cl, 14810)).collect();
    assert_eq!(after, before, "{}", lab.proxy_log());
}
