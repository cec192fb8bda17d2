//! The config file exactly as TOML gives it, with the span of every value so that
//! validation can name the line. Only shape is checked here; meaning is checked in `validate`.

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFile {
    pub proxy: Option<Spanned<RawProxy>>,
    pub health: Option<Spanned<RawHealth>>,
    pub toa: Option<Spanned<RawToa>>,
    #[serde(default)]
    pub rule: Vec<Spanned<RawRule>>,
    #[serde(default)]
    pub origin_group: Vec<Spanned<RawGroup>>,
}

/// `[proxy]`: process-wide limits and timeouts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProxy {
    pub max_connections: Option<Spanned<i64>>,
    pub connect_timeout: Option<Spanned<Text>>,
    pub idle_timeout: Option<Spanned<Text>>,
    pub drain_timeout: Option<Spanned<Text>>,
    pub access_log: Option<Spanned<bool>>,
    pub access_log_format: Option<Spanned<String>>,
    pub access_log_open: Option<Spanned<bool>>,
    pub buffer_size: Option<Spanned<i64>>,
    pub splice: Option<Spanned<bool>>,
    pub udp_idle_timeout: Option<Spanned<Text>>,
    pub metrics_max_connections: Option<Spanned<i64>>,
    pub resolve_interval: Option<Spanned<Text>>,
    pub accept_proxy_timeout: Option<Spanned<Text>>,
}

/// `[health]`: active check settings shared by every origin.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    pub interval: Option<Spanned<Text>>,
    pub timeout: Option<Spanned<Text>>,
    pub rise: Option<Spanned<i64>>,
    pub fall: Option<Spanned<i64>>,
}

/// `[toa]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawToa {
    pub kind: Option<Spanned<i64>>,
}

/// One `[[rule]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    pub tag: Option<Spanned<String>>,
    pub protocol: Option<Spanned<String>>,
    pub listen: Option<Spanned<Vec<Spanned<String>>>>,
    pub ports: Option<Spanned<PortsText>>,
    pub origins: Option<Spanned<Vec<Spanned<String>>>>,
    pub origin_group: Option<Spanned<String>>,
    pub origin_ports: Option<Spanned<Text>>,
    pub pass_client_ip: Option<Spanned<String>>,
    pub session_persist: Option<Spanned<bool>>,
    pub session_persist_ttl: Option<Spanned<Text>>,
    pub status: Option<Spanned<String>>,
    pub balance: Option<Spanned<String>>,
    pub max_connections: Option<Spanned<i64>>,
    pub ppv2_unique_id: Option<Spanned<bool>>,
    pub max_flows: Option<Spanned<i64>>,
    pub max_connections_per_client: Option<Spanned<i64>>,
    pub session_persist_max: Option<Spanned<i64>>,
    pub source_addresses: Option<Spanned<Vec<Spanned<String>>>>,
    pub accept_proxy: Option<Spanned<String>>,
    pub accept_proxy_from: Option<Spanned<Vec<Spanned<String>>>>,
    pub resolve_interval: Option<Spanned<Text>>,
}

/// One `[[origin_group]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGroup {
    pub name: Option<Spanned<String>>,
    pub origins: Option<Spanned<Vec<Spanned<RawGroupOrigin>>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGroupOrigin {
    pub address: String,
    #[serde(default = "default_weight")]
    pub weight: i64,
}

fn default_weight() -> i64 {
    1
}

/// A value users write either as a string or a bare integer: `ports = 80`, `ttl = 3600`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Text {
    Str(String),
    Int(i64),
}

impl Text {
    pub fn as_string(&self) -> String {
        match self {
            Text::Str(s) => s.clone(),
            Text::Int(i) => i.to_string(),
        }
    }
}

/// `ports`: one port or range, or EdgeOne's list form `["80", "443"]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum PortsText {
    One(Text),
    List(Vec<Text>),
}

impl PortsText {
    pub fn items(&self) -> Vec<String> {
        match self {
            PortsText::One(t) => vec![t.as_string()],
            PortsText::List(l) => l.iter().map(Text::as_string).collect(),
        }
    }
}
