//! UDP counters of one rule, exposed beside TCP's (by `rule::UdpFamilies`). Payload bytes
//! go to the rule's `toa_proxy_bytes_total`; flows, datagrams and drops are here.

use std::sync::atomic::{AtomicU64, Ordering};

use super::Reject;
use crate::accept_proxy::Refusal;
use crate::labels::label_enum;

label_enum! {
    /// Why a datagram was not delivered (the `reason` label of `toa_proxy_udp_drops_total`).
    pub enum DropReason {
        /// A new flow above the rule's max_flows with no open flow to evict (all ending).
        FlowLimit => "flow_limit",
        /// A new flow above the rule's max_connections_per_client (flows per client IP)
        /// with none of the client's flows to evict (all ending, or a lowered cap).
        ClientLimit => "client_limit",
        /// A new flow while every origin of the rule is down.
        NoHealthyOrigin => "no_healthy_origin",
        /// A new flow while every origin of the rule is drained or in maintenance.
        OriginsDrained => Reject::OriginsDrained.name(),
        /// The proxy could not open the flow's upstream socket or build its header.
        ProxySocket => "proxy_socket",
        /// With the header it would exceed 65,507 bytes.
        TooLarge => "too_large",
        /// Sending to the origin failed.
        OriginSendFailed => "origin_send_failed",
        /// The origin answered with ICMP unreachable (nothing listens on its port).
        OriginUnreachable => "origin_unreachable",
        /// Sending the reply to the client failed.
        ClientSendFailed => "client_send_failed",
        /// An SPP reply too short to hold the header it starts with.
        ShortSppReply => "short_spp_reply",
        // The same labels as TCP's refusals, from the one place that names them.
        /// accept_proxy rules: a source outside accept_proxy_from.
        ProxyHeaderUntrusted => Refusal::Untrusted.name(),
        /// accept_proxy rules: a datagram (a flow's first, or any with SPP) without a header.
        ProxyHeaderMissing => Refusal::Missing.name(),
        /// accept_proxy rules: a header that does not parse.
        ProxyHeaderMalformed => Refusal::Malformed.name(),
        /// Never for datagrams (a header is whole or missing); listed so the labels match TCP's.
        ProxyHeaderTimeout => Refusal::Timeout.name(),
    }
}

label_enum! {
    /// Why an open flow was ended to admit a new one (the `reason` label of
    /// `toa_proxy_udp_flows_evicted_total`): the least recently active flow goes first.
    pub enum Eviction {
        /// The rule was at max_flows: its least recently active flow made room.
        FlowLimit => "flow_limit",
        /// The client was at max_connections_per_client: its own least recently active flow made room.
        ClientLimit => "client_limit",
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

#[derive(Debug, Default)]
pub struct UdpRuleMetrics {
    pub flows_total: AtomicU64,
    pub flows_active: AtomicU64,
    pub datagrams_to_origin: AtomicU64,
    pub datagrams_to_client: AtomicU64,
    /// Replies forwarded unchanged because they lacked the header the mode expects.
    pub replies_unmarked: AtomicU64,
    /// Indexed like [`DropReason::ALL`].
    pub drops: [AtomicU64; DropReason::ALL.len()],
    /// Indexed like [`Eviction::ALL`].
    pub evictions: [AtomicU64; Eviction::ALL.len()],
}

impl UdpRuleMetrics {
    pub fn drop(&self, reason: DropReason) {
        self.drops[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn evicted(&self, reason: Eviction) {
        self.evictions[reason as usize].fetch_add(1, Ordering::Relaxed);
    }
}
