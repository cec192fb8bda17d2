//! One `[[rule]]`, validated one field group at a time (tag; protocol; ports and listen;
//! status; origins and origin ports; transport: mode and limit; PROXY v2 id; session
//! persistence; balance; resources; accept_proxy; resolve interval), first error wins.

use std::net::IpAddr;
use std::ops::Range;
use std::time::Duration;

use toml::Spanned;

use crate::error::{ConfigError, Source};
use crate::ports::Ports;
use crate::raw::{RawRule, Text};
use crate::resources::rule_resources;
use crate::sections::{GroupOrigin, duration};
use crate::values::{Balance, PortRange, Protocol, TcpMode, UdpMode, ValueError, parse_duration};
use crate::{ListenAddr, ProxySettings, Rule, Transport, ranges};
use crate::{accept_proxy, origins};

const TAG_MAX_CHARS: usize = 50;
/// Flows per UDP rule when `max_flows` is not set: each flow holds one upstream socket (a file descriptor).
pub const DEFAULT_MAX_FLOWS: usize = 10_000;

/// Where one rule's errors point: its file, its `[[rule]]` header and its tag.
struct At<'a> {
    src: &'a Source<'a>,
    raw: &'a RawRule,
    /// Offset of the `[[rule]]` header: where "missing" errors point.
    start: usize,
    section: String,
}

impl At<'_> {
    fn err(&self, span: Range<usize>, field: &str, reason: impl std::fmt::Display) -> ConfigError {
        self.src
            .error(span.start, self.section.clone(), field, reason)
    }

    fn missing(&self, field: &str, what: &str) -> ConfigError {
        self.src.error(
            self.start,
            self.section.clone(),
            field,
            format!("missing; {what}"),
        )
    }
}

/// Validates one `[[rule]]`; `groups` are the already validated origin groups by name.
pub(super) fn rule(
    src: &Source,
    spanned: &Spanned<RawRule>,
    groups: &[(String, Vec<GroupOrigin>)],
    settings: &ProxySettings,
) -> Result<Rule, ConfigError> {
    let raw = spanned.get_ref();
    let name = tag(src, spanned)?;
    let at = At {
        src,
        raw,
        start: spanned.span().start,
        section: format!("rule \"{name}\""),
    };
    let protocol = match &raw.protocol {
        None => Protocol::Tcp,
        Some(p) => Protocol::parse(p.get_ref()).map_err(|r| at.err(p.span(), "protocol", r))?,
    };
    let (ports, listen) = ports_and_listen(&at)?;
    let online = status(&at)?;
    let (origins, origin_names, origin_group) = origins::validate(
        src,
        raw,
        groups,
        online,
        &|span, field, reason| at.err(span, field, reason),
        &|field, what| at.missing(field, what),
    )?;
    let origin_ports = origin_ports(&at, &ports)?;
    let transport = transport(&at, protocol)?;
    let ppv2_unique_id = ppv2_unique_id(&at, transport)?;
    let session_persist = session_persist(&at)?;
    let balance = match &raw.balance {
        None => Balance::RoundRobin,
        Some(b) => Balance::parse(b.get_ref()).map_err(|r| at.err(b.span(), "balance", r))?,
    };
    let resources = rule_resources(src, &at.section, raw, protocol)?;
    let accept_proxy = accept_proxy::validate(raw, protocol, &|span, field, reason| {
        at.err(span, field, reason)
    })?;
    let resolve_interval = match &raw.resolve_interval {
        None => settings.resolve_interval,
        Some(v) => duration(
            src,
            &at.section,
            "resolve_interval",
            v,
            ranges::RESOLVE_INTERVAL,
        )?,
    };

    Ok(Rule {
        max_connections_per_client: resources.max_connections_per_client,
        session_persist_max: resources.session_persist_max,
        source_addresses: resources.source_addresses,
        tag: name,
        line: src.line_of(spanned.span().start),
        transport,
        listen,
        ports,
        origin_ports,
        origins,
        origin_names,
        origin_group,
        balance,
        session_persist,
        online,
        ppv2_unique_id,
        accept_proxy,
        resolve_interval,
    })
}

/// `tag`: present, 1 to 50 characters.
fn tag(src: &Source, spanned: &Spanned<RawRule>) -> Result<String, ConfigError> {
    let Some(tag) = &spanned.get_ref().tag else {
        return Err(src.error(
            spanned.span().start,
            "rule",
            "tag",
            "missing; every rule needs a tag (1-50 chars)",
        ));
    };
    let name = tag.get_ref().clone();
    let chars = name.chars().count();
    if chars == 0 || chars > TAG_MAX_CHARS {
        return Err(src.error(
            tag.span().start,
            format!("rule \"{name}\""),
            "tag",
            format!("must be 1-{TAG_MAX_CHARS} characters, has {chars}"),
        ));
    }
    Ok(name)
}

/// `ports` (required) and `listen` (all addresses when left out).
fn ports_and_listen(at: &At) -> Result<(Ports, Vec<ListenAddr>), ConfigError> {
    let Some(ports_raw) = &at.raw.ports else {
        return Err(at.missing("ports", "a port like \"80\" or a range like \"81-85\""));
    };
    let ports = Ports::parse(&ports_raw.get_ref().items())
        .map_err(|r| at.err(ports_raw.span(), "ports", r))?;
    let listen = match &at.raw.listen {
        None => vec![ListenAddr::DualStack],
        Some(list) if list.get_ref().is_empty() => {
            return Err(at.err(
                list.span(),
                "listen",
                "empty; leave it out to listen on all addresses",
            ));
        }
        Some(list) => list
            .get_ref()
            .iter()
            .map(|a| {
                a.get_ref()
                    .parse::<IpAddr>()
                    .map(ListenAddr::Ip)
                    .map_err(|_| {
                        at.err(
                            a.span(),
                            "listen",
                            format!("\"{}\" is not an IP address", a.get_ref()),
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    Ok((ports, listen))
}

/// `status`: whether the rule is online. Offline rules are checked but not resolved: they
/// open no listener, and a host name that only exists where the rule will run must not
/// fail the file here.
fn status(at: &At) -> Result<bool, ConfigError> {
    let Some(s) = &at.raw.status else {
        return Ok(true);
    };
    match s.get_ref().to_ascii_lowercase().as_str() {
        "online" => Ok(true),
        "offline" => Ok(false),
        other => Err(at.err(
            s.span(),
            "status",
            format!("unknown status \"{other}\"; expected online or offline"),
        )),
    }
}

/// `origin_ports`: one port, or as many as `ports` has.
fn origin_ports(at: &At, ports: &Ports) -> Result<Option<PortRange>, ConfigError> {
    let Some(op) = &at.raw.origin_ports else {
        return Ok(None);
    };
    let range = port_range(op).map_err(|r| at.err(op.span(), "origin_ports", r))?;
    if range.len() != 1 && range.len() != ports.len() {
        return Err(at.err(
            op.span(),
            "origin_ports",
            format!(
                "\"{range}\" has {} ports but ports \"{ports}\" has {}; use one port or a range of the same length",
                range.len(),
                ports.len()
            ),
        ));
    }
    // Written out as the listen range itself: the same as leaving it out (EdgeOne
    // always writes OriginPortRange), so both forms give one rule.
    Ok((ports.ranges() != [range]).then_some(range))
}

/// `pass_client_ip` and the limit of `protocol`: `max_connections` on TCP, `max_flows` on
/// UDP. The other transport's limit is refused with a pointer to the right one.
fn transport(at: &At, protocol: Protocol) -> Result<Transport, ConfigError> {
    let raw = at.raw;
    let mode_err = |m: &Spanned<String>, r| at.err(m.span(), "pass_client_ip", r);
    let at_least_one = |m: &Spanned<i64>, field: &str| {
        if *m.get_ref() < 1 {
            Err(at.err(m.span(), field, "must be at least 1"))
        } else {
            Ok(*m.get_ref() as usize)
        }
    };
    Ok(match protocol {
        Protocol::Tcp => {
            let mode = match &raw.pass_client_ip {
                None => TcpMode::Off,
                Some(m) => TcpMode::parse(m.get_ref()).map_err(|r| mode_err(m, r))?,
            };
            let max_connections = match &raw.max_connections {
                None => None,
                Some(m) => Some(at_least_one(m, "max_connections")?),
            };
            if let Some(m) = &raw.max_flows {
                return Err(at.err(
                    m.span(),
                    "max_flows",
                    "only udp rules have flows; use max_connections on tcp",
                ));
            }
            Transport::Tcp {
                mode,
                max_connections,
            }
        }
        Protocol::Udp => {
            let mode = match &raw.pass_client_ip {
                None => UdpMode::Off,
                Some(m) => UdpMode::parse(m.get_ref()).map_err(|r| mode_err(m, r))?,
            };
            if let Some(m) = &raw.max_connections {
                return Err(at.err(
                    m.span(),
                    "max_connections",
                    "udp rules have flows, not connections; use max_flows",
                ));
            }
            let max_flows = match &raw.max_flows {
                None => DEFAULT_MAX_FLOWS,
                Some(m) => at_least_one(m, "max_flows")?,
            };
            Transport::Udp { mode, max_flows }
        }
    })
}

/// `ppv2_unique_id`: only with `pass_client_ip = "ppv2"`.
fn ppv2_unique_id(at: &At, transport: Transport) -> Result<bool, ConfigError> {
    match &at.raw.ppv2_unique_id {
        Some(u) if *u.get_ref() && !transport.is_proxy_v2() => Err(at.err(
            u.span(),
            "ppv2_unique_id",
            format!(
                "needs pass_client_ip = \"ppv2\" (this rule uses {})",
                transport.mode_name()
            ),
        )),
        Some(u) => Ok(*u.get_ref()),
        None => Ok(false),
    }
}

/// `session_persist` and `session_persist_ttl` (checked even while persistence is off).
fn session_persist(at: &At) -> Result<Option<Duration>, ConfigError> {
    let ttl = match &at.raw.session_persist_ttl {
        None => *ranges::SESSION_PERSIST_TTL.end(),
        Some(t) => {
            let ttl = parse_duration(&t.get_ref().as_string())
                .map_err(|r| at.err(t.span(), "session_persist_ttl", r))?;
            if !ranges::SESSION_PERSIST_TTL.contains(&ttl) {
                return Err(at.err(
                    t.span(),
                    "session_persist_ttl",
                    format!(
                        "\"{}\" is out of range; use 30s..3600s",
                        t.get_ref().as_string()
                    ),
                ));
            }
            ttl
        }
    };
    Ok(at
        .raw
        .session_persist
        .as_ref()
        .is_some_and(|p| *p.get_ref())
        .then_some(ttl))
}

fn port_range(v: &Spanned<Text>) -> Result<PortRange, ValueError> {
    PortRange::parse(&v.get_ref().as_string())
}
