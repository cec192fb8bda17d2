//! The `toa` command line: parses arguments and hands each subcommand to its
//! library crate. Subcommands live one per file under `cmd/`.

use clap::Parser;

/// Pass a TCP/UDP client's real address across a layer-4 proxy to the origin.
#[derive(Parser)]
#[command(name = "toa", version, about, long_about = None)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    Ok(())
}
