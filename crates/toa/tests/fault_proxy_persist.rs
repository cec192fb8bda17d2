//! Fault suite, session persistence: the table of remembered clients is bounded by
//! `session_persist_max`; the least recently seen client is evicted and counted.

mod proxy_support;

use proxy_support::{ProxyLab, add_address};
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
        let url = format!("http://{}:14800/who", addr::EDGE_CLIENT_SIDE_V4);
        let got = lab
            .topo
            .client
            .run(&[
                "curl",
                "-sS",
                "--fail",
                "--max-time",
                "10",
                "--interface",
                c,
                &url,
            ])
            .unwrap_or_else(|e| panic!("{c}: {e}\n{}", lab.proxy_log()));
        assert_eq!(got, "A");
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
