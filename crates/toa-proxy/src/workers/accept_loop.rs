//! One listener's accept loop on one worker: accept, place the connection on a worker,
//! and take at most [`super::MAX_ACCEPTS_IN_A_ROW`] in a row.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{MAX_ACCEPTS_IN_A_ROW, Placement};
use crate::rules::ListenKey;
use crate::state::{Routes, Shared, TcpRule};

/// What every accept loop of one listener shares.
#[derive(Clone)]
pub(crate) struct AcceptLoop {
    pub routes: Routes<TcpRule>,
    pub stop: CancellationToken,
    pub shared: Arc<Shared>,
    pub abort: CancellationToken,
    pub tasks: TaskTracker,
}

impl AcceptLoop {
    /// Accepts on worker `me` until `stop`; each connection becomes a task on the worker
    /// `placement` chooses, timed out and aborted by that worker's sweep.
    pub(super) async fn run(
        self,
        key: ListenKey,
        mut acceptor: Acceptor,
        placement: Arc<Placement>,
        me: usize,
    ) {
        let mut backoff = Duration::from_millis(10);
        loop {
            let accepted = tokio::select! {
                _ = self.stop.cancelled() => break,
                accepted = acceptor.accept() => accepted,
            };
            let placed = accepted.and_then(|(client, peer)| {
                let route = self.routes.load_full();
                placement.dispatch(me, &self.tasks, client, |client, sweep| {
                    crate::connection::handle(self.shared.clone(), route, client, peer, sweep)
                })
            });
            match placed {
                Ok(()) => backoff = Duration::from_millis(10),
                Err(e) => {
                    // Out of file descriptors or memory: wait and try again, never exit.
                    tracing::warn!(listener = %key, "accept failed, retrying in {}ms: {e}", backoff.as_millis());
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
        // Connections the kernel already queued are served, not reset by the close: a
        // reload that moves a steered range (or a port) to new sockets stops steering to
        // the old ones first, so only what arrived before then is waiting here.
        while let Ok((client, peer)) = accept4(acceptor.listener.get_ref()) {
            let route = self.routes.load_full();
            let served = placement.dispatch(me, &self.tasks, client, |client, sweep| {
                crate::connection::handle(self.shared.clone(), route, client, peer, sweep)
            });
            if served.is_err() {
                break;
            }
        }
    }
}

/// A listening socket that yields to the worker's other tasks after
/// [`MAX_ACCEPTS_IN_A_ROW`] connections taken without the kernel's queue running dry.
/// It accepts without registering: the connection is registered with the worker that
/// will serve it ([`Placement::dispatch`]).
pub(super) struct Acceptor {
    listener: AsyncFd<std::net::TcpListener>,
    in_a_row: u32,
}

impl Acceptor {
    /// `listener` must be non-blocking. Needs the runtime's context.
    pub(super) fn new(listener: std::net::TcpListener) -> io::Result<Acceptor> {
        // SAFETY: the AsyncFd owns the listener, so its descriptor stays open and the
        // same for as long as it is registered.
        let listener = unsafe { AsyncFd::register_with_interest(listener, Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        Ok(Acceptor {
            listener,
            in_a_row: 0,
        })
    }

    /// The next connection, non-blocking and close-on-exec. Cancel-safe: nothing is
    /// taken until it returns.
    pub(super) async fn accept(&mut self) -> io::Result<(std::net::TcpStream, SocketAddr)> {
        if self.in_a_row >= MAX_ACCEPTS_IN_A_ROW {
            self.in_a_row = 0;
            // Back after the tasks that are ready now, and after the next look for I/O.
            tokio::task::yield_now().await;
        }
        loop {
            let mut ready = self.listener.readable().await?;
            match ready.try_io(|listener| accept4(listener.get_ref())) {
                Ok(accepted) => {
                    match &accepted {
                        Ok(_) => self.in_a_row += 1,
                        // The caller waits before it tries again.
                        Err(_) => self.in_a_row = 0,
                    }
                    return accepted;
                }
                // The queue ran dry: the worker's other tasks run before this one again.
                Err(_would_block) => self.in_a_row = 0,
            }
        }
    }
}

fn accept4(listener: &std::net::TcpListener) -> io::Result<(std::net::TcpStream, SocketAddr)> {
    let (socket, peer) =
        socket2::SockRef::from(listener).accept4(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)?;
    let peer = peer
        .as_socket()
        .ok_or_else(|| io::Error::other("accepted a connection from a non-IP address"))?;
    Ok((socket.into(), peer))
}
