//! toa-bench — the benchmarks of toa (issues 7 and 14): toa proxy against HAProxy,
//! nginx stream and socat, the cost of TOA on the edge and on the origin, and
//! PROXY v2 against TOA as the origin sees it. `bench/run` is the entry point.
//!
//! # Layout
//! - [`run`]: `toa-bench run`, the lab and the peers' lifecycle; [`scenarios`]: what a round measures;
//!   [`drive`]: running the load generator for them; [`variants`]: extra toa binaries (`--toa-variant`).
//! - [`peers`]: the proxies under test and their configuration files.
//! - [`load`]: `toa-bench load`, the load generator (client namespace).
//! - [`serve`]: `toa-bench serve`, the origin server (origin namespace); [`message`]
//!   is what it speaks (PROXY v2 headers are parsed with `toa-wire`).
//! - [`cases`]: the scenario, target and case names the raw results are keyed by.
//! - [`results`], [`report`], [`goals`], [`variants_report`], [`charts`]: raw samples, the Markdown report,
//!   its goals table and variants table, the PNG charts.
//! - [`procfs`], [`machine`]: CPU, memory, machine and version facts; [`profile`]: perf profiles.
//! - [`soak`]: `toa-bench soak`, the long run under SIGHUPs and origin restarts (`bench/soak`).

mod cases;
mod charts;
mod drive;
mod goals;
mod load;
mod machine;
mod message;
mod peers;
mod procfs;
mod profile;
mod report;
mod results;
mod run;
mod scenarios;
mod serve;
mod soak;
mod variants;
mod variants_report;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "toa-bench",
    version,
    about = "Benchmarks for toa (use bench/run)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build the lab, run every scenario for every peer, write the report.
    Run(run::RunArgs),
    /// Redraw the report and charts of an earlier run from its raw.json.
    Report {
        raw: PathBuf,
        /// Directory holding `<date>.md` and `<date>/`.
        #[arg(long)]
        out: PathBuf,
    },
    /// The origin server (run inside the origin namespace).
    Serve(serve::ServeArgs),
    /// Mixed traffic for N minutes under SIGHUPs and origin restarts; writes a report.
    Soak(soak::SoakArgs),
    /// Redraw the report and charts of an earlier soak from its raw.json.
    SoakReport {
        raw: PathBuf,
        /// Directory holding `soak-<date>.md` and `soak-<date>/`.
        #[arg(long)]
        out: PathBuf,
    },
    /// The load generator (run inside the client namespace).
    #[command(subcommand)]
    Load(load::LoadCmd),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Run(a) => run::run(a),
        Cmd::Report { raw, out } => {
            let run: results::Run = serde_json::from_slice(&std::fs::read(&raw)?)?;
            let dir = out.join(&run.date);
            std::fs::create_dir_all(&dir)?;
            let path = report::write(&run, &out, &dir)?;
            eprintln!("wrote {}", path.display());
            Ok(())
        }
        Cmd::Serve(a) => serve::run(a),
        Cmd::Soak(a) => soak::run(a),
        Cmd::SoakReport { raw, out } => soak::redraw(&raw, &out),
        Cmd::Load(c) => load::run(c),
    }
}
