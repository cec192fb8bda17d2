//! Fault suite, the proxy's own resources: running out of ephemeral ports or descriptors
//! is the proxy's problem, never the origin's: counted under its own kind, logged
//! throttled, and the origin stays up. Several source addresses multiply the ports.

mod proxy_support;
mod udp_support;

use std::time::Duration;

use proxy_support::{ProxyLab, add_address, eventually, field};
use toa_lab::{addr, require_privileges};

const EDGE: &str = addr::EDGE_CLIENT_SIDE_V4;

fn origin_up(lab: &ProxyLab) -> Option<u64> {
    lab.metric(&format!(
        "toa_proxy_origin_up{{origin=\"{}:8000\"}}",
        addr::ORIGIN_V4
    ))
}

/// Health checks once a second (each leaves a TIME_WAIT too), three failures take an origin down.
const HEALTH: &str = "[health]\ninterval = \"1s\"\ntimeout = \"500ms\"\nrise = 1\nfall = 3\n\n";

/// The edge gets 8 ephemeral ports; each client connection leaves one in TIME_WAIT.
fn port_starved_lab(tag: &str, extra: &str) -> ProxyLab {
    let mut lab = ProxyLab::new(tag);
    lab.topo
        .edge
        .run(&["sysctl", "-w", "net.ipv4.ip_local_port_range=40000 40007"])
        .unwrap();
    // Replies only after the client's EOF: the proxy closes its upstream side first.
    lab.serve_peer(addr::ORIGIN_V4, 8000, 1, "client-first");
    let config = format!(
        "{HEALTH}[[rule]]\ntag = \"web\"\nports = \"14600\"\norigins = [\"{}\"]\norigin_ports = \"8000\"\n{extra}\n",
        addr::ORIGIN_V4
    );
    lab.start_proxy(&config, 14600);
    lab
}

#[test]
fn ephemeral_port_exhaustion_is_counted_as_local_and_leaves_the_origin_up() {
    if !require_privileges("ephemeral_port_exhaustion_is_counted_as_local_and_leaves_the_origin_up")
    {
        return;
    }
    let lab = port_starved_lab("fports", "");
    let line = lab.peer_line(&["sequential", EDGE, "14600", "30"]);
    let ok: usize = field(&line, "ok").parse().unwrap();
    assert!((1..=8).contains(&ok), "{line}");
    // Health checks keep running against the starved port range: more than `fall` of them
    // are skipped (the proxy's ports ran out, not the origin), and the origin stays up.
    eventually(
        Duration::from_secs(30),
        "more than `fall` health checks skipped",
        || lab.proxy_log().matches("health check skipped").count() > 3,
    );
    let errors = |kind: &str| {
        lab.metric(&format!(
            "toa_proxy_connect_errors_total{{rule=\"web\",kind=\"{kind}\"}}"
        ))
    };
    assert_eq!(origin_up(&lab), Some(1), "{}", lab.metrics());
    assert!(
        errors("local_ports").unwrap_or(0) >= 20,
        "{}",
        lab.metrics()
    );
    for kind in [
        "timeout",
        "refused",
        "unreachable",
        "other",
        "no_healthy_origin",
    ] {
        assert_eq!(errors(kind), Some(0), "{kind}");
    }
    // The pressure is visible: TIME_WAITs and the size of the port range.
    assert!(
        lab.metric("toa_proxy_tcp_time_wait").unwrap_or(0) >= 8,
        "{}",
        lab.metrics()
    );
    assert_eq!(lab.metric("toa_proxy_local_port_range_size"), Some(8));
    // One log line per second at most.
    let lines = lab
        .proxy_log()
        .lines()
        .filter(|l| l.contains(" WARN ") && l.contains("out of local ports"))
        .count();
    assert!(
        (1..=5).contains(&lines),
        "{lines} lines:\n{}",
        lab.proxy_log()
    );
}

#[test]
fn a_second_source_address_doubles_the_ports_to_an_origin() {
    if !require_privileges("a_second_source_address_doubles_the_ports_to_an_origin") {
        return;
    }
    let second = "198.18.2.11";
    let mut lab = ProxyLab::new("fsource");
    add_address(&lab.topo.edge, addr::EDGE_ORIGIN_SIDE_V4, second);
    lab.topo
        .edge
        .run(&["sysctl", "-w", "net.ipv4.ip_local_port_range=40000 40007"])
        .unwrap();
    let origin = lab.serve_peer(addr::ORIGIN_V4, 8000, 1, "client-first");
    // One health check a minute: it takes one port of the first address.
    let config = format!(
        "[health]\ninterval = \"60s\"\n\n[[rule]]\ntag = \"web\"\nports = \"14600\"\norigins = [\"{}\"]\norigin_ports = \"8000\"\nsource_addresses = [\"{}\", \"{second}\"]\n",
        addr::ORIGIN_V4,
        addr::EDGE_ORIGIN_SIDE_V4
    );
    lab.start_proxy(&config, 14600);
    let line = lab.peer_line(&["sequential", EDGE, "14600", "14"]);
    assert_eq!(field(&line, "ok"), "14", "{line}\n{}", lab.proxy_log());
    let log = std::fs::read_to_string(&origin.log).unwrap();
    for source in [addr::EDGE_ORIGIN_SIDE_V4, second] {
        assert!(
            log.contains(&format!("\"peer\": \"{source}\"")),
            "{source} unused:\n{log}"
        );
    }
}

#[test]
fn udp_upstream_socket_failures_are_counted_and_logged_throttled() {
    if !require_privileges("udp_upstream_socket_failures_are_counted_and_logged_throttled") {
        return;
    }
    let config = format!(
        "[[rule]]\ntag = \"u\"\nprotocol = \"udp\"\nports = \"10203\"\norigins = [\"{}\"]\norigin_ports = \"{}\"\n",
        addr::ORIGIN_V4,
        udp_support::ECHO_PORT
    );
    let (mut lab, peer) = udp_support::start("fudpfd", &config);
    let _echo = udp_support::spp_echo(&mut lab);
    // No descriptor left for upstream sockets (the soft limit only: the hard one stays).
    let pid = lab.proxy().pid.to_string();
    let set = |n: &str| {
        std::process::Command::new("prlimit")
            .args(["--pid", &pid, &format!("--nofile={n}:")])
            .status()
            .unwrap()
    };
    let soft = lab
        .topo
        .edge
        .run(&[
            "prlimit",
            "--pid",
            &pid,
            "--nofile",
            "--output=SOFT",
            "--noheadings",
        ])
        .unwrap();
    assert!(set(&lab.proxy_fds().to_string()).success());
    let _ = udp_support::load(&lab, &peer, EDGE, 10203, 40, 5, "1");
    assert!(set(soft.trim()).success());
    let dropped = lab
        .metric("toa_proxy_udp_drops_total{rule=\"u\",reason=\"proxy_socket\"}")
        .unwrap();
    assert!(dropped >= 100, "{dropped} drops\n{}", lab.metrics());
    let lines = lab
        .proxy_log()
        .lines()
        .filter(|l| l.contains("cannot open the upstream socket"))
        .count();
    assert!(
        (1..=5).contains(&lines),
        "{lines} lines for {dropped} drops"
    );
}
