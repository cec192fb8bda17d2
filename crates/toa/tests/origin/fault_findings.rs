//! Fault suite, origin side (issue 10): one test per finding, each written
//! against the code that had the fault. They drive the `toa` binary and real
//! packets only, so they say what a user or an attacker would see.

use crate::crafter::{Crafter, SPOOFED_SOURCE};
use crate::lab::*;
use crate::receiver::{toa, toa_ok};
use std::net::IpAddr;
use toa_lab::addr;

/// One counter's total from `toa origin stats --json`, by its row name.
pub fn stat(cgroup: &str, name: &str) -> u64 {
    let json = toa_ok(&["origin", "stats", "--cgroup", cgroup, "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    v["counters"][name]["total"]
        .as_u64()
        .unwrap_or_else(|| panic!("no counter {name} in {json}"))
}

pub(crate) fn assert_one_line_failure(out: &std::process::Output, message: &str, what: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{what} succeeded");
    assert_eq!(stderr.trim().lines().count(), 1, "{what}: {stderr}");
    assert!(stderr.contains(message), "{what}: {stderr}");
}

/// Finding 6: a bare `load` on a receiver with a trust list switched it to
/// "trust any source" with only a warning.
#[test]
fn fault_reload_never_widens_trust_to_any_source_silently() {
    let lab = origin_lab_or_skip!(
        "fault_reload_never_widens_trust_to_any_source_silently",
        "fo-trust",
        &["--trust", "198.18.9.0/24"]
    );
    let cg = lab.origin.arg();
    let out = toa(&["origin", "load", "--cgroup", cg]);
    assert_one_line_failure(&out, "--trust-any", "a bare reload of a trust list");
    let status = toa_ok(&["origin", "status", "--cgroup", cg]);
    assert!(status.contains("trust 198.18.9.0/24\n"), "{status}");

    // Every update says what it changed.
    let out = toa_ok(&["origin", "load", "--cgroup", cg, "--trust", "198.18.2.0/24"]);
    assert!(
        out.contains("changed: trust 198.18.9.0/24 → 198.18.2.0/24"),
        "{out}"
    );
    let out = toa_ok(&["origin", "load", "--cgroup", cg, "--trust", "198.18.2.0/24"]);
    assert!(out.contains("changed: nothing"), "{out}");

    // Asked for explicitly, it is allowed (and said).
    let out = toa_ok(&["origin", "load", "--cgroup", cg, "--trust-any"]);
    assert!(
        out.contains("changed: trust 198.18.2.0/24 → any source"),
        "{out}"
    );
    let status = toa_ok(&["origin", "status", "--cgroup", cg]);
    assert!(status.contains("trust any source"), "{status}");
}

/// Finding 7: `toa origin load --kind 2` (MSS) was accepted; the proxy refused
/// only 0-5 and 8; the edge writer only 0 and 1.
#[test]
fn fault_every_entry_point_refuses_a_kind_linux_uses() {
    let lab = origin_lab_or_skip!(
        "fault_every_entry_point_refuses_a_kind_linux_uses",
        "fo-kind",
        &["--trust-any"]
    );
    let cg = lab.origin.arg().to_string();
    for (kind, name) in [
        (2, "Maximum Segment Size"),
        (19, "TCP MD5 Signature"),
        (30, "Multipath TCP"),
        (34, "TCP Fast Open"),
    ] {
        let out = toa(&[
            "origin",
            "load",
            "--cgroup",
            &cg,
            "--kind",
            &kind.to_string(),
        ]);
        assert_one_line_failure(
            &out,
            &format!("bad option kind {kind}: kind {kind} is {name}"),
            &format!("toa origin load --kind {kind}"),
        );
    }
    let status = toa_ok(&["origin", "status", "--cgroup", &cg]);
    assert!(status.contains("kinds 254;"), "{status}");

    let config = lab.topo.lab.dir().join("proxy.toml");
    for kind in [2, 19] {
        std::fs::write(
            &config,
            format!(
                "[toa]\nkind = {kind}\n\n[[rule]]\ntag = \"web\"\nports = \"80\"\norigins = [\"198.18.2.2\"]\n"
            ),
        )
        .unwrap();
        let out = toa(&["proxy", "check", "--config", config.to_str().unwrap()]);
        assert_one_line_failure(
            &out,
            &format!("{}:2: [toa]: kind: kind {kind} is ", config.display()),
            &format!("toa proxy check with kind {kind}"),
        );
    }

    // The edge writer itself (here behind the test relay).
    let relay = toa_lab::artifact("examples/toa-test-relay");
    let out = lab
        .topo
        .edge
        .output(&[
            "env",
            "RUST_BACKTRACE=0",
            "RUST_LIB_BACKTRACE=0",
            "timeout",
            "10",
            relay.to_str().unwrap(),
            "198.18.1.1:9000",
            "198.18.2.2:9000",
            "2",
        ])
        .unwrap();
    assert_one_line_failure(
        &out,
        "bad option kind 2: kind 2 is Maximum Segment Size",
        "the edge writer with kind 2",
    );
}

/// Finding 10: outcomes that were not counted (or counted as something
/// else) have rows of their own in `toa origin stats`.
#[test]
fn fault_stats_have_a_row_for_every_outcome() {
    let lab = origin_lab_or_skip!(
        "fault_stats_have_a_row_for_every_outcome",
        "fo-rows",
        &["--trust-any"]
    );
    let table = toa_ok(&["origin", "stats", "--cgroup", lab.origin.arg()]);
    let names: Vec<&str> = table
        .lines()
        .skip(1)
        .map(|l| l.split(':').next().unwrap().trim())
        .collect();
    for name in [
        "listen_save_syn_failed",
        "syn_recv_sock_no_sk",
        "syn_recv_sock_cb_failed",
        "syn_recv_sock_invalid",
        "getname_toa_invalid",
        "syn_recv_sock_nested",
    ] {
        assert!(names.contains(&name), "no row {name}:\n{table}");
        assert_eq!(stat(lab.origin.arg(), name), 0, "{name}");
    }
}

/// Finding 11: a trusted TOA was applied whatever address it carried.
#[test]
fn fault_implausible_client_address_is_not_applied_and_counted() {
    let mut lab = origin_lab_or_skip!(
        "fault_implausible_client_address_is_not_applied_and_counted",
        "fo-plaus",
        &["--trust-any"]
    );
    let OriginLab { origin, cg, topo } = &mut lab;
    probe_server(topo, cg, addr::ORIGIN_V4, 9000);
    probe_server(topo, cg, "::", 9001);
    let crafter = Crafter::new(topo);
    let v4 = |ip: [u8; 4], port: u16| {
        let mut o = vec![254, 8];
        o.extend_from_slice(&port.to_be_bytes());
        o.extend_from_slice(&ip);
        o
    };
    let v6 = |ip: &str| {
        let mut o = vec![254, 20, 0x1f, 0x90];
        o.extend_from_slice(&ip.parse::<std::net::Ipv6Addr>().unwrap().octets());
        o
    };
    let implausible = [
        (9000, v4([0, 0, 0, 0], 8080)),
        (9000, v4([255, 255, 255, 255], 8080)),
        (9000, v4([224, 0, 0, 1], 8080)),
        (9000, v4([127, 0, 0, 1], 8080)),
        (9000, v4([198, 18, 1, 2], 0)),
        (9001, v6("::")),
        (9001, v6("::1")),
        (9001, v6("ff02::1")),
        (9001, v6("::ffff:127.0.0.1")),
    ];
    let mut cases: Vec<_> = implausible
        .iter()
        .enumerate()
        .map(|(i, (port, o))| (*port, 42000 + i as u16, o.clone()))
        .collect();
    cases.push((9000, 42100, v4([198, 18, 1, 2], 8080)));
    let replies = crafter.run(topo, &cases);
    for ((port, sport, options), reply) in cases.iter().zip(&replies) {
        let peer: IpAddr = reply["peer"]
            .parse()
            .unwrap_or_else(|_| panic!("{reply:?}"));
        let peer = peer.to_canonical().to_string();
        if *sport == 42100 {
            assert_eq!(peer, addr::CLIENT_V4, "plausible control: {reply:?}");
            continue;
        }
        assert_eq!(peer, SPOOFED_SOURCE, "{port} {options:02x?}: {reply:?}");
        assert_eq!(
            reply["peer_port"],
            sport.to_string(),
            "{options:02x?}: {reply:?}"
        );
        assert_eq!(reply["lookup"], "ENOENT", "{options:02x?}: {reply:?}");
    }
    let n = implausible.len() as u64;
    assert_eq!(stat(origin.arg(), "syn_recv_sock_invalid"), n);
    assert_eq!(
        stat(origin.arg(), "getname_toa_invalid"),
        2 * n,
        "accept + getpeername"
    );
    assert_eq!(stat(origin.arg(), "syn_recv_sock_toa"), 1);
}
