//! TCP accept: a fixed set of accept workers, each a thread running its own
//! current-thread tokio runtime, and each TCP listen key bound once per worker with
//! `SO_REUSEPORT`. The kernel spreads new connections over the sockets by their
//! 4-tuple; a connection is then served start to end by one worker, usually the one
//! that accepted it.
//!
//! Why not one accept task on the work-stealing runtime: measured on the bench
//! (bench/results/perf-changes-2026-12-01.md), its cross-thread wake-ups (a task woken
//! on one worker, stolen by the other) cost more per short connection than everything
//! the proxy does in user space. Health checks, metrics, UDP and reloads stay on the
//! main runtime; the routes an accept loop reads are shared with it, so a reload swaps
//! them exactly as before.
//!
//! The kernel's hash does not know how busy each worker is, so at many concurrent
//! clients one worker can hold several more connections than the other for a while,
//! and those wait longest. A worker that has more than [`HANDOFF_MARGIN`] connections
//! in progress above the least busy one hands a new connection to it, as HAProxy's
//! accept queues do (`tune.listener.multi-queue`). Each worker looks at the
//! connections handed to it every [`HANDED_TASKS_INTERVAL`] tasks: at tokio's default
//! of 31, a handed connection waited behind a whole round of a busy worker's
//! connections and became the tail it was meant to cut
//! (bench/results/perf-changes-2026-12-01.md, section 13).
//!
//! A worker serves the connections it already has before it takes many new ones: an
//! accept loop takes at most [`MAX_ACCEPTS_IN_A_ROW`] before the worker's other ready
//! tasks run. Without the bound, a burst of new connections was accepted, and each
//! one's origin connect started, while the replies for the connections before them
//! waited. Nothing else ends such a burst: a listener's readiness takes no part in
//! tokio's cooperative budget. HAProxy bounds its accepts the same way
//! (`tune.maxaccept`). It is kept for that bound, not for a figure: over 40 bench rounds
//! it made no measurable difference to p99 latency, connection rate or CPU per
//! connection (bench/results/perf-changes-2026-12-01.md, section 12).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::net::TcpStream;
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

mod loads;

use loads::{Loads, WORKER_LOAD};

use crate::forward::Sweep;
use crate::rules::ListenKey;
use crate::state::{Routes, Shared, TcpRule};

/// How many connections an accept loop takes in a row before the worker's other ready
/// tasks run. 32 measured like 16; 8 and 4 (HAProxy's default) a little worse.
const MAX_ACCEPTS_IN_A_ROW: u32 = 16;

/// How many more connections in progress than the least busy worker an accepting
/// worker may have before it hands a new one over. With 2 workers, 4 gave the lowest
/// p99 at 64 clients; 8 was level with not handing over (section 13).
const HANDOFF_MARGIN: usize = 4;

/// How many of its own tasks a worker runs between looks at the tasks other threads
/// gave it, handed connections among them (tokio's `global_queue_interval`, 31 by
/// default).
const HANDED_TASKS_INTERVAL: u32 = 4;

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
        AcceptWorkers::with_count(std::thread::available_parallelism().map_or(1, |n| n.get()))
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
    async fn run(
        self,
        key: ListenKey,
        mut acceptor: Acceptor,
        placement: Arc<Placement>,
        me: usize,
    ) {
        let mut backoff = Duration::from_millis(10);
        loop {
            let accepted = tokio::select! {
                _ = self.stop.cancelled() => return,
                accepted = acceptor.accept() => accepted,
            };
            let placed = accepted.and_then(|(client, peer)| {
                let route = self
                    .routes
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
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
    }
}

/// A listening socket that yields to the worker's other tasks after
/// [`MAX_ACCEPTS_IN_A_ROW`] connections taken without the kernel's queue running dry.
/// It accepts without registering: the connection is registered with the worker that
/// will serve it ([`Placement::dispatch`]).
struct Acceptor {
    listener: AsyncFd<std::net::TcpListener>,
    in_a_row: u32,
}

impl Acceptor {
    /// `listener` must be non-blocking. Needs the runtime's context.
    fn new(listener: std::net::TcpListener) -> io::Result<Acceptor> {
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
    async fn accept(&mut self) -> io::Result<(std::net::TcpStream, SocketAddr)> {
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
        let mut acceptor = Acceptor::new(listener.into_std().unwrap()).unwrap();
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

    /// Holds `count` connections counted on `worker`, each in a task on its runtime as a
    /// real connection is, until the returned token is cancelled.
    fn hold_connections(workers: &AcceptWorkers, worker: usize, count: usize) -> CancellationToken {
        let held = CancellationToken::new();
        for _ in 0..count {
            let task = workers
                .loads
                .counted(worker, held.clone().cancelled_owned());
            workers.runtimes[worker].spawn(task);
        }
        held
    }

    /// Waits until `worker` counts `connections`.
    fn wait_for_load(loads: &Loads, worker: usize, connections: usize) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while loads.of(worker) != connections {
            assert!(
                std::time::Instant::now() < deadline,
                "worker {worker} counts {} connections, not {connections}",
                loads.of(worker)
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Every idle connection keeps its task: counting it must not make the task larger.
    #[test]
    fn counting_a_connection_adds_nothing_to_its_task() {
        assert_eq!(
            size_of::<loads::Counted<[u64; 98]>>(),
            size_of::<[u64; 98]>()
        );
    }

    #[test]
    fn a_worker_hands_over_only_when_it_has_more_than_the_margin_above_the_least_busy() {
        let workers = AcceptWorkers::with_count(2).unwrap();
        let loads = &workers.loads;
        let on_first = hold_connections(&workers, 0, HANDOFF_MARGIN);
        assert_eq!(loads.of(0), HANDOFF_MARGIN);
        assert_eq!(
            loads.choose(0),
            0,
            "{HANDOFF_MARGIN} above the other: within the margin"
        );
        let one_more = hold_connections(&workers, 0, 1);
        assert_eq!(loads.choose(0), 1, "one above the margin: handed over");
        assert_eq!(loads.choose(1), 1, "the least busy worker keeps its own");
        on_first.cancel();
        one_more.cancel();
        wait_for_load(loads, 0, 0);
        assert_eq!(loads.choose(0), 0, "level again: each keeps its own");
        assert_eq!(loads.of(1), 0, "nothing was counted on the other");
    }

    /// A worker with more than the margin of connections above the other gives the next
    /// one to the other worker. That worker serves it on its own thread and
    /// counts it while it lives; the listener's task tracker, which a drain waits for,
    /// holds it.
    #[test]
    fn a_busy_worker_hands_a_new_connection_to_the_other_which_serves_it() {
        use std::io::{Read, Write};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let workers = AcceptWorkers::with_count(2).unwrap();
        let placement = workers.placement(&CancellationToken::new());
        let tasks = TaskTracker::new();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        // One connection accepted by worker `me` and echoed by whichever worker serves it:
        // that worker's thread, its count and the tracker's, as the serving task saw them.
        let serve_one = |me: usize| -> (String, usize, usize) {
            let mut client = std::net::TcpStream::connect(addr).unwrap();
            client
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let (accepted, _) = listener.accept().unwrap();
            accepted.set_nonblocking(true).unwrap();
            let (seen_tx, seen_rx) = std::sync::mpsc::channel();
            let (loads, tracked) = (workers.loads.clone(), tasks.clone());
            let _enter = workers.runtimes[me].enter();
            placement
                .dispatch(me, &tasks, accepted, move |mut stream, _sweep| async move {
                    let mut byte = [0u8; 1];
                    stream.read_exact(&mut byte).await.unwrap();
                    let thread = std::thread::current().name().unwrap().to_string();
                    let worker: usize = thread["toa-accept-".len()..].parse().unwrap();
                    seen_tx
                        .send((thread, loads.of(worker), tracked.len()))
                        .unwrap();
                    stream.write_all(&byte).await.unwrap();
                })
                .unwrap();
            client.write_all(b"x").unwrap();
            let mut echoed = [0u8; 1];
            client.read_exact(&mut echoed).unwrap();
            assert_eq!(&echoed, b"x");
            seen_rx.recv_timeout(Duration::from_secs(5)).unwrap()
        };
        // Every served connection ends, and with it its count and its place in the tracker.
        let settle = || {
            wait_for_load(&workers.loads, 0, 0);
            wait_for_load(&workers.loads, 1, 0);
            // The tracker lets go of a task just after its count: the task's future,
            // and with it the guard, is dropped before the tracker's token.
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while !tasks.is_empty() {
                assert!(
                    std::time::Instant::now() < deadline,
                    "a served connection stays tracked"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
        };

        let kept = serve_one(0);
        assert_eq!(
            kept,
            ("toa-accept-0".to_string(), 1, 1),
            "an idle worker keeps its connection"
        );
        settle();
        let busy = hold_connections(&workers, 0, HANDOFF_MARGIN + 1);
        let handed = serve_one(0);
        assert_eq!(
            handed,
            ("toa-accept-1".to_string(), 1, 1),
            "a busy worker hands it over"
        );
        busy.cancel();
        settle();
    }
}
