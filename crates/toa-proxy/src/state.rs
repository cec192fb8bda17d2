//! The state the data path reads, below everything that uses it: [`Shared`] (every
//! connection's counters, health, limits and modes), a listener's [`Route`] and the
//! [`RuleRuntime`] it points to, and [`ServerError`], why a (re)load was refused.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize};

use crate::balance::{Backend, PersistTables, Selector};
use crate::client_ip::{self, ClientIpWriter};
use crate::config::{AcceptProxy, ConfigError, ProxySettings};
use crate::health::HealthRegistry;
use crate::limit::{Limit, LimitRegistry, RuleLimits};
use crate::metrics::{Metrics, RuleMetrics};
use crate::rules::ListenKey;
use crate::throttle::LogThrottle;
use crate::udp;

/// Why the proxy could not start or a reload was rejected (the old config keeps running).
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("proxy: cannot listen on {key}: {source}")]
    Bind {
        key: ListenKey,
        source: std::io::Error,
    },
    #[error("proxy: rule \"{tag}\": {reason}")]
    Mode { tag: String, reason: String },
    #[error(
        "proxy: rule \"{tag}\": source_addresses: cannot use {addr}: {source} (is it an address of this host?)"
    )]
    Source {
        tag: String,
        addr: IpAddr,
        source: std::io::Error,
    },
    #[error("proxy: cannot serve metrics on {addr}: {source}")]
    Metrics {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("proxy: cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("proxy: cannot start the accept threads: {0}")]
    AcceptWorkers(std::io::Error),
}

/// State every connection task reads.
pub(crate) struct Shared {
    pub metrics: Metrics,
    pub health: HealthRegistry,
    pub global_limit: Arc<Limit>,
    /// Each rule's limits by tag, kept across reloads.
    pub limits: LimitRegistry,
    /// Each session-persistent rule's clients by tag, kept across reloads.
    pub persist: PersistTables,
    pub next_connection_id: AtomicU64,
    pub modes: client_ip::Modes,
}

/// Where one listener's connections go now.
pub(crate) struct Route {
    pub rule: Arc<RuleRuntime>,
    pub origin_port: u16,
    /// The address clients reach this listener on, if it is bound to one.
    pub local: Option<SocketAddr>,
}

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
    pub accept_proxy: Option<AcceptProxy>,
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
