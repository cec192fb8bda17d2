//! Shared pieces of the UDP proxy end-to-end tests: `toa proxy` on the edge with its
//! neighbours resolved, UDP origins (`toa spp-echo`, `udp_peer.py`) and UDP clients.

#![allow(dead_code)] // each test file uses a different subset

use std::time::Duration;

use crate::proxy_support::ProxyLab;
use toa_lab::{Spawned, addr};

pub const UDP_PEER_PY: &str = include_str!("udp_peer.py");
pub const ECHO_PORT: u16 = 9000;
pub const CLIENTS: usize = 50;
pub const DATAGRAMS: usize = 100;

/// `toa proxy` running `config`. It serves metrics only after binding every listener, so
/// waiting for the metrics port waits for the UDP listeners too.
pub fn start(tag: &str, config: &str) -> (ProxyLab, String) {
    let lab = ProxyLab::start(tag, config, METRICS_PORT);
    // Resolve every neighbour first: a burst to an unresolved one overflows the kernel's
    // ARP/NDP queue, and losing datagrams there would say nothing about the proxy.
    for target in [
        addr::CLIENT_V4,
        addr::CLIENT_V6,
        addr::ORIGIN_V4,
        addr::ORIGIN_V6,
    ] {
        lab.topo
            .edge
            .run(&["ping", "-c1", "-W2", target])
            .unwrap_or_else(|e| panic!("edge cannot reach {target}: {e}"));
    }
    let peer = lab.topo.lab.dir().join("udp_peer.py");
    std::fs::write(&peer, UDP_PEER_PY).unwrap();
    (lab, peer.to_string_lossy().into_owned())
}

/// The port of `proxy_support::METRICS`.
pub const METRICS_PORT: u16 = 9100;

/// Starts `cmd` in the origin namespace and waits until it listens on UDP `port`.
pub fn spawn_udp_origin(lab: &mut ProxyLab, cmd: &[&str], port: u16) -> Spawned {
    let s = lab.topo.lab.spawn(&lab.topo.origin, None, cmd).unwrap();
    if let Err(e) = lab
        .topo
        .origin
        .wait_listening(port, true, Duration::from_secs(10))
    {
        panic!(
            "{e}\n{}",
            std::fs::read_to_string(&s.log).unwrap_or_default()
        );
    }
    s
}

pub fn spp_echo(lab: &mut ProxyLab) -> Spawned {
    let listen = format!("[::]:{ECHO_PORT}");
    spawn_udp_origin(
        lab,
        &[env!("CARGO_BIN_EXE_toa"), "spp-echo", "--listen", &listen],
        ECHO_PORT,
    )
}

pub fn log_of(s: &Spawned) -> String {
    std::fs::read_to_string(&s.log).unwrap_or_default()
}

/// `udp_peer.py load` from the client namespace: one JSON line per client.
pub fn load(
    lab: &ProxyLab,
    peer: &str,
    host: &str,
    port: u16,
    clients: usize,
    count: usize,
    quiet: &str,
) -> Vec<String> {
    let out = lab
        .topo
        .client
        .run(&[
            "timeout",
            "60",
            "python3",
            peer,
            "load",
            host,
            &port.to_string(),
            &clients.to_string(),
            &count.to_string(),
            quiet,
        ])
        .unwrap_or_else(|e| panic!("udp clients failed: {e}\nproxy log:\n{}", lab.proxy_log()));
    out.lines().map(str::to_string).collect()
}

pub fn edge(v6: bool) -> &'static str {
    if v6 {
        addr::EDGE_CLIENT_SIDE_V6
    } else {
        addr::EDGE_CLIENT_SIDE_V4
    }
}

pub fn socket_addr(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// `udp_peer.py send` from the client namespace: `payloads` to host:port, then the replies
/// until `quiet` seconds pass without one; its output, one line per reply.
pub fn send(
    lab: &ProxyLab,
    peer: &str,
    host: &str,
    port: &str,
    quiet: &str,
    payloads: &[&str],
) -> String {
    let mut cmd = vec!["timeout", "30", "python3", peer, "send", host, port, quiet];
    cmd.extend_from_slice(payloads);
    lab.topo.client.run(&cmd).unwrap()
}
