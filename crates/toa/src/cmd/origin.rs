//! `toa origin load|unload|status|stats|exporter`: the TOA receiver on an origin
//! server, replacing toa.ko. The work is done by `toa-loader` (and `toa-exporter`
//! for Prometheus); this file parses flags and prints.

use anyhow::{Context, Result, anyhow};
use clap::{Args, Subcommand};
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use toa_loader::{
    Counter, LoadOutcome, LoaderError, Origin, OriginCounters, Settings, TrustAny, TrustedNet,
};

/// The exit status of `status` and `stats` when nothing is loaded: systemd's and
/// LSB's "program is not running".
const EXIT_NOT_LOADED: i32 = 3;

/// The TOA receiver: real client addresses in accept()/getpeername() on this host.
#[derive(Args)]
pub struct OriginArgs {
    #[command(subcommand)]
    command: OriginCommand,
}

#[derive(Subcommand)]
enum OriginCommand {
    /// Load the receiver and attach it to a cgroup (again: update kinds and trust list in place).
    Load {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        settings: LoadSettings,
        /// Then stay in the foreground and unload on SIGTERM or SIGINT: the receiver
        /// lives as long as this process (a container's, e.g. the DaemonSet's `receiver`).
        #[arg(long)]
        hold: bool,
    },
    /// Detach and unpin the receiver; nothing is left behind.
    Unload {
        #[command(flatten)]
        target: Target,
        /// Load's settings are accepted and ignored, so that one argument list (the unit's
        /// $TOA_ORIGIN_ARGS) names the same cgroup for load and unload.
        #[command(flatten, next_help_heading = "Accepted and ignored (load's)")]
        _settings: LoadSettings,
    },
    /// Whether the receiver is attached, where, with which kinds and trust list (exit 3: not loaded).
    Status {
        #[command(flatten)]
        target: Target,
        /// As JSON (errors too).
        #[arg(long)]
        json: bool,
    },
    /// Per-CPU counters in the layout of /proc/net/toa_stats (exit 3: not loaded).
    Stats {
        #[command(flatten)]
        target: Target,
        /// Per-CPU values and totals as JSON (errors too).
        #[arg(long, conflicts_with = "prometheus")]
        json: bool,
        /// Totals in the Prometheus text format (toa_origin_<counter>_total).
        #[arg(long, conflicts_with = "watch")]
        prometheus: bool,
        /// Redraw every second, with rates.
        #[arg(long)]
        watch: bool,
    },
    /// Serve the counters for Prometheus at http://ADDR/metrics until SIGTERM.
    Exporter {
        #[command(flatten)]
        target: Target,
        /// Address to listen on, e.g. 0.0.0.0:9101.
        #[arg(long, value_name = "ADDR")]
        listen: SocketAddr,
    },
}

/// What the receiver accepts and from whom (`load`).
#[derive(Args)]
struct LoadSettings {
    /// TCP option kind to accept (repeatable or comma-separated; default 254; Tencent CLB IPv4 uses 200).
    #[arg(long = "kind", value_name = "N", value_delimiter = ',')]
    kinds: Vec<String>,
    /// Only trust TOAs sent from this proxy network (repeatable or comma-separated), e.g. 198.18.2.0/24; this or --trust-any is required.
    #[arg(long = "trust", value_name = "CIDR", value_delimiter = ',')]
    trust: Vec<String>,
    /// Trust TOAs from any source: any host can then claim any client address (toa.ko's behaviour).
    #[arg(long, conflicts_with = "trust")]
    trust_any: bool,
}

#[derive(Args)]
struct Target {
    /// cgroup2 directory to attach to [default: the cgroup2 root, i.e. the whole host].
    // The variable serves where no flag can be passed (a Kubernetes preStop hook).
    #[arg(long, value_name = "DIR", env = "TOA_ORIGIN_CGROUP")]
    cgroup: Option<PathBuf>,
}

impl Target {
    fn dir(&self) -> Result<PathBuf> {
        match &self.cgroup {
            Some(dir) => Ok(dir.clone()),
            None => Ok(toa_host::cgroup2_root()?),
        }
    }
}

pub fn run(args: OriginArgs) -> Result<()> {
    match args.command {
        OriginCommand::Load {
            target,
            settings:
                LoadSettings {
                    kinds,
                    trust,
                    trust_any,
                },
            hold,
        } => {
            let trust_any = if trust_any {
                TrustAny::Allow
            } else {
                TrustAny::Refuse
            };
            let cgroup = target.dir()?;
            match hold {
                false => load(&cgroup, &kinds, &trust, trust_any),
                true => held(&cgroup, || load(&cgroup, &kinds, &trust, trust_any)),
            }
        }
        OriginCommand::Unload { target, .. } => unload(&target.dir()?),
        OriginCommand::Status { target, json } => query(json, || status(&target.dir()?, json)),
        OriginCommand::Stats {
            target,
            json,
            prometheus,
            watch,
        } => query(json, || {
            let cgroup = target.dir()?;
            if prometheus {
                let counters = Origin::open(&cgroup)?.counters()?;
                emit(&toa_exporter::render(Some(&counters)))
            } else {
                stats(&cgroup, json, watch)
            }
        }),
        OriginCommand::Exporter { target, listen } => exporter(target.dir()?, listen),
    }
}

/// Runs `status` or `stats`: exit 3 when nothing is loaded, 1 on other errors, and with
/// `--json` the error is a JSON object on stdout, so a script's JSON parser sees it.
fn query(json: bool, run: impl FnOnce() -> Result<()>) -> Result<()> {
    let Err(err) = run() else {
        return Ok(());
    };
    let not_loaded = matches!(
        err.downcast_ref::<LoaderError>(),
        Some(LoaderError::NotLoaded { .. })
    );
    if json {
        let error = serde_json::json!({
            "error": {
                "kind": if not_loaded { "not_loaded" } else { "failed" },
                "message": format!("{err:#}"),
            },
        });
        println!("{error}");
    } else {
        eprintln!("Error: {err:#}");
    }
    std::process::exit(if not_loaded { EXIT_NOT_LOADED } else { 1 });
}

fn exporter(cgroup: PathBuf, listen: SocketAddr) -> Result<()> {
    crate::logs::init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        toa_exporter::serve(listen, cgroup, stop_signal()?).await?;
        Ok(())
    })
}

fn load(
    cgroup: &std::path::Path,
    kinds: &[String],
    trust: &[String],
    trust_any: TrustAny,
) -> Result<()> {
    let kinds = kinds
        .iter()
        .map(|k| {
            k.parse::<u8>()
                .map_err(|_| anyhow!("bad option kind {k:?}: not a TCP option kind (0 to 255)"))
        })
        .collect::<Result<Vec<u8>>>()?;
    let trust = trust
        .iter()
        .map(|c| c.parse::<TrustedNet>())
        .collect::<Result<Vec<_>, _>>()?;
    let settings = Settings {
        kinds: if kinds.is_empty() {
            Settings::default().kinds
        } else {
            kinds
        },
        trust,
    };
    let (origin, outcome) = Origin::load(cgroup, &settings, trust_any)?;
    let now = origin.settings()?;
    match outcome {
        LoadOutcome::Attached => {
            println!(
                "toa origin: attached to {} ({now})",
                origin.cgroup().display()
            );
        }
        LoadOutcome::Updated { before } => {
            println!(
                "toa origin: updated on {} ({now})",
                origin.cgroup().display()
            );
            let changes = now.changes_from(&before);
            if changes.is_empty() {
                println!("  changed: nothing");
            }
            for change in changes {
                println!("  changed: {change}");
            }
        }
    }
    Ok(())
}

/// `load --hold`: runs `load`, waits for SIGTERM or SIGINT, then unloads. The handlers
/// are installed first, so a stop that arrives while loading still unloads.
fn held(cgroup: &std::path::Path, load: impl FnOnce() -> Result<()>) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let stop = stop_signal()?;
        load()?;
        stop.await;
        unload(cgroup)
    })
}

/// Resolves at SIGTERM or SIGINT; the handlers are in place once this returns.
fn stop_signal() -> std::io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
    })
}

fn unload(cgroup: &std::path::Path) -> Result<()> {
    if Origin::unload(cgroup)? {
        println!("toa origin: unloaded from {}", cgroup.display());
    } else {
        println!("toa origin: nothing loaded on {}", cgroup.display());
    }
    Ok(())
}

fn status(cgroup: &std::path::Path, json: bool) -> Result<()> {
    let origin = Origin::open(cgroup)?;
    let counters = origin.counters()?;
    if json {
        return emit(&(status_json(&origin, &counters)? + "\n"));
    }
    println!("toa origin: attached to {}", origin.cgroup().display());
    println!("  pins:     {}", origin.pin_dir().display());
    for p in origin.programs()? {
        println!(
            "  program:  {:<17} id {:<6} link {}",
            p.name, p.program_id, p.link_id
        );
    }
    println!("  settings: {}", origin.settings()?);
    let summary: Vec<String> = counters
        .totals()
        .map(|(c, total)| format!("{}={total}", c.name()))
        .collect();
    println!("  counters: {}", summary.join(" "));
    Ok(())
}

fn stats(cgroup: &std::path::Path, json: bool, watch: bool) -> Result<()> {
    let origin = Origin::open(cgroup)?;
    // On a terminal each table replaces the last (clear the screen, home the cursor);
    // in a file or a pipe they follow one another, a blank line apart.
    let redraw = if std::io::stdout().is_terminal() {
        "\x1b[2J\x1b[H"
    } else {
        "\n"
    };
    let render = |current: &OriginCounters, previous: Option<&OriginCounters>| {
        if json {
            stats_json(current, previous) + "\n"
        } else if previous.is_some() {
            format!("{redraw}{}", stats_table(current, previous))
        } else {
            stats_table(current, None)
        }
    };
    let mut previous = origin.counters()?;
    if !watch {
        return emit(&render(&previous, None));
    }
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let current = origin.counters()?;
        emit(&render(&current, Some(&previous)))?;
        previous = current;
    }
}

/// Writes to stdout; a closed pipe (`| head`) ends the command quietly.
fn emit(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        other => Ok(other?),
    }
}

/// The /proc/net/toa_stats layout: a `CPU0 CPU1 …` header, then per counter
/// the name padded to 25 characters, a colon and one column per CPU. With a
/// previous snapshot (--watch), TOTAL and per-second rate columns follow.
fn stats_table(counters: &OriginCounters, previous: Option<&OriginCounters>) -> String {
    let mut out = " ".repeat(26);
    for cpu in 0..counters.cpus() {
        out += &format!("{:>10} ", format!("CPU{cpu}"));
    }
    if previous.is_some() {
        out += &format!("{:>12} {:>10}", "TOTAL", "RATE/s");
    }
    out = out.trim_end().to_string() + "\n";
    for counter in Counter::ALL {
        let mut row = format!("{:<25}:", counter.name());
        for value in counters.per_cpu(counter) {
            row += &format!("{value:>10} ");
        }
        if let Some(prev) = previous {
            let total = counters.total(counter);
            row += &format!(
                "{total:>12} {:>10}",
                total.saturating_sub(prev.total(counter))
            );
        }
        out += row.trim_end();
        out += "\n";
    }
    out
}

fn status_json(origin: &Origin, counters: &OriginCounters) -> Result<String> {
    let settings = origin.settings()?;
    let programs: Vec<_> = origin
        .programs()?
        .iter()
        .map(|p| serde_json::json!({"name": p.name, "program_id": p.program_id, "link_id": p.link_id}))
        .collect();
    let totals: serde_json::Map<_, _> = counters
        .totals()
        .map(|(c, total)| (c.name().to_string(), total.into()))
        .collect();
    Ok(serde_json::json!({
        "loaded": true,
        "cgroup": origin.cgroup(),
        "pins": origin.pin_dir(),
        "programs": programs,
        "kinds": settings.kinds,
        "trust": settings.trust.iter().map(TrustedNet::to_string).collect::<Vec<_>>(),
        "counters": totals,
    })
    .to_string())
}

fn stats_json(counters: &OriginCounters, previous: Option<&OriginCounters>) -> String {
    let mut map = serde_json::Map::new();
    for counter in Counter::ALL {
        let mut entry = serde_json::json!({
            "per_cpu": counters.per_cpu(counter),
            "total": counters.total(counter),
        });
        if let Some(prev) = previous {
            entry["rate_per_sec"] = counters
                .total(counter)
                .saturating_sub(prev.total(counter))
                .into();
        }
        map.insert(counter.name().to_string(), entry);
    }
    serde_json::json!({ "cpus": counters.cpus(), "counters": map }).to_string()
}
