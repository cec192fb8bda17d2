//! The `[proxy]`, `[health]` and `[toa]` sections as validated, with the defaults a
//! file that leaves them out gets.

use std::time::Duration;

use crate::values::AccessLogFormat;

/// The `/metrics` endpoint's connection cap where nothing sets one: the proxy's
/// `metrics_max_connections` default and the origin exporter's fixed cap (a scraper or
/// two plus a probe).
pub const DEFAULT_METRICS_MAX_CONNECTIONS: usize = 8;

#[derive(Debug, Clone, PartialEq)]
pub struct ProxySettings {
    pub max_connections: usize,
    pub connect_timeout: Duration,
    /// No byte either way for this long closes a connection. Checked by a sweep every
    /// tenth of it or every second, whichever is shorter (toa-proxy's `forward::sweep`), so a
    /// connection closes up to that much after the timeout.
    pub idle_timeout: Duration,
    pub drain_timeout: Duration,
    /// One access log line when a connection closes or a UDP flow ends.
    pub access_log: bool,
    /// How access log lines are written: `key=value` text or one JSON object per line.
    pub access_log_format: AccessLogFormat,
    /// One more access log line when a connection opens or a UDP flow starts (HAProxy's
    /// `option logasap`), whether or not `access_log` is on.
    pub access_log_open: bool,
    /// Bytes buffered per direction per connection: the bound on per-connection memory (a
    /// splice pipe grows above it only while both ends keep up, within a process-wide budget).
    pub buffer_size: usize,
    /// Switch each direction to splice(2) (payload stays in the kernel) once it has moved
    /// 64 KiB; `false` keeps buffered copies throughout.
    pub splice: bool,
    /// A UDP flow with no datagram in either direction for this long is forgotten.
    pub udp_idle_timeout: Duration,
    /// Concurrent connections to the metrics endpoint (read at start).
    pub metrics_max_connections: usize,
    /// Host-name origins are looked up again this often (a rule may override it).
    pub resolve_interval: Duration,
    /// How long an `accept_proxy` rule waits for the client's PROXY header.
    pub accept_proxy_timeout: Duration,
}

impl Default for ProxySettings {
    fn default() -> Self {
        ProxySettings {
            max_connections: 100_000,
            connect_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(900),
            drain_timeout: Duration::from_secs(30),
            access_log: false,
            access_log_format: AccessLogFormat::Text,
            access_log_open: false,
            buffer_size: 64 * 1024,
            splice: true,
            udp_idle_timeout: Duration::from_secs(60),
            metrics_max_connections: DEFAULT_METRICS_MAX_CONNECTIONS,
            resolve_interval: Duration::from_secs(30),
            // A trusted upstream sends the header with its first segment; seconds are slack
            // for a lossy path, while a silent or hostile client cannot hold a slot for long.
            accept_proxy_timeout: Duration::from_secs(3),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct HealthSettings {
    pub interval: Duration,
    pub timeout: Duration,
    /// Consecutive successful checks that bring a down origin back.
    pub rise: u32,
    /// Consecutive failed checks that take an up origin down.
    pub fall: u32,
}

impl Default for HealthSettings {
    fn default() -> Self {
        HealthSettings {
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
            rise: 2,
            fall: 3,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ToaSettings {
    /// TCP option kind the edge writer uses (254 by default, 200 for Tencent-CLB-style receivers).
    pub kind: u8,
}

impl Default for ToaSettings {
    fn default() -> Self {
        ToaSettings {
            kind: toa_wire::toa::DEFAULT_KIND,
        }
    }
}
