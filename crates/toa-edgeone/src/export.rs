//! `toa proxy rules export`: a validated config written back as EdgeOne L4 rules (the
//! JSON shape DescribeL4ProxyRules answers with, plus the `OriginGroups` its origin groups
//! need), so that `import` of the output gives the same rules.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};
use toml::Spanned;

use crate::import::RULE_ID_COMMENT;
use toa_config::{Balance, Config, DEFAULT_MAX_FLOWS, ListenAddr, TcpMode, Transport, UdpMode};

/// The JSON, and the settings EdgeOne has no field for (printed to stderr).
#[derive(Debug)]
pub struct Exported {
    pub json: String,
    pub warnings: Vec<String>,
}

/// `config` as EdgeOne JSON. `text` is the file it was loaded from: a `# EdgeOne RuleId`
/// comment right above a `[[rule]]` (as import writes it) is exported as its `RuleId`.
pub fn export(config: &Config, text: &str) -> Exported {
    let lines: Vec<&str> = text.lines().collect();
    let mut warnings = section_warnings(config, text);
    let rules: Vec<Value> = config
        .rules
        .iter()
        .map(|rule| {
            let mut dropped = Vec::new();
            if rule.listen != [ListenAddr::DualStack] {
                dropped.push("listen");
            }
            if rule.balance != Balance::RoundRobin {
                dropped.push("balance");
            }
            if let Transport::Tcp {
                max_connections: Some(_),
                ..
            } = rule.transport
            {
                dropped.push("max_connections");
            }
            if rule.ppv2_unique_id {
                dropped.push("ppv2_unique_id");
            }
            if let Transport::Udp { max_flows, .. } = rule.transport
                && max_flows != DEFAULT_MAX_FLOWS
            {
                dropped.push("max_flows");
            }
            if rule.accept_proxy.is_some() {
                dropped.push("accept_proxy");
            }
            if !dropped.is_empty() {
                warnings.push(format!(
                    "{}:{}: rule \"{}\": EdgeOne has no field for {}; left out",
                    config.path.display(),
                    rule.line,
                    rule.tag,
                    dropped.join(", ")
                ));
            }
            let (origin_type, origin_value) = match &rule.origin_group {
                Some(g) => ("ORIGIN_GROUP", vec![g.clone()]),
                None => ("IP_DOMAIN", rule.origin_names.clone()),
            };
            let mut obj = json!({
                "RuleTag": rule.tag,
                "Protocol": rule.protocol().name().to_ascii_uppercase(),
                "PortRange": rule.ports.ranges().iter().map(ToString::to_string).collect::<Vec<_>>(),
                "OriginType": origin_type,
                "OriginValue": origin_value,
                "ClientIPPassThroughMode": mode(rule.transport),
                "SessionPersist": if rule.session_persist.is_some() { "on" } else { "off" },
                "Status": if rule.online { "online" } else { "offline" },
            });
            // EdgeOne requires OriginPortRange; "same port" is only expressible for one range.
            let same = rule.ports.ranges().first().filter(|_| rule.ports.ranges().len() == 1);
            if let Some(op) = rule.origin_ports.as_ref().or(same) {
                obj["OriginPortRange"] = json!(op.to_string());
            }
            if let Some(ttl) = rule.session_persist {
                obj["SessionPersistTime"] = json!(ttl.as_secs());
            }
            // Rule lines are 1-based: the line above the header is index line - 2.
            if let Some(id) = rule
                .line
                .checked_sub(2)
                .and_then(|i| lines.get(i))
                .and_then(|l| l.trim().strip_prefix(RULE_ID_COMMENT.trim_end()))
            {
                obj["RuleId"] = json!(id.trim());
            }
            obj
        })
        .collect();
    let groups: Vec<Value> = config
        .origin_groups
        .iter()
        .filter(|g| config.rules.iter().any(|r| r.origin_group.as_ref() == Some(&g.name)))
        .map(|g| {
            json!({
                "GroupId": g.name,
                "Name": g.name,
                "Records": g.origins.iter().map(|(a, w)| json!({"Record": a, "Weight": w})).collect::<Vec<_>>(),
            })
        })
        .collect();
    let mut doc = json!({
        "TotalCount": rules.len(),
        "L4ProxyRules": rules,
    });
    if !groups.is_empty() {
        doc["OriginGroups"] = json!(groups);
    }
    Exported {
        json: serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n",
        warnings,
    }
}

/// The `[proxy]`, `[health]` and `[toa]` keys written in the file, with their lines: every
/// one of them is process-wide and EdgeOne L4 rules have no field for any.
#[derive(Deserialize, Default)]
struct Sections {
    #[serde(default)]
    proxy: BTreeMap<Spanned<String>, toml::Value>,
    #[serde(default)]
    health: BTreeMap<Spanned<String>, toml::Value>,
    #[serde(default)]
    toa: BTreeMap<Spanned<String>, toml::Value>,
}

/// One warning per key of `[proxy]`, `[health]` and `[toa]` in `text` (already validated,
/// so it parses), in file order.
fn section_warnings(config: &Config, text: &str) -> Vec<String> {
    let sections: Sections = toml::from_str(text).unwrap_or_default();
    let mut keys: Vec<(usize, &str, &str)> = [
        ("proxy", &sections.proxy),
        ("health", &sections.health),
        ("toa", &sections.toa),
    ]
    .into_iter()
    .flat_map(|(name, table)| {
        table.keys().map(move |key| {
            let line = text
                .get(..key.span().start)
                .map_or(0, |t| t.lines().count())
                + 1;
            (line, name, key.get_ref().as_str())
        })
    })
    .collect();
    keys.sort_unstable();
    keys.into_iter()
        .map(|(line, section, key)| {
            format!(
                "{}:{line}: [{section}] {key}: EdgeOne has no field for it; left out",
                config.path.display()
            )
        })
        .collect()
}

/// EdgeOne's `ClientIPPassThroughMode` for the rule's mode.
fn mode(transport: Transport) -> &'static str {
    match transport {
        Transport::Tcp { mode, .. } => match mode {
            TcpMode::Toa => "TOA",
            TcpMode::ProxyV1 => "PPV1",
            TcpMode::ProxyV2 => "PPV2",
            TcpMode::Off => "OFF",
        },
        Transport::Udp { mode, .. } => match mode {
            UdpMode::ProxyV2 => "PPV2",
            UdpMode::Spp => "SPP",
            UdpMode::Off => "OFF",
        },
    }
}

#[cfg(test)]
mod tests;
