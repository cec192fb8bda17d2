//! The `toa` command line: parses arguments and hands each subcommand to its
//! library crate. Subcommands live one per file under `cmd/`.

mod cmd {
    pub mod proxy;
    pub mod spp_echo;
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
    Proxy(cmd::proxy::ProxyArgs),
    SppEcho(cmd::spp_echo::SppEchoArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Proxy(args) => cmd::proxy::run(args),
        Command::SppEcho(args) => cmd::spp_echo::run(args),
    }
}
