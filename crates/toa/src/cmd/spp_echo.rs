//! `toa spp-echo`: the reference UDP origin for SPP and PROXY v2 (see
//! `toa_spp_echo`). Prints one line per new client to stdout.

use std::net::SocketAddr;

use anyhow::Context;
use clap::Args;
use toa_pktinfo::ListenSocket;
use tokio_util::sync::CancellationToken;

/// UDP echo server that understands SPP and PROXY v2: the reference origin for UDP rules.
///
/// SPP datagrams: the header is stripped, each new client is logged to stdout
/// ("spp client C via proxy P"), and the payload is echoed with the header back in front.
/// A PROXY v2 header (the proxy sends it on a flow's first datagram) is logged and stripped;
/// other datagrams are echoed unchanged. Runs until SIGINT or SIGTERM.
#[derive(Args, Debug)]
pub struct SppEchoArgs {
    /// Address to listen on, e.g. 0.0.0.0:9000 or [::]:9000 (IPv4 too, unless bindv6only).
    #[arg(long, value_name = "ADDR")]
    listen: SocketAddr,
}

pub fn run(args: SppEchoArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let socket = ListenSocket::bind(args.listen, None).with_context(|| {
            format!(
                "cannot listen on udp {} (in use? try another port)",
                args.listen
            )
        })?;
        let stop = CancellationToken::new();
        let on_signal = stop.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            if let (Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            on_signal.cancel();
        });
        println!("spp-echo listening on udp {}", socket.local_addr()?);
        toa_spp_echo::serve(socket, stop, |line| println!("{line}")).await;
        Ok(())
    })
}
