//! `accept_proxy` end to end: the client namespace plays a trusted upstream (EdgeOne, a
//! load balancer) that sends a PROXY v2 header naming another client; real origins must
//! see that client — nginx through PROXY v1, an unmodified http.server through TOA and
//! the eBPF receiver. Untrusted sources, missing and malformed headers are refused and counted;
//! the per-client limit counts the named client, not the upstream.

#[path = "support/http.rs"]
mod http;
#[path = "support/log.rs"]
mod logs;
mod proxy_support;
#[path = "support/receiver.rs"]
mod receiver;

use std::net::SocketAddr;

use http::http_server;
use logs::wait_log;
use proxy_support::nginx::start_nginx;
use proxy_support::{ProxyLab, eventually};
use receiver::LoadedOrigin;
use toa_lab::{addr, require_privileges};
use toa_wire::proxy_v2;

/// The client the upstream names: inside the lab's address range, but no namespace has it.
const NAMED_V4: &str = "198.19.7.7:5555";
const NAMED_V6: &str = "[fd00:9::7]:5556";
const REQUEST: &[u8] = b"GET / HTTP/1.0\r\nHost: edge\r\n\r\n";

fn v2(src: &str, dst_port: u16) -> Vec<u8> {
    let src: SocketAddr = src.parse().unwrap();
    let dst = SocketAddr::new(addr::EDGE_CLIENT_SIDE_V4.parse().unwrap(), dst_port);
    proxy_v2::Header::proxy(proxy_v2::Transport::Stream, src, dst)
        .encode()
        .unwrap()
}

fn trusted_client() -> String {
    format!(
        "accept_proxy_from = [\"{}/32\", \"{}/128\"]",
        addr::CLIENT_V4,
        addr::CLIENT_V6
    )
}

#[test]
fn nginx_logs_the_client_of_an_accepted_proxy_v2_header_passed_on_as_proxy_v1() {
    if !require_privileges(
        "nginx_logs_the_client_of_an_accepted_proxy_v2_header_passed_on_as_proxy_v1",
    ) {
        return;
    }
    let config = format!(
        "[[rule]]\ntag = \"v2-in-v1-out\"\nports = \"17000\"\norigins = [\"{}\"]\norigin_ports = \"8082\"\npass_client_ip = \"ppv1\"\naccept_proxy = \"v2\"\n{}\n",
        addr::ORIGIN_V4,
        trusted_client()
    );
    let mut lab = ProxyLab::new("pacc1");
    let access_log = start_nginx(&mut lab, 8082);
    lab.start_proxy(&config, 17000);
    let edge = addr::EDGE_CLIENT_SIDE_V4;

    // The header split across two segments (the proxy must wait for the rest), then the
    // request; an IPv6 named client; and a LOCAL header, which keeps the TCP peer.
    let header = v2(NAMED_V4, 17000);
    let (head, tail) = header.split_at(7);
    let reply = lab.send_raw(edge, 17000, &[head, &[tail, REQUEST].concat()]);
    assert!(
        reply.ends_with("ok\n"),
        "reply: {reply:?}\n{}",
        lab.proxy_log()
    );
    let reply = lab.send_raw(
        edge,
        17000,
        &[&[&v2(NAMED_V6, 17000)[..], REQUEST].concat()],
    );
    assert!(reply.ends_with("ok\n"), "reply: {reply:?}");
    let local = proxy_v2::Header::local().encode().unwrap();
    let reply = lab.send_raw(edge, 17000, &[&[&local[..], REQUEST].concat()]);
    assert!(reply.ends_with("ok\n"), "reply: {reply:?}");

    let log = wait_log(&access_log, &format!("{}:", addr::CLIENT_V4));
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 3, "{log}");
    assert_eq!(lines[0], NAMED_V4);
    assert_eq!(lines[1], "fd00:9::7:5556");
    assert!(
        lines[2].starts_with(&format!("{}:", addr::CLIENT_V4)),
        "{log}"
    );
}

#[test]
fn ebpf_origin_sees_the_client_of_an_accepted_proxy_v2_header_passed_on_as_toa() {
    if !require_privileges(
        "ebpf_origin_sees_the_client_of_an_accepted_proxy_v2_header_passed_on_as_toa",
    ) {
        return;
    }
    let config = format!(
        "[[rule]]\ntag = \"v2-in-toa-out\"\nports = \"17001\"\norigins = [\"{}\"]\norigin_ports = \"8000\"\npass_client_ip = \"toa\"\naccept_proxy = \"any\"\n{}\n",
        addr::ORIGIN_V4,
        trusted_client()
    );
    let mut lab = ProxyLab::start("pacc2", &config, 17001);
    let cgroup = lab.topo.lab.cgroup("origin").unwrap();
    let _receiver = LoadedOrigin::load(&cgroup, &["--trust-any"]);
    let origin = lab.spawn_origin_in(Some(&cgroup), &http_server(addr::ORIGIN_V4, "8000"), 8000);
    let reply = lab.send_raw(
        addr::EDGE_CLIENT_SIDE_V4,
        17001,
        &[&[&v2(NAMED_V4, 17001)[..], REQUEST].concat()],
    );
    assert!(
        reply.starts_with("HTTP/1.0 200"),
        "reply: {reply:?}\n{}",
        lab.proxy_log()
    );
    let log = wait_log(&origin.log, "\"GET / HTTP/1.0\"");
    assert!(log.contains("198.19.7.7 - - ["), "origin log:\n{log}");
    assert!(
        !log.contains(addr::CLIENT_V4),
        "origin saw the upstream:\n{log}"
    );
}

#[test]
fn untrusted_missing_and_malformed_headers_are_refused_and_counted() {
    if !require_privileges("untrusted_missing_and_malformed_headers_are_refused_and_counted") {
        return;
    }
    let config = format!(
        "[[rule]]\ntag = \"untrusted\"\nports = \"17002\"\norigins = [\"{o}\"]\norigin_ports = \"8000\"\naccept_proxy = \"v2\"\naccept_proxy_from = [\"198.18.9.0/24\"]\n\n\
         [[rule]]\ntag = \"strict\"\nports = \"17003\"\norigins = [\"{o}\"]\norigin_ports = \"8000\"\naccept_proxy = \"any\"\n{}\n",
        trusted_client(),
        o = addr::ORIGIN_V4,
    );
    let mut lab = ProxyLab::new("pacc3");
    let origin = lab.spawn_origin(&http_server(addr::ORIGIN_V4, "8000"), 8000);
    lab.start_proxy(&config, 17002);
    let edge = addr::EDGE_CLIENT_SIDE_V4;

    let header = v2(NAMED_V4, 17002);
    assert_eq!(
        lab.send_raw(edge, 17002, &[&[&header[..], REQUEST].concat()]),
        ""
    );
    assert_eq!(lab.send_raw(edge, 17003, &[REQUEST]), "");
    assert_eq!(
        lab.send_raw(
            edge,
            17003,
            &[b"PROXY TCP4 198.19.7.777 198.18.1.1 5555 80\r\n"]
        ),
        ""
    );
    let rejected = |rule: &str, reason: &str| {
        lab.metric(&format!(
            "toa_proxy_connections_rejected_total{{rule=\"{rule}\",reason=\"proxy_header_{reason}\"}}"
        ))
    };
    eventually(
        std::time::Duration::from_secs(5),
        "refusals counted",
        || {
            rejected("untrusted", "untrusted") == Some(1)
                && rejected("strict", "missing") == Some(1)
                && rejected("strict", "malformed") == Some(1)
        },
    );
    // A trusted header on the strict rule still works: the refusals were about the header.
    let reply = lab.send_raw(
        edge,
        17003,
        &[&[&v2(NAMED_V4, 17003)[..], REQUEST].concat()],
    );
    assert!(reply.starts_with("HTTP/1.0 200"), "reply: {reply:?}");
    let log = wait_log(&origin.log, "\"GET / HTTP/1.0\"");
    assert_eq!(
        log.matches("\"GET /").count(),
        1,
        "refused connections reached the origin:\n{log}"
    );
}

#[test]
fn the_per_client_limit_counts_the_client_a_proxy_header_names() {
    if !require_privileges("the_per_client_limit_counts_the_client_a_proxy_header_names") {
        return;
    }
    let config = format!(
        "[[rule]]\ntag = \"per-client\"\nports = \"17004\"\norigins = [\"{}\"]\norigin_ports = \"8000\"\naccept_proxy = \"v2\"\n{}\nmax_connections_per_client = 1\n",
        addr::ORIGIN_V4,
        trusted_client()
    );
    let mut lab = ProxyLab::new("pacc4");
    lab.spawn_origin(&http_server(addr::ORIGIN_V4, "8000"), 8000);
    lab.start_proxy(&config, 17004);
    let edge = addr::EDGE_CLIENT_SIDE_V4;

    // One connection of the named client held open (its request never sent).
    let header: String = v2(NAMED_V4, 17004)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut held = std::process::Command::new("ip")
        .args(["netns", "exec", &lab.topo.client.name, "python3", "-c"])
        .arg(format!(
            "import socket,signal\ns=socket.create_connection(('{edge}',17004),timeout=10)\ns.sendall(bytes.fromhex('{header}'))\nsignal.pause()"
        ))
        .spawn()
        .unwrap();
    let active = "toa_proxy_connections_active{rule=\"per-client\"}";
    eventually(std::time::Duration::from_secs(5), active, || {
        lab.metric(active) == Some(1)
    });

    // The same upstream naming another client is another client: admitted.
    let reply = lab.send_raw(
        edge,
        17004,
        &[&[&v2(NAMED_V6, 17004)[..], REQUEST].concat()],
    );
    assert!(
        reply.starts_with("HTTP/1.0 200"),
        "reply: {reply:?}\n{}",
        lab.proxy_log()
    );
    // The held client again: over its limit.
    assert_eq!(
        lab.send_raw(
            edge,
            17004,
            &[&[&v2(NAMED_V4, 17004)[..], REQUEST].concat()]
        ),
        ""
    );
    let refused =
        "toa_proxy_connections_rejected_total{rule=\"per-client\",reason=\"client_limit\"}";
    eventually(std::time::Duration::from_secs(5), refused, || {
        lab.metric(refused) == Some(1)
    });
    let _ = held.kill();
    let _ = held.wait();
}
