//! Counters and the Prometheus text endpoint (`--metrics ADDR`, path `/metrics`).
//! Per-rule counters are keyed by tag and survive reloads, so they stay monotonic.
//! Every label value comes from an enum's `ALL`, so no outcome can go unexported.

mod host;
mod http;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use toa_common::edge::EdgeCounter;

use crate::accept_proxy::Refusal;
use crate::error::ConnectErrorKind;
use crate::health::HealthRegistry;

pub use http::{EndpointCounts, FD_RESERVE, serve_http};

/// Why a client connection is closed before any origin is tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// The global `max_connections`.
    GlobalLimit,
    /// The rule's `max_connections`.
    RuleLimit,
    /// The rule's `max_connections_per_client`.
    ClientLimit,
    /// accept_proxy rules: the TCP peer is not in `accept_proxy_from`.
    ProxyHeaderUntrusted,
    /// accept_proxy rules: other bytes first, or the connection closed, before a header.
    ProxyHeaderMissing,
    /// accept_proxy rules: a header of an accepted version that does not parse.
    ProxyHeaderMalformed,
    /// accept_proxy rules: no complete header within `accept_proxy_timeout`.
    ProxyHeaderTimeout,
}

impl Reject {
    pub const ALL: [Reject; 7] = [
        Reject::GlobalLimit,
        Reject::RuleLimit,
        Reject::ClientLimit,
        Reject::ProxyHeaderUntrusted,
        Reject::ProxyHeaderMissing,
        Reject::ProxyHeaderMalformed,
        Reject::ProxyHeaderTimeout,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Reject::GlobalLimit => "global_limit",
            Reject::RuleLimit => "rule_limit",
            Reject::ClientLimit => "client_limit",
            // The labels UDP's drops use too, from the one place that names them.
            Reject::ProxyHeaderUntrusted => Refusal::Untrusted.reason(),
            Reject::ProxyHeaderMissing => Refusal::Missing.reason(),
            Reject::ProxyHeaderMalformed => Refusal::Malformed.reason(),
            Reject::ProxyHeaderTimeout => Refusal::Timeout.reason(),
        }
    }
}

impl From<Refusal> for Reject {
    fn from(refusal: Refusal) -> Reject {
        match refusal {
            Refusal::Untrusted => Reject::ProxyHeaderUntrusted,
            Refusal::Missing => Reject::ProxyHeaderMissing,
            Refusal::Malformed => Reject::ProxyHeaderMalformed,
            Refusal::Timeout => Reject::ProxyHeaderTimeout,
        }
    }
}

#[derive(Default)]
pub struct RuleMetrics {
    pub connections_total: AtomicU64,
    pub connections_active: AtomicU64,
    pub bytes_to_origin: AtomicU64,
    pub bytes_to_client: AtomicU64,
    /// Indexed like [`ConnectErrorKind::ALL`].
    pub connect_errors: [AtomicU64; ConnectErrorKind::ALL.len()],
    /// Indexed like [`Reject::ALL`].
    pub rejected: [AtomicU64; Reject::ALL.len()],
    /// Session persistence: clients remembered now, and clients evicted to stay under
    /// `session_persist_max`.
    pub persist_clients: AtomicU64,
    pub persist_evictions: AtomicU64,
    /// Flows, datagrams and drops of a UDP rule (its bytes are counted above).
    pub udp: crate::udp::UdpRuleMetrics,
}

impl RuleMetrics {
    pub fn connect_error(&self, kind: ConnectErrorKind) {
        self.connect_errors[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn reject(&self, reason: Reject) {
        self.rejected[reason as usize].fetch_add(1, Ordering::Relaxed);
    }
}

/// The edge writer's counters (every [`EdgeCounter`]), read from the kernel when scraped.
type ToaSource = Box<dyn Fn() -> Vec<(EdgeCounter, u64)> + Send + Sync>;

#[derive(Default)]
pub struct Metrics {
    rules: Mutex<BTreeMap<String, Arc<RuleMetrics>>>,
    pub reloads_ok: AtomicU64,
    pub reloads_rejected: AtomicU64,
    pub endpoint: Arc<EndpointCounts>,
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
                ConnectErrorKind::ALL
                    .iter()
                    .zip(&m.connect_errors)
                    .map(move |(k, v)| {
                        (
                            format!("{{rule=\"{}\",kind=\"{}\"}}", escape(t), k.name()),
                            load(v),
                        )
                    })
            })
            .collect();
        family(
            "toa_proxy_connect_errors_total",
            "counter",
            "Failed upstream connects by kind (no_healthy_origin: every origin down, client closed fast; local_*: the proxy's own ports, descriptors or memory ran out, never held against the origin).",
            errors,
        );
        let rejected = rules
            .iter()
            .flat_map(|(t, m)| {
                Reject::ALL.iter().zip(&m.rejected).map(move |(r, v)| {
                    (
                        format!("{{rule=\"{}\",reason=\"{}\"}}", escape(t), r.name()),
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
        family(
            "toa_proxy_session_persist_clients",
            "gauge",
            "Clients session persistence remembers now.",
            per_rule(&|m| load(&m.persist_clients)),
        );
        family(
            "toa_proxy_session_persist_evictions_total",
            "counter",
            "Clients forgotten before their TTL to stay under session_persist_max.",
            per_rule(&|m| load(&m.persist_evictions)),
        );
        let edge: Vec<(EdgeCounter, u64)> = self
            .toa
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|f| f())
            .unwrap_or_else(|| EdgeCounter::ALL.iter().map(|c| (*c, 0)).collect());
        let edge_total = |c: EdgeCounter| edge.iter().find(|(k, _)| *k == c).map_or(0, |r| r.1);
        family(
            "toa_proxy_toa_options_written_total",
            "counter",
            "TOA options written by the edge writer (SYN and handshake ACK).",
            vec![(String::new(), edge_total(EdgeCounter::OptionsWritten))],
        );
        family(
            "toa_proxy_toa_options_failed_total",
            "counter",
            "TOA options not written: no room in the TCP header.",
            vec![(String::new(), edge_total(EdgeCounter::ReserveFailed))],
        );
        family(
            "toa_proxy_edge_writer_total",
            "counter",
            "Every counter of the eBPF edge writer, by name (see the README's counter table).",
            edge.iter()
                .map(|(c, v)| (format!("{{counter=\"{}\"}}", c.name()), *v))
                .collect(),
        );
        family(
            "toa_proxy_tcp_time_wait",
            "gauge",
            "TCP sockets in TIME_WAIT in the proxy's network namespace (each holds an ephemeral port).",
            vec![(String::new(), host::time_wait())],
        );
        family(
            "toa_proxy_local_port_range_size",
            "gauge",
            "Ephemeral ports per (source address, origin address and port): net.ipv4.ip_local_port_range.",
            vec![(String::new(), host::local_port_range_size())],
        );
        family(
            "toa_proxy_open_fds",
            "gauge",
            "File descriptors the proxy has open.",
            vec![(String::new(), host::open_fds())],
        );
        family(
            "toa_proxy_fd_limit",
            "gauge",
            "The proxy's open-file limit (soft RLIMIT_NOFILE).",
            vec![(String::new(), host::fd_limit())],
        );
        family(
            "toa_proxy_metrics_connections_refused_total",
            "counter",
            "Metrics connections closed at accept: over metrics_max_connections or inside the descriptor reserve.",
            vec![(String::new(), load(&self.endpoint.refused))],
        );
        family(
            "toa_proxy_metrics_requests_timed_out_total",
            "counter",
            "Metrics requests cut at the 5 s deadline.",
            vec![(String::new(), load(&self.endpoint.timed_out))],
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_lists_rule_counters_and_origin_health() {
        let m = Metrics::default();
        let web = m.rule("web");
        web.connections_total.fetch_add(3, Ordering::Relaxed);
        web.bytes_to_origin.fetch_add(42, Ordering::Relaxed);
        web.connect_error(ConnectErrorKind::Refused);
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

    /// Every label value of every enum-indexed family is exported, so a counter added to
    /// one of the enums cannot go unseen.
    #[test]
    fn render_lists_every_counter_of_every_enum() {
        let m = Metrics::default();
        m.rule("web");
        let text = m.render(&HealthRegistry::default());
        let mut want: Vec<String> = Vec::new();
        for k in ConnectErrorKind::ALL {
            want.push(format!(
                "toa_proxy_connect_errors_total{{rule=\"web\",kind=\"{}\"}} 0",
                k.name()
            ));
        }
        for r in Reject::ALL {
            want.push(format!(
                "toa_proxy_connections_rejected_total{{rule=\"web\",reason=\"{}\"}} 0",
                r.name()
            ));
        }
        for c in EdgeCounter::ALL {
            want.push(format!(
                "toa_proxy_edge_writer_total{{counter=\"{}\"}} 0",
                c.name()
            ));
        }
        for r in crate::udp::metrics::DropReason::ALL {
            want.push(format!(
                "toa_proxy_udp_drops_total{{rule=\"web\",reason=\"{}\"}} 0",
                r.name()
            ));
        }
        for line in want {
            assert!(text.lines().any(|l| l == line), "missing {line:?}");
        }
        // Every family has its HELP and TYPE, and every sample line belongs to one.
        let families: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let name = l.split(['{', ' ']).next().unwrap();
            assert!(families.contains(&name), "{name} has no TYPE line");
        }
    }
}
