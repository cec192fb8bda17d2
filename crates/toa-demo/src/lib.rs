//! `toa demo`: the whole system in one command. It builds client, edge and
//! origin network namespaces (with [`toa_lab`]), loads `toa origin` on a
//! cgroup of its own, runs `toa proxy` on the edge and real servers on the
//! origin, sends requests with curl from the client, and checks that the
//! origin's access logs show the client's addresses, not the proxy's.
//!
//! It drives the `toa` binary itself (`origin load/stats/unload`, `proxy`),
//! so it exercises exactly what users run.
//!
//! # Layout
//! - [`plan`]: the cases (who connects where, what the origin must log) and
//!   the proxy config.
//! - [`origin`]: the origin's servers and their access logs.
//! - [`lookup_server`]: the IPv4-only server that asks libtoa for IPv6 clients.
//! - [`session`]: setup bookkeeping and teardown on every exit path, Ctrl-C included.
//! - [`report`]: what is printed, and the verdict.

pub mod lookup_server;
pub mod origin;
pub mod plan;
pub mod report;
pub mod session;

use anyhow::{Context, bail};
use origin::AccessLog;
use plan::{Case, Server};
use report::{CaseResult, Outcome, step};
use session::{Session, Shared, lock};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use toa_lab::{Topology, addr};

pub use lookup_server::serve as serve_lookup;

/// How the proxy passes the client's address in this demo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// TCP option address, read on the origin by `toa origin` (eBPF);
    /// the origin runs unmodified `python3 -m http.server`.
    Toa,
    /// PROXY protocol v2, read by nginx (`listen ... proxy_protocol`).
    Ppv2,
}

pub struct Options {
    pub mode: Mode,
    /// Leave the topology running and print how to explore it.
    pub keep: bool,
    /// The `toa` binary to drive (normally the running one).
    pub toa_bin: PathBuf,
}

/// Bounds on waits for a server to listen and for an access log line; both
/// are [`toa_lab::scaled`] where they are used, so a slow host (a TCG guest of
/// scripts/kernel-test) gets proportionally longer.
const READY_TIMEOUT: Duration = Duration::from_secs(15);
const LOG_TIMEOUT: Duration = Duration::from_secs(3);

/// Runs the demo, printing as it goes. `Ok` means it ran to the end; whether
/// every address was seen is [`Outcome::passed`].
pub fn run(opts: &Options) -> anyhow::Result<Outcome> {
    if opts.mode == Mode::Ppv2 {
        origin::require_nginx()?;
    }
    report::print_topology(opts.mode);
    let topo = Topology::new("demo")
        .context("building the demo's network namespaces (needs root; run scripts/setup first)")?;
    let shared = Session::start(topo, &opts.toa_bin)?;
    let cgroup = lock(&shared).topo.lab.cgroup("origin");
    let result = cgroup.and_then(|cgroup| drive(&shared, opts, &cgroup).map(|o| (o, cgroup)));
    if let (true, Ok((_, cgroup))) = (opts.keep, &result) {
        print_keep_hints(&shared, opts, cgroup);
        lock(&shared).keep();
    }
    session::finish(shared);
    result.map(|(outcome, _)| outcome)
}

fn drive(shared: &Shared, opts: &Options, cgroup: &Path) -> anyhow::Result<Outcome> {
    let cases = plan::cases(opts.mode);
    let (client, edge, origin, dir, prefix) = {
        let s = lock(shared);
        let t = &s.topo;
        let prefix = t.client.name.trim_end_matches("-client").to_owned();
        (
            t.client.clone(),
            t.edge.clone(),
            t.origin.clone(),
            t.lab.dir().to_owned(),
            prefix,
        )
    };
    step(&format!(
        "namespaces {prefix}-{{client,edge,origin}}, joined by veths"
    ));

    if opts.mode == Mode::Toa {
        let args = origin_load_args();
        lock(shared).load_origin(cgroup, &args)?;
        step(&format!(
            "toa origin load --cgroup {} {}",
            cgroup.display(),
            args.join(" ")
        ));
    }

    let logs = start_origin_servers(shared, &cases, cgroup, &dir, &opts.toa_bin)?;
    for case in &cases {
        origin.wait_listening(case.port, false, READY_TIMEOUT)?;
    }

    let config = dir.join("proxy.toml");
    toa_lab::write_new(&config, plan::proxy_config(&cases))?;
    let config_str = config.to_string_lossy().into_owned();
    let toa_bin = opts.toa_bin.to_string_lossy().into_owned();
    let proxy =
        lock(shared)
            .topo
            .lab
            .spawn(&edge, None, &[&toa_bin, "proxy", "--config", &config_str])?;
    wait_for_proxy(&edge, &proxy, &cases)?;
    step(&format!(
        "toa proxy --config {} ({} rules, one per case below)",
        config.display(),
        cases.len()
    ));

    let mut results = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        if i == 0 || cases[i - 1].pass != case.pass {
            report::print_section(opts.mode, case);
        }
        let result = request(&client, case, &logs[i]);
        report::print_case(&result);
        results.push(result);
    }

    if opts.mode == Mode::Toa {
        let cg = cgroup.to_string_lossy();
        let stats = session::run_toa(&opts.toa_bin, &["origin", "stats", "--cgroup", &cg])?;
        report::print_block(
            &format!("toa origin stats --cgroup {cg}"),
            "(syn_recv_sock_toa counts the connections that arrived with a TOA)",
            &stats,
        );
    }
    let outcome = Outcome {
        mode: opts.mode,
        results,
    };
    println!("\n{}", outcome.verdict());
    Ok(outcome)
}

/// Trust only the edge's origin-side addresses: TOA from anyone else is ignored.
fn origin_load_args() -> Vec<String> {
    vec![
        "--trust".into(),
        format!("{}/32", addr::EDGE_ORIGIN_SIDE_V4),
        "--trust".into(),
        format!("{}/128", addr::EDGE_ORIGIN_SIDE_V6),
    ]
}

/// Starts one origin server per case (one nginx for all of them in ppv2
/// mode), all inside the origin cgroup, and says where each one logs.
fn start_origin_servers(
    shared: &Shared,
    cases: &[Case],
    cgroup: &Path,
    dir: &Path,
    toa_bin: &Path,
) -> anyhow::Result<Vec<AccessLog>> {
    let origin = lock(shared).topo.origin.clone();
    let mut logs = Vec::new();
    let mut python = Vec::new();
    let mut lookup = Vec::new();
    let mut nginx_started = false;
    let web_root = origin::write_web_root(dir)?;
    for case in cases {
        let log = match case.server {
            Server::Http { .. } => {
                let cmd = origin::python_command(case, &web_root);
                python.push(case.listener());
                let s = spawn(shared, &origin, cgroup, &cmd)?;
                AccessLog(s)
            }
            Server::Lookup { .. } => {
                let cmd = origin::lookup_command(case, toa_bin);
                lookup.push(case.listener());
                let s = spawn(shared, &origin, cgroup, &cmd)?;
                AccessLog(s)
            }
            Server::Nginx { .. } => {
                if !nginx_started {
                    start_nginx(shared, cases, cgroup, dir)?;
                    nginx_started = true;
                }
                AccessLog(origin::nginx_log(dir, case))
            }
        };
        logs.push(log);
    }
    if !python.is_empty() {
        step(&format!(
            "origin: python3 -m http.server on {}",
            python.join(", ")
        ));
    }
    if !lookup.is_empty() {
        step(&format!(
            "origin: libtoa lookup server (toa_get_peer) on {}",
            lookup.join(", ")
        ));
    }
    Ok(logs)
}

fn spawn(
    shared: &Shared,
    ns: &toa_lab::Netns,
    cgroup: &Path,
    cmd: &[String],
) -> anyhow::Result<PathBuf> {
    let argv: Vec<&str> = cmd.iter().map(String::as_str).collect();
    Ok(lock(shared).topo.lab.spawn(ns, Some(cgroup), &argv)?.log)
}

fn start_nginx(shared: &Shared, cases: &[Case], cgroup: &Path, dir: &Path) -> anyhow::Result<()> {
    let conf = dir.join("nginx.conf");
    toa_lab::write_new(&conf, origin::nginx_config(cases, dir))?;
    let origin = lock(shared).topo.origin.clone();
    origin::check_nginx_config(&origin, &conf, dir)?;
    let d = dir.to_string_lossy().into_owned();
    let cmd: Vec<String> = [
        "nginx",
        "-e",
        &format!("{d}/nginx-error.log"),
        "-p",
        &d,
        "-c",
        &conf.to_string_lossy(),
    ]
    .map(str::to_owned)
    .to_vec();
    spawn(shared, &origin, cgroup, &cmd)?;
    step(&format!(
        "origin: nginx -p {d} -c {} ({} servers)",
        conf.display(),
        cases.len()
    ));
    Ok(())
}

/// One curl from the client, then the origin's log line for it.
fn request(client: &toa_lab::Netns, case: &Case, log: &AccessLog) -> CaseResult {
    let url = case.url();
    let response = client
        .output(&["curl", "-sS", "--max-time", "5", &url])
        .map_err(|e| e.to_string())
        .and_then(|out| {
            if out.status.success() {
                Ok(String::from_utf8_lossy(&out.stdout).into_owned())
            } else {
                Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
            }
        });
    let logged = log.first_access_line(LOG_TIMEOUT);
    CaseResult {
        case: case.clone(),
        response,
        logged,
    }
}

/// Waits until the proxy listens on every case's port; fails at once, with
/// its log, if it exits first (e.g. it rejected the config).
fn wait_for_proxy(
    edge: &toa_lab::Netns,
    proxy: &toa_lab::Spawned,
    cases: &[Case],
) -> anyhow::Result<()> {
    let ready_timeout = toa_lab::scaled(READY_TIMEOUT);
    let deadline = Instant::now() + ready_timeout;
    let mut waiting: Vec<u16> = cases.iter().map(|c| c.port).collect();
    while !waiting.is_empty() {
        let log = || std::fs::read_to_string(&proxy.log).unwrap_or_default();
        if has_exited(proxy.pid) {
            bail!(
                "toa proxy exited; its log ({}):\n{}",
                proxy.log.display(),
                log().trim()
            );
        }
        if Instant::now() > deadline {
            bail!(
                "toa proxy is not listening on port {} after {ready_timeout:?}; its log ({}):\n{}",
                waiting[0],
                proxy.log.display(),
                log().trim()
            );
        }
        waiting.retain(|&port| {
            edge.wait_listening(port, false, Duration::from_millis(1))
                .is_err()
        });
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// A child that exited stays a zombie until reaped (the lab reaps on drop).
fn has_exited(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
        stat.rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z'))
    })
}

fn print_keep_hints(shared: &Shared, opts: &Options, cgroup: &Path) {
    let s = lock(shared);
    let t = &s.topo;
    let toa = opts.toa_bin.display();
    let cg = cgroup.display();
    println!("\nThe topology is still up (--keep). Explore it:");
    for case in plan::cases(opts.mode).iter().take(2) {
        println!("  ip netns exec {} curl {}", t.client.name, case.url());
    }
    println!(
        "  ip netns exec {} ss -tnp         # the proxy's connections",
        t.edge.name
    );
    println!(
        "  ip netns exec {} ss -tlnp        # the origin's listeners",
        t.origin.name
    );
    if opts.mode == Mode::Toa {
        println!("  {toa} origin stats --cgroup {cg}");
    }
    println!(
        "  ls {}                            # configs and logs",
        t.lab.dir().display()
    );
    println!("When done, remove it:");
    if opts.mode == Mode::Toa {
        println!("  {toa} origin unload --cgroup {cg}");
    }
    println!(
        "  for ns in {}; do ip netns pids $ns | xargs -r kill; ip netns del $ns; done",
        t.lab.namespaces().join(" ")
    );
    println!(
        "  echo 1 > {cg}/cgroup.kill; rmdir {cg}; rm -r {}",
        t.lab.dir().display()
    );
}
