//! `toa proxy` started as root keeps only what its reloads need: CAP_NET_BIND_SERVICE
//! (a reload may bind a new port below 1024), CAP_SYS_RESOURCE (splice pipes beyond
//! the per-user pipe quota) and, with the TOA edge writer attached, CAP_BPF (reading
//! the writer's counters). Every thread holds the reduced sets, the
//! bounding set included, and a SIGHUP reload that adds a low-port rule still works.

mod proxy_support;

use std::time::Duration;

use proxy_support::{ProxyLab, eventually};
use toa_lab::{addr, require_privileges};

const CAP_NET_BIND_SERVICE: u64 = 1 << 10;
const CAP_SYS_RESOURCE: u64 = 1 << 24;
const CAP_BPF: u64 = 1 << 39;

/// `CapInh`, `CapPrm`, `CapEff`, `CapBnd` and `CapAmb` of every thread of `pid`.
fn capability_sets(pid: u32) -> Vec<(String, [u64; 5])> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("the proxy runs");
    tasks
        .flatten()
        .map(|task| {
            let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
            let set = |name: &str| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
                    .unwrap_or_else(|| panic!("no {name} in {status}"))
            };
            let sets = ["CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"].map(set);
            (task.file_name().to_string_lossy().into_owned(), sets)
        })
        .collect()
}

/// Every thread: nothing inheritable or ambient; `kept` permitted, effective and bounding,
/// less what the test itself was started without (a container's bounding set may lack
/// CAP_SYS_RESOURCE: the proxy keeps only what it holds).
fn assert_only(pid: u32, kept: u64) {
    let (_, [_, own_permitted, ..]) = capability_sets(std::process::id())[0].clone();
    let kept = kept & own_permitted;
    let threads = capability_sets(pid);
    assert!(threads.len() > 1, "the runtime's threads run: {threads:?}");
    for (tid, [inh, prm, eff, bnd, amb]) in threads {
        assert_eq!(
            [inh, prm, eff, bnd, amb],
            [0, kept, kept, kept, 0],
            "thread {tid}: CapInh {inh:016x} CapPrm {prm:016x} CapEff {eff:016x} CapBnd {bnd:016x} CapAmb {amb:016x}, want {kept:016x}"
        );
    }
}

fn rule(tag: &str, port: u16, mode: &str) -> String {
    format!(
        "\n[[rule]]\ntag = \"{tag}\"\nports = \"{port}\"\norigins = [\"{}\"]\norigin_ports = \"8000\"\npass_client_ip = \"{mode}\"\n",
        addr::ORIGIN_V4
    )
}

/// Adds `rule` to the running config with SIGHUP and waits until its port answers.
fn reload_adding(lab: &ProxyLab, rule: &str, port: u16) {
    let config = std::fs::read_to_string(&lab.config).unwrap() + rule;
    lab.reload(&config);
    eventually(Duration::from_secs(10), "the reload's new rule", || {
        lab.who(addr::EDGE_CLIENT_SIDE_V4, port).as_deref() == Ok("A")
    });
}

#[test]
fn toa_proxy_keeps_only_bind_and_bpf_and_reloads_a_low_port_rule() {
    if !require_privileges("toa_proxy_keeps_only_bind_and_bpf_and_reloads_a_low_port_rule") {
        return;
    }
    let mut lab = ProxyLab::new("privtoa");
    lab.serve_http(addr::ORIGIN_V4, 8000, "A");
    lab.start_proxy(&rule("web", 16100, "toa"), 16100);
    assert_eq!(
        lab.who(addr::EDGE_CLIENT_SIDE_V4, 16100).as_deref(),
        Ok("A")
    );
    assert_only(
        lab.proxy().pid,
        CAP_NET_BIND_SERVICE | CAP_SYS_RESOURCE | CAP_BPF,
    );
    // The writer's counters are still read (CAP_BPF), and count the connection.
    assert!(
        lab.metric("toa_proxy_toa_options_written_total")
            .is_some_and(|n| n > 0),
        "{}",
        lab.metrics()
    );
    // A TOA rule on a port below 1024 (CAP_NET_BIND_SERVICE), with the writer of start.
    reload_adding(&lab, &rule("low", 81, "toa"), 81);
    assert_only(
        lab.proxy().pid,
        CAP_NET_BIND_SERVICE | CAP_SYS_RESOURCE | CAP_BPF,
    );
}

#[test]
fn off_mode_proxy_keeps_only_bind_and_reloads_a_low_port_rule() {
    if !require_privileges("off_mode_proxy_keeps_only_bind_and_reloads_a_low_port_rule") {
        return;
    }
    let mut lab = ProxyLab::new("privpp");
    lab.serve_http(addr::ORIGIN_V4, 8000, "A");
    lab.start_proxy(&rule("web", 16110, "off"), 16110);
    assert_eq!(
        lab.who(addr::EDGE_CLIENT_SIDE_V4, 16110).as_deref(),
        Ok("A")
    );
    assert_only(lab.proxy().pid, CAP_NET_BIND_SERVICE | CAP_SYS_RESOURCE);
    reload_adding(&lab, &rule("low", 82, "off"), 82);
    // A first TOA rule would need the capabilities that are gone: the reload is refused
    // with a line that says to restart, and the running config keeps serving.
    let config = std::fs::read_to_string(&lab.config).unwrap() + &rule("toa", 16111, "toa");
    lab.reload(&config);
    eventually(Duration::from_secs(10), "the TOA reload refused", || {
        lab.proxy_log().contains(
            "reload rejected, old config still running: proxy: rule \"toa\": cannot load the TOA edge writer: the edge writer (kind 254) attaches only at start",
        )
    });
    assert_eq!(lab.who(addr::EDGE_CLIENT_SIDE_V4, 82).as_deref(), Ok("A"));
    assert_only(lab.proxy().pid, CAP_NET_BIND_SERVICE | CAP_SYS_RESOURCE);
}
