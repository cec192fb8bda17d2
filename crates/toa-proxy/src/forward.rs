//! The data path: copies bytes both ways between client and origin with one bounded
//! buffer per direction, propagates half-close (EOF on one side becomes `shutdown(SHUT_WR)`
//! on the other, while the other direction keeps flowing), and ends on idle timeout,
//! error or shutdown. [`forward`] is the one seam a zero-copy (splice) path would replace.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

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

/// Byte counters the copy loops add to as data moves, so metrics are live.
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

pub struct Limits {
    pub buffer_size: usize,
    pub idle_timeout: Duration,
}

/// Copies until both directions are done, one fails, the connection idles out, or `abort` fires.
pub async fn forward(
    mut client: TcpStream,
    mut origin: TcpStream,
    limits: &Limits,
    counters: ByteCounters<'_>,
    abort: &CancellationToken,
) -> Transfer {
    let start = Instant::now();
    let last_activity = AtomicU64::new(0);
    let (mut client_read, mut client_write) = client.split();
    let (mut origin_read, mut origin_write) = origin.split();
    let (mut up, mut down) = (0u64, 0u64);
    let activity = Activity {
        start,
        last: &last_activity,
    };

    let reason = {
        let upstream = copy_half(
            &mut client_read,
            &mut origin_write,
            Side::Client,
            Side::Origin,
            limits.buffer_size,
            &activity,
            counters.to_origin,
            &mut up,
        );
        let downstream = copy_half(
            &mut origin_read,
            &mut client_write,
            Side::Origin,
            Side::Client,
            limits.buffer_size,
            &activity,
            counters.to_client,
            &mut down,
        );
        tokio::pin!(upstream, downstream);
        let (mut up_done, mut down_done) = (false, false);
        let mut first_eof = None;
        loop {
            tokio::select! {
                r = &mut upstream, if !up_done => match r {
                    Ok(()) => { up_done = true; first_eof.get_or_insert(Side::Client); }
                    Err(e) => break e,
                },
                r = &mut downstream, if !down_done => match r {
                    Ok(()) => { down_done = true; first_eof.get_or_insert(Side::Origin); }
                    Err(e) => break e,
                },
                _ = activity.idle(limits.idle_timeout) => break CloseReason::IdleTimeout,
                _ = abort.cancelled() => break CloseReason::Shutdown,
            }
            if up_done && down_done {
                break CloseReason::Done {
                    first: first_eof.unwrap_or(Side::Client),
                };
            }
        }
    };
    Transfer {
        to_origin: up,
        to_client: down,
        reason,
    }
}

struct Activity<'a> {
    start: Instant,
    /// Milliseconds since `start` of the last byte moved in either direction.
    last: &'a AtomicU64,
}

impl Activity<'_> {
    fn touch(&self) {
        self.last
            .store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// Resolves once nothing has moved for `idle`.
    async fn idle(&self, idle: Duration) {
        loop {
            let deadline =
                self.start + Duration::from_millis(self.last.load(Ordering::Relaxed)) + idle;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// One direction: read into a bounded buffer, write it all, repeat; on EOF shut down the
/// writer so the peer sees the half-close.
#[allow(clippy::too_many_arguments)]
async fn copy_half<R, W>(
    reader: &mut R,
    writer: &mut W,
    read_side: Side,
    write_side: Side,
    buffer_size: usize,
    activity: &Activity<'_>,
    counter: &AtomicU64,
    total: &mut u64,
) -> Result<(), CloseReason>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; buffer_size];
    loop {
        let n = reader
            .read(&mut buf)
            .await
            .map_err(|error| CloseReason::Error {
                side: read_side,
                error,
            })?;
        if n == 0 {
            // The peer may already be gone (it reset): nothing left to tell it.
            let _ = writer.shutdown().await;
            return Ok(());
        }
        writer
            .write_all(&buf[..n])
            .await
            .map_err(|error| CloseReason::Error {
                side: write_side,
                error,
            })?;
        *total += n as u64;
        counter.fetch_add(n as u64, Ordering::Relaxed);
        activity.touch();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A connected pair (a, b) over loopback.
    async fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap());
        let (a, b) = tokio::join!(a, l.accept());
        (a.unwrap(), b.unwrap().0)
    }

    async fn run(
        idle: Duration,
    ) -> (
        TcpStream,
        TcpStream,
        tokio::task::JoinHandle<(Transfer, u64, u64)>,
    ) {
        let (client, proxy_client_side) = pair().await;
        let (proxy_origin_side, origin) = pair().await;
        let task = tokio::spawn(async move {
            let (up, down) = (AtomicU64::new(0), AtomicU64::new(0));
            let limits = Limits {
                buffer_size: 1024,
                idle_timeout: idle,
            };
            let t = forward(
                proxy_client_side,
                proxy_origin_side,
                &limits,
                ByteCounters {
                    to_origin: &up,
                    to_client: &down,
                },
                &CancellationToken::new(),
            )
            .await;
            (t, up.into_inner(), down.into_inner())
        });
        (client, origin, task)
    }

    #[tokio::test]
    async fn client_half_close_keeps_the_reply_flowing() {
        let (mut client, mut origin, task) = run(Duration::from_secs(10)).await;
        client.write_all(b"request").await.unwrap();
        client.shutdown().await.unwrap();
        let mut got = Vec::new();
        origin.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"request");
        let reply = vec![7u8; 100_000];
        origin.write_all(&reply).await.unwrap();
        origin.shutdown().await.unwrap();
        let mut back = Vec::new();
        client.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, reply);
        let (t, up, down) = task.await.unwrap();
        assert!(
            matches!(
                t.reason,
                CloseReason::Done {
                    first: Side::Client
                }
            ),
            "{}",
            t.reason
        );
        assert_eq!(
            (t.to_origin, t.to_client, up, down),
            (7, 100_000, 7, 100_000)
        );
    }

    #[tokio::test]
    async fn origin_half_close_keeps_the_upload_flowing() {
        let (mut client, mut origin, task) = run(Duration::from_secs(10)).await;
        origin.write_all(b"banner").await.unwrap();
        origin.shutdown().await.unwrap();
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"banner");
        client.write_all(b"still sending").await.unwrap();
        client.shutdown().await.unwrap();
        let mut up = Vec::new();
        origin.read_to_end(&mut up).await.unwrap();
        assert_eq!(up, b"still sending");
        let (t, _, _) = task.await.unwrap();
        assert!(
            matches!(
                t.reason,
                CloseReason::Done {
                    first: Side::Origin
                }
            ),
            "{}",
            t.reason
        );
    }

    #[tokio::test]
    async fn idle_connection_is_closed_after_the_timeout() {
        let (mut client, _origin, task) = run(Duration::from_millis(100)).await;
        client.write_all(b"x").await.unwrap();
        let (t, _, _) = tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(t.reason, CloseReason::IdleTimeout), "{}", t.reason);
        let mut rest = Vec::new();
        assert_eq!(client.read_to_end(&mut rest).await.unwrap_or(0), 0);
    }
}
