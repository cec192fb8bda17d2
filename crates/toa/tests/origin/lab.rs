//! Helpers of the origin tests: the `toa` binary, a loaded receiver that
//! unloads on drop, the relay, servers and probes.

pub use crate::logs::{WAIT, wait_log};
pub use crate::receiver::LoadedOrigin;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use toa_lab::{Netns, Spawned, Topology};
pub use toa_loader::Counter;
use toa_loader::{Origin, OriginCounters};

/// Echo-style probe server (see the script's header).
pub const PROBE_SERVER: &str = include_str!("probe_server.py");
/// Probe client: `HOST PORT [ROUNDS PAUSE]`; prints one reply line per round.
pub const PROBE_CLIENT: &str = include_str!("probe_client.py");

/// Counters of the receiver (the struct itself is shared: `support/receiver.rs`).
impl LoadedOrigin {
    pub fn counters(&self) -> OriginCounters {
        Origin::open(Path::new(self.arg()))
            .unwrap()
            .counters()
            .unwrap()
    }

    /// Waits until every stored address was released (alloc == free).
    pub fn wait_all_released(&self) -> OriginCounters {
        let deadline = Instant::now() + toa_lab::scaled(WAIT);
        loop {
            let c = self.counters();
            if c.total(Counter::Ip6AddressAlloc) == c.total(Counter::Ip6AddressFree)
                || Instant::now() > deadline
            {
                return c;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Checks every counter of [`Counter::ALL`]: those in `expected` at their
/// value, every other one at zero, so an outcome counted where it should not
/// be (or a new counter) shows up here.
pub fn assert_counters(c: &OriginCounters, expected: &[(Counter, u64)]) {
    let want: Vec<(&str, u64)> = Counter::ALL
        .iter()
        .map(|&counter| {
            let value = expected
                .iter()
                .find(|(e, _)| *e == counter)
                .map_or(0, |e| e.1);
            (counter.name(), value)
        })
        .collect();
    let got: Vec<(&str, u64)> = c.totals().map(|(counter, v)| (counter.name(), v)).collect();
    assert_eq!(got, want);
}

/// A fresh topology with the receiver loaded on a new origin cgroup. Fields
/// drop in order: the receiver is unloaded before the lab removes the cgroup.
pub struct OriginLab {
    pub origin: LoadedOrigin,
    pub cg: PathBuf,
    pub topo: Topology,
}

/// The lab for one test, or None (test skipped) without privileges.
pub fn origin_lab(test: &str, tag: &str, load_args: &[&str]) -> Option<OriginLab> {
    if !toa_lab::require_privileges(test) {
        return None;
    }
    let mut topo = Topology::new(tag).unwrap();
    let cg = topo.lab.cgroup("origin").unwrap();
    let origin = LoadedOrigin::load(&cg, load_args);
    Some(OriginLab { origin, cg, topo })
}

/// The test's [`OriginLab`] from [`origin_lab`], or returns from the test
/// (skipped without privileges).
macro_rules! origin_lab_or_skip {
    ($test:expr, $tag:expr, $load_args:expr) => {
        match $crate::lab::origin_lab($test, $tag, $load_args) {
            Some(lab) => lab,
            None => return,
        }
    };
}

/// Starts the TOA-writing relay on the edge: `listen` → `upstream`.
pub fn relay(topo: &mut Topology, listen: &str, upstream: &str) -> Spawned {
    let exe = toa_lab::artifact("examples/toa-test-relay");
    let exe = exe.to_str().unwrap();
    let relay = topo
        .lab
        .spawn(&topo.edge, None, &[exe, listen, upstream])
        .unwrap();
    wait_log(&relay.log, "ready");
    relay
}

/// Starts a server on the origin inside `cgroup` and waits for its port: at once a
/// failure if the server exits, else as long as it lives, up to a bound that only
/// catches a hang (a python3 start in a TCG guest on a loaded host took over 40 s).
pub fn origin_server(topo: &mut Topology, cgroup: &Path, cmd: &[&str], port: u16) -> Spawned {
    let server = topo.lab.spawn(&topo.origin, Some(cgroup), cmd).unwrap();
    let deadline = Instant::now() + toa_lab::scaled(SERVER_START_HANG);
    while topo
        .origin
        .wait_listening(port, false, Duration::from_secs(1))
        .is_err()
    {
        assert!(
            alive(server.pid),
            "{} exited before listening on {port}:\n{}",
            cmd.join(" "),
            std::fs::read_to_string(&server.log).unwrap_or_default()
        );
        assert!(
            Instant::now() < deadline,
            "{} alive but not listening on {port} after {:?}",
            cmd.join(" "),
            toa_lab::scaled(SERVER_START_HANG)
        );
    }
    server
}

/// How long a live server may take to listen before it counts as hung.
const SERVER_START_HANG: Duration = Duration::from_secs(120);

/// Whether `pid` runs (a zombie, exited but not reaped, does not).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z'))
    })
}

pub fn probe_server(topo: &mut Topology, cgroup: &Path, host: &str, port: u16) -> Spawned {
    let port_arg = port.to_string();
    origin_server(
        topo,
        cgroup,
        &["python3", "-c", PROBE_SERVER, host, &port_arg],
        port,
    )
}

/// One probe connection from `ns`: the reply fields, plus `local_port`.
pub fn probe(ns: &Netns, host: &str, port: u16) -> HashMap<String, String> {
    let out = ns
        .run(&["python3", "-c", PROBE_CLIENT, host, &port.to_string()])
        .unwrap();
    fields(out.lines().next().expect("a probe reply"))
}

pub fn fields(line: &str) -> HashMap<String, String> {
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn curl(ns: &Netns, url: &str) {
    ns.run(&["curl", "-sS", "--max-time", "10", "-o", "/dev/null", url])
        .unwrap();
}

/// The interface of `ns` holding `ip`, and its MAC address.
pub fn interface(ns: &Netns, ip: &str) -> (String, String) {
    let line = ns
        .run(&["ip", "-o", "-4", "addr", "show", "to", ip])
        .unwrap();
    let name = line
        .split_whitespace()
        .nth(1)
        .expect("interface")
        .to_string();
    let link = ns.run(&["ip", "-o", "link", "show", "dev", &name]).unwrap();
    let mac = link
        .split("link/ether ")
        .nth(1)
        .expect("mac")
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    (name, mac)
}
