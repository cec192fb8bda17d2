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
//! The server adds its own `toa_origin_exporter_connections_refused_total` and
//! `toa_origin_exporter_requests_timed_out_total`.
//!
//! # Limits
//! The server is `toa-metrics-http`, the proxy's endpoint: at most
//! [`toa_config::DEFAULT_METRICS_MAX_CONNECTIONS`] connections at once, each cut at
//! [`toa_metrics_http::REQUEST_DEADLINE`], so idle or trickling clients on a node's
//! open port cannot take the exporter (or its memory limit) for good.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use toa_loader::{LoaderError, Origin, OriginCounters};
use toa_metrics_http::EndpointCounts;
use tokio_util::sync::CancellationToken;

/// Why the exporter could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum ExporterError {
    #[error("cannot listen on {addr}: {source} (pick a free port, e.g. --listen 127.0.0.1:9101)")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
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
    exposition(counters, None)
}

/// [`render`], plus the server's own counts when it serves the page.
fn exposition(counters: Option<&OriginCounters>, endpoint: Option<Arc<EndpointCounts>>) -> String {
    let mut registry = Registry::default();
    registry
        .sub_registry_with_prefix("toa_origin")
        .register_collector(Box::new(Snapshot(counters.cloned())));
    if let Some(endpoint) = endpoint {
        registry.register_collector(Box::new(endpoint));
    }
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
    let counts = Arc::new(EndpointCounts::new("toa_origin_exporter"));
    let page_counts = counts.clone();
    let render = move || {
        let (cgroup, counts) = (cgroup.clone(), page_counts.clone());
        async move {
            // Reading the maps is a few syscalls: off the async threads all the same.
            let read = tokio::task::spawn_blocking(move || scrape(&cgroup)).await;
            match read {
                Ok(Ok(counters)) => Ok(exposition(counters.as_ref(), Some(counts))),
                Ok(Err(e)) => Err(e.to_string()),
                Err(e) => Err(e.to_string()),
            }
        }
    };
    let stop = CancellationToken::new();
    let server = tokio::spawn(toa_metrics_http::serve(
        listener,
        toa_metrics_http::routes(render),
        toa_config::DEFAULT_METRICS_MAX_CONNECTIONS,
        counts,
        stop.clone(),
    ));
    tracing::info!(%listen, "serving /metrics");
    shutdown.await;
    stop.cancel();
    let _ = server.await;
    Ok(())
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
