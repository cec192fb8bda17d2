//! The state the data path reads, below everything that uses it: [`Shared`] (every
//! connection's counters, health, limits and modes), a listener's [`Route`] and the
//! [`RuleRuntime`] it points to, and [`ServerError`], why a (re)load was refused.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize};

use crate::access_log;
use crate::balance::{Backend, PersistTables, Selector};
use crate::client_ip::{self, ClientIpWriter};
use crate::health::HealthRegistry;
use crate::limit::{Limit, LimitRegistry, RuleLimits};
use crate::metrics::{Metrics, RuleMetrics};
use crate::origin_state::OriginStates;
use crate::rules::{Binding, ListenKey};
use crate::throttle::{LogThrottle, RefusalLog};
use crate::udp;
use toa_common::names::Named;
use toa_config::{AcceptProxy, ConfigError, Protocol, ProxySettings};

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
    #[error(
        "proxy: cannot listen on {key}: another process listens there (a second toa proxy? stop it or change the port)"
    )]
    HeldByAnother { key: ListenKey },
    #[error("proxy: rule \"{tag}\": {source}")]
    Mode {
        tag: String,
        source: client_ip::ModeError,
    },
    #[error(
        "proxy: rule \"{tag}\": source_addresses: cannot use {addr}: {source} (is it an address of this host?)"
    )]
    Source {
        tag: String,
        addr: IpAddr,
        source: std::io::Error,
    },
    #[error("proxy: cannot steer {ports} to one socket: {source}")]
    Steer {
        ports: crate::steer::SteeredPorts,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error(transparent)]
    Descriptors(#[from] crate::descriptors::TooFewDescriptors),
    #[error("proxy: cannot serve metrics on {addr}: {source}")]
    Metrics {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Admin(#[from] AdminError),
    #[error("proxy: cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("proxy: cannot start the accept threads: {0}")]
    AcceptWorkers(std::io::Error),
}

/// State every connection task reads.
pub(crate) struct Shared {
    pub metrics: Metrics,
    pub health: HealthRegistry,
    /// Each rule's origins' set states and open connections, kept across reloads.
    pub origin_states: OriginStates,
    pub global_limit: Arc<Limit>,
    /// Each rule's limits by tag, kept across reloads.
    pub limits: LimitRegistry,
    /// Each session-persistent rule's clients by tag, kept across reloads.
    pub persist: PersistTables,
    pub next_connection_id: AtomicU64,
    pub modes: client_ip::Modes,
}

/// Where one listener's connections go now: a TCP listener's route carries a [`TcpRule`],
/// a UDP listener's a [`UdpRule`].
pub(crate) struct Route<R> {
    pub rule: Arc<R>,
    /// Which origin port each of the listener's ports maps to.
    pub ports: Binding,
    /// The listener's (first) port.
    pub port: u16,
    /// The address clients reach this listener on, if it is bound to one address and port.
    pub local: Option<SocketAddr>,
}

impl<R> Route<R> {
    /// The origin port of a client that sent to local `port`.
    pub fn origin_port(&self, port: u16) -> u16 {
        self.ports.origin_port_for(self.port, port)
    }
}

/// A listener's current route, replaced whole by a reload and read per connection.
pub(crate) type Routes<R> = Arc<arc_swap::ArcSwap<Route<R>>>;

/// A TCP rule as connections use it: its mode writes the client's address per connection.
pub(crate) type TcpRule = RuleRuntime<Arc<dyn ClientIpWriter>>;
/// A UDP rule as flows use it: its mode writes the client's address into datagrams.
pub(crate) type UdpRule = RuleRuntime<Arc<dyn udp::DatagramWriter>>;

/// A rule as the data path uses it, built fresh on every (re)load; `M` is its
/// transport's pass-client-IP mode.
pub(crate) struct RuleRuntime<M> {
    pub tag: String,
    pub mode: M,
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
    /// Refused clients, logged at most once a second per rule and reason.
    pub refusal_log: RefusalLog,
    /// `accept_proxy`: clients arrive through a trusted proxy that names them in a header.
    pub accept_proxy: Option<AcceptProxy>,
}

impl RuleRuntime<()> {
    /// The rule with its transport's mode, built last because building it may fail.
    pub fn with_mode<M>(self, mode: M) -> RuleRuntime<M> {
        RuleRuntime {
            tag: self.tag,
            mode,
            backends: self.backends,
            selector: self.selector,
            limits: self.limits,
            source_addresses: self.source_addresses,
            next_source: self.next_source,
            metrics: self.metrics,
            settings: self.settings,
            health_rise: self.health_rise,
            health_fall: self.health_fall,
            all_down_log: self.all_down_log,
            local_error_log: self.local_error_log,
            refusal_log: self.refusal_log,
            accept_proxy: self.accept_proxy,
        }
    }
}

impl<M> RuleRuntime<M> {
    /// Logs that `client` was refused for `reason` (what was refused, and `why` in
    /// words), at warn in the rule's `access_log_format`, unless a line for the same
    /// reason went out less than a second ago: the one place TCP and UDP refusals are
    /// logged.
    pub fn refused<R: Named + PartialEq>(
        &self,
        proto: Protocol,
        reason: R,
        client: SocketAddr,
        what: &str,
        why: &str,
    ) {
        if let Some(suppressed) = self.refusal_log.allow(reason) {
            let line = access_log::Refused {
                proto,
                rule: &self.tag,
                client,
                reason: reason.name(),
                refused: what,
                why,
                suppressed,
            };
            access_log::refused(self.settings.access_log_format, &line);
        }
    }
}

/// Why the admin socket could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("proxy: admin socket {}: another toa proxy answers there; stop it or pass another --admin-socket", path.display())]
    InUse { path: PathBuf },
    #[error("proxy: cannot open the admin socket {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}
