//! A validated rule turned into what the data path reads per connection: its mode
//! writer (TCP or UDP, as the rule's transport), backends and selector, its limits (shared with the rule's earlier runtimes by
//! tag, so counts carry across reloads), settings and log throttles. Built fresh on every
//! (re)load, before anything changes; building fails whole or not at all.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use crate::balance::{Backend, Selector, selector_for};
use crate::client_ip::ClientIpWriter;
use crate::config::{Config, ProxySettings, Transport};
use crate::health::OriginHealth;
use crate::limit::RuleLimits;
use crate::metrics::RuleMetrics;
use crate::rules;
use crate::server::{ServerError, Shared};
use crate::throttle::LogThrottle;
use crate::udp;

/// A rule as the data path uses it, built fresh on every (re)load.
pub(crate) struct RuleRuntime {
    pub tag: String,
    pub mode: ModeWriter,
    pub backends: Vec<Arc<Backend>>,
    pub selector: Box<dyn Selector>,
    /// TCP: `max_connections`; UDP: `max_flows`; both: per client IP. Shared with the
    /// rule's previous runtimes: counts carry across reloads.
    pub limits: Arc<RuleLimits>,
    /// Source addresses of upstream connections, taken in turn (`next_source`).
    pub source_addresses: Vec<IpAddr>,
    pub next_source: AtomicUsize,
    pub metrics: Arc<RuleMetrics>,
    pub settings: ProxySettings,
    pub health_rise: u32,
    pub health_fall: u32,
    /// "Every origin is down" is logged at most once a second per rule.
    pub all_down_log: LogThrottle,
    /// Local resource failures (ports, descriptors) are logged at most once a second per rule.
    pub local_error_log: LogThrottle,
    /// `accept_proxy`: clients arrive through a trusted proxy that names them in a header.
    pub accept_proxy: Option<crate::config::AcceptProxy>,
}

/// A rule's pass-client-IP mode: each transport has its own writers.
pub(crate) enum ModeWriter {
    Tcp(Arc<dyn ClientIpWriter>),
    Udp(Arc<dyn udp::DatagramWriter>),
}

impl RuleRuntime {
    /// The mode of a TCP rule. Connections only reach TCP rules: a listener's key carries
    /// its rule's protocol (`rules::bindings`), so this is `None` on no connection's path.
    pub fn tcp_writer(&self) -> Option<&dyn ClientIpWriter> {
        match &self.mode {
            ModeWriter::Tcp(writer) => Some(writer.as_ref()),
            ModeWriter::Udp(_) => None,
        }
    }

    /// The mode of a UDP rule; `None` on TCP rules, which have no datagram listener.
    pub fn datagram_writer(&self) -> Option<&Arc<dyn udp::DatagramWriter>> {
        match &self.mode {
            ModeWriter::Udp(writer) => Some(writer),
            ModeWriter::Tcp(_) => None,
        }
    }
}

pub(crate) fn build(
    shared: &Shared,
    config: &Config,
) -> Result<Vec<Arc<RuleRuntime>>, ServerError> {
    config
        .rules
        .iter()
        .map(|rule| {
            let mode_error = |reason| ServerError::Mode {
                tag: rule.tag.clone(),
                reason,
            };
            let mode = match rule.transport {
                Transport::Tcp { mode, .. } => ModeWriter::Tcp(
                    shared
                        .modes
                        .writer(mode, rule, &config.toa, &shared.metrics)
                        .map_err(mode_error)?,
                ),
                Transport::Udp { mode, .. } => {
                    ModeWriter::Udp(udp::writer_for(mode, rule, &shared.modes))
                }
            };
            for addr in &rule.source_addresses {
                std::net::UdpSocket::bind(SocketAddr::new(*addr, 0)).map_err(|source| {
                    ServerError::Source {
                        tag: rule.tag.clone(),
                        addr: *addr,
                        source,
                    }
                })?;
            }
            let metrics = shared.metrics.rule(&rule.tag);
            let backends = rule
                .origins
                .iter()
                .zip(rules::health_targets(rule))
                .map(|(o, target)| {
                    Arc::new(Backend {
                        address: o.address,
                        weight: o.weight,
                        // UDP has no handshake to probe: its origins are not checked.
                        health: match rule.transport {
                            Transport::Tcp { .. } => shared.health.get(target, &config.health),
                            Transport::Udp { .. } => {
                                Arc::new(OriginHealth::new(target, config.health.timeout))
                            }
                        },
                        active: Default::default(),
                    })
                })
                .collect();
            Ok(Arc::new(RuleRuntime {
                tag: rule.tag.clone(),
                mode,
                backends,
                selector: selector_for(rule, &shared.persist, &metrics),
                limits: shared.limits.get(rule),
                source_addresses: rule.source_addresses.clone(),
                next_source: AtomicUsize::new(0),
                metrics,
                settings: config.proxy.clone(),
                health_rise: config.health.rise,
                health_fall: config.health.fall,
                all_down_log: LogThrottle::new(Duration::from_secs(1)),
                local_error_log: LogThrottle::new(Duration::from_secs(1)),
                accept_proxy: rule.accept_proxy.clone(),
            }))
        })
        .collect()
}
