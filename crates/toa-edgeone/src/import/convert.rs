//! EdgeOne rules → TOML, then the TOML through the same validation as `toa proxy check`;
//! a rejection is reported against the EdgeOne entry and field it came from.

use std::fmt::Write as _;
use std::path::Path;

use super::{ImportError, Imported, Input};
use toa_config::{Config, ConfigError};

/// The comment import writes above a rule for its EdgeOne `RuleId`; export reads it back.
pub const RULE_ID_COMMENT: &str = "# EdgeOne RuleId ";

/// One converted rule: its tag and the entry it came from (for errors).
struct Converted {
    tag: String,
    entry: String,
    group: Option<String>,
}

pub(super) fn to_toml(path: &str, input: &Input) -> Result<Imported, ImportError> {
    let mut out = format!(
        "# Imported from {path} by `toa proxy rules import` (EdgeOne L4 proxy rules).\n# Check it with: toa proxy check --config FILE\n"
    );
    let mut warnings = Vec::new();
    if let Some(total) = input.total.filter(|t| *t > input.rules.len() as u64) {
        warnings.push(format!(
            "{path}: TotalCount is {total} but the list has {} rules: this is one page of a paginated answer; fetch every page (Offset/Limit) and import them together",
            input.rules.len()
        ));
    }
    let mut converted = Vec::new();
    let mut groups: Vec<&super::EdgeOneGroup> = Vec::new();
    for (i, rule) in input.rules.iter().enumerate() {
        let field = |field: &'static str, reason: String| ImportError::Field {
            path: path.to_string(),
            entry: rule.entry.clone(),
            field,
            reason,
        };
        let tag = rule
            .one("RuleTag")
            .map_or_else(|| format!("rule-{}", i + 1), str::to_string);
        let protocol = match rule.one("Protocol").map(str::to_ascii_uppercase).as_deref() {
            None | Some("TCP") => "tcp",
            Some("UDP") => "udp",
            Some(other) => {
                return Err(field(
                    "Protocol",
                    format!("\"{other}\" is not supported; EdgeOne L4 rules are TCP or UDP"),
                ));
            }
        };
        let ports = rule.get("PortRange");
        if ports.is_empty() {
            return Err(field("PortRange", "missing".into()));
        }
        let origins = rule.get("OriginValue");
        if origins.is_empty() {
            return Err(field("OriginValue", "missing".into()));
        }
        let kind = rule
            .one("OriginType")
            .unwrap_or("IP_DOMAIN")
            .to_ascii_uppercase();
        let (origin_line, group) = match kind.as_str() {
            "IP_DOMAIN" => (format!("origins = {}", list(origins)), None),
            "ORIGIN_GROUP" | "LB" => {
                let [id] = origins else {
                    return Err(field(
                        "OriginValue",
                        format!("{kind} takes one ID, found {}", origins.len()),
                    ));
                };
                let what = if kind == "LB" {
                    "load balancer"
                } else {
                    "origin group"
                };
                let Some(g) = input.groups.iter().find(|g| &g.id == id) else {
                    return Err(field(
                        "OriginValue",
                        format!(
                            "{what} {id}: its origins are not in the input; add an OriginGroups list ({{\"GroupId\": \"{id}\", \"Records\": [{{\"Record\": \"198.18.2.2\", \"Weight\": 1}}]}}) to the JSON or pass --origin-groups FILE"
                        ),
                    ));
                };
                if !groups.iter().any(|known| known.id == g.id) {
                    groups.push(g);
                }
                (format!("origin_group = {}", quote(id)), Some(id.clone()))
            }
            other => {
                return Err(field(
                    "OriginType",
                    format!(
                        "\"{other}\" is not an EdgeOne origin type; expected IP_DOMAIN, ORIGIN_GROUP or LB"
                    ),
                ));
            }
        };
        let mode = match rule
            .one("ClientIPPassThroughMode")
            .unwrap_or("OFF")
            .to_ascii_uppercase()
            .as_str()
        {
            "TOA" => "toa",
            "PPV1" => "ppv1",
            "PPV2" => "ppv2",
            "SPP" => "spp",
            "OFF" => "off",
            other => {
                return Err(field(
                    "ClientIPPassThroughMode",
                    format!(
                        "\"{other}\" is not an EdgeOne mode; expected TOA, PPV1, PPV2, SPP or OFF"
                    ),
                ));
            }
        };
        let persist = match rule
            .one("SessionPersist")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("off" | "false") => false,
            Some("on" | "true") => true,
            Some(other) => {
                return Err(field(
                    "SessionPersist",
                    format!("\"{other}\" is not on or off"),
                ));
            }
        };
        let status = match rule.one("Status").map(str::to_ascii_lowercase).as_deref() {
            None | Some("online") => "online",
            Some("offline") => "offline",
            // Deploying: it is meant to serve, so it serves here.
            Some("progress") => {
                warnings.push(format!(
                    "{path}: {}: Status \"progress\" (still deploying) imported as online",
                    rule.entry
                ));
                "online"
            }
            // Being disabled, or a deployment that failed: not serving there, not here either.
            Some(s @ ("stopping" | "fail")) => {
                warnings.push(format!(
                    "{path}: {}: Status \"{s}\" imported as offline",
                    rule.entry
                ));
                "offline"
            }
            Some(other) => {
                return Err(field(
                    "Status",
                    format!(
                        "\"{other}\" is not an EdgeOne status; expected online, offline, progress, stopping or fail"
                    ),
                ));
            }
        };

        out.push('\n');
        if let Some(id) = rule.one("RuleId") {
            let _ = writeln!(out, "{RULE_ID_COMMENT}{id}");
        }
        let ports_value = if ports.len() == 1 {
            quote(&ports[0])
        } else {
            list(ports)
        };
        let _ = writeln!(
            out,
            "[[rule]]\ntag = {}\nprotocol = {}\nports = {ports_value}\n{origin_line}",
            quote(&tag),
            quote(protocol),
        );
        if let Some(op) = rule.one("OriginPortRange") {
            let _ = writeln!(out, "origin_ports = {}", quote(op));
        }
        let _ = writeln!(out, "pass_client_ip = {}", quote(mode));
        if persist {
            let _ = writeln!(out, "session_persist = true");
            if let Some(t) = rule.one("SessionPersistTime") {
                let _ = writeln!(out, "session_persist_ttl = {}", quote(&format!("{t}s")));
            }
        }
        let _ = writeln!(out, "status = {}", quote(status));
        converted.push(Converted {
            tag,
            entry: rule.entry.clone(),
            group,
        });
    }
    for g in groups {
        let origins: Vec<String> = g
            .origins
            .iter()
            .map(|(a, w)| format!("{{ address = {}, weight = {w} }}", quote(a)))
            .collect();
        let _ = writeln!(
            out,
            "\n[[origin_group]]\nname = {}\norigins = [{}]",
            quote(&g.id),
            origins.join(", ")
        );
    }
    validate(path, &out, &converted)?;
    Ok(Imported {
        toml: out,
        warnings,
    })
}

/// Runs `toa proxy check`'s validation on the TOML and names the EdgeOne entry and field.
fn validate(path: &str, toml: &str, converted: &[Converted]) -> Result<(), ImportError> {
    let Err(e) = Config::parse(Path::new("imported.toml"), toml) else {
        return Ok(());
    };
    let ConfigError::At(at) = &e else {
        return Err(ImportError::Format {
            path: path.to_string(),
            reason: e.to_string(),
        });
    };
    let of_rule = at
        .section
        .strip_prefix("rule \"")
        .and_then(|s| s.strip_suffix('"'))
        .and_then(|tag| converted.iter().find(|c| c.tag == tag));
    let of_group = at
        .section
        .strip_prefix("origin_group \"")
        .and_then(|s| s.strip_suffix('"'))
        .and_then(|g| converted.iter().find(|c| c.group.as_deref() == Some(g)));
    match of_rule.or(of_group) {
        Some(c) => Err(ImportError::Field {
            path: path.to_string(),
            entry: format!("{} (RuleTag {})", c.entry, c.tag),
            field: if of_group.is_some() && of_rule.is_none() {
                "OriginValue"
            } else {
                edgeone_field(&at.field)
            },
            reason: at.reason.clone(),
        }),
        None => Err(ImportError::Format {
            path: path.to_string(),
            reason: at.reason.clone(),
        }),
    }
}

/// The EdgeOne field a TOML key was written from.
fn edgeone_field(toml_key: &str) -> &'static str {
    match toml_key {
        "tag" => "RuleTag",
        "protocol" => "Protocol",
        "ports" => "PortRange",
        "origins" | "origin_group" => "OriginValue",
        "origin_ports" => "OriginPortRange",
        "pass_client_ip" => "ClientIPPassThroughMode",
        "session_persist" => "SessionPersist",
        "session_persist_ttl" => "SessionPersistTime",
        "status" => "Status",
        _ => "rule",
    }
}

fn list(items: &[String]) -> String {
    toml::Value::Array(
        items
            .iter()
            .map(|o| toml::Value::String(o.clone()))
            .collect(),
    )
    .to_string()
}

pub(crate) fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}
