//! UDP counters of one rule, rendered into the same Prometheus registry as TCP's. Payload
//! bytes go to the rule's `toa_proxy_bytes_total`; flows, datagrams and drops are here.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::accept_proxy::Refusal;
use crate::metrics::{RuleMetrics, escape};

/// Why a datagram was not delivered (the `reason` label of `toa_proxy_udp_drops_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// A new flow above the rule's max_flows.
    FlowLimit,
    /// A new flow above the rule's max_connections_per_client (flows per client IP).
    ClientLimit,
    /// A new flow while every origin of the rule is down.
    NoHealthyOrigin,
    /// The proxy could not open the flow's upstream socket or build its header.
    ProxySocket,
    /// With the header it would exceed 65,507 bytes.
    TooLarge,
    /// Sending to the origin failed.
    OriginSendFailed,
    /// The origin answered with ICMP unreachable (nothing listens on its port).
    OriginUnreachable,
    /// Sending the reply to the client failed.
    ClientSendFailed,
    /// An SPP reply too short to hold the header it starts with.
    ShortSppReply,
    /// accept_proxy rules: a source outside accept_proxy_from.
    ProxyHeaderUntrusted,
    /// accept_proxy rules: a datagram (a flow's first, or any with SPP) without a header.
    ProxyHeaderMissing,
    /// accept_proxy rules: a header that does not parse.
    ProxyHeaderMalformed,
    /// Never for datagrams (a header is whole or missing); listed so the labels match TCP's.
    ProxyHeaderTimeout,
}

impl DropReason {
    pub const ALL: [DropReason; 13] = [
        DropReason::FlowLimit,
        DropReason::ClientLimit,
        DropReason::NoHealthyOrigin,
        DropReason::ProxySocket,
        DropReason::TooLarge,
        DropReason::OriginSendFailed,
        DropReason::OriginUnreachable,
        DropReason::ClientSendFailed,
        DropReason::ShortSppReply,
        DropReason::ProxyHeaderUntrusted,
        DropReason::ProxyHeaderMissing,
        DropReason::ProxyHeaderMalformed,
        DropReason::ProxyHeaderTimeout,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            DropReason::FlowLimit => "flow_limit",
            DropReason::ClientLimit => "client_limit",
            DropReason::NoHealthyOrigin => "no_healthy_origin",
            DropReason::ProxySocket => "proxy_socket",
            DropReason::TooLarge => "too_large",
            DropReason::OriginSendFailed => "origin_send_failed",
            DropReason::OriginUnreachable => "origin_unreachable",
            DropReason::ClientSendFailed => "client_send_failed",
            DropReason::ShortSppReply => "short_spp_reply",
            // The same labels as TCP's refusals, from the one place that names them.
            DropReason::ProxyHeaderUntrusted => Refusal::Untrusted.reason(),
            DropReason::ProxyHeaderMissing => Refusal::Missing.reason(),
            DropReason::ProxyHeaderMalformed => Refusal::Malformed.reason(),
            DropReason::ProxyHeaderTimeout => Refusal::Timeout.reason(),
        }
    }
}

impl From<Refusal> for DropReason {
    fn from(refusal: Refusal) -> DropReason {
        match refusal {
            Refusal::Untrusted => DropReason::ProxyHeaderUntrusted,
            Refusal::Missing => DropReason::ProxyHeaderMissing,
            Refusal::Malformed => DropReason::ProxyHeaderMalformed,
            Refusal::Timeout => DropReason::ProxyHeaderTimeout,
        }
    }
}

#[derive(Default)]
pub struct UdpRuleMetrics {
    pub flows_total: AtomicU64,
    pub flows_active: AtomicU64,
    pub datagrams_to_origin: AtomicU64,
    pub datagrams_to_client: AtomicU64,
    /// Replies forwarded unchanged because they lacked the header the mode expects.
    pub replies_unmarked: AtomicU64,
    /// Indexed like [`DropReason::ALL`].
    pub drops: [AtomicU64; DropReason::ALL.len()],
}

impl UdpRuleMetrics {
    pub fn drop(&self, reason: DropReason) {
        self.drops[reason as usize].fetch_add(1, Ordering::Relaxed);
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
            DropReason::ALL
                .iter()
                .zip(&m.udp.drops)
                .map(move |(r, v)| (format!("{{{},reason=\"{}\"}}", rule(t), r.name()), load(v)))
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
