//! The foreground process behind `toa proxy --config FILE`: start the [`Server`], then
//! SIGHUP (or, with `--watch-config`, a change of the file's content) reloads (the file
//! is validated in full first; a rejected one is logged and the old config keeps
//! running) and SIGTERM/SIGINT drain and exit. A systemd supervisor (`Type=notify`) is
//! told READY=1 once the listeners are bound, RELOADING=1 … READY=1 around each
//! reload, and STOPPING=1 when draining starts. With `--admin-socket`, `toa proxy reload`
//! asks for the same reload there and gets its outcome as the answer (`admin`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::admin::{AdminSocket, Answer, Command, ReloadRejected, Request};
use crate::client_ip::UpstreamTaggerFactory;
use crate::notify::{Notifier, State};
use crate::server::{Server, ServerError};
use crate::steer::PortSteering;
use crate::watch::ConfigWatch;
use toa_config::Config;

/// How `toa proxy` runs besides its config file.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// Serve Prometheus metrics at `http://ADDR/metrics`.
    pub metrics: Option<SocketAddr>,
    /// Reload when the config file's content changes (`--watch-config`), as on SIGHUP.
    pub watch_config: bool,
    /// Accept a config without online rules (`--allow-empty`), at start and on reload.
    pub allow_empty: bool,
    /// Take commands (`toa proxy reload`) on this Unix socket (`--admin-socket`).
    pub admin_socket: Option<PathBuf>,
    /// Attaches the TOA writer for `pass_client_ip = "toa"` rules (the `toa` binary
    /// passes the eBPF edge writer); without it, such rules are refused.
    pub toa_tagger: Option<Arc<dyn UpstreamTaggerFactory>>,
    /// Steers wide port ranges to one listener each (the `toa` binary passes the
    /// sk_lookup steerer when it could attach it); without it every port is bound.
    pub port_steering: Option<Arc<dyn PortSteering>>,
}

/// Runs the proxy for `toa proxy --config FILE`: loads the file, serves until SIGTERM or
/// SIGINT (then drains), and reloads on SIGHUP (and on content changes with
/// [`ServeOptions::watch_config`]), keeping the old config when the new one is rejected.
/// A file without online rules is refused, at start and on reload, unless
/// [`ServeOptions::allow_empty`].
pub async fn serve(path: &Path, options: ServeOptions) -> Result<(), ServerError> {
    use tokio::signal::unix::{SignalKind, signal};
    // Installed first: a SIGHUP that arrives while starting must not kill the process.
    let mut hangup = signal(SignalKind::hangup()).map_err(ServerError::Signals)?;
    let mut terminate = signal(SignalKind::terminate()).map_err(ServerError::Signals)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(ServerError::Signals)?;
    let notifier = Notifier::from_env();

    raise_open_file_limit();
    let mut watch = match options.watch_config {
        // Read before loading: a change made while starting is then seen as one.
        true => Some(ConfigWatch::new(path).await),
        false => None,
    };
    let config = load(path, options.allow_empty).await?;
    // Before the listeners: a second proxy given the same socket stops here, touching nothing.
    let admin = options
        .admin_socket
        .as_deref()
        .map(AdminSocket::bind)
        .transpose()?;
    let metrics_max_connections = config.proxy.metrics_max_connections;
    // Shared with the resolver task, which applies re-resolved origins through the same
    // path as a reload.
    let server = Arc::new(
        Server::start(
            config,
            options.toa_tagger.clone(),
            options.port_steering.clone(),
        )
        .await?,
    );
    if let Some(addr) = options.metrics {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Metrics { addr, source })?;
        server.serve_metrics(listener, metrics_max_connections);
    }
    tracing::info!(config = %path.display(), watch = options.watch_config,
        "toa proxy running (SIGHUP reloads, SIGTERM drains and exits)");
    let resolver_stop = CancellationToken::new();
    let resolver = tokio::spawn(resolve_loop(server.clone(), resolver_stop.clone()));
    // The sender stays here as well, so `recv` waits (and never ends) without a socket.
    let (admin_requests, mut admin_rx) = mpsc::channel(4);
    let admin = admin.map(|socket| tokio::spawn(socket.serve(admin_requests.clone())));
    notifier.notify(State::Ready, &format!("serving {}", path.display()));
    loop {
        tokio::select! {
            _ = hangup.recv() => {
                if let Some(watch) = watch.as_mut() {
                    watch.mark_seen().await;
                }
                // Logged and told to systemd inside; only the admin socket waits for it.
                let _ = reload(&server, path, options.allow_empty, &notifier).await;
            }
            _ = async { watch.as_mut().expect("guarded").changed().await }, if watch.is_some() => {
                tracing::info!("{} changed", path.display());
                let _ = reload(&server, path, options.allow_empty, &notifier).await;
            }
            Some(request) = admin_rx.recv() => {
                command(&server, path, options.allow_empty, &notifier, request).await;
            }
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    tracing::info!("draining");
    if let Some(admin) = admin {
        // Dropping the socket removes its file: no command reaches a draining proxy.
        admin.abort();
        let _ = admin.await;
    }
    notifier.notify(State::Stopping, "draining connections");
    resolver_stop.cancel();
    let _ = resolver.await;
    server.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

/// One admin socket command, answered on its request's `reply`.
async fn command(
    server: &Server,
    path: &Path,
    allow_empty: bool,
    notifier: &Notifier,
    request: Request,
) {
    let outcome = match request.command {
        Command::Reload => reload(server, path, allow_empty, notifier)
            .await
            .map(Answer::from)
            .map_err(Into::into),
        Command::SetOriginState {
            name,
            address,
            state,
        } => server
            .set_origin_state(&name, address, state)
            .await
            .map(Answer::from)
            .map_err(Into::into),
        Command::ListOrigins => {
            let rows = server.origins().await;
            Ok(Answer {
                status: format!("{} origins", rows.len()),
                lines: crate::origin_admin::table(&rows),
            })
        }
    };
    let _ = request.reply.send(outcome);
}

/// One reload, whatever asked for it: all of the file or none of it. Its outcome is the
/// status line (`Ok`) or why the file was rejected (`Err`).
async fn reload(
    server: &Server,
    path: &Path,
    allow_empty: bool,
    notifier: &Notifier,
) -> Result<String, ReloadRejected> {
    notifier.notify(State::Reloading, &format!("reloading {}", path.display()));
    let outcome = match load(path, allow_empty).await {
        Ok(config) => server.reload(config).await,
        Err(e) => {
            server.count_rejected_reload();
            Err(e)
        }
    };
    let (status, result) = match outcome {
        Ok(a) => {
            tracing::info!(
                rules = a.rules,
                kept = a.listeners_kept,
                opened = a.listeners_opened,
                closed = a.listeners_closed,
                "reloaded {}",
                path.display()
            );
            let status = format!("serving {}", path.display());
            (status.clone(), Ok(format!("reloaded, {status}")))
        }
        Err(e) => {
            let rejected = ReloadRejected(e);
            tracing::error!("{rejected}");
            (rejected.to_string(), Err(rejected))
        }
    };
    // Running either way: with the new config, or with the old one.
    notifier.notify(State::Ready, &status);
    result
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
async fn load(path: &Path, allow_empty: bool) -> Result<Config, ServerError> {
    let path = path.to_path_buf();
    let loaded = tokio::task::spawn_blocking(move || Config::load(&path)).await;
    let config = loaded.expect("config loading does not panic")?;
    if !allow_empty {
        config.require_online_rules()?;
    }
    Ok(config)
}

/// Looks up due host names for `server` until `stop`; its own task, so slow lookups never
/// hold up signal handling (a reload waits only for the apply, not for DNS).
async fn resolve_loop(server: Arc<Server>, stop: CancellationToken) {
    let mut schedule = crate::resolve::Schedule::default();
    loop {
        let next = tokio::select! {
            _ = stop.cancelled() => return,
            next = server.resolve_due(&mut schedule) => next,
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep_until(next) => {}
        }
    }
}
