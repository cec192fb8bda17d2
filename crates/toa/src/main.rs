//! The `toa` command line: parses arguments and hands each subcommand to its
//! library crate. Subcommands live one per file under `cmd/`.

mod cmd {
    pub mod doctor;
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
    Doctor(cmd::doctor::DoctorArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Doctor(args) => cmd::doctor::run(args),
    }
}
