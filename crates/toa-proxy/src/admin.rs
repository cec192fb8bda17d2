//! The admin socket: a Unix stream socket, root-only (0600 in a 0700 directory), on
//! which the running proxy takes one command per connection and answers one line.
//! Today its one command is `reload` (what `toa proxy reload` sends: the same reload as
//! SIGHUP, answered with its outcome, so a rejected file is an exit status and not only a
//! journal line). `toa proxy --admin-socket PATH` opens it; without the flag there is none.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

use crate::state::{AdminError, ServerError};

/// The path `toa proxy reload` asks by default, and the unit's `--admin-socket`.
pub const DEFAULT_ADMIN_SOCKET: &str = "/run/toa-proxy/admin.sock";

/// What one command asks the proxy's main loop to do; it answers on `reply`.
pub(crate) struct Request {
    pub reply: oneshot::Sender<Result<String, ReloadRejected>>,
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

/// One connection: one command line in, one answer line out (`ok: ...` or `error: ...`).
async fn answer(stream: UnixStream, requests: mpsc::Sender<Request>) {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut read = tokio::io::BufReader::new(read);
    // A client that sends nothing is not worth a task for long.
    let got = tokio::time::timeout(Duration::from_secs(5), read.read_line(&mut line)).await;
    let answer = match (got, line.trim()) {
        (Ok(Ok(_)), "reload") => {
            let (reply, outcome) = oneshot::channel();
            let sent = requests.send(Request { reply }).await.is_ok();
            match outcome.await {
                Ok(Ok(status)) if sent => format!("ok: {status}"),
                Ok(Err(reason)) if sent => format!("error: {reason}"),
                _ => "error: the proxy is stopping".to_string(),
            }
        }
        (Ok(Ok(_)), other) => format!("error: unknown command {other:?} (known: reload)"),
        _ => return,
    };
    let _ = write.write_all(format!("{answer}\n").as_bytes()).await;
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

/// Sends `command` to the proxy at `path` and returns its answer: `Ok` with the text after
/// `ok: `, [`RequestError::Refused`] with the text after `error: `.
pub fn request(path: &Path, command: &str, timeout: Duration) -> Result<String, RequestError> {
    let ask = || -> io::Result<String> {
        let mut stream = StdUnixStream::connect(path)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.write_all(format!("{command}\n").as_bytes())?;
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line)?;
        Ok(line)
    };
    let line = ask().map_err(|source| RequestError::Unreachable {
        path: path.to_path_buf(),
        source,
    })?;
    let line = line.trim_end();
    match (line.strip_prefix("ok: "), line.strip_prefix("error: ")) {
        (Some(ok), _) => Ok(ok.to_string()),
        (_, Some(err)) => Err(RequestError::Refused(err.to_string())),
        _ => Err(RequestError::Garbled {
            path: path.to_path_buf(),
            line: line.to_string(),
        }),
    }
}
