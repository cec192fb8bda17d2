//! The Python data peer (`peer.py`) and the raw client, run in the client namespace,
//! and reading their one-line JSON reports.

use std::time::Duration;

use toa_lab::Spawned;

use super::{ProxyLab, eventually};

impl ProxyLab {
    /// Runs `peer.py MODE ARGS...` in the client namespace to completion; its one JSON line.
    pub fn peer_line(&self, args: &[&str]) -> String {
        let mut cmd = vec!["timeout", "60", "python3", self.peer.as_str()];
        cmd.extend_from_slice(args);
        self.topo
            .client
            .run(&cmd)
            .unwrap_or_else(|e| panic!("peer.py {args:?} failed: {e}\n{}", self.proxy_log()))
            .trim()
            .to_string()
    }

    /// Starts `peer.py MODE ARGS...` in the client namespace and waits for its first line.
    pub fn spawn_peer(&mut self, args: &[&str]) -> (Spawned, String) {
        let peer = self.peer.clone();
        self.spawn_python(&[&[peer.as_str()], args].concat())
    }

    fn spawn_python(&mut self, args: &[&str]) -> (Spawned, String) {
        let mut cmd = vec!["python3"];
        cmd.extend_from_slice(args);
        let cmd: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
        let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
        let s = self.topo.lab.spawn(&self.topo.client, None, &cmd).unwrap();
        let mut line = String::new();
        eventually(Duration::from_secs(30), "peer report", || {
            line = std::fs::read_to_string(&s.log).unwrap_or_default();
            line.contains('}')
        });
        (s, line.trim().to_string())
    }
}

/// A client in `ns` sending one byte a second to 127.0.0.1:`port` (peer.py `trickle`,
/// 30 bytes at most): asserts the server closed it, and returns after how many seconds.
pub fn trickle_until_closed(ns: &toa_lab::Netns, peer: &str, port: u16) -> f64 {
    let port = port.to_string();
    let out = ns
        .run(&[
            "timeout",
            "60",
            "python3",
            peer,
            "trickle",
            "127.0.0.1",
            &port,
            "30",
        ])
        .unwrap();
    assert_eq!(field(&out, "closed"), "true", "{out}");
    field(&out, "seconds").parse().unwrap()
}

/// The value of `key` in a one-line JSON object printed by peer.py (strings and numbers).
pub fn field(line: &str, key: &str) -> String {
    let start = line
        .find(&format!("\"{key}\": "))
        .unwrap_or_else(|| panic!("no {key} in {line}"))
        + key.len()
        + 4;
    line[start..]
        .split([',', '}'])
        .next()
        .unwrap()
        .trim()
        .trim_matches('"')
        .to_string()
}

/// A client that writes `parts` (raw bytes) with a pause between them, then prints what
/// comes back until the server closes; prints nothing if the connection is refused or reset.
const RAW_CLIENT: &str = r#"
import socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
try:
    for part in sys.argv[3:]:
        s.sendall(bytes.fromhex(part))
        time.sleep(0.2)
    out = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        out += d
except OSError:
    out = b""
sys.stdout.write(out.decode("latin-1"))
"#;

impl ProxyLab {
    /// Sends `parts` from the client to host:port through [`RAW_CLIENT`]; the reply.
    pub fn send_raw(&self, host: &str, port: u16, parts: &[&[u8]]) -> String {
        let hex: Vec<String> = parts
            .iter()
            .map(|p| p.iter().map(|b| format!("{b:02x}")).collect())
            .collect();
        let port = port.to_string();
        let mut cmd = vec!["python3", "-c", RAW_CLIENT, host, port.as_str()];
        cmd.extend(hex.iter().map(String::as_str));
        self.topo
            .client
            .run(&cmd)
            .unwrap_or_else(|e| panic!("raw client failed: {e}\nproxy log:\n{}", self.proxy_log()))
    }
}
