//! Raw TOML → [`Config`]: every check that can reject a file, in file order, first error wins.

use std::net::IpAddr;
use std::ops::Range;
use std::path::Path;

use toml::Spanned;

use super::error::{ConfigError, Source};
use super::ports::Ports;
use super::raw::{RawFile, RawRule, Text};
use super::resources::rule_resources;
use super::sections::{GroupOrigin, duration, groups, health, proxy};
use super::values::{Balance, ClientIpMode, PortRange, Protocol, parse_duration};
use super::{Config, ListenAddr, OriginGroup, ProxySettings, Rule, ToaSettings, ranges};
use super::{accept, origins};

const TAG_MAX_CHARS: usize = 50;
/// Flows per UDP rule when `max_flows` is not set: each flow holds one upstream socket (a file descriptor).
pub const DEFAULT_MAX_FLOWS: usize = 10_000;

pub fn validate(path: &Path, text: &str) -> Result<Config, ConfigError> {
    let src = Source { path, text };
    let raw: RawFile = toml::from_str(text).map_err(|e| src.toml_error(&e))?;
    let groups = groups(&src, &raw.origin_group)?;
    let proxy = proxy(&src, raw.proxy.as_ref())?;
    let mut rules = Vec::with_capacity(raw.rule.len());
    for spanned in &raw.rule {
        let rule = rule(&src, spanned, &groups, &proxy)?;
        if let Some(prev) = rules.iter().find(|r: &&Rule| r.tag == rule.tag) {
            let tag = spanned
                .get_ref()
                .tag
                .as_ref()
                .expect("rule() checked the tag");
            return Err(src.error(
                tag.span().start,
                format!("rule \"{}\"", rule.tag),
                "tag",
                format!("duplicate tag; rule on line {} has it already", prev.line),
            ));
        }
        check_overlap(&src, spanned.get_ref(), &rule, &rules)?;
        rules.push(rule);
    }
    Ok(Config {
        path: path.to_path_buf(),
        proxy,
        health: health(&src, raw.health.as_ref())?,
        toa: ToaSettings {
            kind: match raw.toa.as_ref().and_then(|t| t.get_ref().kind.as_ref()) {
                None => ToaSettings::default().kind,
                Some(k) => u8::try_from(*k.get_ref())
                    .map_err(|_| format!("{} is not a TCP option kind (0 to 255)", k.get_ref()))
                    .and_then(|kind| toa_wire::toa::check_kind(kind).map_err(|e| e.to_string()))
                    .map_err(|reason| src.error(k.span().start, "[toa]", "kind", reason))?,
            },
        },
        rules,
        origin_groups: groups
            .into_iter()
            .map(|(name, origins)| OriginGroup {
                name,
                origins: origins.into_iter().map(|o| (o.name, o.weight)).collect(),
            })
            .collect(),
    })
}

/// Validates one `[[rule]]`; `groups` are the already validated origin groups by name.
fn rule(
    src: &Source,
    spanned: &Spanned<RawRule>,
    groups: &[(String, Vec<GroupOrigin>)],
    settings: &ProxySettings,
) -> Result<Rule, ConfigError> {
    let raw = spanned.get_ref();
    let line = src.line_of(spanned.span().start);
    let Some(tag) = &raw.tag else {
        return Err(src.error(
            spanned.span().start,
            "rule",
            "tag",
            "missing; every rule needs a tag (1-50 chars)",
        ));
    };
    let name = tag.get_ref().clone();
    let section = format!("rule \"{name}\"");
    let err = |span: Range<usize>, field: &str, reason: String| {
        src.error(span.start, section.clone(), field, reason)
    };
    let missing = |field: &str, what: &str| {
        src.error(
            spanned.span().start,
            section.clone(),
            field,
            format!("missing; {what}"),
        )
    };
    let chars = name.chars().count();
    if chars == 0 || chars > TAG_MAX_CHARS {
        return Err(err(
            tag.span(),
            "tag",
            format!("must be 1-{TAG_MAX_CHARS} characters, has {chars}"),
        ));
    }

    let protocol = match &raw.protocol {
        None => Protocol::Tcp,
        Some(p) => Protocol::parse(p.get_ref()).map_err(|r| err(p.span(), "protocol", r))?,
    };
    let Some(ports_raw) = &raw.ports else {
        return Err(missing(
            "ports",
            "a port like \"80\" or a range like \"81-85\"",
        ));
    };
    let ports = Ports::parse(&ports_raw.get_ref().items())
        .map_err(|r| err(ports_raw.span(), "ports", r))?;
    let listen = match &raw.listen {
        None => vec![ListenAddr::DualStack],
        Some(list) if list.get_ref().is_empty() => {
            return Err(err(
                list.span(),
                "listen",
                "empty; leave it out to listen on all addresses".into(),
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
                        err(
                            a.span(),
                            "listen",
                            format!("\"{}\" is not an IP address", a.get_ref()),
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?,
    };

    // Offline rules are checked but not resolved: they open no listener, and a host name
    // that only exists where the rule will run must not fail the file here.
    let online = match raw
        .status
        .as_ref()
        .map(|s| (s.get_ref().to_ascii_lowercase(), s.span()))
    {
        None => true,
        Some((s, _)) if s == "online" => true,
        Some((s, _)) if s == "offline" => false,
        Some((other, span)) => {
            return Err(err(
                span,
                "status",
                format!("unknown status \"{other}\"; expected online or offline"),
            ));
        }
    };
    let (origins, origin_names, origin_group) =
        origins::validate(src, raw, groups, online, &err, &missing)?;

    let origin_ports = match &raw.origin_ports {
        None => None,
        Some(op) => {
            let range = port_range(op).map_err(|r| err(op.span(), "origin_ports", r))?;
            if range.len() != 1 && range.len() != ports.len() {
                return Err(err(
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
            (ports.ranges() != [range]).then_some(range)
        }
    };

    let pass_client_ip = match &raw.pass_client_ip {
        None => ClientIpMode::Off,
        Some(m) => {
            let mode =
                ClientIpMode::parse(m.get_ref()).map_err(|r| err(m.span(), "pass_client_ip", r))?;
            mode.check_protocol(protocol)
                .map_err(|r| err(m.span(), "pass_client_ip", r))?;
            mode
        }
    };

    let ttl = match &raw.session_persist_ttl {
        None => *ranges::SESSION_PERSIST_TTL.end(),
        Some(t) => {
            let ttl = parse_duration(&t.get_ref().as_string())
                .map_err(|r| err(t.span(), "session_persist_ttl", r))?;
            if !ranges::SESSION_PERSIST_TTL.contains(&ttl) {
                return Err(err(
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
    let session_persist = raw
        .session_persist
        .as_ref()
        .is_some_and(|p| *p.get_ref())
        .then_some(ttl);

    let balance = match &raw.balance {
        None => Balance::RoundRobin,
        Some(b) => Balance::parse(b.get_ref()).map_err(|r| err(b.span(), "balance", r))?,
    };
    let max_connections = match &raw.max_connections {
        None => None,
        Some(m) if protocol == Protocol::Udp => {
            return Err(err(
                m.span(),
                "max_connections",
                "udp rules have flows, not connections; use max_flows".into(),
            ));
        }
        Some(m) if *m.get_ref() < 1 => {
            return Err(err(
                m.span(),
                "max_connections",
                "must be at least 1".into(),
            ));
        }
        Some(m) => Some(*m.get_ref() as usize),
    };

    let ppv2_unique_id = match &raw.ppv2_unique_id {
        Some(u) if *u.get_ref() && pass_client_ip != ClientIpMode::ProxyV2 => {
            return Err(err(
                u.span(),
                "ppv2_unique_id",
                format!(
                    "needs pass_client_ip = \"ppv2\" (this rule uses {})",
                    pass_client_ip.as_str()
                ),
            ));
        }
        Some(u) => *u.get_ref(),
        None => false,
    };

    let max_flows = match &raw.max_flows {
        None => DEFAULT_MAX_FLOWS,
        Some(m) if protocol == Protocol::Tcp => {
            return Err(err(
                m.span(),
                "max_flows",
                "only udp rules have flows; use max_connections on tcp".into(),
            ));
        }
        Some(m) if *m.get_ref() < 1 => {
            return Err(err(m.span(), "max_flows", "must be at least 1".into()));
        }
        Some(m) => *m.get_ref() as usize,
    };

    let resources = rule_resources(src, &section, raw, protocol)?;
    let accept_proxy = accept::validate(raw, protocol, &err)?;
    let resolve_interval = match &raw.resolve_interval {
        None => settings.resolve_interval,
        Some(v) => duration(
            src,
            &section,
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
        line,
        protocol,
        listen,
        ports,
        origin_ports,
        origins,
        origin_names,
        origin_group,
        balance,
        pass_client_ip,
        session_persist,
        online,
        max_connections,
        ppv2_unique_id,
        max_flows,
        accept_proxy,
        resolve_interval,
    })
}

/// Rejects `rule` when one of its listeners would share a port and address with an earlier rule.
fn check_overlap(
    src: &Source,
    raw: &RawRule,
    rule: &Rule,
    earlier: &[Rule],
) -> Result<(), ConfigError> {
    let ports_span = raw.ports.as_ref().expect("rule() checked ports").span();
    let section = format!("rule \"{}\"", rule.tag);
    for (i, a) in rule.listen.iter().enumerate() {
        if let Some(b) = rule.listen[..i].iter().find(|b| a.conflicts(**b)) {
            let span = raw.listen.as_ref().map_or(ports_span.clone(), |l| l.span());
            return Err(src.error(
                span.start,
                section,
                "listen",
                format!("{a} overlaps {b} in the same rule"),
            ));
        }
    }
    for other in earlier
        .iter()
        .filter(|o| o.protocol == rule.protocol && o.ports.overlaps(&rule.ports))
    {
        for a in &rule.listen {
            if let Some(b) = other.listen.iter().find(|b| a.conflicts(**b)) {
                let port = rule
                    .ports
                    .shared_port(&other.ports)
                    .unwrap_or(rule.ports.first());
                return Err(src.error(
                    ports_span.start,
                    section,
                    "ports",
                    format!(
                        "{} port {port} on {a} overlaps rule \"{}\" (line {}) on {b}",
                        rule.protocol.as_str(),
                        other.tag,
                        other.line
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn port_range(v: &Spanned<Text>) -> Result<PortRange, String> {
    PortRange::parse(&v.get_ref().as_string())
}
