//! The `/metrics` endpoint: axum routes each request (GET and HEAD, any query string,
//! as Prometheus' `params:` sends), and hyper serves each connection under our own
//! accept loop, because the endpoint must never cost the data path: at most
//! `metrics_max_connections` connections at once (more are closed at accept), one total
//! deadline per connection however slowly its bytes arrive, and no new connection while
//! the process is within [`FD_RESERVE`] descriptors of its limit. `axum::serve` accepts
//! without a bound and has no per-connection deadline, so it is not used here.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::http::{StatusCode, header};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::family::counter;
use super::host;
use crate::limit::Limit;

/// The exposition's media type (OpenMetrics text, which Prometheus negotiates first).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Largest request head accepted (hyper's smallest buffer); a scrape sends under 1 KiB.
const MAX_REQUEST_HEAD: usize = 8192;
/// One connection, first byte of the request to last byte of the answer. A scraper on a
/// LAN needs milliseconds; Prometheus' own default scrape timeout is 10 s, so 5 s leaves
/// it a clear error.
const REQUEST_DEADLINE: Duration = Duration::from_secs(5);
/// Descriptors kept for client connections, upstream sockets and splice pipes: the
/// endpoint refuses connections once fewer than this many are free.
pub const FD_RESERVE: u64 = 256;

/// What the endpoint cut short.
#[derive(Debug, Default)]
pub struct EndpointCounts {
    /// Connections closed at accept (over the cap, or in the descriptor reserve).
    pub refused: AtomicU64,
    /// Connections cut at [`REQUEST_DEADLINE`].
    pub timed_out: AtomicU64,
}

impl Collector for EndpointCounts {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        counter(
            &mut encoder,
            "toa_proxy_metrics_connections_refused",
            "Metrics connections closed at accept: over metrics_max_connections or inside the descriptor reserve.",
            self.refused.load(Ordering::Relaxed),
        )?;
        counter(
            &mut encoder,
            "toa_proxy_metrics_requests_timed_out",
            "Metrics requests cut at the 5 s deadline.",
            self.timed_out.load(Ordering::Relaxed),
        )
    }
}

/// Serves `GET`/`HEAD /metrics` with `render()` until `stop` is cancelled.
pub async fn serve_http<F>(
    listener: TcpListener,
    render: F,
    max_connections: usize,
    counts: Arc<EndpointCounts>,
    stop: CancellationToken,
) where
    F: Fn() -> String + Send + Sync + Clone + 'static,
{
    let routes = axum::Router::new()
        .route(
            "/metrics",
            // `get` answers HEAD too, with the same headers and no body.
            axum::routing::get(move || {
                let body = render();
                async move { ([(header::CONTENT_TYPE, CONTENT_TYPE)], body) }
            }),
        )
        .fallback(|| async { (StatusCode::NOT_FOUND, "only /metrics is served here\n") });
    let service = TowerToHyperService::new(routes);
    let open = Limit::new(max_connections);
    loop {
        let stream = tokio::select! {
            _ = stop.cancelled() => return,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!("metrics: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Some(guard) = open
            .try_acquire()
            .filter(|_| host::free_fds() >= FD_RESERVE)
        else {
            counts.refused.fetch_add(1, Ordering::Relaxed);
            drop(stream);
            continue;
        };
        let (service, counts) = (service.clone(), counts.clone());
        tokio::spawn(async move {
            let _guard = guard;
            // One request per connection: the deadline then bounds each request.
            let connection = hyper::server::conn::http1::Builder::new()
                .keep_alive(false)
                .max_buf_size(MAX_REQUEST_HEAD)
                .serve_connection(TokioIo::new(stream), service);
            match tokio::time::timeout(REQUEST_DEADLINE, connection).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!("metrics: request failed: {e}"),
                Err(_) => {
                    counts.timed_out.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
}
