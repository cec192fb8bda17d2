//! Raw TOML → [`Config`]: every check that can reject a file, in file order, first error wins.

use std::path::Path;

use crate::error::{ConfigError, Source};
use crate::raw::{RawFile, RawRule};
use crate::rule::rule;
use crate::sections::{groups, health, proxy};
use crate::{Config, OriginGroup, Rule, ToaSettings};

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
        .filter(|o| o.protocol() == rule.protocol() && o.ports.overlaps(&rule.ports))
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
                        rule.protocol().name(),
                        other.tag,
                        other.line
                    ),
                ));
            }
        }
    }
    Ok(())
}
