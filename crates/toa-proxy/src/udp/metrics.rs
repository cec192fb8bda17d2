//! UDP counters of one rule, rendered into the same Prometheus registry as TCP's. Payload
//! bytes go to the rule's `toa_proxy_bytes_total`; flows, datagrams and drops are here.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::accept_proxy::Refusal;
use crate::metrics::{RuleMetrics, escape};

/// Why a datagram was not delivered (the `reason` label of `toa_proxy_udp_drops_total`).
pub const DROP_REASONS: [&str; 12] = [
    // A new flow above the rule's max_flows.
    "flow_limit",
    // A new flow while every origin of the rule is down.
    "no_healthy_origin",
    // The proxy could not open the flow's upstream socket or build its header.
    "proxy_socket",
    // With the header it would exceed 65,507 bytes.
    "too_large",
    // Sending to the origin failed.
    "origin_send_failed",
    // The origin answered with ICMP unreachable (nothing listens on its port).
    "origin_unreachable",
    // Sending the reply to the client failed.
    "client_send_failed",
    // An SPP reply too short to hold the header it starts with.
    crate::udp::client_ip::SHORT_REPLY,
    // accept_proxy rules: a source outside accept_proxy_from, no header, a bad one.
    Refusal::Untrusted.reason(),
    Refusal::Missing.reason(),
    Refusal::Malformed.reason(),
    // Never for datagrams (a header is whole or missing); listed so the labels match TCP's.
    Refusal::Timeout.reason(),
];

#[derive(Default)]
pub struct UdpRuleMetrics {
    pub flows_total: AtomicU64,
    pub flows_active: AtomicU64,
    pub datagrams_to_origin: AtomicU64,
    pub datagrams_to_client: AtomicU64,
    /// Replies forwarded unchanged because they lacked the header the mode expects.
    pub replies_unmarked: AtomicU64,
    /// Indexed like [`DROP_REASONS`].
    pub drops: [AtomicU64; DROP_REASONS.len()],
}

impl UdpRuleMetrics {
    pub fn drop(&self, reason: &str) {
        if let Some(i) = DROP_REASONS.iter().position(|r| *r == reason) {
            self.drops[i].fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// One metric family: name, type, help and its (labels, value) rows.
pub type Family = (&'static str, &'static str, &'static str, Vec<(String, u64)>);

/// The UDP families for every rule, for [`crate::metrics::Metrics::render`].
pub fn families(rules: &BTreeMap<String, Arc<RuleMetrics>>) -> Vec<Family> {
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let rule = |tag: &str| format!("rule=\"{}\"", escape(tag));
    let per_rule = |f: &dyn Fn(&UdpRuleMetrics) -> u64| -> Vec<(String, u64)> {
        rules
            .iter()
            .map(|(t, m)| (format!("{{{}}}", rule(t)), f(&m.udp)))
            .collect()
    };
    let datagrams = rules
        .iter()
        .flat_map(|(t, m)| {
            [
                ("client_to_origin", load(&m.udp.datagrams_to_origin)),
                ("origin_to_client", load(&m.udp.datagrams_to_client)),
            ]
            .map(|(d, v)| (format!("{{{},direction=\"{d}\"}}", rule(t)), v))
        })
        .collect();
    let drops = rules
        .iter()
        .flat_map(|(t, m)| {
            DROP_REASONS
                .iter()
                .zip(&m.udp.drops)
                .map(move |(r, v)| (format!("{{{},reason=\"{r}\"}}", rule(t)), load(v)))
        })
        .collect();
    vec![
        (
            "toa_proxy_udp_flows_total",
            "counter",
            "UDP flows (client address and port to a listener) opened.",
            per_rule(&|m| load(&m.flows_total)),
        ),
        (
            "toa_proxy_udp_flows_active",
            "gauge",
            "UDP flows open now.",
            per_rule(&|m| load(&m.flows_active)),
        ),
        (
            "toa_proxy_udp_datagrams_total",
            "counter",
            "UDP datagrams forwarded, by direction.",
            datagrams,
        ),
        (
            "toa_proxy_udp_replies_unmarked_total",
            "counter",
            "Origin replies without the SPP header, forwarded unchanged.",
            per_rule(&|m| load(&m.replies_unmarked)),
        ),
        (
            "toa_proxy_udp_drops_total",
            "counter",
            "UDP datagrams not delivered, by reason.",
            drops,
        ),
    ]
}
