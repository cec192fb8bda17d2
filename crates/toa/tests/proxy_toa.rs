//! TOA mode end to end: `toa proxy` writes the client into a TCP option on the upstream
//! SYN and handshake ACK (eBPF edge writer), `toa origin load` on the origin's cgroup
//! reads it, and an unmodified `python3 -m http.server` logs the real client.

#[path = "support/http.rs"]
mod http;
#[path = "support/log.rs"]
mod logs;
mod proxy_support;
#[path = "support/receiver.rs"]
mod receiver;

use std::time::Duration;

use http::http_server;
use logs::wait_log;
use proxy_support::{ProxyLab, eventually};
use receiver::LoadedOrigin;
use toa_lab::{addr, require_privileges};

/// The TOA option as it appears in the packet: kind 254, length 8 or 20, port, address.
fn toa_hex(port: u16, ip: &str) -> String {
    let octets = match ip.parse::<std::net::IpAddr>().unwrap() {
        std::net::IpAddr::V4(v4) => v4.octets().to_vec(),
        std::net::IpAddr::V6(v6) => v6.octets().to_vec(),
    };
    let hex: String = octets.iter().map(|b| format!("{b:02x}")).collect();
    format!("fe{:02x}{port:04x}{hex}", 4 + octets.len())
}

/// One captured packet from `tcpdump -nn -x`: its summary line and its bytes as hex.
struct Packet {
    summary: String,
    hex: String,
}

fn packets(dump: &str) -> Vec<Packet> {
    let mut out: Vec<Packet> = Vec::new();
    for line in dump.lines() {
        if line.starts_with(|c: char| c.is_ascii_digit()) {
            out.push(Packet {
                summary: line.to_string(),
                hex: String::new(),
            });
        } else if let (Some(p), Some(bytes)) =
            (out.last_mut(), line.trim_start().strip_prefix("0x"))
        {
            // "0x0010:  4500 003c ..." → the words after the offset.
            let words = bytes.split_once(':').map_or("", |(_, w)| w);
            p.hex
                .extend(words.split_whitespace().flat_map(|w| w.chars()));
        }
    }
    out
}

#[test]
fn origin_logs_the_real_ipv4_and_ipv6_client_and_the_option_is_on_syn_and_handshake_ack() {
    if !require_privileges(
        "origin_logs_the_real_ipv4_and_ipv6_client_and_the_option_is_on_syn_and_handshake_ack",
    ) {
        return;
    }
    let config = format!(
        r#"
[[rule]]
tag = "v4"
ports = "16000"
origins = ["{o4}"]
origin_ports = "8000"
pass_client_ip = "toa"

[[rule]]
tag = "v6"
ports = "16001"
origins = ["{o6}"]
origin_ports = "8001"
pass_client_ip = "toa"

[[rule]]
tag = "v4-client-v6-origin"
listen = ["{e4}"]
ports = "16002"
origins = ["{o6}"]
origin_ports = "8001"
pass_client_ip = "toa"
"#,
        o4 = addr::ORIGIN_V4,
        o6 = addr::ORIGIN_V6,
        e4 = addr::EDGE_CLIENT_SIDE_V4,
    );
    let mut lab = ProxyLab::start("ptoa", &config, 16000);
    let cgroup = lab.topo.lab.cgroup("origin").unwrap();
    let _receiver = LoadedOrigin::load(&cgroup, &["--trust-any"]);
    let pcap = lab.topo.lab.dir().join("origin.pcap");
    let tcpdump = lab
        .topo
        .lab
        .spawn(
            &lab.topo.origin,
            None,
            &[
                "tcpdump",
                "-i",
                "any",
                "-U",
                "-nn",
                "-w",
                pcap.to_str().unwrap(),
                "tcp port 8000 or tcp port 8001",
            ],
        )
        .unwrap();
    wait_log(&tcpdump.log, "listening on");
    let v4 = lab.spawn_origin_in(Some(&cgroup), &http_server(addr::ORIGIN_V4, "8000"), 8000);
    let v6 = lab.spawn_origin_in(Some(&cgroup), &http_server(addr::ORIGIN_V6, "8001"), 8001);

    // IPv4 client to an IPv4 origin, and an IPv6 client to an IPv6 origin.
    lab.get(addr::EDGE_CLIENT_SIDE_V4, 16000, "/", Some(43001))
        .unwrap();
    lab.get(addr::EDGE_CLIENT_SIDE_V6, 16001, "/", Some(43002))
        .unwrap();
    // An IPv4 client whose upstream is IPv6: still the IPv4 form of the option.
    lab.get(addr::EDGE_CLIENT_SIDE_V4, 16002, "/", Some(43003))
        .unwrap();

    let log = wait_log(&v4.log, "\"GET / HTTP/1.1\"");
    assert!(
        log.contains(&format!("{} - - [", addr::CLIENT_V4)),
        "IPv4 origin log:\n{log}"
    );
    let log = wait_log(&v6.log, "\"GET / HTTP/1.1\"");
    assert!(
        log.contains(&format!("{} - - [", addr::CLIENT_V6)),
        "IPv6 origin log:\n{log}"
    );
    let log = wait_log(&v6.log, &format!("::ffff:{} - - [", addr::CLIENT_V4));
    assert!(
        !log.contains(addr::EDGE_ORIGIN_SIDE_V6),
        "IPv6 origin saw the edge:\n{log}"
    );
    eventually(Duration::from_secs(5), "options counted", || {
        lab.metric("toa_proxy_toa_options_written_total")
            .unwrap_or(0)
            >= 4
    });
    assert_eq!(lab.metric("toa_proxy_toa_options_failed_total"), Some(0));
    // Every counter of the edge writer is exported (iterated, so a new one cannot escape).
    let metrics = lab.metrics();
    let edge = |name: &str| edge_counter(&metrics, name);
    for counter in toa_loader::EdgeCounter::ALL {
        edge(counter.name());
    }
    assert!(edge("connect_registered") >= 3, "{metrics}");
    assert!(edge("registered") >= 3, "{metrics}");
    assert!(edge("options_written") >= 4, "{metrics}");
    assert_eq!(edge("flags_failed") + edge("store_failed"), 0, "{metrics}");

    // The packets on the origin's wire: the option on the SYN and on the ACK completing
    // the handshake, IPv4 form (length 8) for the IPv4 client, IPv6 form for the IPv6 one.
    // tcpdump writes each packet as it reads it, but may still be reading: poll the file
    // until both connections' requests are in, then stop it.
    let read_pcap = || {
        let out = lab
            .topo
            .origin
            .output(&["tcpdump", "-r", pcap.to_str().unwrap(), "-nn", "-x"])
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let mut dump = String::new();
    eventually(
        Duration::from_secs(10),
        "client connections in the capture",
        || {
            dump = read_pcap();
            // tcpdump names option 254 "exp-" plus its first two bytes, the client port.
            [43001u16, 43002, 43003].iter().all(|port| {
                dump.lines()
                    .any(|l| l.contains("Flags [P.]") && l.contains(&format!("exp-{port:04x}")))
            })
        },
    );
    lab.topo.lab.kill(&tcpdump);
    let packets = packets(&dump);
    for (edge, origin, client_port, client) in [
        (
            addr::EDGE_ORIGIN_SIDE_V4,
            format!("{}.8000", addr::ORIGIN_V4),
            43001,
            addr::CLIENT_V4,
        ),
        (
            addr::EDGE_ORIGIN_SIDE_V6,
            format!("{}.8001", addr::ORIGIN_V6),
            43002,
            addr::CLIENT_V6,
        ),
        (
            addr::EDGE_ORIGIN_SIDE_V6,
            format!("{}.8001", addr::ORIGIN_V6),
            43003,
            addr::CLIENT_V4,
        ),
    ] {
        let option = toa_hex(client_port, client);
        let to_origin: Vec<&Packet> = packets
            .iter()
            .filter(|p| {
                p.summary.contains(&format!(" {edge}."))
                    && p.summary.contains(&format!(" > {origin}:"))
            })
            .collect();
        // Health checks connect too, from unregistered sockets and so without the option:
        // the client's connection is the one whose SYN carries it.
        let syn = to_origin
            .iter()
            .find(|p| p.summary.contains("Flags [S]") && p.hex.contains(&option))
            .unwrap_or_else(|| panic!("no SYN to {origin} carries {option}:\n{dump}"));
        let source = syn
            .summary
            .split(" > ")
            .next()
            .unwrap()
            .split_whitespace()
            .last()
            .unwrap();
        let ack = to_origin
            .iter()
            .find(|p| {
                p.summary.contains(&format!(" {source} > ")) && p.summary.contains("Flags [.]")
            })
            .unwrap_or_else(|| panic!("no ACK from {source}:\n{dump}"));
        assert!(
            ack.hex.contains(&option),
            "handshake ACK without {option}:\n{}\n{}",
            ack.summary,
            ack.hex
        );
    }

    // The option kind is fixed once the writer is attached: a reload that changes it is
    // rejected whole, and the running config keeps working.
    let changed = std::fs::read_to_string(&lab.config).unwrap() + "\n[toa]\nkind = 200\n";
    lab.reload(&changed);
    eventually(Duration::from_secs(5), "kind change rejected", || {
        lab.proxy_log().contains("reload rejected, old config still running: proxy: rule \"v4\": [toa] kind changed from 254 to 200; restart the proxy to change it")
    });
    lab.get(addr::EDGE_CLIENT_SIDE_V4, 16000, "/", None)
        .unwrap();
}

/// The edge writer's counter `name` in a scrape of the proxy's metrics.
fn edge_counter(metrics: &str, name: &str) -> u64 {
    let series = format!("toa_proxy_edge_writer_total{{counter=\"{name}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&series)?.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("{series}missing:\n{metrics}"))
}

/// A proxy config with one TOA rule from `port` to the IPv4 origin's `origin_port`.
fn one_toa_rule(port: u16, origin_port: u16) -> String {
    format!(
        "[[rule]]\ntag = \"v4\"\nports = \"{port}\"\norigins = [\"{}\"]\norigin_ports = \"{origin_port}\"\npass_client_ip = \"toa\"\n",
        addr::ORIGIN_V4
    )
}

/// TCP_NODELAY of socket `fd` of process `pid`, read from a duplicate of it.
fn peer_socket_nodelay(pid: u32, fd: i32) -> std::io::Result<bool> {
    let dup = proxy_support::peer_fd(pid, fd)?;
    let mut on: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt into a c_int we own, on a descriptor we own.
    let rc = unsafe {
        libc::getsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&dup),
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            std::ptr::from_mut(&mut on).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(on != 0)
}

/// The registration that makes the edge writer tag an upstream socket is the same
/// setsockopt that turns TCP_NODELAY on (one system call for both): an upstream socket
/// of a TOA rule has TCP_NODELAY, and the writer counted the registration.
#[test]
fn toa_upstream_sockets_have_nodelay_and_their_registration_is_counted() {
    if !require_privileges("toa_upstream_sockets_have_nodelay_and_their_registration_is_counted") {
        return;
    }
    let config = one_toa_rule(16010, 8010);
    let mut lab = ProxyLab::start("ptoand", &config, 16010);
    lab.spawn_origin(&http_server(addr::ORIGIN_V4, "8010"), 8010);
    // A client that connects and stays: the proxy holds its upstream socket open.
    let holder = format!(
        "import socket, signal\ns = socket.create_connection(('{}', 16010))\nsignal.pause()",
        addr::EDGE_CLIENT_SIDE_V4
    );
    lab.topo
        .lab
        .spawn(&lab.topo.client, None, &["python3", "-c", &holder])
        .unwrap();
    // The proxy's established sockets towards the origin, as (pid, fd). Health checks
    // connect too (without TOA, and closing at once): only sockets seen twice count.
    let upstream = |lab: &ProxyLab| -> Vec<(u32, i32)> {
        let out = lab
            .topo
            .edge
            .run(&["ss", "-tnpH", "state", "established", "dport", "= :8010"])
            .unwrap_or_default();
        out.lines()
            .flat_map(|l| {
                l.split("pid=")
                    .skip(1)
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .filter_map(|p| {
                let (pid, rest) = p.split_once(",fd=")?;
                let fd: String = rest.chars().take_while(char::is_ascii_digit).collect();
                Some((pid.parse().ok()?, fd.parse().ok()?))
            })
            .collect()
    };
    let mut held = Vec::new();
    eventually(Duration::from_secs(10), "the held upstream socket", || {
        let first = upstream(&lab);
        std::thread::sleep(Duration::from_millis(300));
        let second = upstream(&lab);
        held = first.into_iter().filter(|s| second.contains(s)).collect();
        !held.is_empty()
    });
    for (pid, fd) in &held {
        assert!(
            peer_socket_nodelay(*pid, *fd).unwrap(),
            "upstream socket fd {fd} of pid {pid} has no TCP_NODELAY"
        );
    }
    let metrics = lab.metrics();
    let edge = |name: &str| edge_counter(&metrics, name);
    assert!(edge("registered") >= 1, "{metrics}");
    assert_eq!(
        edge("register_failed") + edge("register_malformed"),
        0,
        "{metrics}"
    );
}

/// The registration is a setsockopt any process in the proxy's cgroup could make (a shell
/// exec'd into the proxy's container, another process of its unit): it must carry the
/// token only the proxy holds, or a process could make its own connections carry a client
/// address of its choosing, which the origin would believe.
#[test]
fn another_process_in_the_proxys_cgroup_cannot_register_a_client() {
    if !require_privileges("another_process_in_the_proxys_cgroup_cannot_register_a_client") {
        return;
    }
    let config = one_toa_rule(16020, 8020);
    let lab = ProxyLab::start("ptoafg", &config, 16020);
    // The writer attaches when the TOA rule loads; its cgroup is the proxy's own.
    let pid = lab.proxy().pid;
    let mut cgroup = String::new();
    eventually(Duration::from_secs(10), "the proxy's cgroup", || {
        let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        cgroup = own
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .unwrap_or("")
            .trim()
            .to_owned();
        cgroup.contains("toa-proxy/") || lab.proxy_log().contains("TOA edge writer attached")
    });
    let dir = format!("{}{}", toa_lab::CGROUP2_ROOT, cgroup);
    // The value layout of toa_common::edge::EdgeRegistration: a client (16-byte address,
    // port, family, pad), 4 bytes of padding and a token, here a guess.
    let forger = r#"
import socket, struct
value = bytes(10) + b"\xff\xff" + bytes([203, 0, 113, 7]) + struct.pack("!H", 4242) + bytes([4, 0]) + bytes(4) + struct.pack("=Q", 0x5EC2E7)
s = socket.socket()
try:
    s.setsockopt(6, 0x544F4152, value)
    print("registered")
except OSError as e:
    print("refused", e.errno)
"#;
    let out = std::process::Command::new("sh")
        .args([
            "-c",
            &format!("echo $$ > {dir}/cgroup.procs && exec python3 -c '{forger}'"),
        ])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        said.trim(),
        format!("refused {}", libc::ENOPROTOOPT),
        "a process in {dir}: {said} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    eventually(Duration::from_secs(5), "the forgery counted", || {
        lab.metric("toa_proxy_edge_writer_total{counter=\"register_foreign\"}") >= Some(1)
    });
    assert_eq!(
        lab.metric("toa_proxy_edge_writer_total{counter=\"registered\"}"),
        Some(0)
    );
}
