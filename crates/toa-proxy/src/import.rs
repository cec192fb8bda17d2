//! `toa proxy rules import`: EdgeOne L4 rule lists (JSON or CSV, EdgeOne's field names)
//! converted to this proxy's TOML rules.
//!
//! Fields: Protocol, PortRange, OriginType, OriginValue, OriginPortRange,
//! ClientIPPassThroughMode (TOA/PPV1/PPV2/SPP/OFF), SessionPersist, SessionPersistTime,
//! RuleTag, Status. JSON is a list of rule objects, or an object holding one under
//! `L4ProxyRules` (the API's shape). In CSV, list fields separate values with `;`.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

/// Why a rule list could not be converted; names the file, the entry and the field.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{path}: cannot read: {reason}")]
    Read { path: String, reason: String },
    #[error("{path}: {reason}")]
    Format { path: String, reason: String },
    #[error("{path}: {entry}: {field}: {reason}")]
    Field {
        path: String,
        entry: String,
        field: &'static str,
        reason: String,
    },
}

/// One rule as EdgeOne lists it; list fields are already split into values.
#[derive(Debug, Default)]
struct EdgeOneRule {
    /// "rule 3" (JSON) or "line 4" (CSV), for errors.
    entry: String,
    fields: Vec<(String, Vec<String>)>,
}

impl EdgeOneRule {
    fn get(&self, name: &str) -> &[String] {
        self.fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map_or(&[], |(_, v)| v.as_slice())
    }

    fn one(&self, name: &str) -> Option<&str> {
        self.get(name)
            .first()
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }
}

/// Converts `path` (by extension: .json or .csv) to TOML rules.
pub fn import_file(path: &Path) -> Result<String, ImportError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ImportError::Read {
        path: shown.clone(),
        reason: e.to_string(),
    })?;
    let rules = match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("json") => from_json(&shown, &text)?,
        Some("csv") => from_csv(&shown, &text)?,
        _ => {
            return Err(ImportError::Format {
                path: shown,
                reason: "unknown format; name the file .json or .csv".into(),
            });
        }
    };
    to_toml(&shown, &rules)
}

fn from_json(path: &str, text: &str) -> Result<Vec<EdgeOneRule>, ImportError> {
    let format = |reason: String| ImportError::Format {
        path: path.to_string(),
        reason,
    };
    let value: Value = serde_json::from_str(text).map_err(|e| format(format!("not JSON: {e}")))?;
    let list = match &value {
        Value::Array(list) => list,
        Value::Object(o) => match o
            .get("L4ProxyRules")
            .or_else(|| o.get("Response").and_then(|r| r.get("L4ProxyRules")))
        {
            Some(Value::Array(list)) => list,
            _ => {
                return Err(format(
                    "expected a list of rules or an object with \"L4ProxyRules\"".into(),
                ));
            }
        },
        _ => return Err(format("expected a list of rules".into())),
    };
    list.iter()
        .enumerate()
        .map(|(i, item)| {
            let entry = format!("rule {}", i + 1);
            let Value::Object(obj) = item else {
                return Err(format(format!("{entry} is not an object")));
            };
            let fields = obj
                .iter()
                .map(|(k, v)| {
                    let values = match v {
                        Value::Array(a) => a.iter().map(scalar).collect(),
                        other => split(&scalar(other)),
                    };
                    (k.clone(), values)
                })
                .collect();
            Ok(EdgeOneRule { entry, fields })
        })
        .collect()
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.trim().to_string(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// CSV list cells hold several values separated by `;`.
fn split(cell: &str) -> Vec<String> {
    cell.split(';')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn from_csv(path: &str, text: &str) -> Result<Vec<EdgeOneRule>, ImportError> {
    let format = |reason: String| ImportError::Format {
        path: path.to_string(),
        reason,
    };
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| format(format!("bad CSV header: {e}")))?
        .clone();
    reader
        .records()
        .map(|record| {
            let record = record.map_err(|e| format(format!("bad CSV: {e}")))?;
            let line = record.position().map_or(0, |p| p.line());
            let fields = headers
                .iter()
                .zip(record.iter())
                .map(|(h, v)| (h.to_string(), split(v)))
                .collect();
            Ok(EdgeOneRule {
                entry: format!("line {line}"),
                fields,
            })
        })
        .collect()
}

fn to_toml(path: &str, rules: &[EdgeOneRule]) -> Result<String, ImportError> {
    let mut out = format!(
        "# Imported from {path} by `toa proxy rules import` (EdgeOne L4 proxy rules).\n# Check it with: toa proxy check --config FILE\n"
    );
    let mut groups = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        let field = |field: &'static str, reason: String| ImportError::Field {
            path: path.to_string(),
            entry: rule.entry.clone(),
            field,
            reason,
        };
        let tag = rule
            .one("RuleTag")
            .map_or_else(|| format!("rule-{}", i + 1), str::to_string);
        let protocol = rule.one("Protocol").unwrap_or("TCP").to_ascii_lowercase();
        let ports = rule.get("PortRange");
        if ports.is_empty() {
            return Err(field("PortRange", "missing".into()));
        }
        let origins = rule.get("OriginValue");
        if origins.is_empty() {
            return Err(field("OriginValue", "missing".into()));
        }
        let origin_line = match rule
            .one("OriginType")
            .unwrap_or("IP_DOMAIN")
            .to_ascii_uppercase()
            .as_str()
        {
            "IP_DOMAIN" => format!(
                "origins = {}",
                toml::Value::Array(
                    origins
                        .iter()
                        .map(|o| toml::Value::String(o.clone()))
                        .collect()
                )
            ),
            "ORIGIN_GROUP" => {
                groups.push(origins[0].clone());
                format!("origin_group = {}", quote(&origins[0]))
            }
            other => {
                return Err(field(
                    "OriginType",
                    format!("\"{other}\" is not supported; use IP_DOMAIN or ORIGIN_GROUP"),
                ));
            }
        };
        let mode = rule
            .one("ClientIPPassThroughMode")
            .unwrap_or("OFF")
            .to_ascii_lowercase();
        let persist = matches!(
            rule.one("SessionPersist")
                .map(str::to_ascii_lowercase)
                .as_deref(),
            Some("on" | "true")
        );
        for (n, range) in ports.iter().enumerate() {
            let tag = if ports.len() > 1 {
                format!("{tag}-{}", n + 1)
            } else {
                tag.clone()
            };
            let _ = writeln!(
                out,
                "\n[[rule]]\ntag = {}\nprotocol = {}\nports = {}",
                quote(&tag),
                quote(&protocol),
                quote(range)
            );
            let _ = writeln!(out, "{origin_line}");
            if let Some(op) = rule.one("OriginPortRange") {
                let _ = writeln!(out, "origin_ports = {}", quote(op));
            }
            let _ = writeln!(out, "pass_client_ip = {}", quote(&mode));
            if persist {
                let _ = writeln!(out, "session_persist = true");
                if let Some(t) = rule.one("SessionPersistTime") {
                    let _ = writeln!(out, "session_persist_ttl = {}", quote(&format!("{t}s")));
                }
            }
            if let Some(status) = rule.one("Status") {
                let _ = writeln!(out, "status = {}", quote(&status.to_ascii_lowercase()));
            }
        }
    }
    groups.sort();
    groups.dedup();
    for g in groups {
        let _ = writeln!(
            out,
            "\n# EdgeOne origin group {g}: list its origins here.\n[[origin_group]]\nname = {}\norigins = []",
            quote(&g)
        );
    }
    Ok(out)
}

fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ClientIpMode, Config, PortRange};

    fn convert(name: &str, text: &str) -> String {
        let dir = std::env::temp_dir().join(format!("toa-import-{}-{name}", std::process::id()));
        std::fs::write(&dir, text).unwrap();
        let out = import_file(&dir);
        std::fs::remove_file(&dir).unwrap();
        out.unwrap()
    }

    #[test]
    fn json_api_shape_becomes_valid_toml_rules() {
        let toml = convert(
            "rules.json",
            r#"{"L4ProxyRules": [
            {"Protocol": "TCP", "PortRange": ["80", "8000-8002"], "OriginType": "IP_DOMAIN", "OriginValue": ["198.18.2.2"],
             "OriginPortRange": "9000", "ClientIPPassThroughMode": "PPV2", "SessionPersist": "on", "SessionPersistTime": 600,
             "RuleTag": "web", "Status": "online"},
            {"Protocol": "UDP", "PortRange": ["53"], "OriginType": "IP_DOMAIN", "OriginValue": ["198.18.2.3"],
             "ClientIPPassThroughMode": "SPP", "SessionPersist": "off", "RuleTag": "dns", "Status": "offline"}
        ]}"#,
        );
        let cfg = Config::parse(Path::new("imported.toml"), &toml)
            .unwrap_or_else(|e| panic!("{e}\n{toml}"));
        assert_eq!(cfg.rules.len(), 3);
        assert_eq!(cfg.rules[1].tag, "web-2");
        assert_eq!(
            cfg.rules[1].ports,
            PortRange {
                first: 8000,
                last: 8002
            }
        );
        assert_eq!(cfg.rules[1].origin_ports, PortRange::single(9000));
        assert_eq!(cfg.rules[0].pass_client_ip, ClientIpMode::ProxyV2);
        assert_eq!(
            cfg.rules[0].session_persist,
            Some(std::time::Duration::from_secs(600))
        );
        assert_eq!(cfg.rules[2].pass_client_ip, ClientIpMode::Spp);
        assert!(!cfg.rules[2].online);
    }

    #[test]
    fn csv_with_semicolon_lists_becomes_valid_toml_rules() {
        let toml = convert(
            "rules.csv",
            "RuleTag,Protocol,PortRange,OriginType,OriginValue,OriginPortRange,ClientIPPassThroughMode,SessionPersist,SessionPersistTime,Status\n\
             ssh,TCP,22,IP_DOMAIN,198.18.2.2;198.18.2.3,2222,TOA,off,,online\n",
        );
        let cfg = Config::parse(Path::new("imported.toml"), &toml)
            .unwrap_or_else(|e| panic!("{e}\n{toml}"));
        assert_eq!(cfg.rules[0].origins.len(), 2);
        assert_eq!(cfg.rules[0].pass_client_ip, ClientIpMode::Toa);
        assert_eq!(cfg.rules[0].origin_ports, PortRange::single(2222));
    }

    #[test]
    fn missing_port_range_names_the_entry_and_field() {
        let dir = std::env::temp_dir().join(format!("toa-import-{}-bad.csv", std::process::id()));
        std::fs::write(&dir, "RuleTag,OriginValue\nweb,198.18.2.2\n").unwrap();
        let err = import_file(&dir).unwrap_err().to_string();
        std::fs::remove_file(&dir).unwrap();
        assert_eq!(
            err,
            format!("{}: line 2: PortRange: missing", dir.display())
        );
    }
}
