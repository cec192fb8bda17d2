//! Validation of the settings sections (`[proxy]`, `[health]`) and `[[origin_group]]`,
//! plus the value helpers rule validation shares with them.

use std::time::Duration;

use toml::Spanned;

use crate::dns::{LookupError, lookup};
use crate::error::{ConfigError, Source};
use crate::raw::{RawGroup, RawHealth, RawProxy, Text};
use crate::values::{AccessLogFormat, parse_bounded_duration};
use crate::{HealthSettings, OriginSpec, ProxySettings, ranges};

/// One origin of an `[[origin_group]]` as written, with where it was written (a host name
/// is resolved only when an online rule uses the group, and its error points here).
#[derive(Debug, Clone)]
pub(super) struct GroupOrigin {
    pub name: String,
    pub weight: u32,
    pub offset: usize,
}

pub(super) fn groups(
    src: &Source,
    raw: &[Spanned<RawGroup>],
) -> Result<Vec<(String, Vec<GroupOrigin>)>, ConfigError> {
    let mut out: Vec<(String, Vec<GroupOrigin>)> = Vec::new();
    for g in raw {
        let Some(name) = &g.get_ref().name else {
            return Err(src.error(
                g.span().start,
                "origin_group",
                "name",
                "missing; every origin group needs a name",
            ));
        };
        let section = format!("origin_group \"{}\"", name.get_ref());
        let list = match &g.get_ref().origins {
            Some(list) if !list.get_ref().is_empty() => list,
            Some(list) => {
                return Err(src.error(
                    list.span().start,
                    section,
                    "origins",
                    "empty; list at least one origin",
                ));
            }
            None => {
                return Err(src.error(
                    g.span().start,
                    section,
                    "origins",
                    "missing; list origins = [{ address = \"...\", weight = 1 }]",
                ));
            }
        };
        let mut origins = Vec::new();
        for o in list.get_ref() {
            let entry = o.get_ref();
            // 0 drains the origin: no new connections, open ones kept, still checked.
            if !(0..=1000).contains(&entry.weight) {
                return Err(src.error(
                    o.span().start,
                    section,
                    "origins",
                    format!(
                        "weight {} of \"{}\" is out of range; use 0..1000 (0 drains the origin)",
                        entry.weight, entry.address
                    ),
                ));
            }
            origins.push(GroupOrigin {
                name: entry.address.clone(),
                weight: entry.weight as u32,
                offset: o.span().start,
            });
        }
        if out.iter().any(|(n, _)| n == name.get_ref()) {
            return Err(src.error(
                name.span().start,
                section,
                "name",
                "duplicate origin group name",
            ));
        }
        out.push((name.get_ref().clone(), origins));
    }
    Ok(out)
}

pub(super) fn proxy(
    src: &Source,
    raw: Option<&Spanned<RawProxy>>,
) -> Result<ProxySettings, ConfigError> {
    let mut s = ProxySettings::default();
    let Some(raw) = raw.map(Spanned::get_ref) else {
        return Ok(s);
    };
    let sec = "[proxy]";
    if let Some(v) = &raw.max_connections {
        s.max_connections = positive(src, sec, "max_connections", v)? as usize;
    }
    if let Some(v) = &raw.buffer_size {
        let n = positive(src, sec, "buffer_size", v)?;
        if !(1024..=16 * 1024 * 1024).contains(&n) {
            return Err(src.error(
                v.span().start,
                sec,
                "buffer_size",
                format!("{n} is out of range; use 1024..16777216 bytes"),
            ));
        }
        s.buffer_size = n as usize;
    }
    if let Some(v) = &raw.splice {
        s.splice = *v.get_ref();
    }
    for (field, value, slot, range) in [
        (
            "connect_timeout",
            &raw.connect_timeout,
            &mut s.connect_timeout,
            ranges::CONNECT_TIMEOUT,
        ),
        (
            "idle_timeout",
            &raw.idle_timeout,
            &mut s.idle_timeout,
            ranges::IDLE_TIMEOUT,
        ),
        (
            "drain_timeout",
            &raw.drain_timeout,
            &mut s.drain_timeout,
            ranges::DRAIN_TIMEOUT,
        ),
        (
            "udp_idle_timeout",
            &raw.udp_idle_timeout,
            &mut s.udp_idle_timeout,
            ranges::UDP_IDLE_TIMEOUT,
        ),
        (
            "resolve_interval",
            &raw.resolve_interval,
            &mut s.resolve_interval,
            ranges::RESOLVE_INTERVAL,
        ),
        (
            "accept_proxy_timeout",
            &raw.accept_proxy_timeout,
            &mut s.accept_proxy_timeout,
            ranges::ACCEPT_PROXY_TIMEOUT,
        ),
    ] {
        if let Some(v) = value {
            *slot = duration(src, sec, field, v, range)?;
        }
    }
    if let Some(v) = &raw.metrics_max_connections {
        let n = positive(src, sec, "metrics_max_connections", v)?;
        if n > 1024 {
            return Err(src.error(
                v.span().start,
                sec,
                "metrics_max_connections",
                format!("{n} is out of range; use 1..1024"),
            ));
        }
        s.metrics_max_connections = n as usize;
    }
    if let Some(v) = &raw.access_log {
        s.access_log = *v.get_ref();
    }
    if let Some(v) = &raw.access_log_format {
        s.access_log_format = AccessLogFormat::parse(v.get_ref())
            .map_err(|r| src.error(v.span().start, sec, "access_log_format", r))?;
    }
    if let Some(v) = &raw.access_log_open {
        s.access_log_open = *v.get_ref();
    }
    Ok(s)
}

pub(super) fn health(
    src: &Source,
    raw: Option<&Spanned<RawHealth>>,
) -> Result<HealthSettings, ConfigError> {
    let mut s = HealthSettings::default();
    let Some(raw) = raw.map(Spanned::get_ref) else {
        return Ok(s);
    };
    let sec = "[health]";
    if let Some(v) = &raw.interval {
        s.interval = duration(src, sec, "interval", v, ranges::HEALTH_INTERVAL)?;
    }
    if let Some(v) = &raw.timeout {
        s.timeout = duration(src, sec, "timeout", v, ranges::HEALTH_TIMEOUT)?;
    }
    if let Some(v) = &raw.rise {
        s.rise = positive(src, sec, "rise", v)? as u32;
    }
    if let Some(v) = &raw.fall {
        s.fall = positive(src, sec, "fall", v)? as u32;
    }
    Ok(s)
}

pub(super) fn duration(
    src: &Source,
    sec: &str,
    field: &str,
    v: &Spanned<Text>,
    range: std::ops::RangeInclusive<Duration>,
) -> Result<Duration, ConfigError> {
    parse_bounded_duration(&v.get_ref().as_string(), &range)
        .map_err(|r| src.error(v.span().start, sec, field, r))
}

pub(super) fn positive(
    src: &Source,
    sec: &str,
    field: &str,
    v: &Spanned<i64>,
) -> Result<u64, ConfigError> {
    u64::try_from(*v.get_ref())
        .ok()
        .filter(|n| *n >= 1 && *n <= u32::MAX as u64)
        .ok_or_else(|| {
            src.error(
                v.span().start,
                sec,
                field,
                format!("{} is out of range; use a positive number", v.get_ref()),
            )
        })
}

/// Every address of `name` (an IP literal, or a host name looked up with blocking
/// getaddrinfo), one [`OriginSpec`] each.
pub(super) fn resolve(name: &str, weight: u32) -> Result<Vec<OriginSpec>, LookupError> {
    Ok(lookup(name)?
        .into_iter()
        .map(|address| OriginSpec {
            name: name.to_string(),
            address,
            weight,
        })
        .collect())
}
