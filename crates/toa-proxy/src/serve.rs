//! The foreground process behind `toa proxy --config FILE`: start the [`Server`], then
//! SIGHUP reloads (the file is validated in full first; a rejected one is logged and the
//! old config keeps running) and SIGTERM/SIGINT drain and exit.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::config::Config;
use crate::server::{Server, ServerError};

/// Runs the proxy for `toa proxy --config FILE`: loads the file, serves until SIGTERM or
/// SIGINT (then drains), and reloads on SIGHUP, keeping the old config when the new one
/// is rejected.
pub async fn serve(path: &Path, metrics: Option<SocketAddr>) -> Result<(), ServerError> {
    use tokio::signal::unix::{SignalKind, signal};
    // Installed first: a SIGHUP that arrives while starting must not kill the process.
    let mut hangup = signal(SignalKind::hangup()).map_err(ServerError::Signals)?;
    let mut terminate = signal(SignalKind::terminate()).map_err(ServerError::Signals)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(ServerError::Signals)?;

    raise_open_file_limit();
    let server = Arc::new(Server::start(load(path).await?).await?);
    if let Some(addr) = metrics {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Metrics { addr, source })?;
        server.serve_metrics(listener);
    }
    tracing::info!(config = %path.display(), "toa proxy running (SIGHUP reloads, SIGTERM drains and exits)");
    let resolver_stop = tokio_util::sync::CancellationToken::new();
    let resolver = tokio::spawn(crate::resolve::run(server.clone(), resolver_stop.clone()));
    loop {
        tokio::select! {
            _ = hangup.recv() => {
                let outcome = match load(path).await {
                    Ok(config) => server.reload(config).await,
                    Err(e) => {
                        server.count_rejected_reload();
                        Err(e)
                    }
                };
                match outcome {
                    Ok(a) => tracing::info!(rules = a.rules, kept = a.listeners_kept, opened = a.listeners_opened,
                        closed = a.listeners_closed, "reloaded {}", path.display()),
                    Err(e) => tracing::error!("reload rejected, old config still running: {e}"),
                }
            }
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    tracing::info!("draining");
    resolver_stop.cancel();
    let _ = resolver.await;
    server.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

/// Every client connection holds two sockets (plus a pipe per splicing direction) and every UDP flow one,
/// so the usual soft limit of 1024 descriptors would cap the proxy long before
/// `max_connections`/`max_flows` do. Raise the soft limit to the hard limit.
fn raise_open_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            let wanted = libc::rlimit {
                rlim_cur: limit.rlim_max,
                ..limit
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) != 0 {
                tracing::warn!(soft = limit.rlim_cur, "could not raise the open-file limit");
            }
        }
    }
}

/// Loads a config off the async threads (host names resolve with blocking getaddrinfo).
async fn load(path: &Path) -> Result<Config, ServerError> {
    let path = path.to_path_buf();
    let loaded = tokio::task::spawn_blocking(move || Config::load(&path)).await;
    Ok(loaded.expect("config loading does not panic")?)
}
