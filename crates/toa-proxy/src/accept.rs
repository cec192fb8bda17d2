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

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::forward::Sweep;
use crate::rules::ListenKey;
use crate::server::{Route, Shared};

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
                    tasks.spawn(loop_.run(key, listener, sweep));
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
    async fn run(self, key: ListenKey, listener: TcpListener, sweep: Arc<Sweep>) {
        let mut backoff = Duration::from_millis(10);
        loop {
            let (stream, peer): (_, SocketAddr) = tokio::select! {
                _ = self.stop.cancelled() => return,
                accepted = listener.accept() => match accepted {
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
