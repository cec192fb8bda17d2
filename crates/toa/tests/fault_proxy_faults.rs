//! Fault suite, the proxy's data path under hostile peers: slowloris clients end at
//! `idle_timeout`, an origin that never reads costs at most the buffers, RSTs from either
//! side mid-transfer leave no connection or descriptor behind, and a proxy killed with
//! SIGKILL under load restarts at once with TOA still working.

#[path = "support/http.rs"]
mod http;
#[path = "support/log.rs"]
mod logs;
mod proxy_support;
#[path = "support/receiver.rs"]
mod receiver;

use std::time::Duration;

use proxy_support::{ProxyLab, eventually, field};
use toa_lab::{addr, require_privileges};

const EDGE: &str = addr::EDGE_CLIENT_SIDE_V4;

fn rule(tag: &str, port: u16, origin_port: u16, extra: &str) -> String {
    format!(
        "[[rule]]\ntag = \"{tag}\"\nports = \"{port}\"\norigins = [\"{}\"]\norigin_ports = \"{origin_port}\"\n{extra}\n",
        addr::ORIGIN_V4
    )
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

/// Waits until the proxy holds no more descriptors than at `baseline` (plus the metrics scrape's).
fn fds_back_to(lab: &ProxyLab, baseline: usize) {
    eventually(
        Duration::from_secs(15),
        "descriptors back to baseline",
        || lab.proxy_fds() <= baseline + 1,
    );
}

#[test]
fn slowloris_connections_end_at_idle_timeout_and_give_back_their_descriptors() {
    if !require_privileges(
        "slowloris_connections_end_at_idle_timeout_and_give_back_their_descriptors",
    ) {
        return;
    }
    let config = format!(
        "[proxy]\nidle_timeout = \"2s\"\n\n{}",
        rule("slow", 14900, 8000, "")
    );
    let mut lab = ProxyLab::new("fslow");
    lab.serve_http(addr::ORIGIN_V4, 8000, "A");
    lab.start_proxy(&config, 14900);
    let baseline = lab.proxy_fds();
    let active = "toa_proxy_connections_active{rule=\"slow\"}";
    let (_idle, line) = lab.spawn_peer(&["idle", EDGE, "14900", "200", "40"]);
    assert_eq!(field(&line, "open"), "200");
    eventually(Duration::from_secs(10), "200 connections open", || {
        lab.metric(active) == Some(200)
    });
    eventually(Duration::from_secs(10), "idle connections closed", || {
        lab.metric(active) == Some(0)
    });
    fds_back_to(&lab, baseline);
    assert_eq!(lab.who(EDGE, 14900).as_deref(), Ok("A"));
}

#[test]
fn an_origin_that_never_reads_costs_the_proxy_at_most_its_buffers() {
    if !require_privileges("an_origin_that_never_reads_costs_the_proxy_at_most_its_buffers") {
        return;
    }
    let config = rule("stalled", 15000, 8000, "");
    let mut lab = ProxyLab::new("fstall");
    let peer = lab.peer.clone();
    lab.spawn_origin(&["python3", &peer, "stall", addr::ORIGIN_V4, "8000"], 8000);
    lab.start_proxy(&config, 15000);
    let pid = lab.proxy().pid;
    let before = rss_kib(pid);
    // Four clients each try to push 100 MiB for 10 s into an origin that reads nothing.
    let line = lab.peer_line(&[
        "push",
        EDGE,
        "15000",
        "4",
        &(100u64 << 20).to_string(),
        "10",
    ]);
    let sent: u64 = field(&line, "sent").parse().unwrap();
    assert!(sent < 4 * (100 << 20), "everything went through: {line}");
    let grown = rss_kib(pid).saturating_sub(before);
    // Two directions of buffer_size (64 KiB) per connection, plus allocator slack.
    assert!(grown <= 4 * 2 * 64 + 8 * 1024, "RSS grew by {grown} KiB");
}

#[test]
fn resets_mid_transfer_from_either_side_leave_no_connection_or_descriptor_behind() {
    if !require_privileges(
        "resets_mid_transfer_from_either_side_leave_no_connection_or_descriptor_behind",
    ) {
        return;
    }
    let config = format!(
        "{}{}",
        rule("client-rst", 15100, 8000, ""),
        rule("origin-rst", 15101, 8001, "")
    );
    let mut lab = ProxyLab::new("freset");
    lab.serve_peer(addr::ORIGIN_V4, 8000, 10 << 20, "together");
    let peer = lab.peer.clone();
    lab.spawn_origin(
        &["python3", &peer, "reset-origin", addr::ORIGIN_V4, "8001"],
        8001,
    );
    lab.start_proxy(&config, 15100);
    let baseline = lab.proxy_fds();
    lab.peer_line(&["reset", EDGE, "15100", "20"]);
    let lines = lab.run_client(EDGE, 15101, 4 << 20, "together", 20);
    assert_eq!(lines.len(), 20);
    for tag in ["client-rst", "origin-rst"] {
        eventually(
            Duration::from_secs(15),
            &format!("{tag} connections closed"),
            || lab.metric(&format!("toa_proxy_connections_active{{rule=\"{tag}\"}}")) == Some(0),
        );
        assert_eq!(
            lab.metric(&format!("toa_proxy_connections_total{{rule=\"{tag}\"}}")),
            Some(20)
        );
    }
    fds_back_to(&lab, baseline);
    assert!(lab.proxy_running());
}

#[test]
fn proxy_killed_under_load_restarts_at_once_and_toa_still_works() {
    if !require_privileges("proxy_killed_under_load_restarts_at_once_and_toa_still_works") {
        return;
    }
    let config = rule("toa", 15200, 8000, "pass_client_ip = \"toa\"");
    let mut lab = ProxyLab::new("fkill");
    let cgroup = lab.topo.lab.cgroup("origin").unwrap();
    let _receiver = receiver::LoadedOrigin::load(&cgroup, &["--trust-any"]);
    let origin = lab.spawn_origin_in(
        Some(&cgroup),
        &http::http_server(addr::ORIGIN_V4, "8000"),
        8000,
    );
    lab.start_proxy(&config, 15200);
    let peer = lab.peer.clone();
    let load = lab
        .topo
        .lab
        .spawn(
            &lab.topo.client,
            None,
            &["python3", &peer, "hammer", EDGE, "15200", "100000"],
        )
        .unwrap();
    // Killed in the middle of the load: once it is under way, however slow the host.
    eventually(Duration::from_secs(10), "the load under way", || {
        lab.metric("toa_proxy_connections_total{rule=\"toa\"}")
            .unwrap_or(0)
            >= 100
    });
    let killed = lab.proxy().clone();
    lab.signal("KILL");
    eventually(Duration::from_secs(5), "killed proxy gone", || {
        !std::path::Path::new(&format!("/proc/{}/fd", killed.pid)).exists()
            || std::fs::read_dir(format!("/proc/{}/fd", killed.pid))
                .map_or(true, |d| d.count() == 0)
    });
    lab.start_proxy(&config, 15200);
    lab.topo.lab.kill(&load);
    lab.get(EDGE, 15200, "/", Some(43210)).unwrap();
    // curl's request (HTTP/1.1, unlike the hammer's) came with the client's address.
    let log = logs::wait_log(&origin.log, "\"GET / HTTP/1.1\"");
    let line = log
        .lines()
        .find(|l| l.contains("\"GET / HTTP/1.1\""))
        .unwrap();
    assert!(
        line.starts_with(&format!("{} - - [", addr::CLIENT_V4)),
        "{line}"
    );
    assert!(
        !log.contains(addr::EDGE_ORIGIN_SIDE_V4),
        "origin saw the edge:\n{log}"
    );
    assert!(
        !lab.proxy_log().contains("ERROR"),
        "restart logged errors:\n{}",
        lab.proxy_log()
    );
}
