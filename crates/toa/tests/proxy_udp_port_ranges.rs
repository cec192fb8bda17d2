//! UDP port ranges end to end: a rule with `ports = "1024-65000"` is served through the
//! sk_lookup steerer by one UDP socket, each datagram reaching its own origin port
//! (`origin_ports` range) and each reply leaving from the port its client sent to (one
//! client socket probes every port, so a reply from any other port would show); other
//! ports and addresses untouched, across reloads that change the range; without CAP_BPF
//! the proxy binds every port, or refuses with one line when they cannot fit.

mod proxy_support;
mod udp_support;

use std::time::Duration;

use proxy_support::ranges::{
    FIRST, LAST, ORIGIN_FIRST, SHIFT, WITHOUT_BPF, assert_answers, assert_fell_back,
    assert_none_failed, assert_steered_on_few_descriptors, joined, origin_ports, random_ports,
    range_rule, refused_beyond_the_descriptor_limit, refused_over_a_held_port, reload_and_wait,
};
use proxy_support::{ProxyLab, add_address, eventually};
use toa_lab::{addr, require_privileges};
use udp_support::{METRICS_PORT, UDP_PEER_PY};

/// Where the UDP test peer is written in the lab.
fn peer(lab: &ProxyLab) -> String {
    let path = lab.topo.lab.dir().join("udp_peer.py");
    if !path.exists() {
        std::fs::write(&path, UDP_PEER_PY).unwrap();
    }
    path.to_string_lossy().into_owned()
}

/// How long a probe waits for an answer before sending again (three tries in all).
fn wait() -> String {
    toa_lab::scaled(Duration::from_secs(2))
        .as_secs_f64()
        .to_string()
}

#[derive(Clone, Copy)]
enum Ns {
    Origin,
    Edge,
}

/// Starts `udp_peer.py many-ports` in `ns`: every port answers "TAG PORT ..." from itself.
fn many_ports(lab: &mut ProxyLab, ns: Ns, host: &str, tag: &str, ports: &[u16]) {
    let cmd = [
        "python3",
        &peer(lab),
        "many-ports",
        host,
        tag,
        &joined(ports),
    ];
    let netns = match ns {
        Ns::Origin => &lab.topo.origin,
        Ns::Edge => &lab.topo.edge,
    };
    let spawned = lab.topo.lab.spawn(netns, None, &cmd).unwrap();
    // The ports are bound in order: the last one bound means all are.
    let last = *ports.last().unwrap();
    if let Err(e) = netns.wait_listening(last, true, toa_lab::scaled(Duration::from_secs(10))) {
        panic!(
            "{e}\n{}",
            std::fs::read_to_string(&spawned.log).unwrap_or_default()
        );
    }
}

/// `udp_peer.py probe-ports` from the client, one socket for every port: each port with
/// the answer ("TAG ORIGINPORT from SRCPORT", or "TIMEOUT").
fn probe(lab: &ProxyLab, host: &str, ports: &[u16]) -> Vec<(u16, String)> {
    let peer = peer(lab);
    let out = lab
        .topo
        .client
        .run(&[
            "python3",
            &peer,
            "probe-ports",
            host,
            &joined(ports),
            &wait(),
        ])
        .unwrap_or_else(|e| panic!("probe failed: {e}\n{}", lab.proxy_log()));
    out.lines()
        .map(|l| {
            let (port, answer) = l.split_once(' ').unwrap();
            (port.parse().unwrap(), answer.to_string())
        })
        .collect()
}

/// Every probed port answered by the origin on port + SHIFT, from the port probed.
fn assert_mapped(lab: &ProxyLab, answers: &[(u16, String)]) {
    assert_answers(lab, answers, |port| {
        format!("origin {} from {port}", port + SHIFT)
    });
}

/// Few descriptors, 200 random ports mapped and answered from themselves, a port outside
/// the range and another address of the edge left to their own sockets.
fn serves_a_wide_range(tag: &str, edge: &str, other: &str, origin: &str) {
    let mut lab = ProxyLab::new(tag);
    let ports = random_ports(200, FIRST, LAST);
    let origin_ports = origin_ports(&ports, ORIGIN_FIRST, SHIFT);
    many_ports(&mut lab, Ns::Origin, origin, "origin", &origin_ports);
    add_address(&lab.topo.edge, edge, other);
    many_ports(&mut lab, Ns::Edge, other, "other-address", &[2000]);
    many_ports(&mut lab, Ns::Edge, edge, "outside", &[65100]);
    lab.start_proxy(&range_rule("udp", edge, FIRST, LAST, origin), METRICS_PORT);
    assert_steered_on_few_descriptors(&lab);
    assert_mapped(&lab, &probe(&lab, edge, &ports));
    assert_eq!(
        probe(&lab, edge, &[65100]),
        [(65100, "outside 65100 from 65100".to_string())]
    );
    assert_eq!(
        probe(&lab, other, &[2000]),
        [(2000, "other-address 2000 from 2000".to_string())]
    );
}

#[test]
fn udp_v4_range_serves_random_ports_on_few_descriptors_and_leaves_the_rest_alone() {
    if !require_privileges(
        "udp_v4_range_serves_random_ports_on_few_descriptors_and_leaves_the_rest_alone",
    ) {
        return;
    }
    serves_a_wide_range(
        "urange4",
        addr::EDGE_CLIENT_SIDE_V4,
        "198.18.1.5",
        addr::ORIGIN_V4,
    );
}

#[test]
fn udp_v6_range_serves_random_ports_on_few_descriptors_and_leaves_the_rest_alone() {
    if !require_privileges(
        "udp_v6_range_serves_random_ports_on_few_descriptors_and_leaves_the_rest_alone",
    ) {
        return;
    }
    serves_a_wide_range(
        "urange6",
        addr::EDGE_CLIENT_SIDE_V6,
        "fd00:1::5",
        addr::ORIGIN_V6,
    );
}

#[test]
fn udp_range_survives_reloads_that_move_its_last_and_first_port() {
    if !require_privileges("udp_range_survives_reloads_that_move_its_last_and_first_port") {
        return;
    }
    let (edge, origin) = (addr::EDGE_CLIENT_SIDE_V4, addr::ORIGIN_V4);
    let mut lab = ProxyLab::new("urangereload");
    // 3000 stays in every range; 40000 leaves with the first reload; 1500 with the second.
    let (stays, leaves, first_goes) = (3000, 40000, 1500);
    let probed = [stays, leaves, first_goes];
    let origin_ports = origin_ports(&probed, ORIGIN_FIRST, SHIFT);
    many_ports(&mut lab, Ns::Origin, origin, "origin", &origin_ports);
    lab.start_proxy(&range_rule("udp", edge, FIRST, LAST, origin), METRICS_PORT);
    assert_mapped(&lab, &probe(&lab, edge, &probed));

    // One client socket exchanging with a port that stays, throughout.
    let stop = lab.topo.lab.dir().join("stop-exchanges");
    let stop_arg = stop.to_string_lossy().into_owned();
    let peer = peer(&lab);
    let cmd = [
        "python3",
        &peer,
        "exchange-until",
        edge,
        "3000",
        &stop_arg,
        &wait(),
    ];
    let exchanges = lab.topo.lab.spawn(&lab.topo.client, None, &cmd).unwrap();
    eventually(Duration::from_secs(20), "the exchanges started", || {
        std::fs::read_to_string(&exchanges.log).is_ok_and(|l| l.contains("started"))
    });

    // The same first port: the range's socket stays, its last port moves.
    let header = std::fs::read_to_string(&lab.config).unwrap();
    let health = &header[..header.find("[[rule]]").unwrap()];
    let narrowed = range_rule("udp", edge, FIRST, 30000, origin);
    reload_and_wait(&lab, &format!("{health}{narrowed}"), 1);
    assert_mapped(&lab, &probe(&lab, edge, &[stays, first_goes]));
    assert_eq!(
        probe(&lab, edge, &[leaves]),
        [(leaves, "TIMEOUT".to_string())]
    );

    // Another first port: a new socket is steered before the old one closes.
    let moved = range_rule("udp", edge, 2000, 30000, origin);
    reload_and_wait(&lab, &format!("{health}{moved}"), 2);
    assert_mapped(&lab, &probe(&lab, edge, &[stays]));
    assert_eq!(
        probe(&lab, edge, &[first_goes]),
        [(first_goes, "TIMEOUT".to_string())]
    );

    assert_none_failed(&lab, &stop, &exchanges);
}

#[test]
fn udp_range_without_cap_bpf_falls_back_to_sockets_per_port() {
    if !require_privileges("udp_range_without_cap_bpf_falls_back_to_sockets_per_port") {
        return;
    }
    let (edge, origin) = (addr::EDGE_CLIENT_SIDE_V4, addr::ORIGIN_V4);
    let (first, last) = (20000, 20099);
    let mut lab = ProxyLab::new("urangefallback");
    let ports = random_ports(20, first, last);
    let origin_ports = origin_ports(&ports, first + SHIFT, SHIFT);
    many_ports(&mut lab, Ns::Origin, origin, "origin", &origin_ports);
    let rule = range_rule("udp", edge, first, last, origin);
    lab.start_proxy_under(&WITHOUT_BPF, &rule, METRICS_PORT);
    assert_fell_back(&lab);
    assert_mapped(&lab, &probe(&lab, edge, &ports));
}

#[test]
fn udp_wide_range_without_cap_bpf_beyond_the_descriptor_limit_is_refused_in_one_line() {
    if !require_privileges(
        "udp_wide_range_without_cap_bpf_beyond_the_descriptor_limit_is_refused_in_one_line",
    ) {
        return;
    }
    refused_beyond_the_descriptor_limit("urangerefused", "udp");
}

#[test]
fn udp_range_over_a_port_another_socket_holds_is_refused_like_a_bind() {
    if !require_privileges("udp_range_over_a_port_another_socket_holds_is_refused_like_a_bind") {
        return;
    }
    let edge = addr::EDGE_CLIENT_SIDE_V4;
    let mut lab = ProxyLab::new("urangeheld");
    many_ports(&mut lab, Ns::Edge, edge, "held", &[3000]);
    refused_over_a_held_port(&lab, "udp", 3000);
    // The port keeps its own socket.
    assert_eq!(
        probe(&lab, edge, &[3000]),
        [(3000, "held 3000 from 3000".to_string())]
    );
}
