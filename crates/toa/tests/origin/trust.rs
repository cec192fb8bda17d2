//! Who the receiver trusts: receivers on nested cgroups (the one nearest the
//! socket decides, never the union of their lists), trust-list changes that
//! apply whole or not at all, and no load without a trust decision.

use crate::lab::*;
use crate::receiver::{toa, toa_ok};
use std::collections::HashMap;
use toa_lab::{Topology, addr};
use toa_loader::Origin;

/// What a server on `port` (a dual-stack listener) sees of a client that
/// came through the relay over IPv4 and over IPv6: (peer, lookup) each.
fn through_relay(topo: &Topology, port: u16) -> [(String, String); 2] {
    [addr::EDGE_CLIENT_SIDE_V4, addr::EDGE_CLIENT_SIDE_V6].map(|edge| {
        let reply: HashMap<String, String> = probe(&topo.client, edge, port);
        (reply["peer"].clone(), reply["lookup"].clone())
    })
}

fn v4_mapped(ip: &str) -> String {
    format!("::ffff:{ip}")
}

/// The v4 and v6 relay connections as seen when the client's TOA is used.
fn applied() -> [(String, String); 2] {
    [
        (v4_mapped(addr::CLIENT_V4), v4_mapped(addr::CLIENT_V4)),
        (addr::CLIENT_V6.into(), addr::CLIENT_V6.into()),
    ]
}

/// ... and when it is ignored: the edge's address, no lookup answer.
fn ignored() -> [(String, String); 2] {
    [
        (v4_mapped(addr::EDGE_ORIGIN_SIDE_V4), "ENOENT".into()),
        (addr::EDGE_ORIGIN_SIDE_V6.into(), "ENOENT".into()),
    ]
}

/// Issue 26, finding 1: a node-wide receiver trusting any source made a
/// pod-scoped `--trust` void, and a node-wide narrow list erased a pod's
/// lookup answers. The receiver nearest the socket decides, either way.
#[test]
fn nested_receivers_the_one_nearest_the_socket_decides() {
    let mut lab = origin_lab_or_skip!(
        "nested_receivers_the_one_nearest_the_socket_decides",
        "nest",
        &["--trust-any"]
    );
    let OriginLab {
        origin: node,
        cg,
        topo,
    } = &mut lab;
    let pod = topo.lab.cgroup("origin/pod").unwrap();
    // Declared after the lab: unloaded before the lab removes the cgroup.
    let pod_rx = LoadedOrigin::load(&pod, &["--trust", "198.18.99.1"]);
    probe_server(topo, &pod, "::", 9000);
    probe_server(topo, cg, "::", 9001);
    for port in ["9000", "9001"] {
        relay(
            topo,
            &format!("198.18.1.1:{port}"),
            &format!("198.18.2.2:{port}"),
        );
        relay(
            topo,
            &format!("[fd00:1::1]:{port}"),
            &format!("[fd00:2::2]:{port}"),
        );
    }

    // The pod trusts only 198.18.99.1: the edge's TOA is ignored there,
    // whatever the node-wide receiver trusts; the rest of the node trusts any.
    assert_eq!(through_relay(topo, 9000), ignored(), "pod, narrow");
    assert_eq!(through_relay(topo, 9001), applied(), "node, any");
    let pod_counts = pod_rx.wait_all_released();
    assert_eq!(pod_counts.total(Counter::SynRecvSockUntrusted), 2);
    assert_eq!(pod_counts.total(Counter::SynRecvSockToa), 0);
    let node_counts = node.wait_all_released();
    assert_eq!(node_counts.total(Counter::SynRecvSockNested), 2);
    assert_eq!(node_counts.total(Counter::SynRecvSockToa), 2);
    assert_eq!(node_counts.total(Counter::SynRecvSockUntrusted), 0);

    // Reversed: the pod trusts the edge, the node only 198.18.99.1. The
    // pod's answers, the lookup's included, stand.
    toa_ok(&[
        "origin",
        "load",
        "--cgroup",
        pod_rx.arg(),
        "--trust",
        "198.18.2.0/24,fd00:2::/64",
    ]);
    toa_ok(&[
        "origin",
        "load",
        "--cgroup",
        node.arg(),
        "--trust",
        "198.18.99.1",
    ]);
    assert_eq!(through_relay(topo, 9000), applied(), "pod, wide");
    assert_eq!(through_relay(topo, 9001), ignored(), "node, narrow");
    assert_eq!(
        node.wait_all_released().total(Counter::SynRecvSockNested),
        4
    );

    // A pod without a receiver of its own has the node's.
    drop(pod_rx);
    assert_eq!(through_relay(topo, 9000), ignored(), "pod, unloaded");
}

/// `count` distinct /32 networks in 198.19.`first`.0/24 onwards.
fn fillers(first: u32, count: u32) -> Vec<String> {
    (0..count)
        .map(|i| format!("198.19.{}.{}/32", first + i / 250, i % 250 + 1))
        .collect()
}

fn load_trust(cgroup: &str, trust: &[String]) -> std::process::Output {
    let list = trust.join(",");
    toa(&["origin", "load", "--cgroup", cgroup, "--trust", &list])
}

/// Issue 26, finding 8: a trust-list change was written into the trie in
/// force, new entries first; when the trie filled midway the change failed
/// but the kernel kept the old list plus part of the new one.
#[test]
fn trust_list_changes_apply_whole_or_not_at_all() {
    let mut lab = origin_lab_or_skip!(
        "trust_list_changes_apply_whole_or_not_at_all",
        "trust-swap",
        &["--trust", "fd00:2::/64"]
    );
    let OriginLab { origin, cg, topo } = &mut lab;
    // The edge's IPv6 side and 1,000 others: the IPv4 relay is untrusted.
    let mut old = vec!["fd00:2::/64".to_string()];
    old.extend(fillers(0, 1000));
    let out = load_trust(origin.arg(), &old);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    probe_server(topo, cg, "::", 9000);
    relay(topo, "198.18.1.1:9000", "198.18.2.2:9000");
    relay(topo, "[fd00:1::1]:9000", "[fd00:2::2]:9000");
    let [v4_applied, v6_applied] = applied();
    let [v4_ignored, v6_ignored] = ignored();
    assert_eq!(
        through_relay(topo, 9000),
        [v4_ignored.clone(), v6_applied.clone()]
    );

    // Swapped for the edge's IPv4 side and 100 others: the old and new
    // lists together exceed one trie's 1,024 entries.
    let mut new = vec!["198.18.2.0/24".to_string()];
    new.extend(fillers(100, 100));
    let out = load_trust(origin.arg(), &new);
    let seen = through_relay(topo, 9000);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        assert_eq!(
            seen,
            [v4_ignored.clone(), v6_applied.clone()],
            "a failed change must leave exactly the old list: {stderr}"
        );
    }
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        seen,
        [v4_applied.clone(), v6_ignored.clone()],
        "the new list"
    );
    let status = toa_ok(&["origin", "status", "--cgroup", origin.arg()]);
    assert!(
        status.contains("trust 198.18.2.0/24, 198.19.100.1/32,") && !status.contains("fd00:2::"),
        "{status}"
    );

    // A change that cannot fit is refused with one line, and the kernel
    // keeps exactly the list in force.
    let mut too_many = vec!["fd00:2::/64".to_string()];
    too_many.extend(fillers(0, 1024));
    let out = load_trust(origin.arg(), &too_many);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("too many trust entries (1025)"), "{stderr}");
    assert_eq!(through_relay(topo, 9000), [v4_applied, v6_ignored]);
}

/// Issue 26, finding 9: a bare `toa origin load` trusted every source, with
/// only a warning.
#[test]
fn load_without_a_trust_decision_is_refused_naming_both_flags() {
    if !toa_lab::require_privileges("load_without_a_trust_decision_is_refused_naming_both_flags") {
        return;
    }
    let mut lab = toa_lab::Lab::new("trust-bare").unwrap();
    let cg = lab.cgroup("origin").unwrap();
    let out = toa(&["origin", "load", "--cgroup", cg.to_str().unwrap()]);
    let attached = Origin::open(&cg).is_ok();
    if attached {
        toa_ok(&["origin", "unload", "--cgroup", cg.to_str().unwrap()]);
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a bare load succeeded: {stderr}");
    assert!(!attached, "a refused load attached");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("--trust <CIDR>") && stderr.contains("--trust-any"),
        "{stderr}"
    );
}
