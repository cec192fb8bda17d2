//! A validated rule turned into what the data path reads per connection: its mode
//! writer (TCP or UDP, as the rule's transport), backends and selector, its limits (shared with the rule's earlier runtimes by
//! tag, so counts carry across reloads), settings and log throttles. Built fresh on every
//! (re)load, before anything changes; building fails whole or not at all.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use crate::balance::{Backend, selector_for};
use crate::client_ip::ClientIpWriter;
use crate::health::OriginHealth;
use crate::limit::RuleLimits;
use crate::rules;
use crate::state::{RuleRuntime, ServerError, Shared, TcpRule, UdpRule};
use crate::throttle::{LogThrottle, RefusalLog};
use crate::udp;
use toa_config::{Config, Transport};

/// A rule built for its transport.
pub(crate) enum Built {
    Tcp(Arc<TcpRule>),
    Udp(Arc<UdpRule>),
}

impl Built {
    pub fn limits(&self) -> &RuleLimits {
        match self {
            Built::Tcp(rule) => &rule.limits,
            Built::Udp(rule) => &rule.limits,
        }
    }
}

/// A rule's mode writer, before the rule around it is built.
enum Mode {
    Tcp(Arc<dyn ClientIpWriter>),
    Udp(Arc<dyn udp::DatagramWriter>),
}

pub(crate) fn build(shared: &Shared, config: &Config) -> Result<Vec<Built>, ServerError> {
    config
        .rules
        .iter()
        .map(|rule| {
            let mode_error = |source| ServerError::Mode {
                tag: rule.tag.clone(),
                source,
            };
            // The mode first: a rule it refuses registers no metrics and no limits.
            let mode = match rule.transport {
                Transport::Tcp { mode, .. } => Mode::Tcp(
                    shared
                        .modes
                        .writer(mode, rule, &config.toa, &shared.metrics)
                        .map_err(mode_error)?,
                ),
                Transport::Udp { mode, .. } => {
                    Mode::Udp(udp::writer_for(mode, rule, &shared.modes))
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
                        origin: shared.origin_states.get(&rule.tag, o.address),
                    })
                })
                .collect();
            let runtime = RuleRuntime {
                tag: rule.tag.clone(),
                mode: (),
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
                refusal_log: RefusalLog::default(),
                accept_proxy: rule.accept_proxy.clone(),
            };
            Ok(match mode {
                Mode::Tcp(writer) => Built::Tcp(Arc::new(runtime.with_mode(writer))),
                Mode::Udp(writer) => Built::Udp(Arc::new(runtime.with_mode(writer))),
            })
        })
        .collect()
}
