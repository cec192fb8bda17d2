//! Shared pieces of the proxy end-to-end tests: the standard topology with a running
//! `toa proxy` on the edge, metrics and log helpers; the Python data peer in `peer`,
//! the proxy process's descriptors in `process`, the port-range tests' shared pieces in
//! `ranges`.

#![allow(dead_code)] // each test file uses a different subset

pub mod nginx;
mod peer;
mod process;
pub mod ranges;

// Each test file uses a different subset of these too.
#[allow(unused_imports)]
pub use peer::{field, trickle_until_closed};
#[allow(unused_imports)]
pub use process::{exited, peer_fd};

use std::path::PathBuf;
use std::time::{Duration, Instant};

use toa_lab::{Spawned, Topology, addr};

pub const PEER_PY: &str = include_str!("peer.py");
/// The edge serves metrics on its own loopback; tests read them with curl in the edge.
pub const METRICS: &str = "127.0.0.1:9100";

pub struct ProxyLab {
    pub topo: Topology,
    /// `toa proxy` on the edge, once [`ProxyLab::start_proxy`] ran.
    proxy: Option<Spawned>,
    pub config: PathBuf,
    pub peer: String,
    /// Whether the proxy runs the fast test health checks (the config had no `[health]`).
    pub fast_health: bool,
    /// `RUST_LOG` for the proxy; `None` runs it at its default level, as an operator would.
    pub rust_log: Option<&'static str>,
    /// `--admin-socket` for the proxy, if any.
    pub admin_socket: Option<PathBuf>,
}

impl ProxyLab {
    /// The topology and the peer script in the lab dir; no proxy yet, so origins can be
    /// started first and the proxy's first health checks find them up.
    pub fn new(tag: &str) -> ProxyLab {
        let topo = Topology::new(tag).expect("topology");
        let peer = topo.lab.dir().join("peer.py");
        std::fs::write(&peer, PEER_PY).unwrap();
        let config = topo.lab.dir().join("proxy.toml");
        ProxyLab {
            topo,
            proxy: None,
            config,
            peer: peer.to_string_lossy().into_owned(),
            fast_health: false,
            // Debug logs name the side of every connection that ends in an error.
            rust_log: Some("info,toa_proxy=debug"),
            admin_socket: None,
        }
    }

    /// [`ProxyLab::new`], then [`ProxyLab::start_proxy`].
    pub fn start(tag: &str, config: &str, first_port: u16) -> ProxyLab {
        let mut lab = ProxyLab::new(tag);
        lab.start_proxy(config, first_port);
        lab
    }

    /// Runs `toa proxy` with `config` on the edge and waits for `first_port` and metrics.
    /// A config without `[health]` gets fast checks, so origins started after the proxy are
    /// seen up quickly (see [`ProxyLab::spawn_origin`]).
    pub fn start_proxy(&mut self, config: &str, first_port: u16) {
        self.start_proxy_under(&[], config, first_port);
    }

    /// [`ProxyLab::start_proxy`] with `toa proxy` run by `wrapper` (e.g. `setpriv ...` to
    /// start it without some capabilities, `prlimit ...` for another descriptor limit).
    pub fn start_proxy_under(&mut self, wrapper: &[&str], config: &str, first_port: u16) {
        self.fast_health = !config.contains("[health]");
        let config = if self.fast_health {
            format!(
                "[health]\ninterval = \"250ms\"\ntimeout = \"250ms\"\nrise = 1\nfall = 3\n\n{config}"
            )
        } else {
            config.to_string()
        };
        std::fs::write(&self.config, config).unwrap();
        let rust_log = self.rust_log.map(|f| format!("RUST_LOG={f}"));
        let admin = self.admin_socket.as_ref().map(|p| p.to_str().unwrap());
        let mut cmd = wrapper.to_vec();
        cmd.extend([
            "env",
            rust_log.as_deref().unwrap_or("--unset=RUST_LOG"),
            env!("CARGO_BIN_EXE_toa"),
            "proxy",
            "--config",
            self.config.to_str().unwrap(),
            "--metrics",
            METRICS,
        ]);
        cmd.extend(admin.iter().flat_map(|path| ["--admin-socket", path]));
        self.proxy = Some(
            self.topo
                .lab
                .spawn(&self.topo.edge, None, &cmd)
                .expect("spawn toa proxy"),
        );
        if let Err(e) = self
            .topo
            .edge
            .wait_listening(first_port, false, Duration::from_secs(10))
        {
            panic!("proxy not listening: {e}\n{}", self.proxy_log());
        }
        self.topo
            .edge
            .wait_listening(9100, false, Duration::from_secs(5))
            .expect("metrics listening");
    }

    pub fn proxy(&self) -> &Spawned {
        self.proxy.as_ref().expect("start_proxy ran")
    }

    pub fn proxy_log(&self) -> String {
        self.proxy
            .as_ref()
            .map(|p| std::fs::read_to_string(&p.log).unwrap_or_default())
            .unwrap_or_default()
    }

    pub fn metrics(&self) -> String {
        self.topo
            .edge
            .run(&[
                "curl",
                "-sS",
                "--max-time",
                "5",
                &format!("http://{METRICS}/metrics"),
            ])
            .expect("scrape metrics")
    }

    /// The value of one exposition line, e.g. `toa_proxy_origin_up{origin="198.18.2.2:8000"}`.
    pub fn metric(&self, series: &str) -> Option<u64> {
        self.metrics()
            .lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    /// Starts `cmd` in the origin namespace and waits until it listens on `port`.
    pub fn spawn_origin(&mut self, cmd: &[&str], port: u16) -> Spawned {
        self.spawn_origin_in(None, cmd, port)
    }

    /// [`ProxyLab::spawn_origin`] inside `cgroup` (where the TOA receiver is attached).
    pub fn spawn_origin_in(
        &mut self,
        cgroup: Option<&std::path::Path>,
        cmd: &[&str],
        port: u16,
    ) -> Spawned {
        let s = self.topo.lab.spawn(&self.topo.origin, cgroup, cmd).unwrap();
        // Another origin may already listen on the same port at another address: wait for
        // this one's own address (the first IP among its arguments).
        let ip = cmd.iter().find_map(|a| a.parse::<std::net::IpAddr>().ok());
        let local = ip
            .map(|ip| std::net::SocketAddr::new(ip, port).to_string())
            .unwrap_or(format!(":{port}"));
        let deadline = Instant::now() + toa_lab::scaled(Duration::from_secs(10));
        while !self
            .topo
            .origin
            .run(&["ss", "-Hltn"])
            .unwrap_or_default()
            .split_whitespace()
            .any(|w| w.ends_with(&local))
        {
            assert!(
                Instant::now() < deadline,
                "{local} not listening:\n{}",
                std::fs::read_to_string(&s.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
        // Checks that ran before the origin listened may have taken it down. Once every
        // check in flight has finished (timeout) and a few ran against the live origin
        // (rise = 1), the state is the origin's own.
        if self.fast_health && self.proxy.is_some() {
            std::thread::sleep(Duration::from_millis(1000));
            if let Some(ip) = ip {
                let series = format!(
                    "toa_proxy_origin_up{{origin=\"{}\"}}",
                    std::net::SocketAddr::new(ip, port)
                );
                eventually(Duration::from_secs(10), &format!("{series} up"), || {
                    self.metric(&series) != Some(0)
                });
            }
        }
        s
    }

    /// Starts a peer origin (`peer.py serve`) in the origin namespace.
    pub fn serve_peer(&mut self, host: &str, port: u16, bytes: u64, order: &str) -> Spawned {
        let peer = self.peer.clone();
        self.spawn_origin(
            &[
                "python3",
                &peer,
                "serve",
                host,
                &port.to_string(),
                &bytes.to_string(),
                order,
            ],
            port,
        )
    }

    /// Runs `peer.py client` in the client namespace; one JSON line per connection.
    pub fn run_client(
        &self,
        host: &str,
        port: u16,
        bytes: u64,
        order: &str,
        conns: usize,
    ) -> Vec<String> {
        let out = self
            .topo
            .client
            .run(&[
                "python3",
                &self.peer,
                "client",
                host,
                &port.to_string(),
                &bytes.to_string(),
                order,
                &conns.to_string(),
            ])
            .unwrap_or_else(|e| panic!("client failed: {e}\nproxy log:\n{}", self.proxy_log()));
        out.lines().map(str::to_string).collect()
    }

    /// Starts `python3 -m http.server` on the origin serving a file `who` containing `name`.
    pub fn serve_http(&mut self, host: &str, port: u16, name: &str) -> Spawned {
        let dir = self.topo.lab.dir().join(format!("www-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("who"), name).unwrap();
        self.spawn_origin(
            &[
                "python3",
                "-m",
                "http.server",
                "-b",
                host,
                "-d",
                dir.to_str().unwrap(),
                &port.to_string(),
            ],
            port,
        )
    }

    /// GET http://host:port/who from the client; the origin's name, or the curl error.
    pub fn who(&self, host: &str, port: u16) -> Result<String, String> {
        self.get(host, port, "/who", None)
    }

    /// GET `path` through the proxy at host:port from the client, optionally from a fixed
    /// source port (so a test knows the exact client address the origin must report).
    pub fn get(
        &self,
        host: &str,
        port: u16,
        path: &str,
        local_port: Option<u16>,
    ) -> Result<String, String> {
        let url = if host.contains(':') {
            format!("http://[{host}]:{port}{path}")
        } else {
            format!("http://{host}:{port}{path}")
        };
        let local = local_port.map(|p| p.to_string());
        let mut cmd = vec!["curl", "-sS", "--fail", "--max-time", "10"];
        if let Some(p) = &local {
            cmd.extend(["--local-port", p.as_str()]);
        }
        cmd.push(&url);
        self.topo
            .client
            .run(&cmd)
            .map_err(|e| format!("{e}\n{}", self.proxy_log()))
    }

    /// Whether the proxy process still runs (a zombie — exited, not yet reaped — does not).
    pub fn proxy_running(&self) -> bool {
        !exited(self.proxy().pid)
    }

    pub fn signal(&self, sig: &str) {
        self.topo
            .edge
            .run(&["kill", &format!("-{sig}"), &self.proxy().pid.to_string()])
            .unwrap();
    }

    /// Replaces the config file and sends SIGHUP.
    pub fn reload(&self, config: &str) {
        std::fs::write(&self.config, config).unwrap();
        self.signal("HUP");
    }
}

/// Adds `new` with `existing`'s prefix length on the interface that holds `existing` in `ns`.
pub fn add_address(ns: &toa_lab::Netns, existing: &str, new: &str) {
    let out = ns.run(&["ip", "-o", "addr", "show"]).unwrap();
    let line = out
        .lines()
        .find(|l| l.contains(&format!(" {existing}/")))
        .unwrap_or_else(|| panic!("{existing} not in {out}"));
    let mut words = line.split_whitespace();
    let dev = words.nth(1).unwrap();
    let prefix = line.split(&format!("{existing}/")).nth(1).unwrap();
    let prefix = prefix.split_whitespace().next().unwrap();
    ns.run(&[
        "ip",
        "addr",
        "add",
        &format!("{new}/{prefix}"),
        "dev",
        dev,
        "nodad",
    ])
    .unwrap();
}

/// Polls `check` every 100 ms until it holds or `timeout`, [`toa_lab::scaled`], passes.
pub fn eventually(timeout: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let timeout = toa_lab::scaled(timeout);
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

pub fn edge_v4() -> &'static str {
    addr::EDGE_CLIENT_SIDE_V4
}
