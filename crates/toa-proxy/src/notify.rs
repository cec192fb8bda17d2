//! The systemd notification protocol (`sd_notify(3)`), for `Type=notify` units: one
//! datagram of `KEY=VALUE` lines to the unix socket named by `$NOTIFY_SOCKET`.
//!
//! Outside systemd the variable is unset and every call does nothing. A failed send is
//! logged and otherwise ignored: the proxy serves the same with or without a supervisor
//! listening, and systemd itself times the unit out if READY=1 never arrives.

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// A state change systemd is told about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Every listener is bound: the unit is started (and after a reload, running again).
    Ready,
    /// A reload (SIGHUP or a changed config file) began.
    Reloading,
    /// The proxy stopped accepting and drains its connections.
    Stopping,
}

/// Where notifications go: `$NOTIFY_SOCKET`, read once at start.
#[derive(Debug)]
pub struct Notifier {
    target: Option<SocketAddr>,
}

impl Notifier {
    /// The notifier for this process's supervisor, if it has one.
    pub fn from_env() -> Notifier {
        let target = std::env::var_os("NOTIFY_SOCKET").and_then(|path| {
            let parsed = parse_address(path.as_encoded_bytes());
            if let Err(e) = &parsed {
                tracing::warn!("NOTIFY_SOCKET={}: {e}", path.to_string_lossy());
            }
            parsed.ok()
        });
        Notifier { target }
    }

    /// Tells the supervisor about `state`, with a human-readable `status` line
    /// (`systemctl status` shows it).
    pub fn notify(&self, state: State, status: &str) {
        let Some(target) = &self.target else {
            return;
        };
        let message = message(state, status, monotonic_usec());
        let sent = UnixDatagram::unbound().and_then(|s| s.send_to_addr(message.as_bytes(), target));
        if let Err(e) = sent {
            tracing::warn!("cannot notify the supervisor ({state:?}): {e}");
        }
    }
}

/// The datagram for `state`. RELOADING=1 carries MONOTONIC_USEC, which systemd ≥ 253
/// requires to match the reload to the READY=1 that ends it. Status text is one line.
fn message(state: State, status: &str, now_usec: u64) -> String {
    let status = status.replace('\n', " ");
    match state {
        State::Ready => format!("READY=1\nSTATUS={status}\n"),
        State::Reloading => format!("RELOADING=1\nMONOTONIC_USEC={now_usec}\nSTATUS={status}\n"),
        State::Stopping => format!("STOPPING=1\nSTATUS={status}\n"),
    }
}

/// A filesystem path, or `@name` for the abstract namespace.
fn parse_address(raw: &[u8]) -> io::Result<SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    match raw.split_first() {
        Some((b'@', name)) => SocketAddr::from_abstract_name(name),
        Some((b'/', _)) => SocketAddr::from_pathname(std::ffi::OsStr::from_bytes(raw)),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not an absolute path or @abstract name",
        )),
    }
}

/// CLOCK_MONOTONIC in microseconds, the clock systemd compares reload times on.
fn monotonic_usec() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the struct we own; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now.tv_sec as u64 * 1_000_000 + now.tv_nsec as u64 / 1_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reloading_carries_the_monotonic_time_systemd_253_wants() {
        assert_eq!(
            message(State::Reloading, "reloading x.toml", 42),
            "RELOADING=1\nMONOTONIC_USEC=42\nSTATUS=reloading x.toml\n"
        );
        assert_eq!(message(State::Ready, "a\nb", 0), "READY=1\nSTATUS=a b\n");
    }

    #[test]
    fn relative_notify_socket_paths_are_refused() {
        assert!(parse_address(b"run/notify").is_err());
        assert!(parse_address(b"").is_err());
        assert!(parse_address(b"/run/systemd/notify").is_ok());
        assert!(parse_address(b"@abstract").is_ok());
    }
}
