//! TOA mode under a supervisor: `toa proxy` attaches its edge writer to the cgroup it
//! was started in and stays there (a process in the cgroup2 root moves into a child of
//! it instead), and a SIGKILLed proxy leaves nothing that breaks the next start.

#[path = "support/http.rs"]
mod http;
#[path = "support/log.rs"]
mod logs;
mod proxy_support;
#[path = "support/receiver.rs"]
mod receiver;

use std::path::Path;
use std::time::Duration;

use http::http_server;
use logs::wait_log;
use proxy_support::{ProxyLab, eventually, exited};
use receiver::{LoadedOrigin, TOA};
use toa_lab::{Spawned, addr, require_privileges};

/// The `0::` line of a process's /proc/PID/cgroup.
fn cgroup_of(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or_default()
        .to_string()
}

/// The sock_ops programs attached directly to `cgroup`, as `bpftool` lists them.
fn sock_ops_attached(cgroup: &Path) -> usize {
    let out = std::process::Command::new("bpftool")
        .args(["cgroup", "show", cgroup.to_str().unwrap()])
        .output()
        .expect("bpftool");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("sock_ops"))
        .count()
}

/// The TOA lab: a receiver on the origin's cgroup, `python3 -m http.server` behind it,
/// and a TOA rule on port 17200 of the edge.
struct ToaLab {
    lab: ProxyLab,
    origin: Spawned,
    /// Client connections made so far (each from its own source port).
    requests: usize,
    _receiver: LoadedOrigin,
}

impl ToaLab {
    fn new(tag: &str) -> ToaLab {
        let mut lab = ProxyLab::new(tag);
        let origin_cgroup = lab.topo.lab.cgroup("origin").unwrap();
        let receiver = LoadedOrigin::load(&origin_cgroup, &["--trust-any"]);
        let origin = lab.spawn_origin_in(
            Some(&origin_cgroup),
            &http_server(addr::ORIGIN_V4, "8000"),
            8000,
        );
        std::fs::write(
            &lab.config,
            format!(
                "[[rule]]\ntag = \"toa\"\nports = \"17200\"\norigins = [\"{}\"]\norigin_ports = \"8000\"\npass_client_ip = \"toa\"\n",
                addr::ORIGIN_V4
            ),
        )
        .unwrap();
        ToaLab {
            lab,
            origin,
            requests: 0,
            _receiver: receiver,
        }
    }

    /// Starts `toa proxy` on the edge inside `cgroup` and waits for the writer.
    fn start_proxy(&mut self, cgroup: &Path) -> Spawned {
        let cmd = [TOA, "proxy", "--config", self.lab.config.to_str().unwrap()];
        let edge = self.lab.topo.edge.clone();
        let proxy = self.lab.topo.lab.spawn(&edge, Some(cgroup), &cmd).unwrap();
        edge.wait_listening(17200, false, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("{e}\n{}", std::fs::read_to_string(&proxy.log).unwrap()));
        wait_log(&proxy.log, "TOA edge writer attached");
        proxy
    }

    /// One request through the proxy; the origin must log the real client for it.
    fn assert_client_seen(&mut self) {
        self.requests += 1;
        let port = 43100 + self.requests as u16;
        self.lab
            .get(addr::EDGE_CLIENT_SIDE_V4, 17200, "/", Some(port))
            .unwrap();
        let seen = || {
            std::fs::read_to_string(&self.origin.log)
                .unwrap_or_default()
                .lines()
                .filter(|l| l.starts_with(&format!("{} - - [", addr::CLIENT_V4)))
                .count()
        };
        eventually(
            Duration::from_secs(5),
            "the client in the origin log",
            || seen() == self.requests,
        );
        let log = std::fs::read_to_string(&self.origin.log).unwrap();
        assert!(
            !log.contains(addr::EDGE_ORIGIN_SIDE_V4),
            "origin saw the edge:\n{log}"
        );
    }

    /// SIGKILL: no Drop, no cleanup code runs.
    fn kill_hard(&mut self, proxy: &Spawned) {
        // SAFETY: signalling the proxy this test started.
        unsafe { libc::kill(proxy.pid as i32, libc::SIGKILL) };
        eventually(Duration::from_secs(10), "proxy killed", || {
            exited(proxy.pid)
        });
        self.lab.topo.lab.kill(proxy);
    }
}

#[test]
fn toa_proxy_stays_in_its_cgroup_and_a_sigkilled_one_leaves_nothing_behind() {
    if !require_privileges(
        "toa_proxy_stays_in_its_cgroup_and_a_sigkilled_one_leaves_nothing_behind",
    ) {
        return;
    }
    let mut toa = ToaLab::new("psup");
    let cgroup = toa.lab.topo.lab.cgroup("proxy").unwrap();
    let relative = format!("/{}", cgroup.file_name().unwrap().to_str().unwrap());
    for round in 1..=2 {
        let proxy = toa.start_proxy(&cgroup);
        // Still where it was started: the writer sits on that cgroup, not on a new one.
        assert_eq!(cgroup_of(proxy.pid), relative, "round {round}");
        assert_eq!(sock_ops_attached(&cgroup), 1, "round {round}");
        assert!(
            std::fs::read_dir(&cgroup)
                .unwrap()
                .flatten()
                .all(|e| !e.file_type().unwrap().is_dir()),
            "round {round}: the proxy made a child cgroup"
        );
        toa.assert_client_seen();
        // The writer goes with the process: the next start finds a clean cgroup.
        toa.kill_hard(&proxy);
        eventually(Duration::from_secs(10), "writer detached", || {
            sock_ops_attached(&cgroup) == 0
        });
    }
}

#[test]
fn a_proxy_in_the_cgroup2_root_uses_a_child_and_a_killed_ones_child_goes_at_next_start() {
    if !require_privileges(
        "a_proxy_in_the_cgroup2_root_uses_a_child_and_a_killed_ones_child_goes_at_next_start",
    ) {
        return;
    }
    let mut toa = ToaLab::new("proot");
    let root = Path::new(toa_lab::CGROUP2_ROOT);
    // Never the root itself: a child of it, named after the process.
    let first = toa.start_proxy(root);
    let child = format!("toa-proxy/{}", first.pid);
    assert_eq!(cgroup_of(first.pid), format!("/{child}"));
    toa.assert_client_seen();
    toa.kill_hard(&first);
    assert!(root.join(&child).is_dir(), "SIGKILL ran no cleanup");

    // The next start removes the dead proxy's child and works.
    let second = toa.start_proxy(root);
    assert!(!root.join(&child).exists(), "stale {child} left behind");
    toa.assert_client_seen();
    // A clean stop moves back and removes its own child.
    let own = root.join(format!("toa-proxy/{}", second.pid));
    assert!(own.is_dir());
    toa.lab.topo.lab.kill(&second);
    assert!(!own.exists(), "{} left after SIGTERM", own.display());
}
