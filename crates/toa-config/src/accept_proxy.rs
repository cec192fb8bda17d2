//! `accept_proxy` / `accept_proxy_from`: a rule whose clients arrive through another proxy
//! that sends a PROXY header (HAProxy's `accept-proxy` plus an ACL of trusted sources).

use std::net::IpAddr;

use std::ops::Range;

use ipnet::IpNet;

use crate::error::ConfigError;
use crate::raw::RawRule;
use crate::values::{Protocol, ValueError, parse_name};

toa_common::names! {
    /// Which PROXY protocol versions a rule accepts from its trusted sources.
    pub enum ProxyVersion {
        V1 => "v1",
        V2 => "v2",
        /// Either version, told apart by the first bytes.
        Any => "any",
    }
}

impl ProxyVersion {
    pub fn parse(text: &str) -> Result<ProxyVersion, ValueError> {
        parse_name("version", text)
    }

    pub fn accepts_v1(self) -> bool {
        matches!(self, ProxyVersion::V1 | ProxyVersion::Any)
    }

    pub fn accepts_v2(self) -> bool {
        matches!(self, ProxyVersion::V2 | ProxyVersion::Any)
    }
}

/// A rule's `accept_proxy` settings: every client must come from `from` and send a header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptProxy {
    pub version: ProxyVersion,
    /// Sources allowed to send a header (`accept_proxy_from`); never empty.
    pub from: Vec<IpNet>,
}

impl AcceptProxy {
    /// Whether the TCP peer or UDP source `ip` (normalized: IPv4 as IPv4) may send a header.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.from.iter().any(|net| net.contains(&ip))
    }
}

/// One `accept_proxy_from` entry: a CIDR, or a bare address meaning that host only.
pub fn parse_net(text: &str) -> Result<IpNet, ValueError> {
    let t = text.trim();
    t.parse::<IpNet>()
        .or_else(|_| t.parse::<IpAddr>().map(IpNet::from))
        .map(|n| n.trunc())
        .map_err(|_| ValueError::NotANet(text.to_string()))
}

/// `accept_proxy` and `accept_proxy_from` of one rule; `err` builds the located error.
pub(super) fn validate(
    raw: &RawRule,
    protocol: Protocol,
    err: &dyn Fn(Range<usize>, &str, String) -> ConfigError,
) -> Result<Option<AcceptProxy>, ConfigError> {
    Ok(match (&raw.accept_proxy, &raw.accept_proxy_from) {
        (None, None) => None,
        (None, Some(f)) => {
            return Err(err(
                f.span(),
                "accept_proxy_from",
                "set without accept_proxy; add accept_proxy = \"v1\", \"v2\" or \"any\"".into(),
            ));
        }
        (Some(v), None) => {
            return Err(err(
                v.span(),
                "accept_proxy_from",
                "missing; accept_proxy needs the sources allowed to send a header, e.g. accept_proxy_from = [\"198.18.1.0/24\"]".into(),
            ));
        }
        (Some(v), Some(f)) => {
            let version = ProxyVersion::parse(v.get_ref())
                .map_err(|r| err(v.span(), "accept_proxy", r.to_string()))?;
            if protocol == Protocol::Udp && version == ProxyVersion::V1 {
                return Err(err(
                    v.span(),
                    "accept_proxy",
                    "PROXY v1 has no datagram form; on udp use v2 or any (SPP is accepted with any)".into(),
                ));
            }
            if f.get_ref().is_empty() {
                return Err(err(
                    f.span(),
                    "accept_proxy_from",
                    "empty; list the CIDRs allowed to send a header".into(),
                ));
            }
            let from = f
                .get_ref()
                .iter()
                .map(|n| {
                    parse_net(n.get_ref())
                        .map_err(|r| err(n.span(), "accept_proxy_from", r.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Some(AcceptProxy { version, from })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_sources_match_by_prefix_and_bare_addresses_are_hosts() {
        let a = AcceptProxy {
            version: ProxyVersion::Any,
            from: vec![
                parse_net("198.18.1.0/24").unwrap(),
                parse_net("fd00:1::2").unwrap(),
            ],
        };
        assert!(a.trusts("198.18.1.77".parse().unwrap()));
        assert!(!a.trusts("198.18.2.1".parse().unwrap()));
        assert!(a.trusts("fd00:1::2".parse().unwrap()));
        assert!(!a.trusts("fd00:1::3".parse().unwrap()));
        assert!(parse_net("198.18.1.0/33").is_err());
    }
}
