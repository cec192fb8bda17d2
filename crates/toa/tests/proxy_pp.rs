//! PROXY protocol v1/v2 end to end: a real nginx with `listen ... proxy_protocol` logs
//! `$proxy_protocol_addr:$proxy_protocol_port`, which must be the client's own address
//! (IPv4 clients as IPv4 even through the dual-stack listener); a raw capture checks the
//! exact v2 bytes, UNIQUE_ID included.

mod proxy_support;

use std::time::Duration;

use proxy_support::nginx::start_nginx;
use proxy_support::{ProxyLab, eventually, field};
use toa_lab::{addr, require_privileges};

const NGINX_PORT: u16 = 8081;

#[test]
fn nginx_logs_the_real_client_through_proxy_v1_and_v2_over_ipv4_and_ipv6() {
    if !require_privileges("nginx_logs_the_real_client_through_proxy_v1_and_v2_over_ipv4_and_ipv6")
    {
        return;
    }
    let config = format!(
        r#"
[proxy]
access_log = true

[[rule]]
tag = "v1"
ports = "15001"
origins = ["{o4}"]
origin_ports = "{NGINX_PORT}"
pass_client_ip = "ppv1"

[[rule]]
tag = "v2"
ports = "15002"
origins = ["{o6}"]
origin_ports = "{NGINX_PORT}"
pass_client_ip = "ppv2"
ppv2_unique_id = true
"#,
        o4 = addr::ORIGIN_V4,
        o6 = addr::ORIGIN_V6,
    );
    let mut lab = ProxyLab::start("ppnginx", &config, 15001);
    let access_log = start_nginx(&mut lab, NGINX_PORT);
    // Both rules listen dual stack: IPv4 clients arrive as ::ffff:198.18.1.2 and must
    // still be sent as IPv4; origins of either family get the client's own family.
    let cases = [
        (
            addr::EDGE_CLIENT_SIDE_V4,
            15001,
            41001,
            format!("{}:41001", addr::CLIENT_V4),
        ),
        (
            addr::EDGE_CLIENT_SIDE_V6,
            15001,
            41002,
            format!("{}:41002", addr::CLIENT_V6),
        ),
        (
            addr::EDGE_CLIENT_SIDE_V4,
            15002,
            41003,
            format!("{}:41003", addr::CLIENT_V4),
        ),
        (
            addr::EDGE_CLIENT_SIDE_V6,
            15002,
            41004,
            format!("{}:41004", addr::CLIENT_V6),
        ),
    ];
    for (edge, port, local_port, _) in &cases {
        assert_eq!(
            lab.get(edge, *port, "/", Some(*local_port)).unwrap(),
            "ok\n"
        );
    }
    let mut log = String::new();
    eventually(Duration::from_secs(5), "nginx access log", || {
        log = std::fs::read_to_string(&access_log).unwrap_or_default();
        log.lines().count() >= cases.len()
    });
    let logged: Vec<&str> = log.lines().collect();
    let expected: Vec<&str> = cases.iter().map(|c| c.3.as_str()).collect();
    assert_eq!(
        logged, expected,
        "nginx logged the proxy or a v4-mapped address"
    );
}

#[test]
fn proxy_v2_header_is_af_inet_for_ipv4_clients_and_carries_a_unique_id() {
    if !require_privileges("proxy_v2_header_is_af_inet_for_ipv4_clients_and_carries_a_unique_id") {
        return;
    }
    let config = format!(
        "[[rule]]\ntag = \"v2\"\nports = \"15003\"\norigins = [\"{}\"]\norigin_ports = \"9000\"\npass_client_ip = \"ppv2\"\nppv2_unique_id = true\n",
        addr::ORIGIN_V6
    );
    let mut lab = ProxyLab::start("ppcap", &config, 15003);
    let peer = lab.peer.clone();
    let capture = lab.spawn_origin(
        &["python3", &peer, "capture", addr::ORIGIN_V6, "9000"],
        9000,
    );
    let send = "import socket,sys; s=socket.socket(); s.bind(('198.18.1.2', 42001)); s.connect(('198.18.1.1', 15003)); s.sendall(b'helloEND'); s.close()";
    lab.topo.client.run(&["python3", "-c", send]).unwrap();
    let mut out = String::new();
    eventually(Duration::from_secs(5), "capture", || {
        out = std::fs::read_to_string(&capture.log).unwrap_or_default();
        out.contains("hex")
    });
    let bytes = field(out.lines().find(|l| l.contains("hex")).unwrap(), "hex");
    let signature = "0d0a0d0a000d0a515549540a";
    // v2 PROXY, AF_INET/STREAM, 12 address bytes + UNIQUE_ID TLV (3 + 16) = 31 bytes.
    let fixed = format!("{signature}21{:02x}{:04x}", 0x11, 12 + 3 + 16);
    assert!(bytes.starts_with(&fixed), "{bytes}");
    let addresses = format!("c6120102c6120101{:04x}{:04x}", 42001, 15003);
    assert_eq!(
        &bytes[32..56],
        addresses,
        "src 198.18.1.2:42001, dst 198.18.1.1:15003"
    );
    assert_eq!(&bytes[56..62], "050010", "UNIQUE_ID TLV of 16 bytes");
    assert_eq!(
        &bytes[62 + 32..],
        hex("helloEND"),
        "payload follows the header untouched"
    );
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}
