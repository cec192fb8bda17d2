//! libtoa end to end: an IPv6 client reaches an IPv4-only (`AF_INET`) listener
//! on the origin through the TOA relay. getpeername cannot carry it; the
//! lookup can, through `libtoa.so`, the Rust API and the `LD_PRELOAD` shim.
//! Topology, relay and receiver come from the origin tests' helpers.

#[path = "origin/lab.rs"]
#[allow(dead_code)]
#[macro_use]
mod lab;
#[path = "support/log.rs"]
mod logs;
#[path = "../../libtoa/tests/c/peer_server.rs"]
mod peer_server_build;
#[path = "support/receiver.rs"]
mod receiver;

use lab::*;
use toa_lab::{Topology, addr};

/// Connects from the client namespace, prints the local port, waits for the
/// server to close.
const CONNECT: &str = "import socket,sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
print(s.getsockname()[1], flush=True)
s.recv(1)";

fn preload_env() -> String {
    format!(
        "LD_PRELOAD={}",
        peer_server_build::dependency_dir()
            .join("libtoa_preload.so")
            .display()
    )
}

/// One connection from the client to `edge_port` on the edge's IPv6 address;
/// the client's real address as the origin should report it.
fn connect_from_ipv6_client(topo: &Topology, edge_port: u16) -> String {
    let port = topo
        .client
        .run(&[
            "python3",
            "-c",
            CONNECT,
            addr::EDGE_CLIENT_SIDE_V6,
            &edge_port.to_string(),
        ])
        .unwrap();
    format!("[{}]:{}", addr::CLIENT_V6, port.trim())
}

#[test]
fn c_server_gets_ipv6_client_from_toa_get_peer_and_under_the_preload_shim() {
    let OriginLab {
        origin: _unloads_on_drop,
        cg,
        mut topo,
    } = origin_lab_or_skip!(
        "c_server_gets_ipv6_client_from_toa_get_peer_and_under_the_preload_shim",
        "libtoa-c",
        &["--trust-any"]
    );
    let server = peer_server_build::build(topo.lab.dir());
    let server = server.to_str().unwrap();
    let preload = preload_env();
    let plain = origin_server(
        &mut topo,
        &cg,
        &[server, addr::ORIGIN_V4, "8000", "1"],
        8000,
    );
    let shimmed = origin_server(
        &mut topo,
        &cg,
        &["env", &preload, server, addr::ORIGIN_V4, "8001", "1"],
        8001,
    );
    relay(&mut topo, "[fd00:1::1]:8000", "198.18.2.2:8000");
    relay(&mut topo, "[fd00:1::1]:8001", "198.18.2.2:8001");

    // Plain libc: the AF_INET socket shows the relay; toa_get_peer has the client.
    let client = connect_from_ipv6_client(&topo, 8000);
    let log = wait_log(&plain.log, "toa_get_peer");
    let edge = addr::EDGE_ORIGIN_SIDE_V4;
    assert!(log.contains(&format!("accept {edge}:")), "{log}");
    assert!(log.contains(&format!("getpeername {edge}:")), "{log}");
    assert!(log.contains(&format!("toa_get_peer {client}\n")), "{log}");

    // Under the shim, accept() and getpeername() return the IPv6 client itself.
    let client = connect_from_ipv6_client(&topo, 8001);
    let log = wait_log(&shimmed.log, "toa_get_peer");
    assert!(!log.contains("FAIL"), "{log}");
    assert!(log.contains(&format!("accept {client} len=28\n")), "{log}");
    assert!(
        log.contains(&format!("getpeername {client} len=28\n")),
        "{log}"
    );
    assert!(log.contains(&format!("toa_get_peer {client}\n")), "{log}");
}

#[test]
fn rust_server_gets_ipv6_client_from_peer_addr() {
    let OriginLab {
        origin: _unloads_on_drop,
        cg,
        mut topo,
    } = origin_lab_or_skip!(
        "rust_server_gets_ipv6_client_from_peer_addr",
        "libtoa-rs",
        &["--trust-any"]
    );
    let exe = toa_lab::artifact("examples/toa-peer");
    let server = origin_server(
        &mut topo,
        &cg,
        &[exe.to_str().unwrap(), "198.18.2.2:8000", "1"],
        8000,
    );
    relay(&mut topo, "[fd00:1::1]:8000", "198.18.2.2:8000");

    let client = connect_from_ipv6_client(&topo, 8000);
    let log = wait_log(&server.log, "libtoa::client_addr");
    assert!(
        log.contains(&format!("std {}:", addr::EDGE_ORIGIN_SIDE_V4)),
        "{log}"
    );
    assert!(
        log.contains(&format!("libtoa::peer_addr {client}\n")),
        "{log}"
    );
    assert!(
        log.contains(&format!("libtoa::client_addr {client}\n")),
        "{log}"
    );
}

/// The address as socat prints it: every IPv6 group in four hex digits.
fn socat_form(client: std::net::SocketAddr) -> String {
    let std::net::SocketAddr::V6(v6) = client else {
        panic!("{client} is not IPv6")
    };
    let groups: Vec<String> = v6
        .ip()
        .segments()
        .iter()
        .map(|g| format!("{g:04x}"))
        .collect();
    format!("AF=10 [{}]:{}", groups.join(":"), v6.port())
}

#[test]
fn unmodified_socat_sees_ipv6_client_under_the_preload_shim() {
    let OriginLab {
        origin: _unloads_on_drop,
        cg,
        mut topo,
    } = origin_lab_or_skip!(
        "unmodified_socat_sees_ipv6_client_under_the_preload_shim",
        "libtoa-socat",
        &["--trust-any"]
    );
    // socat accepts into a sockaddr union that holds IPv6, the case the shim is
    // for. (nginx and Python size their text or buffer by the listener's
    // family; see crates/libtoa/README.md.)
    let preload = preload_env();
    let listen = format!("TCP4-LISTEN:8000,bind={},reuseaddr", addr::ORIGIN_V4);
    let cmd = [
        "env",
        &preload,
        "socat",
        "-d",
        "-d",
        &listen,
        "SYSTEM:echo hi",
    ];
    let socat = origin_server(&mut topo, &cg, &cmd, 8000);
    relay(&mut topo, "[fd00:1::1]:8000", "198.18.2.2:8000");

    let client: std::net::SocketAddr = connect_from_ipv6_client(&topo, 8000).parse().unwrap();

    let log = wait_log(&socat.log, "accepting connection from");
    let expected = format!(
        "accepting connection from {} on AF=2 198.18.2.2:8000",
        socat_form(client)
    );
    assert!(
        log.contains(&expected),
        "want {expected:?} in socat log:\n{log}"
    );
}
