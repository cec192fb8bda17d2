//! End-to-end tests of `toa origin`: real kernel, real namespaces, real
//! servers. The topology is client ⇄ edge ⇄ origin (toa-lab); the edge runs
//! the `toa-test-relay` example, which writes TOA through `EdgeWriter`, and
//! the origin runs python servers inside a cgroup the receiver is loaded on.
//! `crafted` sends hand-made option bytes with raw sockets.

// First: the modules below use its `origin_lab_or_skip!`.
#[macro_use]
mod lab;

mod crafted;
mod crafter;
mod edge;
mod fault_cycles;
mod fault_findings;
mod fault_parser;
#[path = "../support/http.rs"]
mod http;
mod lifecycle;
#[path = "../support/log.rs"]
mod logs;
mod pinned_state;
#[path = "../support/receiver.rs"]
mod receiver;
mod release;
mod trust;

use http::http_server;
use lab::*;
use receiver::{toa, toa_ok};
use toa_lab::addr;
use toa_loader::Counter;

#[test]
fn http_server_logs_real_ipv4_client_on_ipv4_and_dual_stack_listeners() {
    let mut lab = origin_lab_or_skip!(
        "http_server_logs_real_ipv4_client_on_ipv4_and_dual_stack_listeners",
        "orig-v4",
        &["--trust-any"]
    );
    // Borrowed, not moved: `lab` drops as a whole, receiver (unload) first.
    let OriginLab { cg, topo, .. } = &mut lab;
    let v4 = origin_server(topo, cg, &http_server(addr::ORIGIN_V4, "8000"), 8000);
    let dual = origin_server(topo, cg, &http_server("::", "8001"), 8001);
    relay(topo, "198.18.1.1:8000", "198.18.2.2:8000");
    // The dual-stack listener is reached over IPv6: the option stays IPv4 form.
    relay(topo, "198.18.1.1:8001", "[fd00:2::2]:8001");

    curl(&topo.client, "http://198.18.1.1:8000/");
    curl(&topo.client, "http://198.18.1.1:8001/");

    let log = wait_log(&v4.log, "\"GET / HTTP/1.1\"");
    assert!(
        log.contains("198.18.1.2 - - ["),
        "IPv4 listener log:\n{log}"
    );
    assert!(
        !log.contains("198.18.2.1 - -"),
        "IPv4 listener saw the edge:\n{log}"
    );
    let log = wait_log(&dual.log, "\"GET / HTTP/1.1\"");
    assert!(
        log.contains("::ffff:198.18.1.2 - - ["),
        "dual-stack listener log:\n{log}"
    );
}

#[test]
fn http_server_logs_real_ipv6_client_on_ipv6_listener() {
    let mut lab = origin_lab_or_skip!(
        "http_server_logs_real_ipv6_client_on_ipv6_listener",
        "orig-v6",
        &["--trust-any"]
    );
    // Borrowed, not moved: `lab` drops as a whole, receiver (unload) first.
    let OriginLab { cg, topo, .. } = &mut lab;
    let server = origin_server(topo, cg, &http_server(addr::ORIGIN_V6, "8000"), 8000);
    relay(topo, "[fd00:1::1]:8000", "[fd00:2::2]:8000");

    curl(&topo.client, "http://[fd00:1::1]:8000/");

    let log = wait_log(&server.log, "\"GET / HTTP/1.1\"");
    assert!(log.contains("fd00:1::2 - - ["), "IPv6 listener log:\n{log}");
}

#[test]
fn ipv6_client_on_ipv4_listener_is_a_mismatch_answered_by_the_lookup() {
    let mut lab = origin_lab_or_skip!(
        "ipv6_client_on_ipv4_listener_is_a_mismatch_answered_by_the_lookup",
        "orig-n64",
        &["--trust-any"]
    );
    // Borrowed, not moved: `lab` drops as a whole, receiver (unload) first.
    let OriginLab { origin, cg, topo } = &mut lab;
    probe_server(topo, cg, addr::ORIGIN_V4, 9000);
    relay(topo, "[fd00:1::1]:9000", "198.18.2.2:9000");

    let reply = probe(&topo.client, "fd00:1::1", 9000);

    // An AF_INET address cannot hold the IPv6 client: unchanged, counted.
    assert_eq!(reply["peer"], addr::EDGE_ORIGIN_SIDE_V4, "{reply:?}");
    assert_eq!(reply["accept"], addr::EDGE_ORIGIN_SIDE_V4, "{reply:?}");
    // The lookup has the real client and its port.
    assert_eq!(reply["lookup"], addr::CLIENT_V6, "{reply:?}");
    assert_eq!(reply["lookup_port"], reply["local_port"], "{reply:?}");
    // Before 5.18 the kernel turns a getsockopt program's EINVAL into EFAULT.
    let short = if toa_host::lookup_errno_supported() {
        "EINVAL"
    } else {
        "EFAULT"
    };
    assert_eq!(reply["short"], short, "{reply:?}");
    assert_eq!(reply["tos"], "0", "{reply:?}");
    // accept + getpeername are mismatches; the lookup answers.
    assert_counters(
        &origin.wait_all_released(),
        &[
            (Counter::SynRecvSockToa, 1),
            (Counter::GetnameToaMismatch, 2),
            (Counter::Ip6AddressAlloc, 1),
            (Counter::Ip6AddressFree, 1),
            (Counter::LookupToaOk, 1),
            (Counter::LookupShortBuffer, 1),
        ],
    );
}

#[test]
fn connection_without_toa_is_untouched() {
    let mut lab = origin_lab_or_skip!(
        "connection_without_toa_is_untouched",
        "orig-none",
        &["--trust-any"]
    );
    // Borrowed, not moved: `lab` drops as a whole, receiver (unload) first.
    let OriginLab { origin, cg, topo } = &mut lab;
    probe_server(topo, cg, "::", 9000);

    // Straight from the edge, no relay: no option on the wire.
    let reply = probe(&topo.edge, addr::ORIGIN_V6, 9000);

    assert_eq!(reply["peer"], addr::EDGE_ORIGIN_SIDE_V6, "{reply:?}");
    assert_eq!(reply["peer_port"], reply["local_port"], "{reply:?}");
    assert_eq!(reply["lookup"], "ENOENT", "{reply:?}");
    // accept + getpeername find no record; so do the lookups.
    assert_counters(
        &origin.counters(),
        &[
            (Counter::SynRecvSockNoToa, 1),
            (Counter::GetnameToaEmpty, 2),
            (Counter::LookupToaEmpty, 2),
        ],
    );
}

#[test]
fn syn_cookies_still_deliver_the_real_client() {
    let mut lab = origin_lab_or_skip!(
        "syn_cookies_still_deliver_the_real_client",
        "orig-cookie",
        &["--trust-any"]
    );
    // Borrowed, not moved: `lab` drops as a whole, receiver (unload) first.
    let OriginLab { cg, topo, .. } = &mut lab;
    // 2: every SYN is answered with a cookie, no request socket, no saved SYN.
    topo.origin
        .run(&["sysctl", "-qw", "net.ipv4.tcp_syncookies=2"])
        .unwrap();
    probe_server(topo, cg, "::", 9000);
    relay(topo, "198.18.1.1:9000", "198.18.2.2:9000");
    relay(topo, "[fd00:1::1]:9000", "[fd00:2::2]:9000");

    let v4 = probe(&topo.client, addr::EDGE_CLIENT_SIDE_V4, 9000);
    let v6 = probe(&topo.client, addr::EDGE_CLIENT_SIDE_V6, 9000);

    assert_eq!(v4["peer"], "::ffff:198.18.1.2", "{v4:?}");
    assert_eq!(v4["peer_port"], v4["local_port"], "{v4:?}");
    assert_eq!(v6["peer"], addr::CLIENT_V6, "{v6:?}");
}

#[test]
fn untrusted_sender_is_ignored_and_counted_until_trusted() {
    let mut lab = origin_lab_or_skip!(
        "untrusted_sender_is_ignored_and_counted_until_trusted",
        "orig-trust",
        &["--trust", "198.18.9.0/24", "--trust", "fd00:9::/64"]
    );
    // Borrowed, not moved: `lab` drops as a whole, receiver (unload) first.
    let OriginLab { origin, cg, topo } = &mut lab;
    probe_server(topo, cg, addr::ORIGIN_V4, 9000);
    relay(topo, "198.18.1.1:9000", "198.18.2.2:9000");

    let spoofed = probe(&topo.client, addr::EDGE_CLIENT_SIDE_V4, 9000);
    assert_eq!(spoofed["peer"], addr::EDGE_ORIGIN_SIDE_V4, "{spoofed:?}");
    assert_eq!(spoofed["lookup"], "ENOENT", "{spoofed:?}");
    // accept + getpeername bypass the untrusted record; the lookups find none.
    assert_counters(
        &origin.wait_all_released(),
        &[
            (Counter::SynRecvSockUntrusted, 1),
            (Counter::GetnameToaBypass, 2),
            (Counter::Ip6AddressAlloc, 1),
            (Counter::Ip6AddressFree, 1),
            (Counter::LookupToaEmpty, 2),
        ],
    );

    // A bad reload is rejected whole and keeps the old list.
    let out = toa(&[
        "origin",
        "load",
        "--cgroup",
        origin.arg(),
        "--trust",
        "198.18.2.0/24",
        "--trust",
        "198.18.2.0/33",
    ]);
    assert!(!out.status.success());
    let status = toa_ok(&["origin", "status", "--cgroup", origin.arg()]);
    assert!(
        status.contains("trust 198.18.9.0/24, fd00:9::/64"),
        "{status}"
    );

    // Trusting the edge, in place: new connections get the client.
    toa_ok(&[
        "origin",
        "load",
        "--cgroup",
        origin.arg(),
        "--trust",
        "198.18.2.0/24",
    ]);
    let trusted = probe(&topo.client, addr::EDGE_CLIENT_SIDE_V4, 9000);
    assert_eq!(trusted["peer"], addr::CLIENT_V4, "{trusted:?}");
    let status = toa_ok(&["origin", "status", "--cgroup", origin.arg()]);
    assert!(status.contains("trust 198.18.2.0/24\n"), "{status}");
}

#[test]
fn counters_match_a_scripted_set_of_connections() {
    let mut lab = origin_lab_or_skip!(
        "counters_match_a_scripted_set_of_connections",
        "orig-count",
        &["--trust-any"]
    );
    // Borrowed, not moved: `lab` drops as a whole, receiver (unload) first.
    let OriginLab { origin, cg, topo } = &mut lab;
    probe_server(topo, cg, addr::ORIGIN_V4, 9000);
    relay(topo, "198.18.1.1:9000", "198.18.2.2:9000");
    relay(topo, "[fd00:1::1]:9000", "198.18.2.2:9000");

    for _ in 0..3 {
        let r = probe(&topo.client, addr::EDGE_CLIENT_SIDE_V4, 9000);
        assert_eq!(
            (r["peer"].as_str(), &r["peer_port"]),
            (addr::CLIENT_V4, &r["local_port"])
        );
        assert_eq!(r["lookup"], "::ffff:198.18.1.2", "{r:?}");
    }
    for _ in 0..2 {
        probe(&topo.edge, addr::ORIGIN_V4, 9000);
    }
    probe(&topo.client, addr::EDGE_CLIENT_SIDE_V6, 9000);

    let c = origin.wait_all_released();
    let expected = [
        (Counter::SynRecvSockToa, 4),
        (Counter::SynRecvSockNoToa, 2),
        (Counter::GetnameToaOk, 6),
        (Counter::GetnameToaMismatch, 2),
        (Counter::GetnameToaBypass, 0),
        (Counter::GetnameToaEmpty, 4),
        (Counter::Ip6AddressAlloc, 4),
        (Counter::Ip6AddressFree, 4),
        (Counter::SynRecvSockUntrusted, 0),
        (Counter::SynRecvSockNoMem, 0),
        (Counter::LookupToaOk, 4),
        (Counter::LookupToaEmpty, 4),
        (Counter::LookupShortBuffer, 4),
        (Counter::ListenSaveSynFailed, 0),
        (Counter::SynRecvSockNoSk, 0),
        (Counter::SynRecvSockCbFailed, 0),
        (Counter::SynRecvSockInvalid, 0),
        (Counter::GetnameToaInvalid, 0),
        (Counter::SynRecvSockNested, 0),
    ];
    // Every counter, in row order: a new one fails here until it is expected.
    assert_eq!(
        expected.map(|(counter, _)| counter),
        Counter::ALL,
        "expectations cover every counter"
    );
    for (counter, value) in expected {
        assert_eq!(c.total(counter), value, "{}", counter.name());
    }

    // The same numbers in the /proc/net/toa_stats layout and as JSON.
    let table = toa_ok(&["origin", "stats", "--cgroup", origin.arg()]);
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        (0..c.cpus()).map(|i| format!("CPU{i}")).collect::<Vec<_>>()
    );
    for ((counter, value), line) in expected.iter().zip(lines) {
        let (name, columns) = line.split_at(25);
        assert_eq!(name.trim_end(), counter.name());
        let columns: Vec<u64> = columns[1..]
            .split_whitespace()
            .map(|v| v.parse().unwrap())
            .collect();
        assert_eq!(
            (columns.len(), columns.iter().sum::<u64>()),
            (c.cpus(), *value),
            "{line}"
        );
    }
    let json = toa_ok(&["origin", "stats", "--cgroup", origin.arg(), "--json"]);
    assert!(
        json.contains("\"syn_recv_sock_toa\":{\"per_cpu\":["),
        "{json}"
    );
    assert!(json.contains("\"total\":4"), "{json}");
}

#[test]
fn bad_input_gets_a_one_line_error() {
    if !toa_lab::require_privileges("bad_input_gets_a_one_line_error") {
        return;
    }
    let not_cgroup = std::env::temp_dir();
    let cases: [(&[&str], &str); 4] = [
        (
            &["--trust", "198.18.0.0/33"],
            "bad trust CIDR \"198.18.0.0/33\": IPv4 prefix length over 32",
        ),
        (
            &["--kind", "0"],
            "bad option kind 0: kind 0 is End of Option List",
        ),
        (
            &["--kind", "300"],
            "bad option kind \"300\": not a TCP option kind (0 to 255)",
        ),
        (
            &["--cgroup", not_cgroup.to_str().unwrap()],
            "is not a cgroup2 directory",
        ),
    ];
    for (extra, message) in cases {
        let mut args = vec!["origin", "load"];
        args.extend_from_slice(extra);
        let out = toa(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}
