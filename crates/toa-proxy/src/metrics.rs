//! Counters and the Prometheus text endpoint (`--metrics ADDR`, path `/metrics`).
//! Per-rule counters are keyed by tag and survive reloads, so they stay monotonic.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::accept_proxy::Refusal;
use crate::error::CONNECT_ERROR_KINDS;
use crate::health::HealthRegistry;

/// Reasons a client connection is closed before any origin is tried.
pub const REJECT_REASONS: [&str; 6] = [
    "global_limit",
    "rule_limit",
    Refusal::Untrusted.reason(),
    Refusal::Missing.reason(),
    Refusal::Malformed.reason(),
    Refusal::Timeout.reason(),
];

#[derive(Default)]
pub struct RuleMetrics {
    pub connections_total: AtomicU64,
    pub connections_active: AtomicU64,
    pub bytes_to_origin: AtomicU64,
    pub bytes_to_client: AtomicU64,
    /// Indexed like [`CONNECT_ERROR_KINDS`].
    pub connect_errors: [AtomicU64; CONNECT_ERROR_KINDS.len()],
    /// Indexed like [`REJECT_REASONS`].
    pub rejected: [AtomicU64; REJECT_REASONS.len()],
    /// Flows, datagrams and drops of a UDP rule (its bytes are counted above).
    pub udp: crate::udp::UdpRuleMetrics,
}

impl RuleMetrics {
    pub fn connect_error(&self, kind: &str) {
        if let Some(i) = CONNECT_ERROR_KINDS.iter().position(|k| *k == kind) {
            self.connect_errors[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn reject(&self, reason: &str) {
        if let Some(i) = REJECT_REASONS.iter().position(|k| *k == reason) {
            self.rejected[i].fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// TOA writer counters, read from the kernel side when scraped.
#[derive(Debug, Default, Clone, Copy)]
pub struct ToaCounts {
    pub written: u64,
    pub reserve_failed: u64,
}

type ToaSource = Box<dyn Fn() -> ToaCounts + Send + Sync>;

#[derive(Default)]
pub struct Metrics {
    rules: Mutex<BTreeMap<String, Arc<RuleMetrics>>>,
    pub reloads_ok: AtomicU64,
    pub reloads_rejected: AtomicU64,
    toa: Mutex<Option<ToaSource>>,
}

impl Metrics {
    /// The counters of rule `tag`, created on first use.
    pub fn rule(&self, tag: &str) -> Arc<RuleMetrics> {
        let mut rules = self.rules.lock().unwrap_or_else(|p| p.into_inner());
        rules.entry(tag.to_string()).or_default().clone()
    }

    pub fn set_toa_source(&self, source: ToaSource) {
        *self.toa.lock().unwrap_or_else(|p| p.into_inner()) = Some(source);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self, health: &HealthRegistry) -> String {
        let mut out = String::new();
        let rules = self.rules.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut family = |name: &str, kind: &str, help: &str, rows: Vec<(String, u64)>| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, v) in rows {
                let _ = writeln!(out, "{name}{labels} {v}");
            }
        };
        let per_rule = |f: &dyn Fn(&RuleMetrics) -> u64| -> Vec<(String, u64)> {
            rules
                .iter()
                .map(|(t, m)| (format!("{{rule=\"{}\"}}", escape(t)), f(m)))
                .collect()
        };
        family(
            "toa_proxy_connections_total",
            "counter",
            "Client connections accepted.",
            per_rule(&|m| load(&m.connections_total)),
        );
        family(
            "toa_proxy_connections_active",
            "gauge",
            "Client connections open now.",
            per_rule(&|m| load(&m.connections_active)),
        );
        let bytes = rules
            .iter()
            .flat_map(|(t, m)| {
                [
                    ("client_to_origin", load(&m.bytes_to_origin)),
                    ("origin_to_client", load(&m.bytes_to_client)),
                ]
                .map(|(d, v)| (format!("{{rule=\"{}\",direction=\"{d}\"}}", escape(t)), v))
            })
            .collect();
        family(
            "toa_proxy_bytes_total",
            "counter",
            "Payload bytes forwarded, by direction.",
            bytes,
        );
        let errors = rules
            .iter()
            .flat_map(|(t, m)| {
                CONNECT_ERROR_KINDS
                    .iter()
                    .zip(&m.connect_errors)
                    .map(move |(k, v)| {
                        (format!("{{rule=\"{}\",kind=\"{k}\"}}", escape(t)), load(v))
                    })
            })
            .collect();
        family(
            "toa_proxy_connect_errors_total",
            "counter",
            "Failed upstream connects by kind (no_healthy_origin: every origin down, client closed fast).",
            errors,
        );
        let rejected = rules
            .iter()
            .flat_map(|(t, m)| {
                REJECT_REASONS.iter().zip(&m.rejected).map(move |(r, v)| {
                    (
                        format!("{{rule=\"{}\",reason=\"{r}\"}}", escape(t)),
                        load(v),
                    )
                })
            })
            .collect();
        family(
            "toa_proxy_connections_rejected_total",
            "counter",
            "Client connections closed at once because a connection limit was reached.",
            rejected,
        );
        let origins = health
            .snapshot()
            .into_iter()
            .map(|(a, up)| (format!("{{origin=\"{a}\"}}"), u64::from(up)))
            .collect();
        family(
            "toa_proxy_origin_up",
            "gauge",
            "Origin health: 1 up, 0 down.",
            origins,
        );
        let toa = self
            .toa
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|f| f())
            .unwrap_or_default();
        family(
            "toa_proxy_toa_options_written_total",
            "counter",
            "TOA options written by the edge writer (SYN and handshake ACK).",
            vec![(String::new(), toa.written)],
        );
        family(
            "toa_proxy_toa_options_failed_total",
            "counter",
            "TOA options not written: no room in the TCP header.",
            vec![(String::new(), toa.reserve_failed)],
        );
        family(
            "toa_proxy_reloads_total",
            "counter",
            "Config reloads (SIGHUP) by result.",
            vec![
                ("{result=\"ok\"}".into(), load(&self.reloads_ok)),
                ("{result=\"rejected\"}".into(), load(&self.reloads_rejected)),
            ],
        );
        for (name, kind, help, rows) in crate::udp::metrics::families(&rules) {
            family(name, kind, help, rows);
        }
        out
    }
}

pub(crate) fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Serves `GET /metrics` with `render()` until `stop` is cancelled.
pub async fn serve_http<F>(listener: TcpListener, render: F, stop: CancellationToken)
where
    F: Fn() -> String + Send + Sync + Clone + 'static,
{
    loop {
        let stream = tokio::select! {
            _ = stop.cancelled() => return,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!("metrics: accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let render = render.clone();
        tokio::spawn(async move {
            if let Err(e) = answer(stream, render).await {
                tracing::debug!("metrics: request failed: {e}");
            }
        });
    }
}

/// Largest request head accepted; a scrape sends well under 1 KiB.
const MAX_REQUEST_HEAD: usize = 8192;

async fn answer(mut stream: TcpStream, render: impl Fn() -> String) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_REQUEST_HEAD {
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut buf))
            .await??;
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
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_lists_rule_counters_and_origin_health() {
        let m = Metrics::default();
        let web = m.rule("web");
        web.connections_total.fetch_add(3, Ordering::Relaxed);
        web.bytes_to_origin.fetch_add(42, Ordering::Relaxed);
        web.connect_error("refused");
        m.reloads_ok.fetch_add(1, Ordering::Relaxed);
        let health = HealthRegistry::default();
        health
            .get("198.18.2.2:80".parse().unwrap(), &Default::default())
            .mark_failed(1, 1);
        let text = m.render(&health);
        for line in [
            "toa_proxy_connections_total{rule=\"web\"} 3",
            "toa_proxy_bytes_total{rule=\"web\",direction=\"client_to_origin\"} 42",
            "toa_proxy_connect_errors_total{rule=\"web\",kind=\"refused\"} 1",
            "toa_proxy_origin_up{origin=\"198.18.2.2:80\"} 0",
            "toa_proxy_reloads_total{result=\"ok\"} 1",
            "toa_proxy_toa_options_written_total 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }
}
