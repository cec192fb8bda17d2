//! Counters and the Prometheus endpoint (`--metrics ADDR`, path `/metrics`).
//! Per-rule counters are keyed by tag and survive reloads, so they stay monotonic.
//! Every label value comes from an enum's `ALL`, so no outcome can go unexported (the
//! edge writer's rows from `EdgeCounter::ALL`, read where the writer is loaded).
//!
//! # Layout
//! - `family`: the helpers that write one family with prometheus-client.
//! - [`rule`]: per-rule counters (TCP, and the shared ones); `udp`: UDP's flows,
//!   datagrams and drops per rule, in the same [`RuleMetrics`].
//! - `edge`: the eBPF edge writer's counters, handed over as plain rows.
//! - `host`: TIME_WAIT, port range and descriptors of the proxy's host.
//!
//! The endpoint itself (its connection cap and deadline, and its own counters) is
//! `toa-metrics-http`, shared with `toa origin exporter`.

mod edge;
mod family;
mod host;
pub mod rule;
mod udp;

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet};
use prometheus_client::registry::Registry;

use toa_metrics_http::EndpointCounts;

use crate::health::HealthRegistry;

pub(crate) use crate::labels::label_enum;
pub use edge::{EdgeTotals, ToaSource};
pub(crate) use family::{counters, gauges};
pub use rule::{Reject, RuleMetrics};
pub use udp::{DropReason, Eviction};

pub struct Metrics {
    rules: Mutex<rule::Rules>,
    pub reloads_ok: AtomicU64,
    pub reloads_rejected: AtomicU64,
    pub endpoint: Arc<EndpointCounts>,
    toa: Mutex<Option<ToaSource>>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            rules: Mutex::default(),
            reloads_ok: AtomicU64::default(),
            reloads_rejected: AtomicU64::default(),
            endpoint: Arc::new(EndpointCounts::new("toa_proxy_metrics")),
            toa: Mutex::default(),
        }
    }
}

impl Metrics {
    /// The counters of rule `tag`, created on first use.
    pub fn rule(&self, tag: &str) -> Arc<RuleMetrics> {
        let mut rules = self.rules.lock().unwrap_or_else(|p| p.into_inner());
        rules.entry(tag.to_string()).or_default().clone()
    }

    /// Where the edge writer's counters are read from, once a TOA rule has loaded it.
    pub fn set_toa_source(&self, source: ToaSource) {
        *self.toa.lock().unwrap_or_else(|p| p.into_inner()) = Some(source);
    }

    /// The OpenMetrics text exposition of every metric, ending in `# EOF`.
    pub fn render(&self, health: &HealthRegistry) -> String {
        let rules = self.rules.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let edge = self
            .toa
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|read| read());
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut registry = Registry::default();
        registry.register_collector(Box::new(rule::RuleFamilies(rules.clone())));
        registry.register_collector(Box::new(rule::UdpFamilies(rules)));
        registry.register_collector(Box::new(ProxyFamilies {
            origins: health.snapshot(),
            reloads: [load(&self.reloads_ok), load(&self.reloads_rejected)],
        }));
        registry.register_collector(Box::new(edge::EdgeFamilies(edge)));
        registry.register_collector(Box::new(host::HostGauges));
        registry.register_collector(Box::new(self.endpoint.clone()));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry)
            .expect("writing to a String cannot fail");
        text
    }
}

label_enum! {
    /// The `result` label of `toa_proxy_reloads_total`.
    enum ReloadResult {
        Ok => "ok",
        Rejected => "rejected",
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabels {
    result: ReloadResult,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OriginLabels {
    origin: String,
}

/// The families of the whole process: origin health and reloads.
#[derive(Debug)]
struct ProxyFamilies {
    origins: Vec<(SocketAddr, bool)>,
    /// Indexed like [`ReloadResult::ALL`].
    reloads: [u64; ReloadResult::ALL.len()],
}

impl Collector for ProxyFamilies {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let e = &mut encoder;
        gauges(
            e,
            "toa_proxy_origin_up",
            "Origin health: 1 up, 0 down.",
            self.origins.iter().map(|(a, up)| {
                let origin = a.to_string();
                (OriginLabels { origin }, u64::from(*up))
            }),
        )?;
        counters(
            e,
            "toa_proxy_reloads",
            "Config reloads (SIGHUP) by result.",
            ReloadResult::ALL
                .into_iter()
                .zip(self.reloads)
                .map(|(result, v)| (ReloadLabels { result }, v)),
        )
    }
}

#[cfg(test)]
mod tests;
