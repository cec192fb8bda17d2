//! The admin socket: a Unix stream socket, root-only (0600 in a 0700 directory), on
//! which the running proxy takes one [`Command`] per connection and answers a status line
//! (`ok: ...` or `error: ...`), then, for `origin list`, the table's lines. `reload` is
//! what `toa proxy reload` sends (the same reload as SIGHUP, answered with its outcome, so
//! a rejected file is an exit status and not only a journal line); `origin set-state` and
//! `origin list` set and show origins' states without a reload. `toa proxy
//! --admin-socket PATH` opens it; without the flag there is none.

use std::io::{self, Read, Write};
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

use crate::origin_admin::SetStateError;
use crate::origin_state::{OriginState, UnknownState};
use crate::state::{AdminError, ServerError};

/// The path `toa proxy reload` asks by default, and the unit's `--admin-socket`.
pub const DEFAULT_ADMIN_SOCKET: &str = "/run/toa-proxy/admin.sock";

/// A command the admin socket takes: one line on the wire (its `Display`), parsed back
/// with `FromStr`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `reload`: the same reload as SIGHUP, answered with its outcome.
    Reload,
    /// `origin set-state ADDRESS STATE NAME`: `address`'s state in the rule tagged `name`
    /// and in every rule of the origin group named `name` (the name last: it may hold spaces).
    SetOriginState {
        name: String,
        address: IpAddr,
        state: OriginState,
    },
    /// `origin list`: every online rule's origins, a table.
    ListOrigins,
}

/// Why a command line is not a [`Command`].
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("unknown command {0:?} (known: reload, origin set-state, origin list)")]
    Unknown(String),
    #[error("{0:?} is not an IP address")]
    Address(String),
    #[error(transparent)]
    State(#[from] UnknownState),
    #[error("a rule or origin group name is needed, on one line")]
    Name,
}

impl Command {
    /// `origin set-state` from its three words as typed.
    pub fn set_origin_state(
        name: &str,
        address: &str,
        state: &str,
    ) -> Result<Command, CommandError> {
        if name.is_empty() || name.contains(['\n', '\r']) {
            return Err(CommandError::Name);
        }
        Ok(Command::SetOriginState {
            name: name.to_string(),
            address: address
                .parse()
                .map_err(|_| CommandError::Address(address.to_string()))?,
            state: state.parse()?,
        })
    }
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Reload => f.write_str("reload"),
            Command::SetOriginState {
                name,
                address,
                state,
            } => write!(f, "origin set-state {address} {state} {name}"),
            Command::ListOrigins => f.write_str("origin list"),
        }
    }
}

impl std::str::FromStr for Command {
    type Err = CommandError;

    fn from_str(line: &str) -> Result<Command, CommandError> {
        let unknown = || CommandError::Unknown(line.to_string());
        if let Some(args) = line.strip_prefix("origin set-state ") {
            let mut words = args.splitn(3, ' ');
            let (address, state) = (
                words.next().ok_or_else(unknown)?,
                words.next().ok_or_else(unknown)?,
            );
            return Command::set_origin_state(words.next().unwrap_or(""), address, state);
        }
        match line {
            "reload" => Ok(Command::Reload),
            "origin list" => Ok(Command::ListOrigins),
            _ => Err(unknown()),
        }
    }
}

/// What a command that succeeded answers: a status line, and the lines of a table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answer {
    pub status: String,
    pub lines: Vec<String>,
}

impl From<String> for Answer {
    fn from(status: String) -> Answer {
        Answer {
            status,
            lines: Vec::new(),
        }
    }
}

/// What one command asks the proxy's main loop to do; it answers on `reply`.
pub(crate) struct Request {
    pub command: Command,
    pub reply: oneshot::Sender<Result<Answer, Refused>>,
}

/// Why the proxy refused a command it understood.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refused {
    #[error(transparent)]
    Reload(#[from] ReloadRejected),
    #[error(transparent)]
    SetState(#[from] SetStateError),
}

/// A reload that was refused: the old config keeps running.
#[derive(Debug, thiserror::Error)]
#[error("reload rejected, old config still running: {0}")]
pub(crate) struct ReloadRejected(#[source] pub ServerError);

/// The bound socket; the file is removed when it is dropped.
pub(crate) struct AdminSocket {
    path: PathBuf,
    listener: UnixListener,
}

impl AdminSocket {
    /// Binds `path` (0600; its directory made 0700 if missing). A socket file left by a
    /// proxy that died is replaced; one that a running proxy answers on is an error.
    pub fn bind(path: &Path) -> Result<AdminSocket, AdminError> {
        let io_err = |source| AdminError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io_err)?;
        }
        if StdUnixStream::connect(path).is_ok() {
            return Err(AdminError::InUse {
                path: path.to_path_buf(),
            });
        }
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_err(e)),
            _ => {}
        }
        let listener = UnixListener::bind(path).map_err(io_err)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io_err)?;
        Ok(AdminSocket {
            path: path.to_path_buf(),
            listener,
        })
    }

    /// Answers commands until the process ends; each becomes a [`Request`] on `requests`.
    pub async fn serve(self, requests: mpsc::Sender<Request>) {
        loop {
            let Ok((stream, _)) = self.listener.accept().await else {
                continue;
            };
            tokio::spawn(answer(stream, requests.clone()));
        }
    }
}

impl Drop for AdminSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// One connection: one command line in; out, a status line (`ok: ...` or `error: ...`)
/// and the answer's other lines, then the connection closes.
async fn answer(stream: UnixStream, requests: mpsc::Sender<Request>) {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut read = tokio::io::BufReader::new(read);
    // A client that sends nothing is not worth a task for long.
    let got = tokio::time::timeout(Duration::from_secs(5), read.read_line(&mut line)).await;
    if !matches!(got, Ok(Ok(_))) {
        return;
    }
    let text = match line.trim().parse::<Command>() {
        Err(e) => format!("error: {e}\n"),
        Ok(command) => {
            let (reply, outcome) = oneshot::channel();
            let sent = requests.send(Request { command, reply }).await.is_ok();
            match outcome.await {
                Ok(Ok(answer)) if sent => {
                    let lines = answer.lines.iter().map(|l| format!("{l}\n"));
                    format!("ok: {}\n{}", answer.status, lines.collect::<String>())
                }
                Ok(Err(reason)) if sent => format!("error: {reason}\n"),
                _ => "error: the proxy is stopping\n".to_string(),
            }
        }
    };
    let _ = write.write_all(text.as_bytes()).await;
}

/// Why a command sent with [`request`] did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The proxy answered that the command failed (a rejected reload names the file,
    /// line and field).
    #[error("{0}")]
    Refused(String),
    #[error("cannot ask the proxy at {}: {source} (is it running with --admin-socket {}?)", path.display(), path.display())]
    Unreachable { path: PathBuf, source: io::Error },
    #[error("unexpected answer from {}: {line:?}", path.display())]
    Garbled { path: PathBuf, line: String },
}

/// Sends `command` to the proxy at `path` and returns its answer: `Ok` with the status
/// after `ok: ` and the lines after it, [`RequestError::Refused`] with the text after `error: `.
pub fn request(path: &Path, command: &Command, timeout: Duration) -> Result<Answer, RequestError> {
    let ask = || -> io::Result<String> {
        let mut stream = StdUnixStream::connect(path)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.write_all(format!("{command}\n").as_bytes())?;
        // The proxy closes the connection after its answer.
        let mut text = String::new();
        stream.read_to_string(&mut text)?;
        Ok(text)
    };
    let text = ask().map_err(|source| RequestError::Unreachable {
        path: path.to_path_buf(),
        source,
    })?;
    let mut lines = text.lines();
    let first = lines.next().unwrap_or("");
    match (first.strip_prefix("ok: "), first.strip_prefix("error: ")) {
        (Some(status), _) => Ok(Answer {
            status: status.to_string(),
            lines: lines.map(str::to_string).collect(),
        }),
        (_, Some(err)) => Err(RequestError::Refused(err.to_string())),
        _ => Err(RequestError::Garbled {
            path: path.to_path_buf(),
            line: first.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_read_back_what_they_write_and_bad_words_are_named() {
        for command in [
            Command::Reload,
            Command::ListOrigins,
            Command::set_origin_state("web pool", "fd00:2::3", "maint").unwrap(),
        ] {
            assert_eq!(command.to_string().parse::<Command>().unwrap(), command);
        }
        let error = |line: &str| line.parse::<Command>().unwrap_err().to_string();
        assert_eq!(
            error("origin set-state 198.18.2.2 paused web"),
            "unknown state \"paused\"; use ready, drain or maint"
        );
        assert_eq!(
            error("origin set-state web 198.18.2.2 drain"),
            "\"web\" is not an IP address"
        );
        assert_eq!(
            error("origin set-state 198.18.2.2 drain"),
            "a rule or origin group name is needed, on one line"
        );
        assert_eq!(
            error("stop"),
            "unknown command \"stop\" (known: reload, origin set-state, origin list)"
        );
    }
}
