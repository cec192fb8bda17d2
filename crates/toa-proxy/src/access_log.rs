//! The access log: a line when a TCP connection closes or a UDP flow ends (`access_log`)
//! and, with `access_log_open`, one when it opens; the same fields for both protocols,
//! written as `key=value` text or as one JSON object per line (`access_log_format`).
//! The fields are listed in the README ("Access log"); [`Entry`] is the one place that
//! names them.

use std::net::SocketAddr;
use std::time::SystemTime;

use serde::Serialize;
use toa_config::{AccessLogFormat, Protocol};

/// The tracing target of text lines.
pub const TARGET: &str = "toa_proxy::access";
/// The tracing target of JSON lines: their message is the whole line, which the `toa`
/// binary's log output writes bare (no timestamp or level around it).
pub const JSON_TARGET: &str = "toa_proxy::access_json";

/// Which end of a connection or flow a line is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Event {
    Open,
    Close,
}

impl Event {
    fn name(self) -> &'static str {
        match self {
            Event::Open => "open",
            Event::Close => "close",
        }
    }
}

/// One access log line. Every field is there for both protocols; what a protocol or an
/// event does not have is `null` in JSON and `-` in text.
#[derive(Debug, Serialize)]
pub struct Entry<'a> {
    pub event: Event,
    #[serde(serialize_with = "protocol_name")]
    pub proto: Protocol,
    pub rule: &'a str,
    /// The client: the peer, or the client a trusted upstream named in its header.
    pub client: SocketAddr,
    /// The proxy address the client reached.
    pub listen: SocketAddr,
    /// The proxy address the origin is told the client reached (a trusted upstream's
    /// own, when it named one; otherwise `listen`).
    pub proxy: SocketAddr,
    pub origin: SocketAddr,
    /// The rule's `pass_client_ip` mode.
    pub client_ip_mode: &'static str,
    /// Since the connection was accepted or the flow opened; 0 on `open`.
    pub duration_ms: u64,
    pub bytes_to_origin: u64,
    pub bytes_to_client: u64,
    /// UDP only.
    pub datagrams_to_origin: Option<u64>,
    pub datagrams_to_client: Option<u64>,
    /// Why it ended; `close` lines only.
    pub close: Option<&'a str>,
}

fn protocol_name<S: serde::Serializer>(p: &Protocol, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(p.name())
}

/// A JSON line: `time` first, then the entry's fields.
#[derive(Serialize)]
struct JsonLine<'a> {
    time: String,
    #[serde(flatten)]
    entry: &'a Entry<'a>,
}

/// `-` where a value does not apply, in text lines.
struct OrDash<T>(Option<T>);

impl<T: std::fmt::Display> std::fmt::Display for OrDash<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(v) => v.fmt(f),
            None => f.write_str("-"),
        }
    }
}

/// Writes `entry` in `format` at info. Text quotes every word-valued field (proto, rule,
/// client_ip_mode, close) and leaves numbers and addresses bare, the same for TCP and UDP.
pub fn write(format: AccessLogFormat, entry: &Entry<'_>) {
    match format {
        AccessLogFormat::Json => {
            let line = JsonLine { time: now(), entry };
            // Serializing plain strings and numbers cannot fail.
            if let Ok(line) = serde_json::to_string(&line) {
                tracing::info!(target: JSON_TARGET, "{line}");
            }
        }
        AccessLogFormat::Text => {
            let e = entry;
            tracing::info!(target: TARGET, proto = ?e.proto.name(), rule = ?e.rule,
                client = %e.client, listen = %e.listen, proxy = %e.proxy, origin = %e.origin,
                client_ip_mode = ?e.client_ip_mode, duration_ms = e.duration_ms,
                bytes_to_origin = e.bytes_to_origin, bytes_to_client = e.bytes_to_client,
                datagrams_to_origin = %OrDash(e.datagrams_to_origin),
                datagrams_to_client = %OrDash(e.datagrams_to_client),
                close = %OrDash(e.close.map(|c| format!("{c:?}"))), "{}", e.event.name());
        }
    }
}

/// A refused client: logged at warn, in the rule's `access_log_format`.
#[derive(Debug, Serialize)]
pub struct Refused<'a> {
    #[serde(serialize_with = "protocol_name")]
    pub proto: Protocol,
    pub rule: &'a str,
    pub client: SocketAddr,
    /// The `reason` label of the refusal's counter.
    pub reason: &'static str,
    /// What was refused: a connection, a flow, a datagram.
    pub refused: &'a str,
    /// The limit or check, in words.
    pub why: &'a str,
    /// Refusals of the same rule and reason left unlogged since the last line.
    pub suppressed: u64,
}

/// Writes a refusal line: text as `{refused} refused: {why}` with the other fields after
/// it; JSON with `"event":"refused"`.
pub fn refused(format: AccessLogFormat, r: &Refused<'_>) {
    match format {
        AccessLogFormat::Json => {
            #[derive(Serialize)]
            struct Line<'a> {
                time: String,
                event: &'static str,
                #[serde(flatten)]
                refused: &'a Refused<'a>,
            }
            let line = Line {
                time: now(),
                event: "refused",
                refused: r,
            };
            if let Ok(line) = serde_json::to_string(&line) {
                tracing::warn!(target: JSON_TARGET, "{line}");
            }
        }
        AccessLogFormat::Text => {
            tracing::warn!(rule = %r.rule, client = %r.client, reason = %r.reason,
                suppressed = r.suppressed, "{} refused: {}", r.refused, r.why);
        }
    }
}

/// Now, as JSON lines give it: RFC 3339, UTC, milliseconds.
fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_have_the_same_keys_for_tcp_and_udp() {
        let keys = |entry: &Entry<'_>| {
            let line = JsonLine {
                time: String::new(),
                entry,
            };
            let value = serde_json::to_value(&line).unwrap();
            let mut keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
            keys.sort();
            keys
        };
        let addr: SocketAddr = "198.18.1.2:4000".parse().unwrap();
        let tcp = Entry {
            event: Event::Close,
            proto: Protocol::Tcp,
            rule: "web",
            client: addr,
            listen: addr,
            proxy: addr,
            origin: addr,
            client_ip_mode: "toa",
            duration_ms: 5,
            bytes_to_origin: 1,
            bytes_to_client: 2,
            datagrams_to_origin: None,
            datagrams_to_client: None,
            close: Some("client closed"),
        };
        let udp = Entry {
            event: Event::Open,
            proto: Protocol::Udp,
            datagrams_to_origin: Some(1),
            datagrams_to_client: Some(0),
            close: None,
            ..tcp
        };
        assert_eq!(keys(&tcp), keys(&udp));
        let text = serde_json::to_string(&udp).unwrap();
        assert!(
            text.contains(r#""event":"open","proto":"udp""#) && text.contains(r#""close":null"#),
            "{text}"
        );
    }
}
