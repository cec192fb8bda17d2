//! From validated rules to the sockets they need: one listener per (protocol, address,
//! port), each routed to its rule and the origin port its listen port maps to; with a
//! port steerer, one listener per (protocol, address, range) for ranges of at least
//! [`STEER_MIN_PORTS`] ports, keyed by the range's first port.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::steer::{STEER_MIN_PORTS, SteeredPorts};
use toa_config::{Config, ListenAddr, PortRange, Protocol, Rule};

/// Identifies a listening socket across reloads: a listener whose key stays is kept open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ListenKey {
    pub protocol: Protocol,
    pub addr: ListenAddr,
    pub port: u16,
}

impl std::fmt::Display for ListenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.addr {
            ListenAddr::DualStack => write!(
                f,
                "{}/[::]:{} (dual stack)",
                self.protocol.name(),
                self.port
            ),
            ListenAddr::Ip(ip) => write!(
                f,
                "{}/{}",
                self.protocol.name(),
                SocketAddr::new(ip, self.port)
            ),
        }
    }
}

/// Where a listener's connections go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    /// Index into `Config::rules`.
    pub rule: usize,
    /// The origin port of the key's port (a steered range: of its first port).
    pub origin_port: u16,
    /// A steered range: the ports after the key's, up to this one, come to the same
    /// sockets.
    pub span: Option<Span>,
}

/// The rest of a steered range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub last: u16,
    /// The origin port moves with the listen port (no `origin_ports`, or a range of
    /// them); otherwise every port goes to the one origin port.
    pub shift: bool,
}

impl Binding {
    /// The origin port of a connection that arrived on `port` (one of the binding's).
    pub fn origin_port_for(&self, first: u16, port: u16) -> u16 {
        match self.span {
            Some(Span { shift: true, .. }) => {
                self.origin_port.wrapping_add(port.wrapping_sub(first))
            }
            _ => self.origin_port,
        }
    }

    /// The steered ports of `key`, if it is a steered range.
    pub fn steered(&self, key: &ListenKey) -> Option<SteeredPorts> {
        self.span.map(|span| SteeredPorts {
            protocol: key.protocol,
            addr: key.addr,
            first: key.port,
            last: span.last,
        })
    }
}

/// Every listener the online rules of `config` need. Validation guarantees keys are
/// unique. With `steer`, ranges of [`STEER_MIN_PORTS`] or more ports are one listener.
pub fn bindings(config: &Config, steer: bool) -> BTreeMap<ListenKey, Binding> {
    let mut out = BTreeMap::new();
    for (index, rule) in config.rules.iter().enumerate().filter(|(_, r)| r.online) {
        for addr in &rule.listen {
            for range in rule.ports.ranges() {
                listeners_of(rule, index, *addr, range, steer, &mut out);
            }
        }
    }
    out
}

fn listeners_of(
    rule: &Rule,
    index: usize,
    addr: ListenAddr,
    range: &PortRange,
    steer: bool,
    out: &mut BTreeMap<ListenKey, Binding>,
) {
    let origin = rule.origin_ports.as_ref();
    let key = |port| ListenKey {
        protocol: rule.protocol(),
        addr,
        port,
    };
    if steer && steerable(range) {
        let binding = Binding {
            rule: index,
            origin_port: rule.ports.map_to(range.first, origin),
            span: Some(Span {
                last: range.last,
                shift: origin.is_none_or(|o| o.first != o.last),
            }),
        };
        out.insert(key(range.first), binding);
        return;
    }
    for port in range.iter() {
        let binding = Binding {
            rule: index,
            origin_port: rule.ports.map_to(port, origin),
            span: None,
        };
        out.insert(key(port), binding);
    }
}

/// Whether `range` of `rule` is served as one steered listener when a steerer is there:
/// TCP and UDP alike (a UDP flow's replies leave from a socket of its own on the port its
/// client sent to, `udp::listener`).
fn steerable(range: &PortRange) -> bool {
    range.len() >= STEER_MIN_PORTS
}

/// The port ranges `config` would steer, given a steerer: the binary attaches one at
/// start only when there are any.
pub fn steered_ranges(config: &Config) -> Vec<SteeredPorts> {
    bindings(config, true)
        .iter()
        .filter_map(|(key, binding)| binding.steered(key))
        .collect()
}

/// One line of the listener table the proxy logs: a rule's port range on one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listening {
    pub protocol: Protocol,
    pub addr: ListenAddr,
    pub ports: PortRange,
    pub rule: String,
    pub mode: &'static str,
}

impl std::fmt::Display for Listening {
    /// `tcp/[::]:81-85 (dual stack)`, `udp/198.18.1.1:53`, `tcp/[fd00::1]:443`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (ip, dual) = match self.addr {
            ListenAddr::DualStack => (std::net::Ipv6Addr::UNSPECIFIED.into(), " (dual stack)"),
            ListenAddr::Ip(ip) => (ip, ""),
        };
        let ip = match ip {
            std::net::IpAddr::V4(v4) => v4.to_string(),
            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
        };
        write!(f, "{}/{ip}:{}{dual}", self.protocol.name(), self.ports)
    }
}

/// The listeners of `config`'s online rules as an operator reads them: one per rule,
/// address and port range (however many sockets serve it).
pub fn listening(config: &Config) -> Vec<Listening> {
    let online = config.rules.iter().filter(|r| r.online);
    let mut out: Vec<Listening> = online
        .flat_map(|rule| {
            rule.listen.iter().flat_map(move |addr| {
                rule.ports.ranges().iter().map(move |ports| Listening {
                    protocol: rule.protocol(),
                    addr: *addr,
                    ports: *ports,
                    rule: rule.tag.clone(),
                    mode: rule.transport.mode_name(),
                })
            })
        })
        .collect();
    out.sort_by_key(|l| (l.protocol, l.addr, l.ports.first));
    out
}

/// How many listening sockets `config` takes with `workers` accept workers: one per
/// worker for each TCP listener, one for each UDP listener.
pub fn listening_sockets(config: &Config, steer: bool, workers: usize) -> u64 {
    let (tcp, udp): (Vec<_>, Vec<_>) = bindings(config, steer)
        .into_keys()
        .partition(|k| k.protocol == Protocol::Tcp);
    crate::descriptors::sockets(tcp.len(), udp.len(), workers)
}

/// The addresses health checks probe for `rule`: each origin at the first origin port.
pub fn health_targets(rule: &Rule) -> impl Iterator<Item = SocketAddr> + '_ {
    let port = rule.origin_ports.map_or(rule.ports.first(), |p| p.first);
    rule.origins
        .iter()
        .map(move |o| SocketAddr::new(o.address, port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn port_range_rule_on_two_addresses_gets_one_listener_per_address_and_port() {
        let cfg = Config::parse(
            Path::new("t.toml"),
            r#"[[rule]]
tag = "r"
listen = ["198.18.1.1", "fd00:1::1"]
ports = "81-83"
origins = ["198.18.2.2"]
origin_ports = "9081-9083"
[[rule]]
tag = "off"
status = "offline"
ports = "90"
listen = ["198.18.1.9"]
origins = ["198.18.2.2"]
"#,
        )
        .unwrap();
        let b = bindings(&cfg, false);
        assert_eq!(b.len(), 6);
        let key = ListenKey {
            protocol: Protocol::Tcp,
            addr: ListenAddr::Ip("fd00:1::1".parse().unwrap()),
            port: 82,
        };
        assert_eq!(
            b[&key],
            Binding {
                rule: 0,
                origin_port: 9082,
                span: None,
            }
        );
        assert!(
            b.keys().all(|k| k.port != 90),
            "offline rules get no listener"
        );
        assert_eq!(
            health_targets(&cfg.rules[0]).collect::<Vec<_>>(),
            vec!["198.18.2.2:9081".parse().unwrap()]
        );
    }

    #[test]
    fn a_wide_range_with_a_steerer_is_one_listener_that_maps_each_port() {
        let cfg = Config::parse(
            Path::new("t.toml"),
            r#"[[rule]]
tag = "r"
listen = ["198.18.1.1"]
ports = ["80", "1024-2047"]
origins = ["198.18.2.2"]
origin_ports = "3000-4024"
"#,
        )
        .unwrap();
        let b = bindings(&cfg, true);
        assert_eq!(b.len(), 2, "port 80 alone, the range as one listener");
        let (key, binding) = b.iter().find(|(k, _)| k.port == 1024).unwrap();
        assert_eq!(binding.span.map(|s| s.last), Some(2047));
        assert_eq!(binding.origin_port_for(key.port, 1024), 3001);
        assert_eq!(binding.origin_port_for(key.port, 2047), 4024);
        assert_eq!(
            bindings(&cfg, false).len(),
            1025,
            "without a steerer, a listener per port"
        );
    }
}
