//! Host-name origins re-resolved while the proxy runs: the edge namespace gets its own
//! /etc/hosts (`ip netns exec` bind-mounts /etc/netns/<ns>/hosts over it, and rewriting
//! the file in place shows through), and the test changes what the name resolves to.
//! Every address is an origin of its own, new connections follow a change at once, a
//! connection already open stays where it is (and counts against its rule's limit), and a
//! failed lookup keeps the last set.

mod proxy_support;

use std::path::PathBuf;
use std::time::Duration;

use proxy_support::{ProxyLab, eventually};
use toa_lab::{addr, require_privileges};

/// An echo origin: each connection gets back what it sends.
const ECHO: &str = r#"
import socket, sys, threading
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen()
def echo(c):
    while True:
        d = c.recv(65536)
        if not d:
            break
        c.sendall(d)
    c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=echo, args=(c,), daemon=True).start()
"#;

/// /etc/netns/<ns>: created for the test, removed when dropped (pass or panic).
struct NetnsEtc(PathBuf);

impl NetnsEtc {
    fn new(ns: &str) -> NetnsEtc {
        let dir = PathBuf::from("/etc/netns").join(ns);
        std::fs::create_dir_all(&dir).unwrap();
        // No nameserver reachable: a name missing from hosts fails at once, with no traffic.
        std::fs::write(
            dir.join("resolv.conf"),
            "nameserver 127.0.0.1\noptions attempts:1 timeout:1\n",
        )
        .unwrap();
        NetnsEtc(dir)
    }

    /// Rewrites hosts in place (same inode), so the bind mount shows the new content.
    fn hosts(&self, lines: &[&str]) {
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(self.0.join("hosts"), format!("127.0.0.1 localhost\n{text}")).unwrap();
    }
}

impl Drop for NetnsEtc {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_host_name_origin_follows_its_changing_addresses() {
    if !require_privileges("a_host_name_origin_follows_its_changing_addresses") {
        return;
    }
    let mut lab = ProxyLab::new("pres");
    let etc = NetnsEtc::new(&lab.topo.edge.name);
    let v4 = format!("{} origin.test", addr::ORIGIN_V4);
    let v6 = format!("{} origin.test", addr::ORIGIN_V6);
    etc.hosts(&[&v4]);
    lab.serve_http(addr::ORIGIN_V4, 8000, "v4");
    lab.serve_http(addr::ORIGIN_V6, 8000, "v6");
    lab.spawn_origin(&["python3", "-c", ECHO, addr::ORIGIN_V4, "8001"], 8001);
    let config = "[proxy]\nresolve_interval = \"10s\"\n\n\
         [[rule]]\ntag = \"named\"\nports = \"17100\"\norigins = [\"origin.test\"]\norigin_ports = \"8000\"\nresolve_interval = \"300ms\"\n\n\
         [[rule]]\ntag = \"held\"\nports = \"17101\"\norigins = [\"origin.test\"]\norigin_ports = \"8001\"\nresolve_interval = \"300ms\"\nmax_connections = 1\n";
    lab.start_proxy(config, 17100);
    let edge = addr::EDGE_CLIENT_SIDE_V4;
    let who = || lab.who(edge, 17100).unwrap_or_else(|e| panic!("{e}"));
    for _ in 0..3 {
        assert_eq!(who(), "v4");
    }

    // A connection open before the change: it must stay on its origin (once that is up).
    let held_origin = format!("toa_proxy_origin_up{{origin=\"{}:8001\"}}", addr::ORIGIN_V4);
    eventually(Duration::from_secs(10), &held_origin, || {
        lab.metric(&held_origin) == Some(1)
    });
    let mut held = std::process::Command::new("ip")
        .args(["netns", "exec", &lab.topo.client.name, "python3", "-c"])
        .arg(format!(
            "import socket,sys\ns=socket.create_connection(('{edge}',17101),timeout=10)\ns.sendall(b'before')\nassert s.recv(6)==b'before'\nprint('open', flush=True)\nsys.stdin.readline()\ns.sendall(b'after')\nprint(s.recv(5).decode())"
        ))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // It sends its second part when told (a line on its stdin), after every change below.
    let mut held_in = held.stdin.take().unwrap();
    // Changes start only once the connection is open and has been through to its origin.
    let mut held_out = std::io::BufReader::new(held.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut held_out, &mut line).unwrap();
    assert_eq!(
        line.trim(),
        "open",
        "the held connection did not open:\n{}",
        lab.proxy_log()
    );

    // Both an A and an AAAA record: two origins under one name, each with its own health.
    etc.hosts(&[&v4, &v6]);
    eventually(Duration::from_secs(10), "both addresses used", || {
        let seen: Vec<String> = (0..4).map(|_| who()).collect();
        seen.iter().any(|s| s == "v4") && seen.iter().any(|s| s == "v6")
    });
    // A changed set is applied like a reload: the held rule keeps its count of open
    // connections (1 of max_connections = 1) instead of getting a fresh quota.
    assert_eq!(lab.send_raw(edge, 17101, &[b"second"]), "");
    let refused = "toa_proxy_connections_rejected_total{rule=\"held\",reason=\"rule_limit\"}";
    eventually(Duration::from_secs(5), refused, || {
        lab.metric(refused) == Some(1)
    });
    for a in [
        format!("{}:8000", addr::ORIGIN_V4),
        format!("[{}]:8000", addr::ORIGIN_V6),
    ] {
        let series = format!("toa_proxy_origin_up{{origin=\"{a}\"}}");
        eventually(Duration::from_secs(10), &series, || {
            lab.metric(&series) == Some(1)
        });
    }

    // Only the AAAA record left: new connections go there at once.
    etc.hosts(&[&v6]);
    eventually(Duration::from_secs(10), "only the new address used", || {
        (0..4).all(|_| who() == "v6")
    });

    // The name stops resolving: the last good set stays.
    etc.hosts(&[]);
    eventually(Duration::from_secs(10), "the failed lookup logged", || {
        lab.proxy_log()
            .contains("origin lookup failed, keeping its last addresses")
    });
    for _ in 0..4 {
        assert_eq!(who(), "v6");
    }

    std::io::Write::write_all(&mut held_in, b"go\n").unwrap();
    drop(held_in);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut held_out, &mut rest).unwrap();
    let out = held.wait_with_output().unwrap();
    assert_eq!(
        rest.trim(),
        "after",
        "the open connection was cut: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        lab.proxy_log()
    );
}
