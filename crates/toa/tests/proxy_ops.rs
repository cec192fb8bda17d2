//! Operating the proxy day to day: what its log tells an operator (why an origin went
//! down, which clients were refused and why, without a flood filling the disk), and a
//! second proxy on the same ports refused in one line.

mod proxy_support;

use std::time::Duration;

use proxy_support::{ProxyLab, eventually};
use toa_lab::{addr, require_privileges};

fn rule(tag: &str, port: u16, origin_port: u16, extra: &str) -> String {
    format!(
        "[[rule]]\ntag = \"{tag}\"\nports = \"{port}\"\norigins = [\"{}\"]\norigin_ports = \"{origin_port}\"\n{extra}\n",
        addr::ORIGIN_V4
    )
}

#[test]
fn origin_down_line_names_the_last_checks_cause() {
    if !require_privileges("origin_down_line_names_the_last_checks_cause") {
        return;
    }
    // Nothing listens on the origin's port 8009: every check is refused.
    let lab = ProxyLab::start("opsdown", &rule("dead", 15100, 8009, ""), 15100);
    eventually(Duration::from_secs(10), "origin down line", || {
        lab.proxy_log().contains("origin down")
    });
    let log = lab.proxy_log();
    let line = log.lines().find(|l| l.contains("origin down")).unwrap();
    assert!(
        line.contains("3 checks failed, the last: refused"),
        "{line}"
    );
}

/// Connects to the edge's `port` from the client `n` times, one after another, each until
/// the proxy closes it (so every one was refused, not still queued, when this returns).
fn connect_until_closed(lab: &ProxyLab, port: u16, n: u32) {
    let script = format!(
        "import socket\nfor _ in range({n}):\n    s = socket.create_connection(('{}', {port}))\n    s.settimeout(10)\n    try:\n        s.recv(1)\n    except ConnectionResetError:\n        pass\n    s.close()\n",
        addr::EDGE_CLIENT_SIDE_V4
    );
    lab.topo
        .client
        .run(&["python3", "-c", &script])
        .expect("client connections");
}

/// The proxy's `connection refused` lines, and the sum of their `suppressed` fields.
fn refusal_lines(lab: &ProxyLab) -> (Vec<String>, u64) {
    let lines: Vec<String> = lab
        .proxy_log()
        .lines()
        .filter(|l| l.contains("connection refused"))
        .map(str::to_string)
        .collect();
    let suppressed = lines
        .iter()
        .map(|l| {
            l.split_once("suppressed=")
                .and_then(|(_, v)| v.split_whitespace().next()?.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("no suppressed= in {l}"))
        })
        .sum();
    (lines, suppressed)
}

#[test]
fn refused_clients_are_logged_with_their_reason_at_most_once_a_second() {
    if !require_privileges("refused_clients_are_logged_with_their_reason_at_most_once_a_second") {
        return;
    }
    let mut lab = ProxyLab::new("opsrefuse");
    lab.rust_log = None;
    lab.serve_http(addr::ORIGIN_V4, 8000, "A");
    lab.start_proxy(
        &rule("lim", 15200, 8000, "max_connections_per_client = 1"),
        15200,
    );
    // One connection holds the client's only place (http.server waits for its request).
    let hold = format!(
        "import socket, sys\ns = socket.create_connection(('{}', 15200))\nsys.stdin.read()\n",
        addr::EDGE_CLIENT_SIDE_V4
    );
    let client = lab.topo.client.clone();
    lab.topo
        .lab
        .spawn(
            &client,
            None,
            &["sh", "-c", &format!("sleep 600 | python3 -c \"{hold}\"")],
        )
        .unwrap();
    eventually(
        Duration::from_secs(10),
        "the held connection counted",
        || lab.metric("toa_proxy_connections_active{rule=\"lim\"}") == Some(1),
    );
    let started = std::time::Instant::now();
    connect_until_closed(&lab, 15200, 300);
    let flood_secs = started.elapsed().as_secs();
    let refused = "toa_proxy_connections_rejected_total{rule=\"lim\",reason=\"client_limit\"}";
    assert_eq!(lab.metric(refused), Some(300));
    let (lines, _) = refusal_lines(&lab);
    // At most one line a second: a flood cannot fill the disk.
    assert!(
        !lines.is_empty() && lines.len() as u64 <= flood_secs + 2,
        "{} lines in {flood_secs}s: {lines:#?}",
        lines.len()
    );
    assert!(
        lines[0].contains("WARN")
            && lines[0].contains("max_connections_per_client reached")
            && lines[0].contains("reason=client_limit")
            && lines[0].contains(&format!("client={}:", addr::CLIENT_V4)),
        "{}",
        lines[0]
    );
    // A later refusal's line says how many were left out: every refusal is accounted for.
    eventually(
        Duration::from_secs(10),
        "a line with the suppressed count",
        || {
            connect_until_closed(&lab, 15200, 1);
            let (lines, suppressed) = refusal_lines(&lab);
            let total = lab.metric(refused).unwrap();
            lines.len() as u64 + suppressed == total
        },
    );
}

#[test]
fn proxy_reload_answers_ok_or_the_rejection_and_a_rejected_file_keeps_the_old_rules() {
    if !require_privileges(
        "proxy_reload_answers_ok_or_the_rejection_and_a_rejected_file_keeps_the_old_rules",
    ) {
        return;
    }
    let mut lab = ProxyLab::new("opsreload");
    let socket = lab.topo.lab.dir().join("run/admin.sock");
    lab.admin_socket = Some(socket.clone());
    lab.serve_http(addr::ORIGIN_V4, 8000, "A");
    lab.serve_http(addr::ORIGIN_V4, 8001, "B");
    lab.start_proxy(&rule("web", 15300, 8000, ""), 15300);
    let mode = |p: &std::path::Path| {
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(p).unwrap().permissions())
            & 0o777
    };
    assert_eq!(
        (mode(&socket), mode(socket.parent().unwrap())),
        (0o600, 0o700)
    );
    let reload = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_toa"))
            .args([
                "proxy",
                "reload",
                "--admin-socket",
                socket.to_str().unwrap(),
            ])
            .output()
            .unwrap()
    };
    // A good file: exit 0, and the new rule serves when the command returns.
    std::fs::write(&lab.config, rule("web", 15300, 8001, "")).unwrap();
    let out = reload();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        lab.who(addr::EDGE_CLIENT_SIDE_V4, 15300).as_deref(),
        Ok("B")
    );
    // A bad one: exit 1 with file, line and field; the old rules keep serving.
    std::fs::write(
        &lab.config,
        rule("web", 15300, 8000, "balance = \"fastest\""),
    )
    .unwrap();
    let out = reload();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let expected = format!("{}:", lab.config.display());
    assert!(
        stderr.contains("reload rejected")
            && stderr.contains(&expected)
            && stderr.contains("balance"),
        "{stderr}"
    );
    assert_eq!(
        lab.who(addr::EDGE_CLIENT_SIDE_V4, 15300).as_deref(),
        Ok("B")
    );
}

#[test]
fn a_second_proxy_on_the_same_ports_is_refused_and_the_first_keeps_serving_and_reloading() {
    if !require_privileges(
        "a_second_proxy_on_the_same_ports_is_refused_and_the_first_keeps_serving_and_reloading",
    ) {
        return;
    }
    let mut lab = ProxyLab::new("opstwice");
    lab.serve_http(addr::ORIGIN_V4, 8000, "A");
    lab.start_proxy(&rule("web", 15500, 8000, ""), 15500);
    second_proxy_is_refused(&lab, "tcp/[::]:15500 (dual stack)");
    assert_eq!(
        lab.who(addr::EDGE_CLIENT_SIDE_V4, 15500).as_deref(),
        Ok("A")
    );
    // Its own sockets do not count: a reload that binds the same port on one address
    // while its dual-stack socket is still open is applied.
    let one_address = format!(
        "[[rule]]\ntag = \"web\"\nlisten = [\"{}\"]\nports = \"15500\"\norigins = [\"{}\"]\norigin_ports = \"8000\"\n",
        addr::EDGE_CLIENT_SIDE_V4,
        addr::ORIGIN_V4
    );
    lab.reload(&one_address);
    eventually(Duration::from_secs(10), "the reload applied", || {
        lab.proxy_log().contains("reloaded ")
    });
    assert!(
        !lab.proxy_log().contains("another process"),
        "{}",
        lab.proxy_log()
    );
    assert_eq!(
        lab.who(addr::EDGE_CLIENT_SIDE_V4, 15500).as_deref(),
        Ok("A")
    );
}

#[test]
fn a_second_proxy_on_a_port_range_is_refused() {
    if !require_privileges("a_second_proxy_on_a_port_range_is_refused") {
        return;
    }
    let mut lab = ProxyLab::new("opstwicerange");
    lab.serve_http(addr::ORIGIN_V4, 8000, "A");
    // 100 ports: one steered listener on the first where sk_lookup is there, a socket
    // per port otherwise; a second proxy is refused either way.
    let wide = rule("wide", 15600, 8000, "").replace("\"15600\"", "\"15600-15699\"");
    lab.start_proxy(&wide, 15600);
    second_proxy_is_refused(&lab, "tcp/[::]:15600 (dual stack)");
    assert_eq!(
        lab.who(addr::EDGE_CLIENT_SIDE_V4, 15650).as_deref(),
        Ok("A")
    );
}

/// Runs a second `toa proxy` with `lab`'s config on the edge: it must exit 1 with one
/// line naming `listener` as held by another process, and the first keep running.
fn second_proxy_is_refused(lab: &ProxyLab, listener: &str) {
    // A second proxy that started anyway is ended by the timeout (124), failing the test.
    let bound = toa_lab::scaled(Duration::from_secs(10))
        .as_secs()
        .to_string();
    let toa = env!("CARGO_BIN_EXE_toa");
    let config = lab.config.to_str().unwrap().to_string();
    let out = lab
        .topo
        .edge
        .output(&["timeout", &bound, toa, "proxy", "--config", &config])
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let refusals: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("another process listens there"))
        .collect();
    assert_eq!(refusals.len(), 1, "{stderr}");
    assert!(
        refusals[0].contains(&format!("cannot listen on {listener}")),
        "{stderr}"
    );
    assert!(lab.proxy_running());
}
