//! Origins taken out and put back without a reload: weight 0 in the file and
//! `toa proxy origin set-state` (drain, maint, ready) on the admin socket, what
//! `toa proxy origin list` shows, and the states kept across a reload.

mod proxy_support;
mod udp_support;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use proxy_support::{ProxyLab, add_address, eventually};
use toa_lab::{Spawned, addr, require_privileges};

const ECHO_PY: &str = include_str!("proxy_support/echo.py");
const A: &str = addr::ORIGIN_V4;
const B: &str = "198.18.2.3";
const PORT: u16 = 15400;

/// Rule "web" on [`PORT`] with the origins of group "pool", A and B, at these weights.
/// Least connections, whose choice does not follow from the weights (idle origins tie, and
/// ties rotate): weight 0 must keep an origin out by its state.
fn config(weight_a: u32, weight_b: u32) -> String {
    format!(
        "[[rule]]\ntag = \"web\"\nports = \"{PORT}\"\norigin_group = \"pool\"\norigin_ports = \"8000\"\nbalance = \"least_connections\"\n\n\
         [[origin_group]]\nname = \"pool\"\norigins = [{{ address = \"{A}\", weight = {weight_a} }}, {{ address = \"{B}\", weight = {weight_b} }}]\n"
    )
}

/// A proxy with an admin socket in front of two echo origins that name themselves "A"
/// and "B" and log every connection they accept (health checks included).
struct Lab {
    lab: ProxyLab,
    echo: String,
    socket: PathBuf,
    origin_a: Spawned,
    origin_b: Spawned,
}

impl Lab {
    fn start(tag: &str, weight_a: u32, weight_b: u32) -> Lab {
        let mut lab = ProxyLab::new(tag);
        let socket = lab.topo.lab.dir().join("run/admin.sock");
        lab.admin_socket = Some(socket.clone());
        let echo = lab.topo.lab.dir().join("echo.py");
        std::fs::write(&echo, ECHO_PY).unwrap();
        let echo = echo.to_string_lossy().into_owned();
        add_address(&lab.topo.origin, A, B);
        let origin_a = lab.spawn_origin(&["python3", &echo, "serve", A, "8000", "A"], 8000);
        let origin_b = lab.spawn_origin(&["python3", &echo, "serve", B, "8000", "B"], 8000);
        lab.start_proxy(&config(weight_a, weight_b), PORT);
        Lab {
            lab,
            echo,
            socket,
            origin_a,
            origin_b,
        }
    }

    /// `n` new connections through the proxy, one after another: which origin answered each.
    fn ask(&self, n: usize) -> Vec<String> {
        let (edge, port, n) = (addr::EDGE_CLIENT_SIDE_V4, PORT.to_string(), n.to_string());
        let out = self
            .lab
            .topo
            .client
            .run(&["python3", &self.echo, "ask", edge, &port, &n])
            .unwrap_or_else(|e| panic!("{e}\n{}", self.lab.proxy_log()));
        out.lines().map(str::to_string).collect()
    }

    fn toa(&self, args: &[&str]) -> Output {
        toa(&self.socket, args)
    }

    fn set_state(&self, name: &str, address: &str, state: &str) -> String {
        set_state(&self.lab, &self.socket, [name, address, state])
    }

    fn row(&self, address: &str) -> Vec<String> {
        row(&self.socket, "web", address)
    }
}

/// `toa proxy ARGS... --admin-socket SOCKET`, as an operator runs it on the edge host.
fn toa(socket: &Path, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_toa"))
        .arg("proxy")
        .args(args)
        .args(["--admin-socket", socket.to_str().unwrap()])
        .output()
        .unwrap()
}

/// `toa proxy origin set-state NAME ADDRESS STATE`, which must succeed: what it printed.
fn set_state(lab: &ProxyLab, socket: &Path, args: [&str; 3]) -> String {
    let out = toa(socket, &[&["origin", "set-state"][..], &args[..]].concat());
    assert!(out.status.success(), "{out:?}\n{}", lab.proxy_log());
    String::from_utf8(out.stdout).unwrap()
}

/// The `toa proxy origin list` line of `address` in `rule`, split into its columns (the
/// header checked on the way).
fn row(socket: &Path, rule: &str, address: &str) -> Vec<String> {
    let out = toa(socket, &["origin", "list"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let header = [
        "RULE", "GROUP", "ADDRESS", "WEIGHT", "STATE", "HEALTH", "OPEN",
    ];
    assert_eq!(rows[0], header, "{text}");
    let row = rows.iter().find(|r| r[0] == rule && r[2] == address);
    let row = row.unwrap_or_else(|| panic!("no row for {address}:\n{text}"));
    row.iter().map(|c| c.to_string()).collect()
}

/// How many connections an echo origin has accepted so far.
fn accepts(origin: &Spawned) -> usize {
    let log = std::fs::read_to_string(&origin.log).unwrap_or_default();
    log.lines().filter(|l| l.contains("\"accept\"")).count()
}

fn only(answers: &[String], origin: &str) -> bool {
    !answers.is_empty() && answers.iter().all(|a| a == origin)
}

fn both(answers: &[String]) -> bool {
    ["A", "B"].iter().all(|o| answers.iter().any(|a| a == o))
}

#[test]
fn weight_0_takes_no_new_connections_and_a_group_all_at_0_refuses_with_its_reason() {
    if !require_privileges(
        "weight_0_takes_no_new_connections_and_a_group_all_at_0_refuses_with_its_reason",
    ) {
        return;
    }
    let lab = Lab::start("ostweight", 0, 1);
    let answers = lab.ask(12);
    assert!(only(&answers, "B"), "{answers:?}");
    // Drained, not forgotten: still listed, and still checked.
    let row = lab.row(A);
    assert_eq!(row, ["web", "pool", A, "0", "drain", "up", "0"], "{row:?}");
    let checked = accepts(&lab.origin_a);
    eventually(Duration::from_secs(10), "a health check of A", || {
        accepts(&lab.origin_a) > checked
    });

    // Every origin drained: clients are refused, and the log says why.
    std::fs::write(&lab.lab.config, config(0, 0)).unwrap();
    let out = lab.toa(&["reload"]);
    assert!(out.status.success(), "{out:?}");
    let answers = lab.ask(3);
    assert!(
        answers.iter().all(|a| a == "EMPTY" || a.starts_with("ERR")),
        "{answers:?}"
    );
    let refused = "toa_proxy_connections_rejected_total{rule=\"web\",reason=\"origins_drained\"}";
    assert_eq!(lab.lab.metric(refused), Some(3));
    let log = lab.lab.proxy_log();
    let line = log.lines().find(|l| l.contains("connection refused"));
    let line = line.unwrap_or_else(|| panic!("no refusal line:\n{log}"));
    assert!(
        line.contains("WARN")
            && line.contains("every origin is drained or in maintenance")
            && line.contains("reason=origins_drained"),
        "{line}"
    );
}

#[test]
fn drain_moves_new_connections_keeps_open_ones_and_outlives_a_reload() {
    if !require_privileges("drain_moves_new_connections_keeps_open_ones_and_outlives_a_reload") {
        return;
    }
    let mut lab = Lab::start("ostdrain", 1, 1);
    assert!(both(&lab.ask(8)), "round robin uses both origins");
    // A connection opened before the drain, to whichever origin it lands on.
    let go = lab.lab.topo.lab.dir().join("go");
    let (edge, port) = (addr::EDGE_CLIENT_SIDE_V4, PORT.to_string());
    let echo = lab.echo.clone();
    let client = lab.lab.topo.client.clone();
    let go_arg = go.to_str().unwrap();
    let args = ["python3", &echo, "converse", edge, &port, go_arg];
    let held = lab.lab.topo.lab.spawn(&client, None, &args).unwrap();
    let mut first = String::new();
    eventually(Duration::from_secs(10), "the first answer", || {
        first = std::fs::read_to_string(&held.log).unwrap_or_default();
        first.contains("before")
    });
    let (drained, other, drained_addr) = match first.contains("\"A before\"") {
        true => ("A", "B", A),
        false => ("B", "A", B),
    };

    let said = lab.set_state("pool", drained_addr, "drain");
    assert!(said.contains("drain (was ready)"), "{said}");
    assert!(only(&lab.ask(8), other));
    // The open connection is listed against the drained origin.
    eventually(Duration::from_secs(10), "the drained row", || {
        let row = lab.row(drained_addr);
        row[4] == "drain" && row[6] == "1"
    });

    // A reload (SIGHUP, same file) keeps the state.
    lab.lab.reload(&config(1, 1));
    eventually(Duration::from_secs(10), "the reload", || {
        lab.lab.metric("toa_proxy_reloads_total{result=\"ok\"}") == Some(1)
    });
    assert!(only(&lab.ask(8), other));
    assert_eq!(lab.row(drained_addr)[4], "drain");

    // The connection opened before the drain still works.
    std::fs::write(&go, "").unwrap();
    eventually(Duration::from_secs(10), "the second answer", || {
        let log = std::fs::read_to_string(&held.log).unwrap_or_default();
        log.contains(&format!("\"{drained} after\""))
    });

    let said = lab.set_state("pool", drained_addr, "ready");
    assert!(said.contains("ready (was drain)"), "{said}");
    assert!(both(&lab.ask(8)), "back in rotation");
}

#[test]
fn maint_stops_health_checks_until_ready_and_bad_commands_fail_in_one_line() {
    if !require_privileges(
        "maint_stops_health_checks_until_ready_and_bad_commands_fail_in_one_line",
    ) {
        return;
    }
    let lab = Lab::start("ostmaint", 1, 1);
    lab.set_state("web", A, "maint");
    // Once B has had several checks, A (one check may have been in flight) has had none.
    let (a, b) = (accepts(&lab.origin_a), accepts(&lab.origin_b));
    eventually(Duration::from_secs(20), "four checks of B", || {
        accepts(&lab.origin_b) >= b + 4
    });
    assert!(accepts(&lab.origin_a) <= a + 1, "A was checked in maint");
    assert!(only(&lab.ask(6), "B"));
    let row = lab.row(A);
    assert_eq!(row, ["web", "pool", A, "1", "maint", "unchecked", "0"]);

    lab.set_state("web", A, "ready");
    let a = accepts(&lab.origin_a);
    eventually(Duration::from_secs(10), "A checked again", || {
        accepts(&lab.origin_a) > a
    });
    assert_eq!(lab.row(A)[4..6], ["ready", "up"]);
    assert!(both(&lab.ask(8)));

    // Mistakes: one line naming what is wrong, exit 1, nothing changed.
    for (args, want) in [
        (
            ["nope", A, "drain"],
            "no online rule or origin group is named \"nope\"".to_string(),
        ),
        (
            ["web", "198.18.2.9", "drain"],
            format!("198.18.2.9 is not an origin of \"web\" (its origins: {A}, {B})"),
        ),
        (
            ["web", A, "paused"],
            "unknown state \"paused\"; use ready, drain or maint".to_string(),
        ),
    ] {
        let out = lab.toa(&[&["origin", "set-state"][..], &args[..]].concat());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert_eq!(stderr, format!("{want}\n"));
    }
    assert_eq!(lab.row(A)[4], "ready");
}

#[test]
fn a_drained_udp_origin_takes_no_new_flow_and_the_drop_is_counted_with_its_reason() {
    if !require_privileges(
        "a_drained_udp_origin_takes_no_new_flow_and_the_drop_is_counted_with_its_reason",
    ) {
        return;
    }
    let mut lab = ProxyLab::new("ostudp");
    let socket = lab.topo.lab.dir().join("run/admin.sock");
    lab.admin_socket = Some(socket.clone());
    let _echo = udp_support::spp_echo(&mut lab);
    let config = format!(
        "[[rule]]\ntag = \"dns\"\nprotocol = \"udp\"\nports = \"15410\"\norigin_group = \"udp-pool\"\n\
         origin_ports = \"{}\"\npass_client_ip = \"off\"\n\n[[origin_group]]\nname = \"udp-pool\"\n\
         origins = [{{ address = \"{A}\", weight = 1 }}]\n",
        udp_support::ECHO_PORT
    );
    lab.start_proxy(&config, udp_support::METRICS_PORT);
    let peer = lab.topo.lab.dir().join("udp_peer.py");
    std::fs::write(&peer, udp_support::UDP_PEER_PY).unwrap();
    let peer = peer.to_string_lossy().into_owned();
    // Each send is a new socket, so a new flow; "hi" comes back as its hex, 6869.
    let send = || {
        udp_support::send(
            &lab,
            &peer,
            addr::EDGE_CLIENT_SIDE_V4,
            "15410",
            "1",
            &["hi"],
        )
    };
    assert!(send().contains("reply 6869"), "{}", lab.proxy_log());

    set_state(&lab, &socket, ["udp-pool", A, "drain"]);
    assert!(!send().contains("reply"));
    let dropped = "toa_proxy_udp_drops_total{rule=\"dns\",reason=\"origins_drained\"}";
    assert_eq!(lab.metric(dropped), Some(1));
    assert!(
        lab.proxy_log()
            .contains("datagram refused: every origin is drained or in maintenance"),
        "{}",
        lab.proxy_log()
    );
    // UDP origins are not health-checked; the first flow is still open.
    let row = row(&socket, "dns", A);
    assert_eq!(row, ["dns", "udp-pool", A, "1", "drain", "unchecked", "1"]);

    set_state(&lab, &socket, ["udp-pool", A, "ready"]);
    assert!(send().contains("reply 6869"));
}
