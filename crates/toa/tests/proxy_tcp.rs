//! `toa proxy` end to end over TCP in client/edge/origin namespaces: data integrity,
//! half-close, failover with health checks, and reload under load.

mod proxy_support;

use std::time::{Duration, Instant};

use proxy_support::{ProxyLab, eventually, field};
use toa_lab::{addr, require_privileges};

const MIB: u64 = 1 << 20;

/// Asserts every connection moved its bytes intact: what one end sent, the other received.
fn assert_intact(client_lines: &[String], origin_log: &str, expected: usize, bytes: u64) {
    // peer.py leaves out health checks (connections that send nothing).
    let origin_lines: Vec<&str> = origin_log.lines().filter(|l| l.starts_with('{')).collect();
    assert_eq!(client_lines.len(), expected, "{client_lines:?}");
    assert_eq!(origin_lines.len(), expected, "{origin_log}");
    let mut sent_by_client: Vec<String> =
        client_lines.iter().map(|l| field(l, "sent_sha")).collect();
    let mut recv_by_origin: Vec<String> =
        origin_lines.iter().map(|l| field(l, "recv_sha")).collect();
    let mut sent_by_origin: Vec<String> =
        origin_lines.iter().map(|l| field(l, "sent_sha")).collect();
    let mut recv_by_client: Vec<String> =
        client_lines.iter().map(|l| field(l, "recv_sha")).collect();
    for v in [
        &mut sent_by_client,
        &mut recv_by_origin,
        &mut sent_by_origin,
        &mut recv_by_client,
    ] {
        v.sort();
    }
    assert_eq!(
        sent_by_client, recv_by_origin,
        "client → origin data differs"
    );
    assert_eq!(
        sent_by_origin, recv_by_client,
        "origin → client data differs"
    );
    for l in client_lines
        .iter()
        .map(String::as_str)
        .chain(origin_lines.iter().copied())
    {
        assert!(!l.contains("error"), "{l}");
        assert_eq!(field(l, "recv"), bytes.to_string(), "{l}");
    }
}

/// Waits until the origin logged `n` connections; on timeout shows both logs.
fn wait_for_lines(lab: &ProxyLab, log: &std::path::Path, n: usize) -> String {
    let deadline = std::time::Instant::now() + toa_lab::scaled(Duration::from_secs(30));
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.lines().filter(|l| l.starts_with('{')).count() >= n {
            return text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "origin logged fewer than {n} connections:\n{text}\nproxy log:\n{}",
            lab.proxy_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn data_256mib_each_way_and_200_concurrent_connections_arrive_intact_over_ipv4_and_ipv6() {
    if !require_privileges(
        "data_256mib_each_way_and_200_concurrent_connections_arrive_intact_over_ipv4_and_ipv6",
    ) {
        return;
    }
    let config = format!(
        r#"
[[rule]]
tag = "v4-origin"
ports = "10000"
origins = ["{o4}"]

[[rule]]
tag = "v6-origin"
listen = ["{e6}"]
ports = "10001"
origins = ["{o6}"]

[[rule]]
tag = "many"
listen = ["{e4}"]
ports = "10002"
origins = ["{o4}"]
"#,
        o4 = addr::ORIGIN_V4,
        o6 = addr::ORIGIN_V6,
        e4 = addr::EDGE_CLIENT_SIDE_V4,
        e6 = addr::EDGE_CLIENT_SIDE_V6
    );
    let mut lab = ProxyLab::start("pdata", &config, 10000);
    let big = 256 * MIB;

    // IPv4 client on the default dual-stack listener, IPv4 origin.
    let origin = lab.serve_peer(addr::ORIGIN_V4, 10000, big, "together");
    let lines = lab.run_client(addr::EDGE_CLIENT_SIDE_V4, 10000, big, "together", 1);
    let log = wait_for_lines(&lab, &origin.log, 1);
    assert_intact(&lines, &log, 1, big);
    assert_eq!(
        field(log.lines().next().unwrap(), "peer"),
        addr::EDGE_ORIGIN_SIDE_V4,
        "pass_client_ip = off: origin sees the proxy"
    );

    // IPv6 client, IPv6 origin.
    let origin6 = lab.serve_peer(addr::ORIGIN_V6, 10001, big, "together");
    let lines = lab.run_client(addr::EDGE_CLIENT_SIDE_V6, 10001, big, "together", 1);
    assert_intact(&lines, &wait_for_lines(&lab, &origin6.log, 1), 1, big);

    // 200 connections at once.
    let origin_many = lab.serve_peer(addr::ORIGIN_V4, 10002, 256 * 1024, "together");
    let lines = lab.run_client(
        addr::EDGE_CLIENT_SIDE_V4,
        10002,
        256 * 1024,
        "together",
        200,
    );
    assert_intact(
        &lines,
        &wait_for_lines(&lab, &origin_many.log, 200),
        200,
        256 * 1024,
    );

    assert_eq!(
        lab.metric("toa_proxy_connections_total{rule=\"many\"}"),
        Some(200)
    );
    assert_eq!(
        lab.metric("toa_proxy_bytes_total{rule=\"v4-origin\",direction=\"client_to_origin\"}"),
        Some(big)
    );
    assert_eq!(
        lab.metric("toa_proxy_bytes_total{rule=\"v6-origin\",direction=\"origin_to_client\"}"),
        Some(big)
    );
    eventually(
        Duration::from_secs(5),
        "active connections back to 0",
        || lab.metric("toa_proxy_connections_active{rule=\"many\"}") == Some(0),
    );
}

#[test]
fn half_close_propagates_in_both_directions() {
    if !require_privileges("half_close_propagates_in_both_directions") {
        return;
    }
    let config = format!(
        // Buffered copies here; the data test above runs the default splice path.
        "[proxy]\nsplice = false\n\n[[rule]]\ntag = \"client-first\"\nports = \"11000\"\norigins = [\"{o}\"]\n\n[[rule]]\ntag = \"origin-first\"\nports = \"11001\"\norigins = [\"{o}\"]\n",
        o = addr::ORIGIN_V4
    );
    let mut lab = ProxyLab::start("phalf", &config, 11000);
    // The client sends everything and shuts down its write side; the origin answers only
    // after it sees that EOF, so the reply must still flow back through the proxy.
    let o1 = lab.serve_peer(addr::ORIGIN_V4, 11000, 4 * MIB, "client-first");
    let lines = lab.run_client(addr::EDGE_CLIENT_SIDE_V6, 11000, 4 * MIB, "client-first", 3);
    assert_intact(&lines, &wait_for_lines(&lab, &o1.log, 3), 3, 4 * MIB);
    // The mirror image: the origin sends and closes first, the client uploads afterwards.
    let o2 = lab.serve_peer(addr::ORIGIN_V4, 11001, 4 * MIB, "origin-first");
    let lines = lab.run_client(addr::EDGE_CLIENT_SIDE_V4, 11001, 4 * MIB, "origin-first", 3);
    assert_intact(&lines, &wait_for_lines(&lab, &o2.log, 3), 3, 4 * MIB);
}

#[test]
fn failover_sends_new_connections_to_the_live_origin_and_flips_health() {
    if !require_privileges("failover_sends_new_connections_to_the_live_origin_and_flips_health") {
        return;
    }
    let config = format!(
        r#"
# Checks slow enough that the first connections after the kill meet A still "up":
# they are refused, retried on B, and take A down passively (fall = 2).
[health]
interval = "1s"
timeout = "200ms"
rise = 2
fall = 2

[[rule]]
tag = "web"
ports = "12000"
origins = ["{o4}", "{o6}"]
origin_ports = "8000"
"#,
        o4 = addr::ORIGIN_V4,
        o6 = addr::ORIGIN_V6
    );
    let mut lab = ProxyLab::new("pfail");
    let a = lab.serve_http(addr::ORIGIN_V4, 8000, "A");
    lab.serve_http(addr::ORIGIN_V6, 8000, "B");
    lab.start_proxy(&config, 12000);
    let up_a = format!("toa_proxy_origin_up{{origin=\"{}:8000\"}}", addr::ORIGIN_V4);
    let up_b = format!(
        "toa_proxy_origin_up{{origin=\"[{}]:8000\"}}",
        addr::ORIGIN_V6
    );

    // The origins listened before the proxy started, so its first checks find them up.
    eventually(Duration::from_secs(10), "both origins up", || {
        lab.metric(&up_a) == Some(1) && lab.metric(&up_b) == Some(1)
    });
    let before: Vec<String> = (0..10)
        .map(|_| lab.who(addr::EDGE_CLIENT_SIDE_V4, 12000).unwrap())
        .collect();
    assert!(
        before.contains(&"A".to_string()) && before.contains(&"B".to_string()),
        "round robin uses both: {before:?}"
    );

    lab.topo.lab.kill(&a);
    // Right after the kill, before any check notices, a connection picked for A is retried on B.
    for _ in 0..10 {
        assert_eq!(
            lab.who(addr::EDGE_CLIENT_SIDE_V4, 12000).as_deref(),
            Ok("B"),
            "{}",
            lab.proxy_log()
        );
    }
    eventually(Duration::from_secs(5), "origin A reported down", || {
        lab.metric(&up_a) == Some(0)
    });
    assert_eq!(lab.metric(&up_b), Some(1));
    assert!(
        lab.metric("toa_proxy_connect_errors_total{rule=\"web\",kind=\"refused\"}")
            .unwrap()
            >= 1
    );

    // A comes back: after `rise` good checks it takes connections again.
    lab.serve_http(addr::ORIGIN_V4, 8000, "A");
    eventually(
        Duration::from_secs(10),
        "origin A reported up again",
        || lab.metric(&up_a) == Some(1),
    );
    let after: Vec<String> = (0..10)
        .map(|_| lab.who(addr::EDGE_CLIENT_SIDE_V4, 12000).unwrap())
        .collect();
    assert!(after.contains(&"A".to_string()), "{after:?}");
}

#[test]
fn all_origins_down_closes_the_client_fast_and_counts_it() {
    if !require_privileges("all_origins_down_closes_the_client_fast_and_counts_it") {
        return;
    }
    let config = format!(
        "[health]\ninterval = \"100ms\"\ntimeout = \"100ms\"\nfall = 1\n\n[[rule]]\ntag = \"dead\"\nports = \"12500\"\norigins = [\"{}\"]\norigin_ports = \"8000\"\n",
        addr::ORIGIN_V4
    );
    let lab = ProxyLab::start("pdown", &config, 12500);
    eventually(Duration::from_secs(5), "origin reported down", || {
        lab.metric(&format!(
            "toa_proxy_origin_up{{origin=\"{}:8000\"}}",
            addr::ORIGIN_V4
        )) == Some(0)
    });
    let started = std::time::Instant::now();
    assert!(lab.who(addr::EDGE_CLIENT_SIDE_V4, 12500).is_err());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "fast close took {:?}",
        started.elapsed()
    );
    assert_eq!(
        lab.metric("toa_proxy_connect_errors_total{rule=\"dead\",kind=\"no_healthy_origin\"}"),
        Some(1)
    );
    assert!(
        lab.proxy_log().contains("every origin is down"),
        "{}",
        lab.proxy_log()
    );
}

#[test]
fn reload_under_load_refuses_no_connection_and_the_new_rule_goes_live() {
    if !require_privileges("reload_under_load_refuses_no_connection_and_the_new_rule_goes_live") {
        return;
    }
    let rule = |tag: &str, port: u16| {
        format!(
            "[[rule]]\ntag = \"{tag}\"\nports = \"{port}\"\norigins = [\"{}\"]\norigin_ports = \"8000\"\n\n",
            addr::ORIGIN_V4
        )
    };
    let lab_config = rule("old", 13000);
    let mut lab = ProxyLab::start("preload", &lab_config, 13000);
    lab.serve_http(addr::ORIGIN_V4, 8000, "A");
    assert!(
        lab.who(addr::EDGE_CLIENT_SIDE_V4, 13001).is_err(),
        "no rule on 13001 yet"
    );

    // A bounded load loop on the old rule while the config is reloaded several times.
    let client = lab.topo.client.clone();
    let peer = lab.peer.clone();
    let load = std::thread::spawn(move || {
        client
            .run(&[
                "python3",
                &peer,
                "hammer",
                addr::EDGE_CLIENT_SIDE_V4,
                "13000",
                "400",
            ])
            .unwrap()
    });
    std::thread::sleep(Duration::from_millis(300));
    let both = format!("{}{}", rule("old", 13000), rule("new", 13001));
    for i in 0..5 {
        lab.reload(if i % 2 == 0 { &both } else { &lab_config });
        std::thread::sleep(Duration::from_millis(200));
    }
    lab.reload(&both);
    // A broken config in the middle of it all is rejected and changes nothing.
    std::thread::sleep(Duration::from_millis(200));
    std::fs::write(
        &lab.config,
        "[[rule]]\ntag = \"broken\"\nports = \"70000\"\n",
    )
    .unwrap();
    lab.signal("HUP");
    let result = load.join().unwrap();
    assert_eq!(
        field(&result, "failures"),
        "0",
        "{result}\n{}",
        lab.proxy_log()
    );
    assert_eq!(
        lab.who(addr::EDGE_CLIENT_SIDE_V4, 13001).as_deref(),
        Ok("A"),
        "the new rule is live"
    );
    eventually(Duration::from_secs(5), "rejected reload logged", || {
        lab.proxy_log()
            .contains("reload rejected, old config still running: ")
    });
    let log = lab.proxy_log();
    assert!(
        log.contains("proxy.toml:3: rule \"broken\": ports: \"70000\" is not a port"),
        "{log}"
    );
    assert_eq!(
        lab.metric("toa_proxy_reloads_total{result=\"ok\"}"),
        Some(6)
    );
    assert_eq!(
        lab.metric("toa_proxy_reloads_total{result=\"rejected\"}"),
        Some(1)
    );
    assert_eq!(
        lab.who(addr::EDGE_CLIENT_SIDE_V4, 13001).as_deref(),
        Ok("A"),
        "still running the last good config"
    );
}

#[test]
fn rule_connection_limit_closes_excess_clients_and_sigterm_drains_then_exits() {
    if !require_privileges(
        "rule_connection_limit_closes_excess_clients_and_sigterm_drains_then_exits",
    ) {
        return;
    }
    let config = format!(
        "[proxy]\ndrain_timeout = \"3s\"\n\n[[rule]]\ntag = \"capped\"\nports = \"14000\"\norigins = [\"{}\"]\norigin_ports = \"8000\"\nmax_connections = 2\n",
        addr::ORIGIN_V4
    );
    let mut lab = ProxyLab::start("plimit", &config, 14000);
    lab.serve_http(addr::ORIGIN_V4, 8000, "A");
    let holder = lab
        .topo
        .lab
        .spawn(
            &lab.topo.client,
            None,
            &[
                "python3",
                &lab.peer,
                "hold",
                addr::EDGE_CLIENT_SIDE_V4,
                "14000",
                "3",
                "30",
            ],
        )
        .unwrap();
    let mut report = String::new();
    eventually(Duration::from_secs(10), "holder report", || {
        report = std::fs::read_to_string(&holder.log).unwrap_or_default();
        report.contains("open")
    });
    assert_eq!(
        (field(&report, "open"), field(&report, "closed")),
        ("2".into(), "1".into()),
        "{report}"
    );
    assert_eq!(
        lab.metric("toa_proxy_connections_rejected_total{rule=\"capped\",reason=\"rule_limit\"}"),
        Some(1)
    );
    assert_eq!(
        lab.metric("toa_proxy_connections_active{rule=\"capped\"}"),
        Some(2)
    );

    // SIGTERM: no new connections, the two open ones get the drain time, then the proxy exits.
    let term = Instant::now();
    lab.signal("TERM");
    eventually(Duration::from_secs(2), "listener closed", || {
        lab.who(addr::EDGE_CLIENT_SIDE_V4, 14000).is_err()
    });
    eventually(
        Duration::from_secs(6),
        "proxy exits after the drain deadline",
        || !lab.proxy_running(),
    );
    // The open connections kept it running until the deadline, however fast the host.
    assert!(
        term.elapsed() >= Duration::from_millis(3000),
        "exited {:?} after SIGTERM, before the drain deadline",
        term.elapsed()
    );
    assert!(
        lab.proxy_log().contains("drain deadline (3000ms) passed"),
        "{}",
        lab.proxy_log()
    );
}
