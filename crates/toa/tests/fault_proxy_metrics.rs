//! Fault suite, the metrics endpoint: idle and trickling scrapers cannot take the proxy's
//! descriptors (a small cap on connections, one deadline per request), and scrapes still
//! work once they are gone.

mod proxy_support;

use std::time::Duration;

use proxy_support::{ProxyLab, eventually, trickle_until_closed};
use toa_lab::{addr, require_privileges};

#[test]
fn idle_and_trickling_metrics_clients_are_capped_and_cut_at_the_deadline() {
    if !require_privileges("idle_and_trickling_metrics_clients_are_capped_and_cut_at_the_deadline")
    {
        return;
    }
    let config = format!(
        "[[rule]]\ntag = \"web\"\nports = \"14700\"\norigins = [\"{}\"]\norigin_ports = \"8000\"\n",
        addr::ORIGIN_V4
    );
    let mut lab = ProxyLab::new("fmetrics");
    lab.serve_http(addr::ORIGIN_V4, 8000, "A");
    lab.start_proxy(&config, 14700);
    let baseline = lab.proxy_fds();
    let peer = lab.peer.clone();
    // The scrapers run on the edge's loopback, where the endpoint listens.
    let idle = lab
        .topo
        .lab
        .spawn(
            &lab.topo.edge,
            None,
            &["python3", &peer, "idle", "127.0.0.1", "9100", "300", "30"],
        )
        .unwrap();
    eventually(Duration::from_secs(20), "idle scrapers connected", || {
        std::fs::read_to_string(&idle.log)
            .unwrap_or_default()
            .contains('}')
    });
    eventually(
        Duration::from_secs(5),
        "300 idle scrapers hold at most 20 descriptors",
        || lab.proxy_fds().saturating_sub(baseline) <= 20,
    );
    // The data path is untouched.
    assert_eq!(
        lab.who(addr::EDGE_CLIENT_SIDE_V4, 14700).as_deref(),
        Ok("A")
    );
    // The idle ones are cut at the deadline, and scrapes work again.
    eventually(Duration::from_secs(15), "scrape works", || {
        let url = format!("http://{}/metrics", proxy_support::METRICS);
        lab.topo
            .edge
            .run(&["curl", "-sS", "--max-time", "5", &url])
            .is_ok()
    });
    assert!(
        lab.metric("toa_proxy_metrics_connections_refused_total")
            .unwrap_or(0)
            > 0
    );
    // A client sending one byte a second is cut at the total deadline too.
    let seconds = trickle_until_closed(&lab.topo.edge, &peer, 9100);
    assert!(
        (3.0..=12.0).contains(&seconds),
        "trickling client held for {seconds}s"
    );
}

/// Prometheus sends `params:` as a query string, and probes and load balancers send HEAD:
/// both are answered like a plain GET (HEAD without the body); other paths are not found.
#[test]
fn metrics_answer_query_strings_and_head() {
    if !require_privileges("metrics_answer_query_strings_and_head") {
        return;
    }
    let config = format!(
        "[[rule]]\ntag = \"web\"\nports = \"14701\"\norigins = [\"{}\"]\norigin_ports = \"8000\"\n",
        addr::ORIGIN_V4
    );
    let mut lab = ProxyLab::new("fmhead");
    lab.serve_http(addr::ORIGIN_V4, 8000, "A");
    lab.start_proxy(&config, 14701);
    let curl = |args: &[&str], path: &str| {
        let url = format!("http://{}{path}", proxy_support::METRICS);
        let mut cmd = vec!["curl", "-sS", "--max-time", "5"];
        cmd.extend_from_slice(args);
        cmd.push(&url);
        lab.topo.edge.run(&cmd).unwrap()
    };
    let status = ["-o", "/dev/null", "-w", "%{http_code} %{size_download}"];
    let body = curl(&[], "/metrics?module=toa&target=web");
    assert!(
        body.lines()
            .any(|l| l == "toa_proxy_connections_total{rule=\"web\"} 0"),
        "{body}"
    );
    let mut head = vec!["--head"];
    head.extend_from_slice(&status);
    assert_eq!(curl(&head, "/metrics"), "200 0");
    assert_eq!(curl(&head, "/metrics?x=1"), "200 0");
    let headers = curl(&["--head"], "/metrics");
    assert!(
        headers
            .to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text"),
        "{headers}"
    );
    assert!(curl(&status, "/other").starts_with("404 "));
}
