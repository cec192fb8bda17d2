//! `toa-bench soak`: hours-in-minutes of ordinary production events. Mixed
//! traffic (TCP with TOA, TCP with PROXY v2, UDP with SPP) runs through
//! `toa proxy` to two origin servers on a cgroup with `toa origin` loaded,
//! while the proxy gets a SIGHUP every 30 s and one origin server is
//! restarted every minute. Every 5 s it records the proxy's RSS and
//! descriptors, the origin's record alloc/free and the client's checked bytes
//! and errors; [`report`] writes the Markdown report and charts.
//!
//! The traffic and the origin servers are small Python programs (`client.py`,
//! `origin.py`): every payload is checked end to end by sha256 and every reply
//! names the client the origin saw, so a lost or corrupted byte or a wrong
//! client address cannot go unnoticed.

mod report;

use crate::procfs::{fd_count, rss_bytes};
use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use toa_lab::{Spawned, Topology, addr};

const CLIENT: &str = include_str!("client.py");
const ORIGIN: &str = include_str!("origin.py");
/// The second origin server's address (the first is `addr::ORIGIN_V4`).
const ORIGIN_B: &str = "198.18.2.3";
const PORTS: Ports = Ports {
    toa: 10000,
    ppv2: 10001,
    spp: 10002,
};
/// Origin ports are the proxy's plus this.
const ORIGIN_OFFSET: u16 = 1000;
const SAMPLE: Duration = Duration::from_secs(5);
const SIGHUP_EVERY: Duration = Duration::from_secs(30);
const RESTART_EVERY: Duration = Duration::from_secs(60);

struct Ports {
    toa: u16,
    ppv2: u16,
    spp: u16,
}

#[derive(clap::Args, Debug)]
pub struct SoakArgs {
    /// The toa binary under test (release build).
    #[arg(long)]
    pub toa: PathBuf,
    /// Directory for `soak-<date>.md` and `soak-<date>/`.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 30)]
    pub minutes: u64,
}

/// What the client program reports (cumulative).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Traffic {
    pub tcp_ok: u64,
    pub ppv2_ok: u64,
    pub udp_ok: u64,
    pub bytes_checked: u64,
    pub bytes_corrupt: u64,
    pub wrong_client: u64,
    pub udp_late: u64,
    pub errors: BTreeMap<String, u64>,
}

/// One sample, every [`SAMPLE`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sample {
    pub secs: f64,
    pub proxy_rss: u64,
    pub proxy_fds: u64,
    pub alloc: u64,
    pub free: u64,
    pub traffic: Traffic,
}

/// The whole soak, as written to raw.json.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Soak {
    pub date: String,
    pub minutes: u64,
    pub sighups: u64,
    pub restarts: u64,
    pub toa_version: String,
    pub kernel: String,
    pub samples: Vec<Sample>,
    pub origin_counters: BTreeMap<String, u64>,
}

pub fn run(args: SoakArgs) -> anyhow::Result<()> {
    crate::run::install_interrupt_handler();
    crate::procfs::raise_nofile(65_536)?;
    let date = crate::run::today();
    let dir = args.out.join(format!("soak-{date}"));
    std::fs::create_dir_all(&dir)?;
    let mut topo = Topology::new("soak")?;
    for ns in [&topo.client, &topo.edge, &topo.origin] {
        for (key, value) in crate::run::SYSCTLS {
            ns.run(&["sysctl", "-q", "-w", &format!("{key}={value}")])?;
        }
    }
    let origin_if = topo
        .origin
        .run(&["ip", "-o", "-4", "addr", "show", "to", addr::ORIGIN_V4])?
        .split_whitespace()
        .nth(1)
        .context("origin interface")?
        .to_string();
    topo.origin.run(&[
        "ip",
        "addr",
        "add",
        &format!("{ORIGIN_B}/24"),
        "dev",
        &origin_if,
    ])?;
    let toa = args.toa.display().to_string();
    let cgroup = topo.lab.cgroup("origin")?;
    let cg = cgroup.display().to_string();
    let trust = format!("{}/32", addr::EDGE_ORIGIN_SIDE_V4);
    let loaded = std::process::Command::new(&toa)
        .args(["origin", "load", "--cgroup", &cg, "--trust", &trust])
        .output()?;
    if !loaded.status.success() {
        bail!(
            "toa origin load: {}",
            String::from_utf8_lossy(&loaded.stderr)
        );
    }
    let _unload = Unload {
        toa: toa.clone(),
        cgroup: cg.clone(),
    };

    let mut origins =
        [addr::ORIGIN_V4, ORIGIN_B].map(|a| start_origin(&mut topo, &cgroup, &toa, a));
    for o in &origins {
        o.as_ref().map_err(|e| anyhow::anyhow!("{e:#}"))?;
    }
    let config = dir.join("toa-proxy.toml");
    std::fs::write(&config, proxy_config())?;
    let proxy_cg = topo.lab.cgroup("proxy")?;
    let edge = topo.edge.clone();
    let proxy = topo.lab.spawn(
        &edge,
        Some(&proxy_cg),
        &[
            &toa,
            "proxy",
            "--config",
            config.to_str().context("utf-8 path")?,
        ],
    )?;
    topo.edge
        .wait_listening(PORTS.toa, false, Duration::from_secs(15))
        .with_context(|| std::fs::read_to_string(&proxy.log).unwrap_or_default())?;

    let seconds = (args.minutes * 60).to_string();
    let (toa_port, ppv2_port, spp_port) = (
        PORTS.toa.to_string(),
        PORTS.ppv2.to_string(),
        PORTS.spp.to_string(),
    );
    let client_ns = topo.client.clone();
    let client = topo.lab.spawn(
        &client_ns,
        None,
        &[
            "python3",
            "-c",
            CLIENT,
            addr::EDGE_CLIENT_SIDE_V4,
            &toa_port,
            &ppv2_port,
            &spp_port,
            addr::CLIENT_V4,
            &seconds,
        ],
    )?;

    let started = Instant::now();
    let (mut last_hup, mut last_restart) = (started, started);
    let (mut sighups, mut restarts) = (0u64, 0u64);
    let mut samples = Vec::new();
    let proxy_pids = || {
        let mut pids = crate::procfs::cgroup_pids(&proxy_cg);
        pids.insert(proxy.pid);
        pids
    };
    eprintln!(
        "soak: {} minutes, report in {}",
        args.minutes,
        dir.display()
    );
    loop {
        std::thread::sleep(SAMPLE);
        if let Err(e) = crate::run::check_interrupted() {
            bail!("{e}");
        }
        let (traffic, finished) = client_traffic(&client.log);
        let pids: BTreeSet<u32> = proxy_pids();
        let counters = origin_counters(&toa, &cg)?;
        samples.push(Sample {
            secs: started.elapsed().as_secs_f64(),
            proxy_rss: rss_bytes(&pids),
            proxy_fds: fd_count(&pids),
            alloc: counters.get("ip6_address_alloc").copied().unwrap_or(0),
            free: counters.get("ip6_address_free").copied().unwrap_or(0),
            traffic,
        });
        if finished {
            break;
        }
        if started.elapsed() > Duration::from_secs(args.minutes * 60 + 120) {
            bail!("the client never finished: {}", client.log.display());
        }
        if last_hup.elapsed() >= SIGHUP_EVERY {
            // SAFETY: signalling a process this run started.
            unsafe { libc::kill(proxy.pid as i32, libc::SIGHUP) };
            sighups += 1;
            last_hup = Instant::now();
        }
        if last_restart.elapsed() >= RESTART_EVERY {
            let which = (restarts % 2) as usize;
            if let Ok(old) = &origins[which] {
                topo.lab.kill(old);
            }
            let address = [addr::ORIGIN_V4, ORIGIN_B][which];
            origins[which] = start_origin(&mut topo, &cgroup, &toa, address);
            origins[which]
                .as_ref()
                .map_err(|e| anyhow::anyhow!("{e:#}"))?;
            restarts += 1;
            last_restart = Instant::now();
        }
    }
    // Every connection is closed now: the records must all be released.
    std::thread::sleep(Duration::from_secs(2));
    let origin_counters = origin_counters(&toa, &cg)?;
    let soak = Soak {
        date,
        minutes: args.minutes,
        sighups,
        restarts,
        toa_version: crate::machine::version_line(&[&toa, "--version"], "toa"),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")?
            .trim()
            .to_string(),
        samples,
        origin_counters,
    };
    std::fs::write(dir.join("raw.json"), serde_json::to_vec_pretty(&soak)?)?;
    let path = report::write(&soak, &args.out, &dir)?;
    eprintln!("soak: wrote {}", path.display());
    Ok(())
}

/// Rewrites the report and charts of an earlier soak from its raw.json.
pub fn redraw(raw: &Path, out: &Path) -> anyhow::Result<()> {
    let soak: Soak = serde_json::from_slice(&std::fs::read(raw)?)?;
    let dir = out.join(format!("soak-{}", soak.date));
    std::fs::create_dir_all(&dir)?;
    let path = report::write(&soak, out, &dir)?;
    eprintln!("soak: wrote {}", path.display());
    Ok(())
}

/// Unloads the receiver when the soak ends, however it ends.
struct Unload {
    toa: String,
    cgroup: String,
}

impl Drop for Unload {
    fn drop(&mut self) {
        let _ = std::process::Command::new(&self.toa)
            .args(["origin", "unload", "--cgroup", &self.cgroup])
            .output();
    }
}

fn start_origin(
    topo: &mut Topology,
    cgroup: &Path,
    toa: &str,
    address: &str,
) -> anyhow::Result<Spawned> {
    let (tcp_toa, tcp_ppv2) = (
        (PORTS.toa + ORIGIN_OFFSET).to_string(),
        (PORTS.ppv2 + ORIGIN_OFFSET).to_string(),
    );
    let ns = topo.origin.clone();
    let tcp = topo.lab.spawn(
        &ns,
        Some(cgroup),
        &["python3", "-c", ORIGIN, address, &tcp_toa, &tcp_ppv2],
    )?;
    // The UDP echo is not restarted: one server per address for the whole soak.
    let udp_listen = format!("{address}:{}", PORTS.spp + ORIGIN_OFFSET);
    if topo
        .origin
        .run(&["ss", "-Hlun", "src", &udp_listen])?
        .trim()
        .is_empty()
    {
        topo.lab.spawn(
            &ns,
            Some(cgroup),
            &[toa, "spp-echo", "--listen", &udp_listen],
        )?;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&tcp.log)
        .unwrap_or_default()
        .contains("ready")
    {
        if Instant::now() > deadline {
            bail!(
                "origin server on {address} did not start: {}",
                tcp.log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(tcp)
}

fn proxy_config() -> String {
    let origins = format!("[\"{}\", \"{ORIGIN_B}\"]", addr::ORIGIN_V4);
    let rule = |tag: &str, protocol: &str, port: u16, pass: &str| {
        format!(
            "[[rule]]\ntag = \"{tag}\"\nprotocol = \"{protocol}\"\nlisten = [\"{edge}\"]\nports = \"{port}\"\norigins = {origins}\norigin_ports = \"{op}\"\npass_client_ip = \"{pass}\"\n\n",
            edge = addr::EDGE_CLIENT_SIDE_V4,
            op = port + ORIGIN_OFFSET,
        )
    };
    format!(
        "# toa proxy for the soak: one rule per traffic kind, two origins each.\n\n{}{}{}",
        rule("soak-toa", "tcp", PORTS.toa, "toa"),
        rule("soak-ppv2", "tcp", PORTS.ppv2, "ppv2"),
        rule("soak-spp", "udp", PORTS.spp, "spp"),
    )
}

/// The client's latest counters, and whether it has finished.
fn client_traffic(log: &Path) -> (Traffic, bool) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let Some(line) = text.lines().rev().find(|l| l.starts_with('{')) else {
        return (Traffic::default(), false);
    };
    let value: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
    let finished = value["final"].as_bool().unwrap_or(false);
    (serde_json::from_value(value).unwrap_or_default(), finished)
}

/// `toa origin stats --json` totals by name.
fn origin_counters(toa: &str, cgroup: &str) -> anyhow::Result<BTreeMap<String, u64>> {
    let out = std::process::Command::new(toa)
        .args(["origin", "stats", "--cgroup", cgroup, "--json"])
        .output()?;
    if !out.status.success() {
        bail!("toa origin stats: {}", String::from_utf8_lossy(&out.stderr));
    }
    let value: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    Ok(value["counters"]
        .as_object()
        .context("counters in toa origin stats --json")?
        .iter()
        .map(|(k, v)| (k.clone(), v["total"].as_u64().unwrap_or(0)))
        .collect())
}
