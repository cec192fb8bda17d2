//! `toa demo`: the whole system in one command (logic in the `toa-demo` crate).

use anyhow::bail;
use std::net::SocketAddr;

/// How the proxy passes the client's address in the demo.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum DemoMode {
    /// TCP option address, read on the origin by `toa origin` (python http.server origin).
    Toa,
    /// PROXY protocol v2, read by nginx (`listen ... proxy_protocol`).
    Ppv2,
}

/// Build client, edge and origin namespaces, send real requests through `toa proxy`,
/// and show that the origin logs the client's real address.
#[derive(clap::Args)]
pub struct DemoArgs {
    /// How the proxy passes the client's address.
    #[arg(long, value_enum, default_value = "toa")]
    mode: DemoMode,
    /// Leave the topology running and print the commands to explore it.
    #[arg(long)]
    keep: bool,
    /// Internal: serve HTTP on ADDR, logging each client found through libtoa's lookup.
    #[arg(long, hide = true, value_name = "ADDR")]
    lookup_server: Option<SocketAddr>,
}

pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    if let Some(bind) = args.lookup_server {
        return toa_demo::serve_lookup(bind);
    }
    let opts = toa_demo::Options {
        mode: match args.mode {
            DemoMode::Toa => toa_demo::Mode::Toa,
            DemoMode::Ppv2 => toa_demo::Mode::Ppv2,
        },
        keep: args.keep,
        toa_bin: std::env::current_exe()?,
    };
    let outcome = toa_demo::run(&opts)?;
    if !outcome.passed() {
        bail!("the origin did not see every expected address (see above)");
    }
    Ok(())
}
