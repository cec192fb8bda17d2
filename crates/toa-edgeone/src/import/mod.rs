//! `toa proxy rules import`: EdgeOne L4 rule lists (JSON or CSV, EdgeOne's field names)
//! converted to this proxy's TOML rules, validated exactly as `toa proxy check` does.
//!
//! Fields (CreateL4ProxyRules / DescribeL4ProxyRules `L4ProxyRule`): Protocol, PortRange,
//! OriginType (IP_DOMAIN, ORIGIN_GROUP, LB), OriginValue, OriginPortRange,
//! ClientIPPassThroughMode (TOA, PPV1, PPV2, SPP, OFF), SessionPersist, SessionPersistTime,
//! RuleTag, Status, RuleId (kept as a comment). JSON is a list of rule objects, or the
//! API's answer (`L4ProxyRules`, optionally under `Response`, with `TotalCount`). The
//! origins of an origin group (or load balancer) come from an `OriginGroups` list in the
//! same document or in `--origin-groups FILE` (the shape of DescribeOriginGroup's answer:
//! `GroupId`, `Name`, `Records` of `Record` and `Weight`). CSV is comma- or
//! semicolon-separated; list cells hold several values separated by `;`, `,` or spaces.

mod convert;

pub use convert::RULE_ID_COMMENT;

use std::path::Path;

use serde_json::Value;

/// Why a rule list could not be converted; names the input, the entry and the field.
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

/// The TOML, and what the user should know about it (printed to stderr).
#[derive(Debug)]
pub struct Imported {
    pub toml: String,
    pub warnings: Vec<String>,
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

/// An EdgeOne origin group (or load balancer) with its records.
#[derive(Debug, Clone)]
struct EdgeOneGroup {
    id: String,
    origins: Vec<(String, u32)>,
}

/// What was read from the input.
struct Input {
    rules: Vec<EdgeOneRule>,
    groups: Vec<EdgeOneGroup>,
    /// `TotalCount` of an API answer: more than `rules.len()` means a partial page.
    total: Option<u64>,
}

/// Converts `path` (`-` reads stdin; `.json`/`.csv` by extension, otherwise by content)
/// to TOML rules; `groups` is an optional JSON file with `OriginGroups`.
pub fn import_file(path: &Path, groups: Option<&Path>) -> Result<Imported, ImportError> {
    let shown = if path == Path::new("-") {
        "stdin".to_string()
    } else {
        path.display().to_string()
    };
    let text = read(path, &shown)?;
    let json = match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("json") => true,
        Some("csv") => false,
        _ => matches!(text.trim_start().chars().next(), Some('{' | '[')),
    };
    let mut input = if json {
        from_json(&shown, &text)?
    } else {
        Input {
            rules: from_csv(&shown, &text)?,
            groups: Vec::new(),
            total: None,
        }
    };
    if let Some(g) = groups {
        let g_shown = g.display().to_string();
        let g_text = read(g, &g_shown)?;
        let value: Value = serde_json::from_str(&g_text).map_err(|e| ImportError::Format {
            path: g_shown.clone(),
            reason: format!("not JSON: {e}"),
        })?;
        input.groups.extend(origin_groups(&value));
    }
    convert::to_toml(&shown, &input)
}

fn read(path: &Path, shown: &str) -> Result<String, ImportError> {
    let read = if path == Path::new("-") {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(path)
    };
    read.map_err(|e| ImportError::Read {
        path: shown.to_string(),
        reason: e.to_string(),
    })
}

/// `key` at the top of `value` or under `Response` (the API's envelope).
fn field<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    value
        .get(key)
        .or_else(|| value.get("Response").and_then(|r| r.get(key)))
}

fn from_json(path: &str, text: &str) -> Result<Input, ImportError> {
    let format = |reason: String| ImportError::Format {
        path: path.to_string(),
        reason,
    };
    let value: Value = serde_json::from_str(text).map_err(|e| format(format!("not JSON: {e}")))?;
    let list = match &value {
        Value::Array(list) => list,
        Value::Object(_) => match field(&value, "L4ProxyRules") {
            Some(Value::Array(list)) => list,
            _ => {
                return Err(format(
                    "expected a list of rules or an object with \"L4ProxyRules\"".into(),
                ));
            }
        },
        _ => return Err(format("expected a list of rules".into())),
    };
    let rules = list
        .iter()
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
        .collect::<Result<_, _>>()?;
    Ok(Input {
        rules,
        groups: origin_groups(&value),
        total: field(&value, "TotalCount").and_then(Value::as_u64),
    })
}

/// `OriginGroups: [{GroupId, Name, Records: [{Record, Weight}]}]`, wherever it is.
fn origin_groups(value: &Value) -> Vec<EdgeOneGroup> {
    let Some(Value::Array(list)) = field(value, "OriginGroups") else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|g| {
            let id = g
                .get("GroupId")
                .or_else(|| g.get("Id"))
                .or_else(|| g.get("Name"))
                .map(scalar)?;
            let origins = match g.get("Records") {
                Some(Value::Array(records)) => records
                    .iter()
                    .filter_map(|r| {
                        let address = r.get("Record").map(scalar)?;
                        // 0 stays 0: a drained origin (no new connections), as in EdgeOne.
                        let weight = r.get("Weight").and_then(Value::as_u64).unwrap_or(1);
                        Some((address, u32::try_from(weight).unwrap_or(u32::MAX)))
                    })
                    .collect(),
                _ => Vec::new(),
            };
            Some(EdgeOneGroup { id, origins })
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

/// List cells hold several values separated by `;`, `,` or spaces (none of them can be
/// part of a port, an address or a host name).
fn split(cell: &str) -> Vec<String> {
    cell.split(|c: char| c == ';' || c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn from_csv(path: &str, text: &str) -> Result<Vec<EdgeOneRule>, ImportError> {
    let format = |reason: String| ImportError::Format {
        path: path.to_string(),
        reason,
    };
    // Spreadsheets in many locales save CSV with `;` between cells: the header row says which.
    let header = text.lines().next().unwrap_or_default();
    let delimiter = if header.matches(';').count() > header.matches(',').count() {
        b';'
    } else {
        b','
    };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
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

#[cfg(test)]
mod tests;
