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

/// A resource of the proxy's own host that ran out: never the origin's fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalResource {
    /// EADDRNOTAVAIL: no ephemeral port left towards this origin (TIME_WAITs, port range).
    Ports,
    /// EMFILE/ENFILE: the process or the system is out of file descriptors.
    Fds,
    /// ENOBUFS/ENOMEM: the kernel is out of socket memory.
    Memory,
}

impl LocalResource {
    /// The resource an OS error says ran out, if it is one.
    pub fn of(e: &io::Error) -> Option<LocalResource> {
        match e.raw_os_error()? {
            libc::EADDRNOTAVAIL => Some(LocalResource::Ports),
            libc::EMFILE | libc::ENFILE => Some(LocalResource::Fds),
            libc::ENOBUFS | libc::ENOMEM => Some(LocalResource::Memory),
            _ => None,
        }
    }

    fn what(self) -> &'static str {
        match self {
            LocalResource::Ports => {
                "out of local ports (add source_addresses to the rule, widen net.ipv4.ip_local_port_range; see toa doctor)"
            }
            LocalResource::Fds => "out of file descriptors (raise LimitNOFILE / fs.file-max)",
            LocalResource::Memory => "out of socket memory",
        }
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
    /// The proxy's own host ran out of something: counted apart, never against the origin.
    #[error("proxy: {} connecting to {origin}: {source}", resource.what())]
    Local {
        origin: SocketAddr,
        resource: LocalResource,
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
        if let Some(resource) = LocalResource::of(&source) {
            return ConnectError::Local {
                origin,
                resource,
                source,
            };
        }
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

    /// A failure to create or set up the proxy's own socket: local when a resource ran out.
    pub fn socket(origin: SocketAddr, source: io::Error) -> ConnectError {
        match LocalResource::of(&source) {
            Some(resource) => ConnectError::Local {
                origin,
                resource,
                source,
            },
            None => ConnectError::Socket { origin, source },
        }
    }

    /// The `kind` label of `toa_proxy_connect_errors_total`.
    pub fn kind(&self) -> ConnectErrorKind {
        match self {
            ConnectError::Timeout { .. } => ConnectErrorKind::Timeout,
            ConnectError::Refused { .. } => ConnectErrorKind::Refused,
            ConnectError::Unreachable { .. } => ConnectErrorKind::Unreachable,
            ConnectError::Other { .. } => ConnectErrorKind::Other,
            ConnectError::Local { resource, .. } => match resource {
                LocalResource::Ports => ConnectErrorKind::LocalPorts,
                LocalResource::Fds => ConnectErrorKind::LocalFds,
                LocalResource::Memory => ConnectErrorKind::LocalMemory,
            },
            ConnectError::Socket { .. } => ConnectErrorKind::ProxySocket,
            ConnectError::NoHealthyOrigin => ConnectErrorKind::NoHealthyOrigin,
        }
    }

    pub fn side(&self) -> Side {
        match self {
            ConnectError::Socket { .. } | ConnectError::Local { .. } => Side::Proxy,
            _ => Side::Origin,
        }
    }

    /// Whether the origin itself misbehaved (counts against its health).
    pub fn blames_origin(&self) -> bool {
        self.side() == Side::Origin && !matches!(self, ConnectError::NoHealthyOrigin)
    }
}

crate::labels::label_enum! {
    /// The `kind` label of `toa_proxy_connect_errors_total`; the order is the metric's.
    pub enum ConnectErrorKind {
        Timeout => "timeout",
        Refused => "refused",
        Unreachable => "unreachable",
        Other => "other",
        ProxySocket => "proxy_socket",
        NoHealthyOrigin => "no_healthy_origin",
        /// No ephemeral port left (EADDRNOTAVAIL).
        LocalPorts => "local_ports",
        /// No file descriptor left (EMFILE, ENFILE).
        LocalFds => "local_fds",
        /// No socket memory left (ENOBUFS, ENOMEM).
        LocalMemory => "local_memory",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_resource_errors_are_the_proxys_and_never_blame_the_origin() {
        let origin: SocketAddr = "198.18.2.2:80".parse().unwrap();
        for (errno, kind) in [
            (libc::EADDRNOTAVAIL, ConnectErrorKind::LocalPorts),
            (libc::EMFILE, ConnectErrorKind::LocalFds),
            (libc::ENFILE, ConnectErrorKind::LocalFds),
            (libc::ENOBUFS, ConnectErrorKind::LocalMemory),
        ] {
            let e = ConnectError::from_io(origin, io::Error::from_raw_os_error(errno));
            assert_eq!(
                (e.kind(), e.side(), e.blames_origin()),
                (kind, Side::Proxy, false)
            );
        }
        let refused =
            ConnectError::from_io(origin, io::Error::from_raw_os_error(libc::ECONNREFUSED));
        assert!(refused.blames_origin());
    }
}
