//! Rule keys that bound what one rule may take of the proxy's own resources: connections
//! (or flows) per client IP, with a default per transport, the session persistence table, and the source addresses (ephemeral
//! ports) of its upstream connections.

use std::net::IpAddr;

use crate::error::{ConfigError, Source};
use crate::raw::RawRule;
use crate::values::Protocol;

/// Clients remembered by session persistence when `session_persist_max` is not set:
/// about 200 bytes each, so at most ~20 MB per rule.
pub const DEFAULT_SESSION_PERSIST_MAX: usize = 100_000;
const SESSION_PERSIST_MAX_LIMIT: i64 = 10_000_000;
/// Connections per client IP of a TCP rule when `max_connections_per_client` is not set:
/// a tenth of the proxy's default `max_connections`, so one address (which can open about
/// 28k connections per listener port) cannot take every connection the proxy admits; ten
/// times what a NAT in front of a thousand browsers needs.
pub const DEFAULT_TCP_CONNECTIONS_PER_CLIENT: usize = 10_000;
/// Flows per client IP of a UDP rule when `max_connections_per_client` is not set: a tenth
/// of the default `max_flows`, so one host sending from many source ports cannot fill the
/// flow table. At the cap a new flow replaces the client's least recently active one, so
/// a client with many short flows (a DNS resolver) is never refused.
pub const DEFAULT_UDP_FLOWS_PER_CLIENT: usize = 1_000;
/// Source addresses per rule; each one multiplies the ephemeral ports to every origin.
const SOURCE_ADDRESSES_MAX: usize = 64;

pub(super) struct RuleResources {
    pub max_connections_per_client: usize,
    pub session_persist_max: usize,
    pub source_addresses: Vec<IpAddr>,
}

pub(super) fn rule_resources(
    src: &Source,
    section: &str,
    raw: &RawRule,
    protocol: Protocol,
) -> Result<RuleResources, ConfigError> {
    let err = |at: usize, field: &str, reason: String| src.error(at, section, field, reason);
    let max_connections_per_client = match &raw.max_connections_per_client {
        None => match protocol {
            Protocol::Tcp => DEFAULT_TCP_CONNECTIONS_PER_CLIENT,
            Protocol::Udp => DEFAULT_UDP_FLOWS_PER_CLIENT,
        },
        Some(m) if !(1..=i64::from(u32::MAX)).contains(m.get_ref()) => {
            return Err(err(
                m.span().start,
                "max_connections_per_client",
                format!("{} is out of range; use a positive number", m.get_ref()),
            ));
        }
        Some(m) => *m.get_ref() as usize,
    };
    let session_persist_max = match &raw.session_persist_max {
        None => DEFAULT_SESSION_PERSIST_MAX,
        Some(m) if !(1..=SESSION_PERSIST_MAX_LIMIT).contains(m.get_ref()) => {
            return Err(err(
                m.span().start,
                "session_persist_max",
                format!(
                    "{} is out of range; use 1..{SESSION_PERSIST_MAX_LIMIT}",
                    m.get_ref()
                ),
            ));
        }
        Some(m) => *m.get_ref() as usize,
    };
    let source_addresses = match &raw.source_addresses {
        None => Vec::new(),
        Some(list) if protocol == Protocol::Udp => {
            return Err(err(
                list.span().start,
                "source_addresses",
                "only tcp rules take source_addresses (a UDP flow holds one socket, not a port per connection)".into(),
            ));
        }
        Some(list) if list.get_ref().is_empty() || list.get_ref().len() > SOURCE_ADDRESSES_MAX => {
            return Err(err(
                list.span().start,
                "source_addresses",
                format!(
                    "lists {} addresses; use 1..{SOURCE_ADDRESSES_MAX} (or leave it out)",
                    list.get_ref().len()
                ),
            ));
        }
        Some(list) => {
            let mut out: Vec<IpAddr> = Vec::new();
            for a in list.get_ref() {
                let ip = a.get_ref().parse::<IpAddr>().map_err(|_| {
                    err(
                        a.span().start,
                        "source_addresses",
                        format!("\"{}\" is not an IP address", a.get_ref()),
                    )
                })?;
                if ip.is_unspecified() || ip.is_multicast() || out.contains(&ip) {
                    return Err(err(
                        a.span().start,
                        "source_addresses",
                        format!(
                            "{ip} is not usable here: list distinct unicast addresses of this host"
                        ),
                    ));
                }
                out.push(ip);
            }
            out
        }
    };
    Ok(RuleResources {
        max_connections_per_client,
        session_persist_max,
        source_addresses,
    })
}
