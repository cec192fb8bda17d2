//! The things measured: no proxy ("direct", the ceiling), toa proxy, HAProxy
//! (`mode tcp`), nginx stream and socat. Each proxy runs in the edge namespace,
//! in its own cgroup (so its CPU and memory are read whole), forwarding its own
//! port block to the same origin services, with a configuration file written
//! next to the results.

use anyhow::Context;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toa_lab::{Spawned, Topology, addr};

/// What the origin offers, one port each (see `serve::Mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Respond,
    Sink,
    Hold,
    RespondPpv2,
    Getpeername,
}

impl Service {
    pub const ALL: [Service; 5] = [
        Service::Respond,
        Service::Sink,
        Service::Hold,
        Service::RespondPpv2,
        Service::Getpeername,
    ];

    fn offset(self) -> u16 {
        self as u16
    }

    pub fn origin_port(self) -> u16 {
        10000 + self.offset()
    }

    /// The `toa-bench serve --listen` argument for this service.
    pub fn listen_arg(self) -> String {
        let mode = match self {
            Service::Respond => "respond",
            Service::Sink => "sink",
            Service::Hold => "hold",
            Service::RespondPpv2 => "respond-ppv2",
            Service::Getpeername => "getpeername",
        };
        format!("{}:{}={mode}", addr::ORIGIN_V4, self.origin_port())
    }
}

/// How the proxy passes the client address to the origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientIp {
    Off,
    Toa,
    Ppv2,
}

impl ClientIp {
    fn offset(self) -> u16 {
        match self {
            ClientIp::Off => 0,
            ClientIp::Toa => 100,
            ClientIp::Ppv2 => 200,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    Direct,
    Toa,
    Haproxy,
    Nginx,
    Socat,
    /// The toa binary `--toa-variant` number n (see [`crate::variants`]).
    Variant(u8),
}

impl Target {
    pub const ALL: [Target; 5] = [
        Target::Direct,
        Target::Toa,
        Target::Haproxy,
        Target::Nginx,
        Target::Socat,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Target::Direct => "direct",
            Target::Toa => "toa proxy",
            Target::Haproxy => "HAProxy",
            Target::Nginx => "nginx stream",
            Target::Socat => "socat",
            Target::Variant(i) => crate::variants::get(i).label,
        }
    }

    fn port_base(self) -> u16 {
        match self {
            Target::Direct => 10000,
            Target::Toa => 11000,
            Target::Haproxy => 12000,
            Target::Nginx => 13000,
            Target::Socat => 14000,
            Target::Variant(i) => 15000 + 1000 * u16::from(i),
        }
    }

    /// Where the load generator connects, and from which namespace, to reach
    /// `service` through this target. Direct runs from the edge namespace, the
    /// only one that routes to the origin.
    pub fn endpoint(self, service: Service, mode: ClientIp) -> (Side, SocketAddr) {
        if self == Target::Direct {
            let a = SocketAddr::new(addr::ORIGIN_V4.parse().unwrap(), service.origin_port());
            return (Side::Edge, a);
        }
        let port = self.port_base() + mode.offset() + service.offset();
        let a = SocketAddr::new(addr::EDGE_CLIENT_SIDE_V4.parse().unwrap(), port);
        (Side::Client, a)
    }

    /// The (service, mode) pairs this target forwards. Only toa proxy offers
    /// TOA and PROXY v2; socat has no place in the idle-memory scenario (one
    /// process per connection).
    fn routes(self) -> Vec<(Service, ClientIp)> {
        let plain = [Service::Respond, Service::Sink, Service::Hold];
        let mut r: Vec<_> = plain.iter().map(|s| (*s, ClientIp::Off)).collect();
        if self.is_toa() {
            r.push((Service::Respond, ClientIp::Toa));
            r.push((Service::Getpeername, ClientIp::Toa));
            r.push((Service::RespondPpv2, ClientIp::Ppv2));
        }
        if self == Target::Socat {
            r.retain(|(s, _)| *s != Service::Hold);
        }
        r
    }

    /// toa proxy itself or one of the `--toa-variant` binaries.
    pub fn is_toa(self) -> bool {
        matches!(self, Target::Toa | Target::Variant(_))
    }

    pub fn holds_idle(self) -> bool {
        self != Target::Socat
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Edge,
}

/// A proxy under test: its cgroup, its processes, and how to (re)start it.
pub struct Peer {
    pub target: Target,
    pub cgroup: PathBuf,
    commands: Vec<Vec<String>>,
    running: Vec<Spawned>,
}

impl Peer {
    /// Writes the configuration into `config_dir` and prepares the cgroup;
    /// call [`Peer::start`] to run it.
    /// `nofile` is the descriptor limit the peer inherits; its connection
    /// limits are set to fit in it.
    pub fn new(
        topo: &mut Topology,
        target: Target,
        toa: &Path,
        config_dir: &Path,
        nofile: u64,
    ) -> anyhow::Result<Peer> {
        let routes = target.routes();
        let commands = match target {
            Target::Direct => anyhow::bail!("direct has no proxy process"),
            Target::Toa => toa_proxy(toa, target, &routes, config_dir)?,
            Target::Variant(i) => {
                toa_proxy(&crate::variants::get(i).toa, target, &routes, config_dir)?
            }
            Target::Haproxy => haproxy(target, &routes, config_dir, nofile)?,
            Target::Nginx => nginx(target, &routes, config_dir, nofile)?,
            Target::Socat => socat(target, &routes, config_dir)?,
        };
        let cgroup = match target {
            // Its own prefix: a label can never take another peer's or the origin's cgroup.
            Target::Variant(_) => topo.lab.cgroup(&format!("toa-variant-{}", target.name()))?,
            _ => topo.lab.cgroup(&target.name().replace(' ', "-"))?,
        };
        Ok(Peer {
            target,
            cgroup,
            commands,
            running: Vec::new(),
        })
    }

    pub fn start(&mut self, topo: &mut Topology) -> anyhow::Result<()> {
        for cmd in &self.commands {
            let argv: Vec<&str> = cmd.iter().map(String::as_str).collect();
            let s = topo.lab.spawn(&topo.edge, Some(&self.cgroup), &argv)?;
            self.running.push(s);
        }
        for (service, mode) in self.target.routes() {
            let (_, a) = self.target.endpoint(service, mode);
            topo.edge
                .wait_listening(a.port(), false, Duration::from_secs(15))
                .with_context(|| {
                    format!(
                        "{} did not start; its log: {}",
                        self.target.name(),
                        self.logs()
                    )
                })?;
        }
        Ok(())
    }

    pub fn stop(&mut self, topo: &mut Topology) {
        for s in self.running.drain(..) {
            topo.lab.kill(&s);
        }
    }

    /// Every process of this peer: those it started with, and any in its
    /// cgroup (nginx workers, socat children).
    pub fn pids(&self) -> BTreeSet<u32> {
        let mut pids = crate::procfs::cgroup_pids(&self.cgroup);
        pids.extend(self.running.iter().map(|s| s.pid));
        pids
    }

    fn logs(&self) -> String {
        self.running
            .iter()
            .map(|s| std::fs::read_to_string(&s.log).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn origin(service: Service) -> String {
    format!("{}:{}", addr::ORIGIN_V4, service.origin_port())
}

fn listen_port(target: Target, service: Service, mode: ClientIp) -> u16 {
    target.endpoint(service, mode).1.port()
}

fn toa_proxy(
    toa: &Path,
    t: Target,
    routes: &[(Service, ClientIp)],
    dir: &Path,
) -> anyhow::Result<Vec<Vec<String>>> {
    let mut cfg = String::from("# toa proxy: one rule per benchmark port, defaults otherwise.\n");
    for (service, mode) in routes {
        let pass = match mode {
            ClientIp::Off => "off",
            ClientIp::Toa => "toa",
            ClientIp::Ppv2 => "ppv2",
        };
        writeln!(
            cfg,
            "\n[[rule]]\ntag = \"bench-{port}\"\nprotocol = \"tcp\"\nlisten = [\"{edge}\"]\nports = \"{port}\"\norigins = [\"{o}\"]\norigin_ports = \"{op}\"\npass_client_ip = \"{pass}\"",
            port = listen_port(t, *service, *mode),
            edge = addr::EDGE_CLIENT_SIDE_V4,
            o = addr::ORIGIN_V4,
            op = service.origin_port(),
        )?;
    }
    let path = match t {
        Target::Variant(i) => dir.join(format!("toa-proxy-{}.toml", crate::variants::get(i).label)),
        _ => dir.join("toa-proxy.toml"),
    };
    std::fs::write(&path, cfg)?;
    Ok(vec![vec![
        toa.display().to_string(),
        "proxy".into(),
        "--config".into(),
        path.display().to_string(),
    ]])
}

fn haproxy(
    t: Target,
    routes: &[(Service, ClientIp)],
    dir: &Path,
    nofile: u64,
) -> anyhow::Result<Vec<Vec<String>>> {
    // Two descriptors per proxied connection, a few for listeners and logs.
    let maxconn = nofile.saturating_sub(128) / 2;
    let mut cfg = format!(
        "# HAProxy in mode tcp with its defaults (threads = cores); only limits and timeouts set.\n\
         global\n    maxconn {maxconn}\n\n\
         defaults\n    mode tcp\n    maxconn {maxconn}\n    timeout connect 5s\n    timeout client 15m\n    timeout server 15m\n",
    );
    for (service, mode) in routes {
        let port = listen_port(t, *service, *mode);
        writeln!(
            cfg,
            "\nlisten p{port}\n    bind {}:{port}\n    server origin {}",
            addr::EDGE_CLIENT_SIDE_V4,
            origin(*service)
        )?;
    }
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, cfg)?;
    Ok(vec![vec![
        "haproxy".into(),
        "-db".into(),
        "-f".into(),
        path.display().to_string(),
    ]])
}

fn nginx(
    t: Target,
    routes: &[(Service, ClientIp)],
    dir: &Path,
    nofile: u64,
) -> anyhow::Result<Vec<Vec<String>>> {
    let run = dir.join("nginx-run");
    std::fs::create_dir_all(&run)?;
    let mut cfg = format!(
        "# nginx stream with its defaults (worker_processes auto); only limits, paths and\n\
         # proxy_half_close (off by default: the bulk test half-closes to collect the byte count).\n\
         load_module /usr/lib/nginx/modules/ngx_stream_module.so;\n\
         daemon off;\nworker_processes auto;\nworker_rlimit_nofile {nofile};\n\
         pid {run}/nginx.pid;\nerror_log stderr warn;\n\
         events {{\n    worker_connections {nofile};\n}}\n\nstream {{\n",
        run = run.display()
    );
    for (service, mode) in routes {
        let port = listen_port(t, *service, *mode);
        writeln!(
            cfg,
            "    server {{\n        listen {}:{port} backlog=8192;\n        proxy_pass {};\n        proxy_timeout 15m;\n        proxy_half_close on;\n    }}",
            addr::EDGE_CLIENT_SIDE_V4,
            origin(*service)
        )?;
    }
    cfg.push_str("}\n");
    let path = dir.join("nginx.conf");
    std::fs::write(&path, cfg)?;
    Ok(vec![vec![
        "nginx".into(),
        "-p".into(),
        run.display().to_string(),
        "-e".into(),
        "stderr".into(),
        "-c".into(),
        path.display().to_string(),
    ]])
}

fn socat(
    t: Target,
    routes: &[(Service, ClientIp)],
    dir: &Path,
) -> anyhow::Result<Vec<Vec<String>>> {
    let mut script =
        String::from("# socat: one listener per port, a child process per connection.\n");
    let mut cmds = Vec::new();
    for (service, mode) in routes {
        let cmd = vec![
            "socat".to_string(),
            format!(
                "TCP4-LISTEN:{},bind={},reuseaddr,fork,backlog=8192",
                listen_port(t, *service, *mode),
                addr::EDGE_CLIENT_SIDE_V4
            ),
            format!("TCP4:{}", origin(*service)),
        ];
        writeln!(script, "{} &", cmd.join(" "))?;
        cmds.push(cmd);
    }
    std::fs::write(dir.join("socat.sh"), script)?;
    Ok(cmds)
}
