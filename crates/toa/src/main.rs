//! The `toa` command line: parses arguments and hands each subcommand to its
//! library crate. Subcommands live one per file under `cmd/`.

mod cmd {
    pub mod doctor;
    pub mod origin;
    pub mod proxy;
}

use clap::{Parser, Subcommand};

/// Pass a TCP/UDP client's real address across a layer-4 proxy to the origin.
#[derive(Parser)]
#[command(name = "toa", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The edge L4 proxy: forwarding rules, balancing, health checks, client IP by TOA or PROXY v1/v2.
    Proxy(cmd::proxy::ProxyArgs),
    /// Check whether this host can run toa, and what is attached.
    Doctor(cmd::doctor::DoctorArgs),
    /// The TOA receiver on origin servers (eBPF, replaces toa.ko).
    Origin(cmd::origin::OriginArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Proxy(args) => cmd::proxy::run(args),
        Command::Doctor(args) => cmd::doctor::run(args),
        Command::Origin(args) => cmd::origin::run(args),
    }
}
