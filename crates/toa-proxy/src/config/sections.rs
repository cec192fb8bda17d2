//! Validation of the settings sections (`[proxy]`, `[health]`) and `[[origin_group]]`,
//! plus the value helpers rule validation shares with them.

use std::time::Duration;

use toml::Spanned;

use super::error::{ConfigError, Source};
use super::raw::{RawGroup, RawHealth, RawProxy, Text};
use super::values::parse_duration;
use super::{HealthSettings, OriginSpec, ProxySettings};

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
            if !(1..=1000).contains(&entry.weight) {
                return Err(src.error(
                    o.span().start,
                    section,
                    "origins",
                    format!(
                        "weight {} of \"{}\" is out of range; use 1..1000",
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
    if let Some(v) = &raw.resolve_interval {
        s.resolve_interval = duration(src, sec, "resolve_interval", v)?;
    }
    if let Some(v) = &raw.accept_proxy_timeout {
        s.accept_proxy_timeout = duration(src, sec, "accept_proxy_timeout", v)?;
    }
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
    for (field, value, slot) in [
        (
            "connect_timeout",
            &raw.connect_timeout,
            &mut s.connect_timeout,
        ),
        ("idle_timeout", &raw.idle_timeout, &mut s.idle_timeout),
        ("drain_timeout", &raw.drain_timeout, &mut s.drain_timeout),
        (
            "udp_idle_timeout",
            &raw.udp_idle_timeout,
            &mut s.udp_idle_timeout,
        ),
    ] {
        if let Some(v) = value {
            *slot = duration(src, sec, field, v)?;
        }
    }
    if let Some(v) = &raw.access_log {
        s.access_log = *v.get_ref();
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
        s.interval = duration(src, sec, "interval", v)?;
    }
    if let Some(v) = &raw.timeout {
        s.timeout = duration(src, sec, "timeout", v)?;
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
) -> Result<Duration, ConfigError> {
    match parse_duration(&v.get_ref().as_string()) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err(src.error(v.span().start, sec, field, "must be longer than zero")),
        Err(r) => Err(src.error(v.span().start, sec, field, r)),
    }
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
pub(super) fn resolve(name: &str, weight: u32) -> Result<Vec<OriginSpec>, String> {
    Ok(crate::resolve::lookup(name)?
        .into_iter()
        .map(|address| OriginSpec {
            name: name.to_string(),
            address,
            weight,
        })
        .collect())
}
