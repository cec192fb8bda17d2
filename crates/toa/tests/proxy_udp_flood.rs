//! UDP flow exhaustion end to end: one host opening flows from many source ports cannot
//! lock another client out. A full rule evicts its least recently active flow, a client at
//! its cap (1,000 flows by default) its own, and both are counted on /metrics.

mod proxy_support;
mod udp_support;

use std::time::Duration;

use proxy_support::{ProxyLab, eventually, field};
use toa_lab::{addr, require_privileges};
use udp_support::*;

/// Sends one datagram from each of N source ports (FIRST, FIRST+1, ...: distinct, unlike
/// ephemeral ones; each socket is closed at once, the proxy's flow outlives it) to host:port.
const FLOOD: &str = r#"
import socket, sys
host, port, n, first = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
for i in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", first + i))
    s.sendto(b"flood-%d" % i, (host, port))
    s.close()
"#;
/// The flood's first source port: below the ephemeral range (32768-60999), so no other
/// socket of the test's own client namespace holds one of them.
const FLOOD_PORTS: u16 = 20000;

/// Every datagram of a new flow of `rule` either opened a flow or was dropped at a limit.
fn new_flow_datagrams(lab: &ProxyLab, rule: &str) -> u64 {
    let m = |s: String| lab.metric(&s).unwrap_or(0);
    m(format!("toa_proxy_udp_flows_total{{rule=\"{rule}\"}}"))
        + m(format!(
            "toa_proxy_udp_drops_total{{rule=\"{rule}\",reason=\"flow_limit\"}}"
        ))
        + m(format!(
            "toa_proxy_udp_drops_total{{rule=\"{rule}\",reason=\"client_limit\"}}"
        ))
}

/// Floods `port` from `n` source ports of the client's IPv4 address and waits until the
/// proxy has seen every datagram.
fn flood(lab: &ProxyLab, rule: &str, port: u16, n: u64) {
    let before = new_flow_datagrams(lab, rule);
    let (port_s, n_s, first) = (port.to_string(), n.to_string(), FLOOD_PORTS.to_string());
    let cmd = [
        "timeout",
        "60",
        "python3",
        "-c",
        FLOOD,
        addr::EDGE_CLIENT_SIDE_V4,
        &port_s,
        &n_s,
        &first,
    ];
    lab.topo.client.run(&cmd).unwrap();
    let what =
        format!("the proxy to see {n} flood datagrams on rule {rule} (seen before: {before})");
    let seen = std::cell::Cell::new(0);
    let check = || {
        seen.set(new_flow_datagrams(lab, rule));
        seen.get() == before + n
    };
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        eventually(Duration::from_secs(20), &what, check)
    }))
    .is_err()
    {
        panic!("{what}: saw {}\n{}", seen.get(), lab.metrics());
    }
}

/// Another client (the client host's IPv6 address) sends 5 datagrams and must get all 5.
fn other_client_gets_every_reply(lab: &ProxyLab, peer: &str, port: u16) {
    let lines = load(lab, peer, edge(true), port, 1, 5, "3");
    assert_eq!(
        (field(&lines[0], "received"), field(&lines[0], "own")),
        ("5".to_string(), "true".to_string()),
        "{lines:?}\n{}",
        lab.metrics()
    );
}

#[test]
fn a_flood_of_flows_from_one_host_cannot_lock_out_another_client() {
    if !require_privileges("a_flood_of_flows_from_one_host_cannot_lock_out_another_client") {
        return;
    }
    let config = format!(
        r#"
[[rule]]
tag = "small"
protocol = "udp"
ports = "10010"
origins = ["{o}"]
origin_ports = "{ECHO_PORT}"
max_flows = 100
max_connections_per_client = 1000

[[rule]]
tag = "defaults"
protocol = "udp"
ports = "10011"
origins = ["{o}"]
origin_ports = "{ECHO_PORT}"
"#,
        o = addr::ORIGIN_V4,
    );
    let (mut lab, peer) = start("udp-flood", &config);
    let _echo = spp_echo(&mut lab);
    // The default cap below holds 1,000 upstream sockets open.
    if lab.metric("toa_proxy_fd_limit").unwrap() < 4096 {
        let pid = lab.proxy().pid.to_string();
        lab.topo
            .edge
            .run(&["prlimit", "--pid", &pid, "--nofile=4096:4096"])
            .unwrap();
    }

    // One host fills the rule three times over: the least recently active flows go.
    flood(&lab, "small", 10010, 300);
    let evicted = |rule: &str, reason: &str| {
        lab.metric(&format!(
            "toa_proxy_udp_flows_evicted_total{{rule=\"{rule}\",reason=\"{reason}\"}}"
        ))
    };
    other_client_gets_every_reply(&lab, &peer, 10010);
    assert_eq!(
        evicted("small", "flow_limit"),
        Some(201),
        "{}",
        lab.metrics()
    );
    eventually(Duration::from_secs(10), "the rule's 100 flows", || {
        lab.metric("toa_proxy_udp_flows_active{rule=\"small\"}") == Some(100)
    });

    // The default per-client cap: one host holds at most 1,000 flows of a rule; beyond
    // them it recycles its own least recently active flows, never anyone else's.
    flood(&lab, "defaults", 10011, 1100);
    assert_eq!(
        evicted("defaults", "client_limit"),
        Some(100),
        "{}",
        lab.metrics()
    );
    eventually(Duration::from_secs(10), "1,000 flows of one host", || {
        lab.metric("toa_proxy_udp_flows_active{rule=\"defaults\"}") == Some(1000)
    });
    other_client_gets_every_reply(&lab, &peer, 10011);
    assert_eq!(evicted("defaults", "flow_limit"), Some(0));
    assert_eq!(
        lab.metric("toa_proxy_udp_drops_total{rule=\"defaults\",reason=\"client_limit\"}"),
        Some(0)
    );
}
