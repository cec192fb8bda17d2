//! `accept_proxy` on UDP rules end to end: the client namespace plays a trusted upstream
//! that names another client in a PROXY v2 DGRAM header on a flow's first datagram, or in
//! an SPP header on every datagram; `toa spp-echo` on the origin must log that client, the
//! client must get its payloads back, and an untrusted source's datagrams are dropped and counted;
//! flows per client count the named client. Every datagram's header is read: an upstream
//! that reuses a source port for another client opens that client's own flow.

mod proxy_support;
mod udp_support;

use std::net::SocketAddr;
use std::time::Duration;

use proxy_support::eventually;
use toa_lab::{addr, require_privileges};
use toa_wire::{proxy_v2, spp};
use udp_support::*;

/// Sends each hex datagram from one socket to host:port, then prints each reply (as text)
/// until `quiet` seconds pass without one.
const SENDER: &str = r#"
import socket, sys
host, port, quiet = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
for d in sys.argv[4:]:
    s.sendto(bytes.fromhex(d), (host, port))
s.settimeout(quiet)
try:
    while True:
        print(s.recv(65536).decode("latin-1"))
except socket.timeout:
    pass
"#;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn send(lab: &proxy_support::ProxyLab, port: u16, datagrams: &[Vec<u8>]) -> Vec<String> {
    let port = port.to_string();
    let hexes: Vec<String> = datagrams.iter().map(|d| hex(d)).collect();
    let mut cmd = vec![
        "timeout",
        "30",
        "python3",
        "-c",
        SENDER,
        addr::EDGE_CLIENT_SIDE_V4,
        &port,
        "2",
    ];
    cmd.extend(hexes.iter().map(String::as_str));
    let out = lab.topo.client.run(&cmd).unwrap();
    out.lines().map(str::to_string).collect()
}

#[test]
fn udp_clients_named_by_a_trusted_upstream_reach_the_origin_and_untrusted_ones_are_dropped() {
    if !require_privileges(
        "udp_clients_named_by_a_trusted_upstream_reach_the_origin_and_untrusted_ones_are_dropped",
    ) {
        return;
    }
    let trusted = format!("accept_proxy_from = [\"{}/32\"]", addr::CLIENT_V4);
    let config = format!(
        "[[rule]]\ntag = \"v2-in-spp-out\"\nprotocol = \"udp\"\nports = \"17200\"\norigins = [\"{o}\"]\norigin_ports = \"{ECHO_PORT}\"\npass_client_ip = \"spp\"\naccept_proxy = \"v2\"\n{trusted}\n\n\
         [[rule]]\ntag = \"spp-in-ppv2-out\"\nprotocol = \"udp\"\nports = \"17201\"\norigins = [\"{o}\"]\norigin_ports = \"{ECHO_PORT}\"\npass_client_ip = \"ppv2\"\naccept_proxy = \"any\"\n{trusted}\n\n\
         [[rule]]\ntag = \"untrusted\"\nprotocol = \"udp\"\nports = \"17202\"\norigins = [\"{o}\"]\norigin_ports = \"{ECHO_PORT}\"\naccept_proxy = \"any\"\naccept_proxy_from = [\"198.18.9.0/24\"]\n\n\
         [[rule]]\ntag = \"per-client\"\nprotocol = \"udp\"\nports = \"17203\"\norigins = [\"{o}\"]\norigin_ports = \"{ECHO_PORT}\"\naccept_proxy = \"v2\"\n{trusted}\nmax_connections_per_client = 1\n",
        o = addr::ORIGIN_V4,
    );
    let (mut lab, _peer) = start("udp-acc", &config);
    let echo = spp_echo(&mut lab);
    let edge = |port: u16| SocketAddr::new(addr::EDGE_CLIENT_SIDE_V4.parse().unwrap(), port);

    // PROXY v2 on the first datagram only; the rest of the flow is bare payload.
    let named: SocketAddr = "198.19.7.7:5555".parse().unwrap();
    let header = proxy_v2::Header::proxy(proxy_v2::Transport::Dgram, named, edge(17200))
        .encode()
        .unwrap();
    let replies = send(
        &lab,
        17200,
        &[[&header[..], b"one"].concat(), b"two".to_vec()],
    );
    assert_eq!(replies, ["one", "two"], "{}", lab.proxy_log());

    // SPP on every datagram.
    let named_spp: SocketAddr = "198.19.7.8:6666".parse().unwrap();
    let spp_header = spp::Header {
        client: named_spp,
        proxy: edge(17201),
    }
    .encode();
    let replies = send(
        &lab,
        17201,
        &[
            [&spp_header[..], b"uno"].concat(),
            [&spp_header[..], b"dos"].concat(),
        ],
    );
    assert_eq!(replies, ["uno", "dos"], "{}", lab.proxy_log());

    eventually(
        Duration::from_secs(5),
        "the origin logging both named clients",
        || {
            let log = log_of(&echo);
            log.contains(&format!("spp client {named} via proxy {}", edge(17200)))
                && log.contains(&format!(
                    "ppv2 client {named_spp} via proxy {} (dgram)",
                    edge(17201)
                ))
        },
    );
    assert!(
        !log_of(&echo).contains(addr::CLIENT_V4),
        "the origin saw the upstream:\n{}",
        log_of(&echo)
    );

    assert!(send(&lab, 17202, &[[&header[..], b"x"].concat()]).is_empty());
    let series = "toa_proxy_udp_drops_total{rule=\"untrusted\",reason=\"proxy_header_untrusted\"}";
    eventually(Duration::from_secs(5), series, || {
        lab.metric(series) == Some(1)
    });

    // Flows per client count the named client: each send is a new flow from the same
    // upstream address; another named client is admitted, the first one again replaces
    // its own least recently active flow.
    let first = |client: SocketAddr, payload: &[u8]| {
        let header = proxy_v2::Header::proxy(proxy_v2::Transport::Dgram, client, edge(17203))
            .encode()
            .unwrap();
        send(&lab, 17203, &[[&header[..], payload].concat()])
    };
    assert_eq!(first(named, b"a"), ["a"], "{}", lab.proxy_log());
    assert_eq!(first(named_spp, b"b"), ["b"], "{}", lab.proxy_log());
    assert_eq!(first(named, b"c"), ["c"], "{}", lab.proxy_log());
    let series = "toa_proxy_udp_flows_evicted_total{rule=\"per-client\",reason=\"client_limit\"}";
    assert_eq!(lab.metric(series), Some(1));
    eventually(Duration::from_secs(5), "two flows open", || {
        lab.metric("toa_proxy_udp_flows_active{rule=\"per-client\"}") == Some(2)
    });
}

#[test]
fn an_upstream_port_reused_for_another_client_gives_that_client_its_own_flow() {
    if !require_privileges(
        "an_upstream_port_reused_for_another_client_gives_that_client_its_own_flow",
    ) {
        return;
    }
    let trusted = format!("accept_proxy_from = [\"{}/32\"]", addr::CLIENT_V4);
    let config = format!(
        "[[rule]]\ntag = \"reuse-v2\"\nprotocol = \"udp\"\nports = \"17204\"\norigins = [\"{o}\"]\norigin_ports = \"{ECHO_PORT}\"\npass_client_ip = \"spp\"\naccept_proxy = \"v2\"\n{trusted}\n\n\
         [[rule]]\ntag = \"reuse-spp\"\nprotocol = \"udp\"\nports = \"17205\"\norigins = [\"{o}\"]\norigin_ports = \"{ECHO_PORT}\"\npass_client_ip = \"ppv2\"\naccept_proxy = \"any\"\n{trusted}\n",
        o = addr::ORIGIN_V4,
    );
    let (mut lab, _peer) = start("udp-reuse", &config);
    let echo = spp_echo(&mut lab);
    let edge = |port: u16| SocketAddr::new(addr::EDGE_CLIENT_SIDE_V4.parse().unwrap(), port);
    let a: SocketAddr = "198.19.8.1:1111".parse().unwrap();
    let b: SocketAddr = "198.19.8.2:2222".parse().unwrap();
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };

    // PROXY v2, one upstream port: joined mid-flow (a bare datagram, then a broken
    // header: both dropped), then A's header and a bare datagram (A's), then B's header
    // and a bare datagram (B's), then B's header again.
    let v2 = |client| {
        proxy_v2::Header::proxy(proxy_v2::Transport::Dgram, client, edge(17204))
            .encode()
            .unwrap()
    };
    let broken = [&v2(a)[..14], &[0xff, 0xff][..], b"lost"].concat();
    let replies = send(
        &lab,
        17204,
        &[
            b"mid-flow".to_vec(),
            broken,
            [&v2(a)[..], b"a1"].concat(),
            b"a2".to_vec(),
            [&v2(b)[..], b"b1"].concat(),
            b"b2".to_vec(),
            [&v2(b)[..], b"b3"].concat(),
        ],
    );
    assert_eq!(
        sorted(replies),
        ["a1", "a2", "b1", "b2", "b3"],
        "{}",
        lab.proxy_log()
    );

    // SPP, one upstream port: A, then B, then A again; a bare datagram is dropped.
    let spp = |client| {
        spp::Header {
            client,
            proxy: edge(17205),
        }
        .encode()
    };
    let replies = send(
        &lab,
        17205,
        &[
            [&spp(a)[..], b"x1"].concat(),
            [&spp(b)[..], b"y1"].concat(),
            [&spp(a)[..], b"x2"].concat(),
            b"bare".to_vec(),
        ],
    );
    assert_eq!(sorted(replies), ["x1", "x2", "y1"], "{}", lab.proxy_log());

    // The origin saw each client as itself, on a flow of its own.
    eventually(Duration::from_secs(5), "the origin logging A and B", || {
        let log = log_of(&echo);
        [
            format!("spp client {a} via proxy {}", edge(17204)),
            format!("spp client {b} via proxy {}", edge(17204)),
            format!("ppv2 client {a} via proxy {} (dgram)", edge(17205)),
            format!("ppv2 client {b} via proxy {} (dgram)", edge(17205)),
        ]
        .iter()
        .all(|line| log.contains(line))
    });
    for (series, want) in [
        ("toa_proxy_udp_flows_total{rule=\"reuse-v2\"}", 2),
        ("toa_proxy_udp_flows_total{rule=\"reuse-spp\"}", 2),
        (
            "toa_proxy_udp_drops_total{rule=\"reuse-v2\",reason=\"proxy_header_missing\"}",
            1,
        ),
        (
            "toa_proxy_udp_drops_total{rule=\"reuse-v2\",reason=\"proxy_header_malformed\"}",
            1,
        ),
        (
            "toa_proxy_udp_drops_total{rule=\"reuse-spp\",reason=\"proxy_header_missing\"}",
            1,
        ),
    ] {
        assert_eq!(lab.metric(series), Some(want), "{series}");
    }
}
