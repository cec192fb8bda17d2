//! toa-exporter — the origin receiver's counters for Prometheus: the text exposition
//! (`toa origin stats --prometheus`) and a long-running `/metrics` server
//! (`toa origin exporter --listen ADDR`) a DaemonSet or a node's Prometheus scrapes.
//!
//! The counters themselves are read through `toa-loader` ([`toa_loader::Origin`]); the
//! `toa` binary only parses the command line and calls [`render`] or [`serve`].
//!
//! # Names
//! Every [`toa_loader::Counter`] is a Prometheus counter named `toa_origin_<name>_total` (the
//! names of `toa origin stats`, e.g. `toa_origin_syn_recv_sock_toa_total`), summed over
//! CPUs. `toa_origin_loaded` is 1 while the receiver is attached to the cgroup and 0
//! (with no counters) while it is not, so a scrape of an idle node still succeeds.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use toa_loader::{LoaderError, Origin, OriginCounters};

/// The exposition's media type (OpenMetrics text, which Prometheus negotiates first).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Why the exporter could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum ExporterError {
    #[error("cannot listen on {addr}: {source} (pick a free port, e.g. --listen 127.0.0.1:9101)")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("serving /metrics failed: {0}")]
    Serve(std::io::Error),
}

/// The counters of the receiver on `cgroup`, or `None` when nothing is attached there.
pub fn scrape(cgroup: &Path) -> Result<Option<OriginCounters>, LoaderError> {
    match Origin::open(cgroup) {
        Ok(origin) => origin.counters().map(Some),
        Err(LoaderError::NotLoaded { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The text exposition of one snapshot (`None`: nothing loaded), ending in `# EOF`.
pub fn render(counters: Option<&OriginCounters>) -> String {
    let mut registry = Registry::with_prefix("toa_origin");
    registry.register_collector(Box::new(Snapshot(counters.cloned())));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)
        .expect("writing to a String cannot fail");
    text
}

/// One read of the kernel's counters, encoded on scrape.
#[derive(Debug)]
struct Snapshot(Option<OriginCounters>);

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let loaded = ConstGauge::new(i64::from(self.0.is_some()));
        loaded.encode(encoder.encode_descriptor(
            "loaded",
            "1 while the TOA receiver is attached to the cgroup, else 0.",
            None,
            loaded.metric_type(),
        )?)?;
        let Some(counters) = &self.0 else {
            return Ok(());
        };
        for (counter, total) in counters.totals() {
            // The encoder appends `_total` to counter names.
            let value = ConstCounter::new(total);
            value.encode(encoder.encode_descriptor(
                counter.name(),
                counter.help(),
                None,
                value.metric_type(),
            )?)?;
        }
        Ok(())
    }
}

/// Serves `GET /metrics` (and HEAD; query strings are ignored) for the receiver on
/// `cgroup` until `shutdown` resolves. Each scrape reads the kernel afresh, so the
/// exporter may start before `toa origin load` and outlive `unload`.
pub async fn serve(
    listen: SocketAddr,
    cgroup: PathBuf,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ExporterError> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| ExporterError::Listen {
            addr: listen,
            source,
        })?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || metrics(cgroup.clone())),
    );
    tracing::info!(%listen, "serving /metrics");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(ExporterError::Serve)
}

async fn metrics(cgroup: PathBuf) -> Response {
    // Reading the maps is a few syscalls: off the async threads all the same.
    let read = tokio::task::spawn_blocking(move || scrape(&cgroup)).await;
    match read {
        Ok(Ok(counters)) => (
            [(header::CONTENT_TYPE, CONTENT_TYPE)],
            render(counters.as_ref()),
        )
            .into_response(),
        Ok(Err(e)) => {
            tracing::warn!("scrape failed: {e}");
            (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response()
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_loaded_renders_only_the_loaded_gauge() {
        let text = render(None);
        assert!(text.contains("# TYPE toa_origin_loaded gauge\n"), "{text}");
        assert!(text.contains("\ntoa_origin_loaded 0\n"), "{text}");
        assert!(!text.contains("_total"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
