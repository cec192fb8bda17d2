//! The `toa` command line: parses arguments and hands each subcommand to its
//! library crate. Subcommands live one per file under `cmd/`.

mod cmd {
    pub mod demo;
    pub mod doctor;
    pub mod generate_docs;
    pub mod origin;
    pub mod proxy;
    pub mod spp_echo;
}
mod edge_tagger;
mod logs;
mod port_steering;

use clap::{Parser, Subcommand};

/// jemalloc: an idle proxied connection costs 1.43 KiB with it against 1.85 with glibc's
/// malloc (bench/idle-memory), at the same CPU per connection. The connection's three
/// largest allocations (tokio's task cell and two I/O registrations) are 128-byte
/// aligned; jemalloc serves them from size classes, glibc pads each aligned allocation.
/// musl builds keep the system allocator.
#[cfg(target_env = "gnu")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Pass a TCP/UDP client's real address across a layer-4 proxy to the origin.
#[derive(Parser)]
#[command(name = "toa", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The whole system in one command: client, edge and origin namespaces, real requests, a verdict.
    Demo(cmd::demo::DemoArgs),
    /// The edge L4 proxy: forwarding rules, balancing, health checks, client IP by TOA, PROXY v1/v2 or SPP.
    Proxy(cmd::proxy::ProxyArgs),
    /// The TOA receiver on origin servers (eBPF, replaces toa.ko).
    Origin(cmd::origin::OriginArgs),
    /// Check whether this host can run toa, and what is attached.
    Doctor(cmd::doctor::DoctorArgs),
    /// UDP echo server that understands SPP and PROXY v2: the reference origin for UDP rules.
    SppEcho(cmd::spp_echo::SppEchoArgs),
    /// Man pages and shell completions from these definitions (used by scripts/package).
    #[command(hide = true)]
    GenerateDocs(cmd::generate_docs::GenerateDocsArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Proxy(args) => cmd::proxy::run(args),
        Command::Doctor(args) => cmd::doctor::run(args),
        Command::Origin(args) => cmd::origin::run(args),
        Command::Demo(args) => cmd::demo::run(args),
        Command::SppEcho(args) => cmd::spp_echo::run(args),
        Command::GenerateDocs(args) => cmd::generate_docs::run::<Cli>(args),
    }
}
