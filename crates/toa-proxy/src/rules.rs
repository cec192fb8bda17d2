//! From validated rules to the sockets they need: one listener per (protocol, address,
//! port), each routed to its rule and the origin port its listen port maps to.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use toa_config::{Config, ListenAddr, Protocol, Rule};

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
    pub origin_port: u16,
}

/// Every listener the online rules of `config` need. Validation guarantees keys are unique.
pub fn bindings(config: &Config) -> BTreeMap<ListenKey, Binding> {
    let mut out = BTreeMap::new();
    for (index, rule) in config.rules.iter().enumerate().filter(|(_, r)| r.online) {
        for (key, origin_port) in listeners_of(rule) {
            out.insert(
                key,
                Binding {
                    rule: index,
                    origin_port,
                },
            );
        }
    }
    out
}

fn listeners_of(rule: &Rule) -> impl Iterator<Item = (ListenKey, u16)> + '_ {
    rule.listen.iter().flat_map(move |addr| {
        rule.ports.iter().map(move |port| {
            let key = ListenKey {
                protocol: rule.protocol(),
                addr: *addr,
                port,
            };
            (key, rule.ports.map_to(port, rule.origin_ports.as_ref()))
        })
    })
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
        let b = bindings(&cfg);
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
                origin_port: 9082
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
}
