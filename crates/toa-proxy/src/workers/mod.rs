//! The accept workers: a fixed set of threads, each running its own current-thread tokio
//! runtime, with every TCP listen key bound once per worker (`SO_REUSEPORT`). A
//! connection is served start to end by one worker, so short connections pay no
//! cross-thread wake-ups (they cost more than all the proxy's own user-space work).
//! Health checks, metrics, UDP and reloads stay on the main runtime; a reload swaps the
//! routes the accept loops read.
//!
//! The kernel spreads connections by their 4-tuple, blind to load, so a worker with more
//! than [`HANDOFF_MARGIN`] connections above the least busy one hands a new connection
//! over (as HAProxy's accept queues do). The measurements behind each number here are in
//! the perf-changes log under bench/results.
//!
//! - `accept_loop`: one listener's accept loop on one worker.
//! - `loads`: how many connections each worker has in progress.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::net::TcpStream;
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

mod accept_loop;
mod loads;

pub(crate) use accept_loop::AcceptLoop;
use accept_loop::Acceptor;

use loads::{Loads, WORKER_LOAD};

use crate::forward::Sweep;
use crate::rules::ListenKey;

/// How many connections an accept loop takes in a row before the worker's other ready
/// tasks run: a burst of new connections must not hold back replies to the open ones,
/// and a listener's readiness takes no part in tokio's cooperative budget.
const MAX_ACCEPTS_IN_A_ROW: u32 = 16;

/// How many more connections in progress than the least busy worker an accepting
/// worker may have before it hands a new one over (the lowest p99 on 2 workers).
const HANDOFF_MARGIN: usize = 4;

/// How many of its own tasks a worker runs between looks at the tasks other threads
/// gave it (tokio's `global_queue_interval`, 31 by default): at 31 a handed connection
/// waits behind a whole round of a busy worker's connections.
const HANDED_TASKS_INTERVAL: u32 = 4;

/// How many accept workers a proxy started now runs: one per CPU it may run on.
pub fn worker_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The accept workers of one [`crate::Server`]; dropping it ends their threads (and
/// with them any connection still open on them).
pub(crate) struct AcceptWorkers {
    workers: Vec<Worker>,
    runtimes: Arc<[Handle]>,
    loads: Arc<Loads>,
}

struct Worker {
    exit: CancellationToken,
    thread: Option<JoinHandle<()>>,
}

impl AcceptWorkers {
    /// One worker per CPU this process may run on.
    pub fn start() -> io::Result<AcceptWorkers> {
        AcceptWorkers::with_count(worker_count())
    }

    fn with_count(count: usize) -> io::Result<AcceptWorkers> {
        let loads = Arc::new(Loads::new(count));
        let mut workers = Vec::with_capacity(count);
        let mut runtimes = Vec::with_capacity(count);
        for i in 0..count {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .global_queue_interval(HANDED_TASKS_INTERVAL)
                .build()?;
            let exit = CancellationToken::new();
            runtimes.push(runtime.handle().clone());
            let until = exit.clone();
            let thread = std::thread::Builder::new()
                .name(format!("toa-accept-{i}"))
                .spawn({
                    let loads = loads.clone();
                    move || {
                        WORKER_LOAD.with(|load| load.set((loads, i)).ok());
                        runtime.block_on(until.cancelled())
                    }
                })?;
            workers.push(Worker {
                exit,
                thread: Some(thread),
            });
        }
        Ok(AcceptWorkers {
            workers,
            runtimes: runtimes.into(),
            loads,
        })
    }

    /// How many sockets each TCP listen key is bound as (one per worker).
    pub fn count(&self) -> usize {
        self.workers.len()
    }

    /// Where the connections of one listener run: any worker, in that worker's sweep.
    fn placement(&self, abort: &CancellationToken) -> Placement {
        let sweeps = self
            .runtimes
            .iter()
            .map(|runtime| {
                // The sweeper runs on the worker whose connections it times out.
                let _enter = runtime.enter();
                Sweep::start(abort.clone())
            })
            .collect();
        Placement {
            runtimes: self.runtimes.clone(),
            loads: self.loads.clone(),
            sweeps,
        }
    }

    /// Starts accepting on `sockets` (one per worker, bound to the same key) until `stop`.
    pub fn spawn(&self, key: ListenKey, sockets: Vec<std::net::TcpListener>, loop_: AcceptLoop) {
        let placement = Arc::new(self.placement(&loop_.abort));
        for (me, (runtime, socket)) in self.runtimes.iter().zip(sockets).enumerate() {
            let loop_ = loop_.clone();
            let tasks = loop_.tasks.clone();
            let _enter = runtime.enter();
            // Registered with this worker's runtime: AsyncFd needs its context.
            match Acceptor::new(socket) {
                Ok(acceptor) => {
                    tasks.spawn(loop_.run(key, acceptor, placement.clone(), me));
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

/// Where one listener's connections run, shared by its accept loops.
struct Placement {
    runtimes: Arc<[Handle]>,
    loads: Arc<Loads>,
    /// One per worker, its sweeper on that worker.
    sweeps: Vec<Arc<Sweep>>,
}

impl Placement {
    /// Registers `client`, accepted by worker `me`, with the worker chosen for it and
    /// spawns `serve(client, that worker's sweep)` there, counted while it runs.
    fn dispatch<F>(
        &self,
        me: usize,
        tasks: &TaskTracker,
        client: std::net::TcpStream,
        serve: impl FnOnce(TcpStream, Arc<Sweep>) -> F,
    ) -> io::Result<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let worker = self.loads.choose(me);
        let client = if worker == me {
            TcpStream::from_std(client)?
        } else {
            // from_std registers with the current runtime's I/O driver: the chosen one's.
            // It fails only as registering on this worker would (out of memory or epoll
            // watches), and the accept loop backs off the same way.
            let _enter = self.runtimes[worker].enter();
            TcpStream::from_std(client)?
        };
        let task = self
            .loads
            .counted(worker, serve(client, self.sweeps[worker].clone()));
        if worker == me {
            tasks.spawn(task);
        } else {
            tasks.spawn_on(task, &self.runtimes[worker]);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
