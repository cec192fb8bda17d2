//! toa-config — the proxy's config file: TOML in, a fully validated [`Config`] out, or one
//! [`ConfigError`] line naming file, line, field and reason. Nothing is half-loaded:
//! origins are resolved and listeners checked for overlap before a `Config` exists.
//!
//! A layer of its own, with no async runtime and no HTTP: `toa-proxy` runs a `Config`,
//! `toa proxy --check` only validates one, and `toa-edgeone` converts rule lists to and
//! from it. Option kinds come from `toa-wire`, name tables from `toa-common`.
//!
//! ```toml
//! [proxy]                       # all optional
//! max_connections = 100000      # global cap on concurrent client connections
//! connect_timeout = "5s"
//! idle_timeout = "900s"
//! drain_timeout = "30s"         # SIGTERM waits this long for connections to finish
//! access_log = true             # one log line per closed connection (README: fields)
//! access_log_format = "text"    # or "json": one JSON object per line
//! access_log_open = false       # true: a line when a connection opens, too
//! udp_idle_timeout = "60s"      # a UDP flow with no datagram either way for this long ends
//! metrics_max_connections = 8   # concurrent /metrics connections; more are closed at once
//! resolve_interval = "30s"      # host-name origins are looked up again this often
//! accept_proxy_timeout = "3s"   # accept_proxy rules: the PROXY header must arrive within this
//!
//! [health]                      # active TCP connect checks, all optional
//! interval = "5s"
//! timeout = "2s"
//! rise = 2
//! fall = 3
//!
//! [[rule]]
//! tag = "web"
//! ports = "81-85"
//! origins = ["198.18.2.2"]
//! origin_ports = "9081-9085"
//! pass_client_ip = "ppv2"
//! accept_proxy = "v2"           # the client sends a PROXY header; its client counts
//! accept_proxy_from = ["198.18.1.0/24"]
//! ```
//!
//! # Layout
//! - [`Config`], [`Rule`], [`Transport`], [`ListenAddr`]: the validated config (here);
//!   `settings`: the `[proxy]`, `[health]` and `[toa]` sections' values and defaults.
//! - `raw`: the file as serde reads it; `validate`, `sections`, `rule`, `origins`,
//!   `ports`, `resources`, `accept_proxy`: each part checked into its typed form.
//! - `values`: durations, port ranges and the name tables (modes, protocols, balancing).
//! - `error`: [`ConfigError`], one line with file, line and field.
//! - [`dns`]: host-name lookup (blocking getaddrinfo), used at load and by the proxy's
//!   re-resolve loop.

mod accept_proxy;
pub mod dns;
mod error;
mod origins;
mod ports;
mod raw;
mod resources;
mod rule;
mod sections;
mod settings;
mod validate;
mod values;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use accept_proxy::{AcceptProxy, ProxyVersion, parse_net as accept_net};
pub use error::{ConfigError, Located};
pub use ports::Ports;
pub use resources::{DEFAULT_TCP_CONNECTIONS_PER_CLIENT, DEFAULT_UDP_FLOWS_PER_CLIENT};
pub use rule::DEFAULT_MAX_FLOWS;
pub use settings::{DEFAULT_METRICS_MAX_CONNECTIONS, HealthSettings, ProxySettings, ToaSettings};
pub use values::{
    AccessLogFormat, Balance, PortRange, Protocol, TcpMode, UdpMode, format_duration,
    parse_bounded_duration, parse_duration,
};

/// The range every duration must fall in (inclusive). Durations are checked for overflow
/// when parsed, and these bounds keep `Instant + duration` arithmetic far from overflow.
pub mod ranges {
    use std::ops::RangeInclusive;
    use std::time::Duration;

    const fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }
    const fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }
    pub const CONNECT_TIMEOUT: RangeInclusive<Duration> = ms(10)..=s(300);
    pub const IDLE_TIMEOUT: RangeInclusive<Duration> = s(1)..=s(7 * 86400);
    pub const DRAIN_TIMEOUT: RangeInclusive<Duration> = ms(1)..=s(3600);
    pub const UDP_IDLE_TIMEOUT: RangeInclusive<Duration> = s(1)..=s(86400);
    pub const HEALTH_INTERVAL: RangeInclusive<Duration> = ms(100)..=s(3600);
    pub const HEALTH_TIMEOUT: RangeInclusive<Duration> = ms(10)..=s(60);
    pub const SESSION_PERSIST_TTL: RangeInclusive<Duration> = s(30)..=s(3600);
    pub const RESOLVE_INTERVAL: RangeInclusive<Duration> = ms(100)..=s(86400);
    pub const ACCEPT_PROXY_TIMEOUT: RangeInclusive<Duration> = ms(10)..=s(300);
}

/// A validated config: every rule has resolved origins and no two listeners overlap.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file it came from (errors and logs name it).
    pub path: PathBuf,
    pub proxy: ProxySettings,
    pub health: HealthSettings,
    pub toa: ToaSettings,
    pub rules: Vec<Rule>,
    /// `[[origin_group]]`s as written, in file order (export writes them back).
    pub origin_groups: Vec<OriginGroup>,
}

/// An `[[origin_group]]` as written: names (IPs or host names) and weights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginGroup {
    pub name: String,
    pub origins: Vec<(String, u32)>,
}

/// One forwarding rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub tag: String,
    /// Line of the `[[rule]]` header, for logs.
    pub line: usize,
    /// TCP or UDP, with the mode and the limit only that transport has.
    pub transport: Transport,
    pub listen: Vec<ListenAddr>,
    pub ports: Ports,
    /// As many ports as `ports` has (mapped 1:1 in order) or a single port; `None`: each
    /// listen port is also the origin port.
    pub origin_ports: Option<PortRange>,
    /// One entry per address: a host name contributes every A and AAAA address it has.
    /// Offline rules resolve nothing, so their host names have no entries here.
    pub origins: Vec<OriginSpec>,
    /// `origins = [...]` as written (IPs and host names); empty when `origin_group` is set.
    pub origin_names: Vec<String>,
    /// Set when the origins came from an `[[origin_group]]`.
    pub origin_group: Option<String>,
    pub balance: Balance,
    /// `Some(ttl)` when `session_persist = true`.
    pub session_persist: Option<Duration>,
    /// `status = "offline"` rules are validated but not listened on.
    pub online: bool,
    /// PROXY v2 only: send a UNIQUE_ID TLV with the connection id.
    pub ppv2_unique_id: bool,
    /// Open connections (TCP) or flows (UDP) per client IP: a TCP connection above it is
    /// refused, a UDP flow replaces the client's least recently active one. Defaults:
    /// [`DEFAULT_TCP_CONNECTIONS_PER_CLIENT`], [`DEFAULT_UDP_FLOWS_PER_CLIENT`].
    pub max_connections_per_client: usize,
    /// Clients session persistence remembers; the least recently seen is evicted beyond it.
    pub session_persist_max: usize,
    /// Source addresses for upstream connections, used in turn (per address family); each
    /// adds its own range of ephemeral ports towards every origin.
    pub source_addresses: Vec<IpAddr>,
    /// `accept_proxy`: the client connects through a proxy that sends a PROXY header.
    pub accept_proxy: Option<AcceptProxy>,
    /// How often this rule's host-name origins are looked up again.
    pub resolve_interval: Duration,
}

/// What only one transport's rules have: their pass-client-IP modes differ, and TCP
/// limits connections where UDP limits flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp {
        mode: TcpMode,
        /// Connections open at once; more are closed at accept. `None`: no maximum.
        max_connections: Option<usize>,
    },
    Udp {
        mode: UdpMode,
        /// Flows (client address and port) open at once; datagrams of new flows above it
        /// are dropped.
        max_flows: usize,
    },
}

impl Transport {
    pub fn protocol(self) -> Protocol {
        match self {
            Transport::Tcp { .. } => Protocol::Tcp,
            Transport::Udp { .. } => Protocol::Udp,
        }
    }

    /// The `pass_client_ip` word of the mode.
    pub fn mode_name(self) -> &'static str {
        match self {
            Transport::Tcp { mode, .. } => mode.name(),
            Transport::Udp { mode, .. } => mode.name(),
        }
    }

    /// Whether the mode is PROXY v2 (the one mode both transports have).
    pub fn is_proxy_v2(self) -> bool {
        matches!(
            self,
            Transport::Tcp {
                mode: TcpMode::ProxyV2,
                ..
            } | Transport::Udp {
                mode: UdpMode::ProxyV2,
                ..
            }
        )
    }
}

impl Rule {
    pub fn protocol(&self) -> Protocol {
        self.transport.protocol()
    }

    /// Whether any origin is a host name (and so is looked up again while running).
    pub fn has_host_names(&self, config: &Config) -> bool {
        self.written_origins(config)
            .iter()
            .any(|(name, _)| name.parse::<IpAddr>().is_err())
    }

    /// The origins as written, with weights: the rule's own list or its group's.
    pub fn written_origins(&self, config: &Config) -> Vec<(String, u32)> {
        match &self.origin_group {
            Some(g) => config
                .origin_groups
                .iter()
                .find(|og| &og.name == g)
                .map(|og| og.origins.clone())
                .unwrap_or_default(),
            None => self.origin_names.iter().map(|n| (n.clone(), 1)).collect(),
        }
    }
}

/// An origin with its address resolved at load time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginSpec {
    /// As written in the config (an IP or a host name).
    pub name: String,
    pub address: IpAddr,
    /// 0..=1000 (1 outside groups); 0 drains the origin: no new connections.
    pub weight: u32,
}

/// Where a rule listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ListenAddr {
    /// No `listen` key: one `[::]` socket that also takes IPv4 (v4-mapped, normalized at accept).
    DualStack,
    /// An explicit address; `::` here is IPv6 only.
    Ip(IpAddr),
}

impl ListenAddr {
    /// Whether two listeners on the same port would fight over the same packets.
    pub fn conflicts(self, other: ListenAddr) -> bool {
        match (self, other) {
            (ListenAddr::DualStack, _) | (_, ListenAddr::DualStack) => true,
            (ListenAddr::Ip(a), ListenAddr::Ip(b)) => {
                a.is_ipv4() == b.is_ipv4() && (a == b || a.is_unspecified() || b.is_unspecified())
            }
        }
    }
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenAddr::DualStack => f.write_str("all addresses"),
            ListenAddr::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

impl Config {
    /// Reads and validates `path`, resolving origin host names (blocking).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Config::parse(path, &text)
    }

    /// Validates `text` as if read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        validate::validate(path, text)
    }

    /// Refuses a config that would close every listener: an empty or truncated file is
    /// far more likely than an intended "serve nothing" (`--allow-empty` skips this).
    pub fn require_online_rules(&self) -> Result<(), ConfigError> {
        if self.online_rules().next().is_some() {
            return Ok(());
        }
        Err(ConfigError::NoRules {
            path: self.path.clone(),
        })
    }

    /// Rules that accept connections now.
    pub fn online_rules(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter().filter(|r| r.online)
    }

    /// The option kind the edge writer must write, when a rule passes the client IP as
    /// TOA (offline rules too: their writers are built like the others').
    pub fn toa_kind(&self) -> Option<u8> {
        self.rules
            .iter()
            .any(|r| {
                matches!(
                    r.transport,
                    Transport::Tcp {
                        mode: TcpMode::Toa,
                        ..
                    }
                )
            })
            .then_some(self.toa.kind)
    }
}

#[cfg(test)]
mod tests;
