//! Helpers of the origin tests: the `toa` binary, a loaded receiver that
//! unloads on drop, the relay, servers and probes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};
use toa_lab::{Netns, Spawned, Topology};
use toa_loader::{Origin, OriginCounters};

pub const TOA: &str = env!("CARGO_BIN_EXE_toa");
pub const WAIT: Duration = Duration::from_secs(10);

/// Echo-style probe server (see the script's header).
pub const PROBE_SERVER: &str = include_str!("probe_server.py");
/// Probe client: `HOST PORT [ROUNDS PAUSE]`; prints one reply line per round.
pub const PROBE_CLIENT: &str = include_str!("probe_client.py");

/// Runs the `toa` binary on the host (plain one-line errors, no backtraces).
pub fn toa(args: &[&str]) -> Output {
    std::process::Command::new(TOA)
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .env("RUST_LIB_BACKTRACE", "0")
        .output()
        .expect("running toa")
}

pub fn toa_ok(args: &[&str]) -> String {
    let out = toa(args);
    assert!(
        out.status.success(),
        "toa {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `toa origin load` on a test cgroup; unloads again on drop (declare it after
/// the topology, so it drops first, before the lab removes the cgroup).
pub struct LoadedOrigin {
    cgroup: PathBuf,
}

impl LoadedOrigin {
    pub fn load(cgroup: &Path, extra: &[&str]) -> LoadedOrigin {
        let mut args = vec!["origin", "load", "--cgroup", cgroup.to_str().unwrap()];
        args.extend_from_slice(extra);
        toa_ok(&args);
        LoadedOrigin {
            cgroup: cgroup.to_path_buf(),
        }
    }

    pub fn arg(&self) -> &str {
        self.cgroup.to_str().unwrap()
    }

    pub fn counters(&self) -> OriginCounters {
        Origin::open(&self.cgroup).unwrap().counters().unwrap()
    }

    /// Waits until every stored address was released (alloc == free).
    pub fn wait_all_released(&self) -> OriginCounters {
        let deadline = Instant::now() + WAIT;
        loop {
            let c = self.counters();
            if c.ip6_address_alloc() == c.ip6_address_free() || Instant::now() > deadline {
                return c;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for LoadedOrigin {
    fn drop(&mut self) {
        let _ = toa(&["origin", "unload", "--cgroup", self.arg()]);
    }
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

/// Polls a spawned process's log until it contains `needle`.
pub fn wait_log(log: &Path, needle: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in {}:\n{text}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(25));
    }
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

/// Starts a server on the origin inside `cgroup` and waits for its port.
pub fn origin_server(topo: &mut Topology, cgroup: &Path, cmd: &[&str], port: u16) -> Spawned {
    let server = topo.lab.spawn(&topo.origin, Some(cgroup), cmd).unwrap();
    topo.origin.wait_listening(port, false, WAIT).unwrap();
    server
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
