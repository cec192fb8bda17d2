//! TCP accept: a fixed set of accept workers, each a thread running its own
//! current-thread tokio runtime, and each TCP listen key bound once per worker with
//! `SO_REUSEPORT`. The kernel spreads new connections over the sockets by their
//! 4-tuple, and a connection is served start to end by the worker that accepted it.
//!
//! Why not one accept task on the work-stealing runtime: measured on the bench
//! (bench/results/perf-changes-2026-12-01.md), its cross-thread wake-ups (a task woken
//! on one worker, stolen by the other) cost more per short connection than everything
//! the proxy does in user space. Health checks, metrics, UDP and reloads stay on the
//! main runtime; the routes an accept loop reads are shared with it, so a reload swaps
//! them exactly as before.
//!
//! A worker serves the connections it already has before it takes many new ones: an
//! accept loop takes at most [`MAX_ACCEPTS_IN_A_ROW`] before the worker's other ready
//! tasks run. Without the bound, a burst of new connections (up to tokio's cooperative
//! budget, 128) was accepted, and each one's origin connect started, while the replies
//! for the connections before them waited. HAProxy bounds its accepts the same way
//! (`tune.maxaccept`). It is kept for that bound, not for a figure: over 40 bench rounds
//! it made no measurable difference to p99 latency, connection rate or CPU per
//! connection (bench/results/perf-changes-2026-12-01.md, section 12).

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::forward::Sweep;
use crate::rules::ListenKey;
use crate::server::{Route, Shared};

/// How many connections an accept loop takes in a row before the worker's other ready
/// tasks run. 32 measured like 16; 8 and 4 (HAProxy's default) a little worse.
const MAX_ACCEPTS_IN_A_ROW: u32 = 16;

/// The accept workers of one [`crate::Server`]; dropping it ends their threads (and
/// with them any connection still open on them).
pub(crate) struct AcceptWorkers {
    workers: Vec<Worker>,
}

struct Worker {
    runtime: tokio::runtime::Handle,
    exit: CancellationToken,
    thread: Option<JoinHandle<()>>,
}

impl AcceptWorkers {
    /// One worker per CPU this process may run on.
    pub fn start() -> io::Result<AcceptWorkers> {
        let count = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut workers = Vec::with_capacity(count);
        for i in 0..count {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let exit = CancellationToken::new();
            let handle = runtime.handle().clone();
            let until = exit.clone();
            let thread = std::thread::Builder::new()
                .name(format!("toa-accept-{i}"))
                .spawn(move || runtime.block_on(until.cancelled()))?;
            workers.push(Worker {
                runtime: handle,
                exit,
                thread: Some(thread),
            });
        }
        Ok(AcceptWorkers { workers })
    }

    /// How many sockets each TCP listen key is bound as (one per worker).
    pub fn count(&self) -> usize {
        self.workers.len()
    }

    /// Starts accepting on `sockets` (one per worker, bound to the same key) until `stop`.
    pub fn spawn(&self, key: ListenKey, sockets: Vec<std::net::TcpListener>, loop_: AcceptLoop) {
        for (worker, socket) in self.workers.iter().zip(sockets) {
            let loop_ = loop_.clone();
            let tasks = loop_.tasks.clone();
            let _enter = worker.runtime.enter();
            // Registered with this worker's runtime: from_std needs its context.
            match TcpListener::from_std(socket) {
                Ok(listener) => {
                    let sweep = Sweep::start(loop_.abort.clone());
                    tasks.spawn(loop_.run(key, Acceptor::new(listener), sweep));
                }
                Err(e) => tracing::warn!(listener = %key, "cannot register a listener socket: {e}"),
            }
        }
    }
}

impl Drop for AcceptWorkers {
    fn drop(&mut self) {
        for w in &self.workers {
            w.exit.cancel();
        }
        for w in &mut self.workers {
            if let Some(thread) = w.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

/// What every accept loop of one listener shares.
#[derive(Clone)]
pub(crate) struct AcceptLoop {
    pub routes: Arc<RwLock<Arc<Route>>>,
    pub stop: CancellationToken,
    pub shared: Arc<Shared>,
    pub abort: CancellationToken,
    pub tasks: TaskTracker,
}

impl AcceptLoop {
    /// Accepts until `stop`; each connection becomes a task on this worker's runtime,
    /// timed out and aborted by `sweep`.
    async fn run(self, key: ListenKey, mut acceptor: Acceptor, sweep: Arc<Sweep>) {
        let mut backoff = Duration::from_millis(10);
        loop {
            let (stream, peer): (_, SocketAddr) = tokio::select! {
                _ = self.stop.cancelled() => return,
                accepted = acceptor.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors or memory: wait and try again, never exit.
                        tracing::warn!(listener = %key, "accept failed, retrying in {}ms: {e}", backoff.as_millis());
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(1));
                        continue;
                    }
                },
            };
            backoff = Duration::from_millis(10);
            let route = self
                .routes
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            self.tasks.spawn(crate::connection::handle(
                self.shared.clone(),
                route,
                stream,
                peer,
                sweep.clone(),
            ));
        }
    }
}

/// A listener that yields to the worker's other tasks after [`MAX_ACCEPTS_IN_A_ROW`]
/// connections taken without the kernel's queue running dry.
struct Acceptor {
    listener: TcpListener,
    in_a_row: u32,
}

impl Acceptor {
    fn new(listener: TcpListener) -> Acceptor {
        Acceptor {
            listener,
            in_a_row: 0,
        }
    }

    /// The next connection. Cancel-safe: nothing is taken until it returns.
    async fn accept(&mut self) -> io::Result<(TcpStream, SocketAddr)> {
        if self.in_a_row >= MAX_ACCEPTS_IN_A_ROW {
            self.in_a_row = 0;
            // Back after the tasks that are ready now, and after the next look for I/O.
            tokio::task::yield_now().await;
        }
        let accepted = std::future::poll_fn(|cx| {
            let polled = self.listener.poll_accept(cx);
            if polled.is_pending() {
                // The queue ran dry (or tokio's budget ran out): either way the worker's
                // other tasks run before this one again.
                self.in_a_row = 0;
            }
            polled
        })
        .await;
        match &accepted {
            Ok(_) => self.in_a_row += 1,
            // The caller waits before it tries again.
            Err(_) => self.in_a_row = 0,
        }
        accepted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// The connections a worker already has are served during a burst of new ones.
    #[tokio::test(flavor = "current_thread")]
    async fn a_burst_of_new_connections_lets_the_workers_other_tasks_run() {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        // Room for the whole burst in the kernel's queue, whatever the bound.
        let listener = socket.listen(1024).unwrap();
        let addr = listener.local_addr().unwrap();
        let burst = 3 * MAX_ACCEPTS_IN_A_ROW as usize;
        // Loopback completes each handshake inside connect(): all of them are queued.
        let _clients: Vec<_> = (0..burst)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        let mut acceptor = Acceptor::new(listener);
        // The first accept waits for the listener's first readiness event, which would
        // let any task run; the others find the queue full.
        let mut accepted = vec![acceptor.accept().await.unwrap()];
        let counted = Arc::new(AtomicUsize::new(0));
        let seen_by_other_task = tokio::spawn({
            let counted = counted.clone();
            async move { counted.load(Ordering::Relaxed) }
        });
        while accepted.len() < burst {
            accepted.push(acceptor.accept().await.unwrap());
            counted.store(accepted.len(), Ordering::Relaxed);
        }
        let seen = seen_by_other_task.await.unwrap();
        assert!(
            seen <= MAX_ACCEPTS_IN_A_ROW as usize,
            "another task first ran after {seen} of {burst} queued connections were accepted"
        );
    }
}
