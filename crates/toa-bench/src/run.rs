//! `toa-bench run`: builds the lab (client ⇄ edge ⇄ origin namespaces from
//! toa-lab), starts the origin server and every available proxy, runs the
//! scenarios round by round, and writes the raw results, report and charts.

use crate::machine::{Machine, version_line};
use crate::peers::{Peer, Service, Target};
use crate::results::{Run, Sample};
use anyhow::{Context, bail};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use toa_lab::Topology;

/// Descriptors for 10,000 idle connections through a proxy (client, proxy both
/// sides, origin), with room to spare.
const NOFILE: u64 = 1 << 20;
/// Descriptors a proxy needs besides those of its connections (listeners, logs, epoll).
const NOFILE_RESERVE: u64 = 256;
/// Descriptors a proxy holds per idle connection: its two sockets. toa proxy
/// takes splice pipes only once a direction has moved 64 KiB, and idle
/// connections here never do; NOFILE_RESERVE covers its per-thread pipe pool.
const FDS_PER_IDLE: u64 = 2;
/// Applied in every lab namespace: a wide ephemeral range and TIME_WAIT reuse,
/// so tens of thousands of short connections per round never run out of ports.
pub(crate) const SYSCTLS: [(&str, &str); 4] = [
    ("net.ipv4.ip_local_port_range", "20000 65000"),
    ("net.ipv4.tcp_tw_reuse", "1"),
    ("net.core.somaxconn", "8192"),
    ("net.ipv4.tcp_max_syn_backlog", "8192"),
];

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Short durations and 1,000 idle connections: checks the harness end to end in under 3 minutes.
    #[arg(long)]
    pub quick: bool,
    /// The toa binary under test (release build).
    #[arg(long)]
    pub toa: PathBuf,
    /// Directory for `<date>.md`, `<date>/` (charts, configs, raw.json).
    #[arg(long)]
    pub out: PathBuf,
    /// Rounds per figure (min/median/max over them); at least 5 for a report.
    #[arg(long)]
    pub rounds: Option<usize>,
    /// Another toa binary to measure in the same rounds, as `label=/path/to/toa`
    /// (repeatable, at most 5): its rows in the rate, bulk, memory and TOA-cost
    /// tables carry the label, and the report compares each with HAProxy.
    #[arg(long = "toa-variant", value_name = "LABEL=PATH")]
    pub toa_variants: Vec<String>,
    /// Run only these scenarios (repeatable) and skip the profiles; for targeted
    /// A/B measurements, not for a report.
    #[arg(long, value_enum, value_name = "SCENARIO")]
    pub only: Vec<Scenario>,
    /// Length of each bulk transfer in ms (default 3,000; 300 with --quick).
    #[arg(long)]
    pub bulk_ms: Option<u64>,
}

/// A scenario of a round, for `--only`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    Rate,
    Bulk,
    Memory,
    ToaCost,
    Ttfb,
    OriginCost,
}

/// Durations and counts of one run.
#[derive(Debug, Clone)]
pub struct Settings {
    pub rounds: usize,
    pub rr_ms: u64,
    pub bulk_ms: u64,
    pub idle_connections: usize,
    pub concurrencies: Vec<usize>,
    pub streams: Vec<usize>,
    /// Scenarios to run; empty means all, with the profiles.
    pub only: Vec<Scenario>,
}

impl Settings {
    fn new(args: &RunArgs) -> Settings {
        let (rr_ms, bulk_ms, idle) = if args.quick {
            (250, 300, 1_000)
        } else {
            (3_000, 3_000, 10_000)
        };
        Settings {
            rounds: args.rounds.unwrap_or(5),
            rr_ms,
            bulk_ms: args.bulk_ms.unwrap_or(bulk_ms),
            idle_connections: idle,
            concurrencies: vec![1, 16, 64],
            streams: vec![1, 8],
            only: args.only.clone(),
        }
    }

    /// Whether this run includes `scenario`.
    pub fn runs(&self, scenario: Scenario) -> bool {
        self.only.is_empty() || self.only.contains(&scenario)
    }

    fn describe(&self) -> BTreeMap<String, String> {
        [
            ("rounds", self.rounds.to_string()),
            ("short-connection run", format!("{} ms", self.rr_ms)),
            ("bulk run", format!("{} ms", self.bulk_ms)),
            ("idle connections", self.idle_connections.to_string()),
            ("concurrency", format!("{:?}", self.concurrencies)),
            ("bulk streams", format!("{:?}", self.streams)),
        ]
        .into_iter()
        .chain((!self.only.is_empty()).then(|| ("only", format!("{:?}", self.only))))
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

/// The running lab and everything measured so far.
pub struct Bench {
    pub topo: Topology,
    pub settings: Settings,
    pub peers: BTreeMap<Target, Peer>,
    pub origin_cgroup: PathBuf,
    /// `toa origin load/unload` works in this build.
    pub origin_toa: bool,
    pub toa: PathBuf,
    pub(crate) exe: PathBuf,
    pub samples: Vec<Sample>,
    pub notes: Vec<String>,
}

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    install_interrupt_handler();
    crate::variants::install(&args.toa_variants)?;
    let nofile = crate::procfs::raise_nofile(NOFILE)?;
    let mut settings = Settings::new(&args);
    // A proxy holds two descriptors per connection; without CAP_SYS_RESOURCE the
    // hard limit may not allow 10,000, so hold as many as it allows.
    let idle_cap = (nofile.saturating_sub(NOFILE_RESERVE) / FDS_PER_IDLE / 100 * 100) as usize;
    let mut limit_note = None;
    if settings.idle_connections > idle_cap {
        limit_note = Some(format!(
            "The descriptor limit here is {nofile} (RLIMIT_NOFILE hard limit; no CAP_SYS_RESOURCE to raise it), so the memory scenario holds {idle_cap} idle connections instead of {}, the number every proxy can hold within it: each proxy keeps {FDS_PER_IDLE} descriptors per idle connection (its two sockets).",
            settings.idle_connections
        ));
        settings.idle_connections = idle_cap;
    }
    let date = format!("{}{}", today(), if args.quick { "-quick" } else { "" });
    let dir = args.out.join(&date);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    // Peers run from other working directories; their configs name absolute paths.
    let dir = std::fs::canonicalize(&dir)?;
    let toa = std::fs::canonicalize(&args.toa).with_context(|| {
        format!(
            "{} not found; build it with cargo build --release",
            args.toa.display()
        )
    })?;

    let started = Instant::now();
    let mut bench = Bench::new(toa, settings.clone(), &dir, nofile)?;
    bench.notes.extend(limit_note);
    eprintln!(
        "bench: lab ready, peers: {:?}",
        bench.peers.keys().map(|t| t.name()).collect::<Vec<_>>()
    );
    for round in 0..settings.rounds {
        eprintln!(
            "bench: round {}/{} ({:.0} s so far)",
            round + 1,
            settings.rounds,
            started.elapsed().as_secs_f64()
        );
        bench.round(round)?;
    }
    let profiles = if settings.only.is_empty() {
        eprintln!("bench: profiling");
        bench.profiles(&dir)?
    } else {
        Vec::new()
    };
    let mut versions = bench.versions();
    versions.insert(
        "toa-bench runtime".into(),
        format!("{:.0} s", started.elapsed().as_secs_f64()),
    );
    let run = Run {
        date: date.clone(),
        quick: args.quick,
        rounds: settings.rounds,
        machine: Machine::probe(),
        versions,
        settings: settings.describe(),
        notes: std::mem::take(&mut bench.notes),
        samples: std::mem::take(&mut bench.samples),
        profiles,
    };
    drop(bench);
    std::fs::write(dir.join("raw.json"), serde_json::to_string_pretty(&run)?)?;
    let report = crate::report::write(&run, &args.out, &dir)?;
    eprintln!(
        "bench: wrote {} in {:.0} s",
        report.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

impl Bench {
    fn new(toa: PathBuf, settings: Settings, dir: &Path, nofile: u64) -> anyhow::Result<Bench> {
        let mut topo = Topology::new("bench")?;
        for ns in [&topo.client, &topo.edge, &topo.origin] {
            for (key, value) in SYSCTLS {
                ns.run(&["sysctl", "-q", "-w", &format!("{key}={value}")])?;
            }
        }
        let exe = std::env::current_exe()?;
        let origin_cgroup = topo.lab.cgroup("origin")?;
        let mut serve = vec![exe.display().to_string(), "serve".into()];
        for s in Service::ALL {
            serve.push("--listen".into());
            serve.push(s.listen_arg());
        }
        let argv: Vec<&str> = serve.iter().map(String::as_str).collect();
        let (origin_ns, cg) = (topo.origin.clone(), origin_cgroup.clone());
        topo.lab.spawn(&origin_ns, Some(&cg), &argv)?;
        for s in Service::ALL {
            topo.origin
                .wait_listening(s.origin_port(), false, Duration::from_secs(10))?;
        }

        let mut notes = Vec::new();
        let mut peers = BTreeMap::new();
        for target in Target::ALL.into_iter().filter(|t| *t != Target::Direct) {
            if let Some(why) = missing(target, &toa) {
                notes.push(format!("{} was not measured: {why}.", target.name()));
                continue;
            }
            let mut peer = Peer::new(&mut topo, target, &toa, dir, nofile)?;
            peer.start(&mut topo)?;
            peers.insert(target, peer);
        }
        for i in 0..crate::variants::all().len() {
            let target = Target::Variant(i as u8);
            let mut peer = Peer::new(&mut topo, target, &toa, dir, nofile)?;
            peer.start(&mut topo)?;
            peers.insert(target, peer);
        }
        let origin_toa = runs(&[&toa.display().to_string(), "origin", "load", "--help"]);
        if !origin_toa {
            notes.push("`toa origin load` is not available in this build: the TOA option is written but not consumed, and the origin-side scenario was skipped.".into());
        }
        let mut bench = Bench {
            topo,
            settings,
            peers,
            origin_cgroup,
            origin_toa,
            toa,
            exe,
            samples: Vec::new(),
            notes,
        };
        bench.set_origin_toa(false)?;
        Ok(bench)
    }

    /// Loads or unloads `toa origin` on the origin server's cgroup.
    pub fn set_origin_toa(&mut self, loaded: bool) -> anyhow::Result<()> {
        if !self.origin_toa {
            return Ok(());
        }
        let verb = if loaded { "load" } else { "unload" };
        let cg = self.origin_cgroup.display().to_string();
        let mut cmd = Command::new(&self.toa);
        cmd.args(["origin", verb, "--cgroup", &cg]);
        if loaded {
            // The proxies connect from the edge's origin-side addresses.
            let trust = format!(
                "{}/32,{}/128",
                toa_lab::addr::EDGE_ORIGIN_SIDE_V4,
                toa_lab::addr::EDGE_ORIGIN_SIDE_V6
            );
            cmd.args(["--trust", &trust]);
        }
        let out = cmd.output()?;
        if !out.status.success() && loaded {
            bail!(
                "toa origin load --cgroup {cg} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }

    fn versions(&self) -> BTreeMap<String, String> {
        let toa = self.toa.display().to_string();
        let variants = crate::variants::all().iter().map(|v| {
            (
                format!("{}{}", crate::variants::VERSION_KEY, v.label),
                v.toa.display().to_string(),
            )
        });
        [
            ("toa", version_line(&[&toa, "--version"], "toa")),
            ("HAProxy", version_line(&["haproxy", "-v"], "version")),
            ("nginx", version_line(&["nginx", "-v"], "version")),
            ("socat", version_line(&["socat", "-V"], "version")),
            ("rustc", version_line(&["rustc", "--version"], "rustc")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .chain(variants)
        .collect()
    }
}

/// Why a peer cannot run on this machine, if it cannot.
fn missing(target: Target, toa: &Path) -> Option<String> {
    let ok = match target {
        Target::Direct => true,
        Target::Toa | Target::Variant(_) => runs(&[&toa.display().to_string(), "proxy", "--help"]),
        Target::Haproxy => runs(&["haproxy", "-v"]),
        Target::Nginx => runs(&["nginx", "-v"]),
        Target::Socat => runs(&["socat", "-V"]),
    };
    (!ok).then(|| match target {
        Target::Toa => "this toa build has no `proxy` subcommand".into(),
        t => format!("`{}` is not installed (bench/run installs it)", t.name()),
    })
}

fn runs(cmd: &[&str]) -> bool {
    Command::new(cmd[0])
        .args(&cmd[1..])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Today's UTC date as YYYY-MM-DD.
pub(crate) fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as libc::time_t;
    // SAFETY: gmtime_r writes only into the zeroed struct we own.
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        libc::gmtime_r(&secs, &mut tm);
        tm
    };
    format!(
        "{:04}-{:02}-{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday
    )
}

extern "C" fn on_interrupt(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Ctrl-C stops the run between measurements, so the lab is torn down by
/// `Drop` instead of leaving namespaces and cgroups behind.
pub(crate) fn install_interrupt_handler() {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(
            libc::SIGINT,
            on_interrupt as *const () as libc::sighandler_t,
        );
        libc::signal(
            libc::SIGTERM,
            on_interrupt as *const () as libc::sighandler_t,
        );
    }
}

pub fn check_interrupted() -> anyhow::Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    Ok(())
}
