//! Errors of the data path. Each says which side failed — the client, the origin, or the
//! proxy itself — because that decides the log line, the metric label and who to blame.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

/// Which party a failure belongs to (pingora's `ErrorSource`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Origin,
    Proxy,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Client => "client",
            Side::Origin => "origin",
            Side::Proxy => "proxy",
        })
    }
}

/// Why an upstream connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("origin {origin}: connect timed out after {}ms", timeout.as_millis())]
    Timeout {
        origin: SocketAddr,
        timeout: Duration,
    },
    #[error("origin {origin}: connection refused")]
    Refused { origin: SocketAddr },
    #[error("origin {origin}: unreachable: {source}")]
    Unreachable {
        origin: SocketAddr,
        source: io::Error,
    },
    #[error("origin {origin}: connect failed: {source}")]
    Other {
        origin: SocketAddr,
        source: io::Error,
    },
    /// The proxy could not set up its own socket (e.g. TOA registration failed).
    #[error("proxy: cannot prepare the upstream socket to {origin}: {source}")]
    Socket {
        origin: SocketAddr,
        source: io::Error,
    },
    /// Every origin of the rule is marked down.
    #[error("origin: no healthy origin")]
    NoHealthyOrigin,
}

impl ConnectError {
    pub fn from_io(origin: SocketAddr, source: io::Error) -> ConnectError {
        match source.kind() {
            io::ErrorKind::ConnectionRefused => ConnectError::Refused { origin },
            io::ErrorKind::TimedOut => ConnectError::Timeout {
                origin,
                timeout: Duration::ZERO,
            },
            io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => {
                ConnectError::Unreachable { origin, source }
            }
            _ => ConnectError::Other { origin, source },
        }
    }

    /// The `kind` label of `toa_proxy_connect_errors_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            ConnectError::Timeout { .. } => "timeout",
            ConnectError::Refused { .. } => "refused",
            ConnectError::Unreachable { .. } => "unreachable",
            ConnectError::Other { .. } => "other",
            ConnectError::Socket { .. } => "proxy_socket",
            ConnectError::NoHealthyOrigin => "no_healthy_origin",
        }
    }

    pub fn side(&self) -> Side {
        match self {
            ConnectError::Socket { .. } => Side::Proxy,
            _ => Side::Origin,
        }
    }

    /// Whether the origin itself misbehaved (counts against its health).
    pub fn blames_origin(&self) -> bool {
        !matches!(
            self,
            ConnectError::Socket { .. } | ConnectError::NoHealthyOrigin
        )
    }
}

/// All `kind` labels, in the order metrics keep them.
pub const CONNECT_ERROR_KINDS: [&str; 6] = [
    "timeout",
    "refused",
    "unreachable",
    "other",
    "proxy_socket",
    "no_healthy_origin",
];
