//! What the TCP and UDP port-range tests share: the range and its rule, random ports of
//! it, the port lists the test peers take, `toa proxy` started without the capabilities
//! sk_lookup needs, reloads, and the refusals both protocols share.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{ProxyLab, eventually};
use toa_lab::{Spawned, addr};

/// The range, and where its first port goes on the origin: port N reaches N + SHIFT.
pub const FIRST: u16 = 1024;
pub const LAST: u16 = 65000;
pub const ORIGIN_FIRST: u16 = 1500;
pub const SHIFT: u16 = ORIGIN_FIRST - FIRST;

/// A `protocol` ("tcp" or "udp") rule on `listen` with the range `first-last`, each port
/// N going to N + SHIFT on the origin at `origin`.
pub fn range_rule(protocol: &str, listen: &str, first: u16, last: u16, origin: &str) -> String {
    format!(
        "[[rule]]\ntag = \"range\"\nprotocol = \"{protocol}\"\nlisten = [\"{listen}\"]\nports = \"{first}-{last}\"\norigins = [\"{origin}\"]\norigin_ports = \"{}-{}\"\npass_client_ip = \"off\"\n",
        first + SHIFT,
        last + SHIFT
    )
}

/// `toa proxy` started without the capabilities sk_lookup needs (CAP_BPF, CAP_NET_ADMIN,
/// and CAP_SYS_ADMIN, which covers both): a real capability drop, as in a container.
pub const WITHOUT_BPF: [&str; 4] = [
    "setpriv",
    "--bounding-set",
    "-bpf,-net_admin,-sys_admin",
    "--",
];

/// `ports` as the peers take them: "P1,P2,...".
pub fn joined(ports: &[u16]) -> String {
    ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// `count` distinct ports of `first..=last`, different on every run (the seed is printed).
pub fn random_ports(count: usize, first: u16, last: u16) -> Vec<u16> {
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    eprintln!("random ports seed {seed}");
    let mut state = seed | 1;
    let mut ports = Vec::with_capacity(count);
    while ports.len() < count {
        // xorshift64: enough spread for a port sample.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let port = first + (state % u64::from(last - first + 1)) as u16;
        if !ports.contains(&port) {
            ports.push(port);
        }
    }
    ports
}

/// `ports` shifted by `shift`, with `first` (where health checks and the like go) added,
/// sorted and without duplicates: the ports an origin listens on.
pub fn origin_ports(ports: &[u16], first: u16, shift: u16) -> Vec<u16> {
    let mut out: Vec<u16> = ports.iter().map(|p| p + shift).collect();
    out.push(first);
    out.sort_unstable();
    out.dedup();
    out
}

/// Reloads with `config` and waits until the proxy logged its `n`-th applied reload.
pub fn reload_and_wait(lab: &ProxyLab, config: &str, n: usize) {
    lab.reload(config);
    eventually(Duration::from_secs(20), "the reload applied", || {
        lab.proxy_log().matches("reloaded ").count() >= n
    });
    assert!(
        !lab.proxy_log().contains("reload rejected"),
        "{}",
        lab.proxy_log()
    );
}

/// `toa proxy` with a `protocol` rule over 1024-65000, without CAP_BPF and with 20,000
/// descriptors, refuses to start in one line naming the limit, before binding anything.
pub fn refused_beyond_the_descriptor_limit(tag: &str, protocol: &str) {
    let lab = ProxyLab::new(tag);
    let config = lab.topo.lab.dir().join("wide.toml");
    let rule = range_rule(
        protocol,
        addr::EDGE_CLIENT_SIDE_V4,
        FIRST,
        LAST,
        addr::ORIGIN_V4,
    );
    std::fs::write(&config, rule).unwrap();
    let mut cmd = WITHOUT_BPF.to_vec();
    let config = config.to_str().unwrap();
    cmd.extend(["prlimit", "--nofile=20000:20000", "--"]);
    cmd.extend([env!("CARGO_BIN_EXE_toa"), "proxy", "--config", config]);
    let out = lab.topo.edge.output(&cmd).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    let refusals: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("descriptors for its listening sockets"))
        .collect();
    assert_eq!(refusals.len(), 1, "{stderr}");
    assert!(
        refusals[0].contains("open-file limit of 20000") && refusals[0].contains("sk_lookup"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("cannot listen"),
        "refused before binding anything: {stderr}"
    );
}

/// `toa proxy` with a `protocol` rule over 1024-65000 on the edge's client-side address,
/// where another socket holds `held`, refuses to start as binding that port would.
pub fn refused_over_a_held_port(lab: &ProxyLab, protocol: &str, held: u16) {
    let edge = addr::EDGE_CLIENT_SIDE_V4;
    let config = lab.topo.lab.dir().join("held.toml");
    std::fs::write(
        &config,
        range_rule(protocol, edge, FIRST, LAST, addr::ORIGIN_V4),
    )
    .unwrap();
    // A proxy that starts (the port taken from its socket) is ended, and fails the test.
    let bound = toa_lab::scaled(Duration::from_secs(10))
        .as_secs()
        .to_string();
    let toa = env!("CARGO_BIN_EXE_toa");
    let config = config.to_str().unwrap();
    let cmd = ["timeout", &bound, toa, "proxy", "--config", config];
    let out = lab.topo.edge.output(&cmd).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {protocol}/{edge}:{held}")),
        "{stderr}"
    );
}

/// Creates `stop`, which ends `peer` (`connect-until`, `exchange-until`), and asserts that
/// its report ("ok N failed M ...") counts no failure.
pub fn assert_none_failed(lab: &ProxyLab, stop: &std::path::Path, peer: &Spawned) {
    std::fs::write(stop, "").unwrap();
    let mut report = String::new();
    eventually(Duration::from_secs(30), "the peer's report", || {
        report = std::fs::read_to_string(&peer.log).unwrap_or_default();
        report.contains("ok ")
    });
    eprintln!("peer: {report}");
    let failed = report
        .split_whitespace()
        .skip_while(|w| *w != "failed")
        .nth(1);
    assert_eq!(
        failed,
        Some("0"),
        "exchanges with a port that stayed failed: {report}\n{}",
        lab.proxy_log()
    );
}

/// The proxy, started without CAP_BPF on a 100-port range, said why it binds every port
/// and did: more than 100 descriptors.
pub fn assert_fell_back(lab: &ProxyLab) {
    let log = lab.proxy_log();
    assert!(
        log.contains("port ranges get a socket per port") && log.contains("sk_lookup unavailable"),
        "{log}"
    );
    let fds = lab.proxy_fds();
    assert!(
        fds > 100,
        "a socket per port: {fds} descriptors for 100 ports"
    );
}

/// Every probed port got the answer `expected` names for it.
pub fn assert_answers(lab: &ProxyLab, answers: &[(u16, String)], expected: impl Fn(u16) -> String) {
    let wrong: Vec<_> = answers
        .iter()
        .filter(|(port, answer)| *answer != expected(*port))
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {} ports not answered as expected (e.g. {:?}): {wrong:?}\n{}",
        wrong.len(),
        answers.len(),
        answers.first().map(|(port, _)| expected(*port)),
        lab.proxy_log()
    );
}

/// The proxy said it steers its ranges and holds fewer than 100 descriptors for
/// `FIRST..=LAST`.
pub fn assert_steered_on_few_descriptors(lab: &ProxyLab) {
    let log = lab.proxy_log();
    assert!(
        log.contains("port ranges steered through sk_lookup"),
        "{log}"
    );
    let fds = lab.proxy_fds();
    assert!(
        fds < 100,
        "the proxy holds {fds} descriptors for a {}-port range",
        LAST - FIRST + 1
    );
}
