//! toa-metrics-http — the `/metrics` endpoint of `toa proxy --metrics` and of
//! `toa origin exporter`, one implementation for both. axum routes each request (GET and
//! HEAD, any query string, as Prometheus' `params:` sends) and hyper serves each
//! connection under our own accept loop, because a scrape endpoint must never cost the
//! process its real work: at most `max_connections` connections at once (more are closed
//! at accept), one total deadline per connection however slowly its bytes arrive, and no
//! new connection while the process is within [`FD_RESERVE`] descriptors of its limit.
//! `axum::serve` accepts without a bound and has no per-connection deadline, so a few
//! hundred idle sockets would hold it (and the process's descriptors) for good.
//!
//! # Layout
//! - [`serve`]: the accept loop; [`routes`]: `/metrics` from a render function.
//! - [`EndpointCounts`]: what the endpoint cut short, as Prometheus counters.
//! - [`open_fds`], [`fd_limit`], [`free_fds`]: the process's descriptors.

mod fds;

use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

pub use fds::{fd_limit, free_fds, open_fds};

/// The exposition's media type (OpenMetrics text, which Prometheus negotiates first).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Largest request head accepted (hyper's smallest buffer); a scrape sends under 1 KiB.
const MAX_REQUEST_HEAD: usize = 8192;
/// One connection, first byte of the request to last byte of the answer. A scraper on a
/// LAN needs milliseconds; Prometheus' own default scrape timeout is 10 s, so 5 s leaves
/// it a clear error.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(5);
/// Descriptors kept for the process's real work (the proxy's client and upstream sockets
/// and pipes): the endpoint refuses connections once fewer than this many are free.
pub const FD_RESERVE: u64 = 256;

/// What the endpoint cut short, exported as `<prefix>_connections_refused_total` and
/// `<prefix>_requests_timed_out_total`.
#[derive(Debug)]
pub struct EndpointCounts {
    prefix: &'static str,
    /// Connections closed at accept (over the cap, or in the descriptor reserve).
    pub refused: AtomicU64,
    /// Connections cut at [`REQUEST_DEADLINE`].
    pub timed_out: AtomicU64,
}

impl EndpointCounts {
    /// Counts named `<prefix>_…`, e.g. `toa_proxy_metrics`.
    pub fn new(prefix: &'static str) -> EndpointCounts {
        EndpointCounts {
            prefix,
            refused: AtomicU64::new(0),
            timed_out: AtomicU64::new(0),
        }
    }
}

impl Collector for EndpointCounts {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let rows = [
            (
                "connections_refused",
                "Metrics connections closed at accept: over the connection cap or inside the descriptor reserve.",
                &self.refused,
            ),
            (
                "requests_timed_out",
                "Metrics requests cut at the 5 s deadline.",
                &self.timed_out,
            ),
        ];
        for (name, help, value) in rows {
            // The encoder appends `_total` to counter names.
            let value = ConstCounter::new(value.load(Ordering::Relaxed));
            value.encode(encoder.encode_descriptor(
                &format!("{}_{name}", self.prefix),
                help,
                None,
                value.metric_type(),
            )?)?;
        }
        Ok(())
    }
}

/// `GET`/`HEAD /metrics` answered with `render()`'s text (or 500 with its error), any
/// other path with 404. `get` answers HEAD too, with the same headers and no body.
pub fn routes<F, Fut, E>(render: F) -> axum::Router
where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<String, E>> + Send + 'static,
    E: fmt::Display,
{
    axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(move || {
                let rendered = render();
                async move {
                    match rendered.await {
                        Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
                        Err(e) => {
                            tracing::warn!("scrape failed: {e}");
                            let status = StatusCode::INTERNAL_SERVER_ERROR;
                            (status, format!("{e}\n")).into_response()
                        }
                    }
                }
            }),
        )
        .fallback(|| async { (StatusCode::NOT_FOUND, "only /metrics is served here\n") })
}

/// `render` for [`routes`] when rendering cannot fail.
pub fn infallible(text: String) -> std::future::Ready<Result<String, Infallible>> {
    std::future::ready(Ok(text))
}

/// Serves `routes` on `listener` until `stop` is cancelled: at most `max_connections`
/// at once, one request per connection, each within [`REQUEST_DEADLINE`].
pub async fn serve(
    listener: TcpListener,
    routes: axum::Router,
    max_connections: usize,
    counts: Arc<EndpointCounts>,
    stop: CancellationToken,
) {
    let service = TowerToHyperService::new(routes);
    let open = Arc::new(Semaphore::new(max_connections));
    loop {
        let stream = tokio::select! {
            _ = stop.cancelled() => return,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    // EMFILE and friends pass; retrying at once would spin.
                    tracing::warn!("metrics: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        // The semaphore is never closed, so `try_acquire_owned` fails only when full.
        let Some(permit) = open
            .clone()
            .try_acquire_owned()
            .ok()
            .filter(|_| free_fds() >= FD_RESERVE)
        else {
            counts.refused.fetch_add(1, Ordering::Relaxed);
            drop(stream);
            continue;
        };
        let (service, counts) = (service.clone(), counts.clone());
        tokio::spawn(async move {
            let _permit = permit;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_counts_carry_their_prefix() {
        let counts = EndpointCounts::new("toa_origin_exporter");
        counts.refused.fetch_add(2, Ordering::Relaxed);
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(counts));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("\ntoa_origin_exporter_connections_refused_total 2\n"),
            "{text}"
        );
        assert!(
            text.contains("\ntoa_origin_exporter_requests_timed_out_total 0\n"),
            "{text}"
        );
    }
}
