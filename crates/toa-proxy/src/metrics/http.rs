//! The `/metrics` endpoint. It must never cost the data path: at most
//! `metrics_max_connections` requests at once (more are closed at accept), one total
//! deadline per request however slowly its bytes arrive, and no new request while the
//! process is within [`FD_RESERVE`] descriptors of its limit.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::family::counter;
use super::host;
use crate::limit::Limit;

/// The exposition's media type (OpenMetrics text, which Prometheus negotiates first).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Largest request head accepted; a scrape sends well under 1 KiB.
const MAX_REQUEST_HEAD: usize = 8192;
/// One request, head to last byte of the answer. A scraper on a LAN needs milliseconds;
/// Prometheus' own default scrape timeout is 10 s, so 5 s leaves it a clear error.
const REQUEST_DEADLINE: Duration = Duration::from_secs(5);
/// Descriptors kept for client connections, upstream sockets and splice pipes: the
/// endpoint refuses requests once fewer than this many are free.
pub const FD_RESERVE: u64 = 256;

/// Requests the endpoint closed at once (over the cap, or in the descriptor reserve).
#[derive(Debug, Default)]
pub struct EndpointCounts {
    pub refused: AtomicU64,
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

/// Serves `GET /metrics` with `render()` until `stop` is cancelled.
pub async fn serve_http<F>(
    listener: TcpListener,
    render: F,
    max_connections: usize,
    counts: Arc<EndpointCounts>,
    stop: CancellationToken,
) where
    F: Fn() -> String + Send + Sync + Clone + 'static,
{
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
        let (render, counts) = (render.clone(), counts.clone());
        tokio::spawn(async move {
            let _guard = guard;
            match tokio::time::timeout(REQUEST_DEADLINE, answer(stream, render)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!("metrics: request failed: {e}"),
                Err(_) => {
                    counts.timed_out.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
}

async fn answer(mut stream: TcpStream, render: impl Fn() -> String) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_REQUEST_HEAD {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let mut parts = line.split_whitespace();
    let (status, body) = match (parts.next(), parts.next()) {
        (Some("GET"), Some("/metrics")) => ("200 OK", render()),
        _ => (
            "404 Not Found",
            "only GET /metrics is served here\n".to_string(),
        ),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {CONTENT_TYPE}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}
