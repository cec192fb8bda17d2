//! The data path: moves bytes both ways between client and origin with bounded memory,
//! propagates half-close (EOF on one side becomes `shutdown(SHUT_WR)` on the other while
//! the other direction keeps flowing), and ends on idle timeout, error or shutdown.
//! Each direction is a buffered copy ([`copy`]); with [`DataPath::Splice`] it switches to
//! kernel-side `splice(2)` through a pipe ([`splice`]) once it has moved [`SPLICE_AFTER`] bytes.

mod copy;
mod pipe;
mod splice;
mod sweep;

pub use sweep::Sweep;

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::task::Poll;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::time::Instant;

use crate::error::Side;

/// Why a forwarded connection ended.
#[derive(Debug)]
pub enum CloseReason {
    /// Both directions reached EOF; `first` is the side that closed first.
    Done {
        first: Side,
    },
    IdleTimeout,
    /// The proxy is shutting down and the drain deadline passed.
    Shutdown,
    /// A read or write on `side` failed.
    Error {
        side: Side,
        error: io::Error,
    },
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CloseReason::Done { first } => write!(f, "{first} closed"),
            CloseReason::IdleTimeout => f.write_str("idle timeout"),
            CloseReason::Shutdown => f.write_str("proxy shutdown"),
            CloseReason::Error { side, error } => write!(f, "{side} error: {error}"),
        }
    }
}

/// Rule-wide byte counters the directions add to as data moves, so metrics are live.
pub struct ByteCounters<'a> {
    pub to_origin: &'a AtomicU64,
    pub to_client: &'a AtomicU64,
}

/// What one connection moved, and why it ended.
#[derive(Debug)]
pub struct Transfer {
    pub to_origin: u64,
    pub to_client: u64,
    pub reason: CloseReason,
}

/// How bytes cross the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataPath {
    /// read() into a user-space buffer, write() it out.
    Buffered,
    /// splice(2) socket → pipe → socket: the payload never enters user space.
    Splice,
}

pub struct Limits {
    /// Bytes in flight per direction (buffer or pipe size): the per-connection memory bound
    /// (a splice pipe grows above it only while both ends keep up; see `pipe::Sizing`).
    pub buffer_size: usize,
    pub idle_timeout: Duration,
    pub data_path: DataPath,
}

/// One direction's identity and accounting.
struct Direction<'a> {
    from: Side,
    to: Side,
    /// Rule-wide counter.
    counter: &'a AtomicU64,
    /// This connection's count.
    total: AtomicU64,
    activity: &'a Activity,
    /// Directions of this connection that reached EOF (shared by both).
    finished: &'a AtomicU8,
}

impl Direction<'_> {
    fn moved(&self, n: usize) {
        self.total.fetch_add(n as u64, Ordering::Relaxed);
        self.counter.fetch_add(n as u64, Ordering::Relaxed);
        self.activity.touch();
    }

    /// Part of a chunk went out and the rest waits for the destination: bytes are still
    /// moving, so the connection is not idle (a slow reader can take longer than the idle
    /// timeout for one chunk). The bytes are counted when the whole chunk is out.
    fn progressed(&self) {
        self.activity.touch();
    }

    /// `from` reached EOF: pass it on as a FIN to `to`, unless the other direction has
    /// already finished. Then both sockets are closed next, and close() sends that FIN
    /// (every byte was read and written), so a `shutdown` would only cost a system call.
    fn finish(&self, to: &TcpStream) {
        if self.finished.fetch_add(1, Ordering::Relaxed) == 0 {
            let _ = socket2::SockRef::from(to).shutdown(std::net::Shutdown::Write);
        }
    }

    fn read_error(&self, error: io::Error) -> CloseReason {
        CloseReason::Error {
            side: self.from,
            error,
        }
    }

    fn write_error(&self, error: io::Error) -> CloseReason {
        CloseReason::Error {
            side: self.to,
            error,
        }
    }
}

/// With [`DataPath::Splice`], a direction copies through a user-space buffer until it has
/// moved this much and only then switches to splice (like HAProxy's `splice-auto`).
/// Most connections are short (a request, a reply): for them a pipe costs more than it
/// saves (pipe2 + fcntl + close per pipe, twice the syscalls per chunk, two more
/// descriptors per direction held while idle). A direction that has moved 64 KiB is likely
/// a bulk transfer, where keeping the payload out of user space pays off.
const SPLICE_AFTER: u64 = 64 * 1024;

/// The buffer a splicing direction copies through before it switches: small, since it
/// carries at most [`SPLICE_AFTER`] bytes (never above the configured `buffer_size`).
const PRE_SPLICE_BUFFER: usize = 16 * 1024;

/// A direction after its switch to splice.
type SpliceFuture<'a> = Pin<Box<dyn Future<Output = Result<(), CloseReason>> + Send + 'a>>;

/// One direction, start to end, on the configured data path. A hand-written future: while
/// it copies (the idle case), it holds its two socket halves, two references and a
/// [`copy::Copy`] — 104 bytes, where the async fn it replaces took 232.
struct Half<'a> {
    /// Taken by the splice future when the direction switches to splice.
    sockets: Option<(ReadHalf<'a>, WriteHalf<'a>)>,
    limits: &'a Limits,
    dir: &'a Direction<'a>,
    copy: copy::Copy,
    /// Boxed: only bulk directions get here, and an idle one should not carry its size.
    splice: Option<SpliceFuture<'a>>,
    /// Still copying through a small buffer, to switch to splice after [`SPLICE_AFTER`].
    before_splice: bool,
}

impl<'a> Half<'a> {
    fn new(
        from: ReadHalf<'a>,
        to: WriteHalf<'a>,
        limits: &'a Limits,
        dir: &'a Direction<'a>,
    ) -> Half<'a> {
        Half {
            sockets: Some((from, to)),
            limits,
            dir,
            copy: copy::Copy::default(),
            splice: None,
            before_splice: limits.data_path == DataPath::Splice,
        }
    }
}

impl Future for Half<'_> {
    type Output = Result<(), CloseReason>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        loop {
            if let Some(splice) = &mut this.splice {
                return splice.as_mut().poll(cx);
            }
            let Some((from, to)) = &mut this.sockets else {
                // Polled again after it finished: the caller stops at Ready.
                return Poll::Pending;
            };
            let (buffer, stop_after) = if this.before_splice {
                (
                    PRE_SPLICE_BUFFER.min(this.limits.buffer_size),
                    Some(SPLICE_AFTER),
                )
            } else {
                (this.limits.buffer_size, None)
            };
            match std::task::ready!(this.copy.poll(cx, from, to, buffer, this.dir, stop_after))? {
                copy::Copied::Eof => return Poll::Ready(Ok(())),
                copy::Copied::Enough => {}
            }
            this.before_splice = false;
            match pipe::Pipe::take(this.limits.buffer_size) {
                Ok(pipe) => {
                    let (from, to) = this.sockets.take().expect("checked above");
                    let dir = this.dir;
                    this.splice = Some(Box::pin(async move {
                        splice::splice_half(from.as_ref(), to.as_ref(), pipe, dir).await
                    }));
                }
                Err(e) => tracing::debug!("no pipe for splice, copying through a buffer: {e}"),
            }
        }
    }
}

/// Moves bytes until both directions are done, one fails, the connection idles out, or
/// the proxy aborts it through `sweep`.
pub async fn forward(
    mut client: TcpStream,
    mut origin: TcpStream,
    limits: &Limits,
    counters: ByteCounters<'_>,
    sweep: &Sweep,
) -> Transfer {
    let activity = Activity::new();
    let finished = AtomicU8::new(0);
    let up = Direction {
        from: Side::Client,
        to: Side::Origin,
        counter: counters.to_origin,
        total: AtomicU64::new(0),
        activity: &activity,
        finished: &finished,
    };
    let down = Direction {
        from: Side::Origin,
        to: Side::Client,
        counter: counters.to_client,
        total: AtomicU64::new(0),
        activity: &activity,
        finished: &finished,
    };
    let (client_read, client_write) = client.split();
    let (origin_read, origin_write) = origin.split();
    // Pinned and polled here, not in a helper async fn: an async fn keeps its arguments
    // and the locals they move into apart (rust-lang/rust#62958), so every idle
    // connection's task would store them twice.
    let reason = {
        let mut upstream = std::pin::pin!(Half::new(client_read, origin_write, limits, &up));
        let mut downstream = std::pin::pin!(Half::new(origin_read, client_write, limits, &down));
        let (mut up_done, mut down_done) = (false, false);
        let mut first_eof = None;
        // No timer or abort wait of its own: the worker's sweep wakes it for both.
        let mut idle = sweep::Registration::new(sweep);
        'run: loop {
            tokio::select! {
                r = upstream.as_mut(), if !up_done => match r {
                    Ok(()) => { up_done = true; first_eof.get_or_insert(Side::Client); }
                    Err(e) => break 'run e,
                },
                r = downstream.as_mut(), if !down_done => match r {
                    Ok(()) => { down_done = true; first_eof.get_or_insert(Side::Origin); }
                    Err(e) => break 'run e,
                },
                reason = std::future::poll_fn(|cx| idle.poll(cx, &activity, limits.idle_timeout)) => break 'run reason,
            }
            if up_done && down_done {
                break 'run CloseReason::Done {
                    first: first_eof.unwrap_or(Side::Client),
                };
            }
        }
    };
    Transfer {
        to_origin: up.total.into_inner(),
        to_client: down.total.into_inner(),
        reason,
    }
}

/// When a connection last moved a byte. Counted from one process-wide epoch rather than
/// the connection's start, so that each idle connection keeps 8 bytes, not 24.
struct Activity {
    /// Milliseconds since [`epoch`] of the last byte moved in either direction (or of
    /// the start).
    last: AtomicU64,
}

fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

impl Activity {
    fn new() -> Activity {
        let activity = Activity {
            last: AtomicU64::new(0),
        };
        activity.touch();
        activity
    }

    fn touch(&self) {
        self.last
            .store(epoch().elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// When the connection idles out if nothing moves before then.
    fn idle_deadline(&self, idle: Duration) -> Instant {
        epoch() + Duration::from_millis(self.last.load(Ordering::Relaxed)) + idle
    }
}

#[cfg(test)]
mod tests;
