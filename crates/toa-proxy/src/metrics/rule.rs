//! Per-rule counters: what the data path counts for each rule (connections, bytes,
//! connect errors, rejections, session persistence), and their families at scrape time.
//! UDP's own counters sit in `metrics::udp`, inside the same [`RuleMetrics`].

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet};

use super::family::{counters, gauges};
use crate::accept_proxy::Refusal;
use crate::error::ConnectErrorKind;
use crate::labels::label_enum;

label_enum! {
    /// Why a client connection is closed before any origin is tried.
    pub enum Reject {
        /// The global `max_connections`.
        GlobalLimit => "global_limit",
        /// The rule's `max_connections`.
        RuleLimit => "rule_limit",
        /// The rule's `max_connections_per_client`.
        ClientLimit => "client_limit",
        /// Every origin of the rule is drained (set so, or weight 0) or in maintenance.
        OriginsDrained => "origins_drained",
        // The labels UDP's drops use too, from the one place that names them.
        /// accept_proxy rules: the TCP peer is not in `accept_proxy_from`.
        ProxyHeaderUntrusted => Refusal::Untrusted.name(),
        /// accept_proxy rules: other bytes first, or the connection closed, before a header.
        ProxyHeaderMissing => Refusal::Missing.name(),
        /// accept_proxy rules: a header of an accepted version that does not parse.
        ProxyHeaderMalformed => Refusal::Malformed.name(),
        /// accept_proxy rules: no complete header within `accept_proxy_timeout`.
        ProxyHeaderTimeout => Refusal::Timeout.name(),
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

label_enum! {
    /// The `direction` label of the byte and datagram counters.
    pub enum Direction {
        ClientToOrigin => "client_to_origin",
        OriginToClient => "origin_to_client",
    }
}

#[derive(Debug, Default)]
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
    pub udp: super::udp::UdpRuleMetrics,
}

impl RuleMetrics {
    pub fn connect_error(&self, kind: ConnectErrorKind) {
        self.connect_errors[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn reject(&self, reason: Reject) {
        self.rejected[reason as usize].fetch_add(1, Ordering::Relaxed);
    }
}

/// Every rule's counters, by tag, as one scrape sees them.
pub type Rules = BTreeMap<String, Arc<RuleMetrics>>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleLabels {
    pub rule: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DirectionLabels {
    pub rule: String,
    pub direction: Direction,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConnectErrorLabels {
    rule: String,
    kind: ConnectErrorKind,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RejectLabels {
    rule: String,
    reason: Reject,
}

/// One sample per rule, read by `value`.
pub fn per_rule<'a>(
    rules: &'a Rules,
    value: impl Fn(&RuleMetrics) -> &AtomicU64 + 'a,
) -> impl Iterator<Item = (RuleLabels, u64)> + 'a {
    rules.iter().map(move |(tag, m)| {
        let rule = tag.clone();
        (RuleLabels { rule }, value(m).load(Ordering::Relaxed))
    })
}

/// One sample per rule and direction: `to_origin` then `to_client`.
pub fn per_direction<'a>(
    rules: &'a Rules,
    to_origin: impl Fn(&RuleMetrics) -> &AtomicU64 + 'a,
    to_client: impl Fn(&RuleMetrics) -> &AtomicU64 + 'a,
) -> impl Iterator<Item = (DirectionLabels, u64)> + 'a {
    rules.iter().flat_map(move |(tag, m)| {
        [
            (Direction::ClientToOrigin, to_origin(m)),
            (Direction::OriginToClient, to_client(m)),
        ]
        .map(|(direction, v)| {
            let rule = tag.clone();
            (
                DirectionLabels { rule, direction },
                v.load(Ordering::Relaxed),
            )
        })
    })
}

/// One sample per rule and label value, from a counter array indexed like `values`
/// (an enum's `ALL`), so every value is listed even at 0.
pub fn per_value<'a, V: Copy + 'a, S: 'a, const N: usize>(
    rules: &'a Rules,
    values: [V; N],
    counts: impl Fn(&RuleMetrics) -> &[AtomicU64; N] + 'a,
    labels: impl Fn(String, V) -> S + 'a,
) -> impl Iterator<Item = (S, u64)> + 'a {
    rules.iter().flat_map(move |(tag, m)| {
        values
            .into_iter()
            .zip(counts(m))
            .map(|(value, n)| (labels(tag.clone(), value), n.load(Ordering::Relaxed)))
            .collect::<Vec<_>>()
    })
}

/// The TCP and shared families of every rule.
#[derive(Debug)]
pub struct RuleFamilies(pub Rules);

impl Collector for RuleFamilies {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let rules = &self.0;
        let e = &mut encoder;
        counters(
            e,
            "toa_proxy_connections",
            "Client connections accepted.",
            per_rule(rules, |m| &m.connections_total),
        )?;
        gauges(
            e,
            "toa_proxy_connections_active",
            "Client connections open now.",
            per_rule(rules, |m| &m.connections_active),
        )?;
        counters(
            e,
            "toa_proxy_bytes",
            "Payload bytes forwarded, by direction.",
            per_direction(rules, |m| &m.bytes_to_origin, |m| &m.bytes_to_client),
        )?;
        let errors = per_value(
            rules,
            ConnectErrorKind::ALL,
            |m| &m.connect_errors,
            |rule, kind| ConnectErrorLabels { rule, kind },
        );
        counters(
            e,
            "toa_proxy_connect_errors",
            "Failed upstream connects by kind (no_healthy_origin: every origin down, client closed fast; local_*: the proxy's own ports, descriptors or memory ran out, never held against the origin).",
            errors,
        )?;
        let rejected = per_value(
            rules,
            Reject::ALL,
            |m| &m.rejected,
            |rule, reason| RejectLabels { rule, reason },
        );
        counters(
            e,
            "toa_proxy_connections_rejected",
            "Client connections closed at once because a connection limit was reached.",
            rejected,
        )?;
        gauges(
            e,
            "toa_proxy_session_persist_clients",
            "Clients session persistence remembers now.",
            per_rule(rules, |m| &m.persist_clients),
        )?;
        counters(
            e,
            "toa_proxy_session_persist_evictions",
            "Clients forgotten before their TTL to stay under session_persist_max.",
            per_rule(rules, |m| &m.persist_evictions),
        )
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DropLabels {
    rule: String,
    reason: super::udp::DropReason,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EvictionLabels {
    rule: String,
    reason: super::udp::Eviction,
}

/// The UDP families of every rule.
#[derive(Debug)]
pub struct UdpFamilies(pub Rules);

impl Collector for UdpFamilies {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let rules = &self.0;
        let e = &mut encoder;
        counters(
            e,
            "toa_proxy_udp_flows",
            "UDP flows (client address and port to a listener) opened.",
            per_rule(rules, |m| &m.udp.flows_total),
        )?;
        gauges(
            e,
            "toa_proxy_udp_flows_active",
            "UDP flows open now.",
            per_rule(rules, |m| &m.udp.flows_active),
        )?;
        counters(
            e,
            "toa_proxy_udp_datagrams",
            "UDP datagrams forwarded, by direction.",
            per_direction(
                rules,
                |m| &m.udp.datagrams_to_origin,
                |m| &m.udp.datagrams_to_client,
            ),
        )?;
        counters(
            e,
            "toa_proxy_udp_replies_unmarked",
            "Origin replies without the SPP header, forwarded unchanged.",
            per_rule(rules, |m| &m.udp.replies_unmarked),
        )?;
        let evictions = per_value(
            rules,
            super::udp::Eviction::ALL,
            |m| &m.udp.evictions,
            |rule, reason| EvictionLabels { rule, reason },
        );
        counters(
            e,
            "toa_proxy_udp_flows_evicted",
            "UDP flows ended to admit a new one (least recently active first), by the limit that was full.",
            evictions,
        )?;
        let drops = per_value(
            rules,
            super::udp::DropReason::ALL,
            |m| &m.udp.drops,
            |rule, reason| DropLabels { rule, reason },
        );
        counters(
            e,
            "toa_proxy_udp_drops",
            "UDP datagrams not delivered, by reason.",
            drops,
        )
    }
}
