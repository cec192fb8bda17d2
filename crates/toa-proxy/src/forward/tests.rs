//! forward's tests, on real loopback sockets: half-close in each direction, the idle
//! timeout, and the switch from buffered copy to splice in the middle of a stream.

use super::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
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
    data_path: DataPath,
) -> (
    TcpStream,
    TcpStream,
    tokio::task::JoinHandle<(Transfer, u64, u64)>,
) {
    run_until(idle, data_path, tokio_util::sync::CancellationToken::new()).await
}

/// [`run`], aborted when `abort` fires.
async fn run_until(
    idle: Duration,
    data_path: DataPath,
    abort: tokio_util::sync::CancellationToken,
) -> (
    TcpStream,
    TcpStream,
    tokio::task::JoinHandle<(Transfer, u64, u64)>,
) {
    let limits = Limits {
        buffer_size: 1024,
        idle_timeout: idle,
        data_path,
    };
    let (client, proxy_client_side) = pair().await;
    run_with(limits, client, proxy_client_side, abort).await
}

/// [`forward`] between `proxy_client_side` and a new origin connection, with `limits`.
async fn run_with(
    limits: Limits,
    client: TcpStream,
    proxy_client_side: TcpStream,
    abort: tokio_util::sync::CancellationToken,
) -> (
    TcpStream,
    TcpStream,
    tokio::task::JoinHandle<(Transfer, u64, u64)>,
) {
    let (proxy_origin_side, origin) = pair().await;
    let task = tokio::spawn(async move {
        let (up, down) = (AtomicU64::new(0), AtomicU64::new(0));
        let t = forward(
            proxy_client_side,
            proxy_origin_side,
            &limits,
            ByteCounters {
                to_origin: &up,
                to_client: &down,
            },
            &Sweep::start(abort),
        )
        .await;
        (t, up.into_inner(), down.into_inner())
    });
    (client, origin, task)
}

#[tokio::test]
async fn client_half_close_keeps_the_reply_flowing() {
    for path in [DataPath::Buffered, DataPath::Splice] {
        client_half_close(path).await;
    }
}

async fn client_half_close(path: DataPath) {
    let (mut client, mut origin, task) = run(Duration::from_secs(10), path).await;
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
    for path in [DataPath::Buffered, DataPath::Splice] {
        origin_half_close(path).await;
    }
}

async fn origin_half_close(path: DataPath) {
    let (mut client, mut origin, task) = run(Duration::from_secs(10), path).await;
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
    let (mut client, _origin, task) = run(Duration::from_millis(100), DataPath::Splice).await;
    client.write_all(b"x").await.unwrap();
    let (t, _, _) = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(t.reason, CloseReason::IdleTimeout), "{}", t.reason);
    let mut rest = Vec::new();
    assert_eq!(client.read_to_end(&mut rest).await.unwrap_or(0), 0);
}

#[tokio::test]
async fn traffic_puts_the_idle_timeout_off_and_it_fires_within_a_tick() {
    let idle = Duration::from_millis(400);
    let (mut client, mut origin, task) = run(idle, DataPath::Buffered).await;
    // Busy for three timeouts: never idle for one.
    let mut last = Instant::now();
    for _ in 0..12 {
        // Before the write: the proxy sees the byte after this instant, so the
        // timeout can fire no earlier than `idle` after it (taken after the
        // read, it ran 0.5 ms short on a loaded host).
        last = Instant::now();
        client.write_all(b"x").await.unwrap();
        let mut b = [0u8; 1];
        origin.read_exact(&mut b).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!task.is_finished(), "closed while traffic flowed");
    let (t, up, _) = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
    let closed_after = last.elapsed();
    assert!(matches!(t.reason, CloseReason::IdleTimeout), "{}", t.reason);
    assert_eq!(up, 12);
    // At most one sweep tick late (40 ms here), plus scheduling slack.
    assert!(
        closed_after >= idle
            && closed_after < idle + sweep::tick(idle) + Duration::from_millis(150),
        "closed {closed_after:?} after the last byte, timeout {idle:?}"
    );
}

/// A client slower than one chunk per idle timeout still receives bytes all the time:
/// a write that moves part of a chunk is activity, not only a whole chunk written.
#[tokio::test]
async fn a_slow_reader_that_keeps_reading_is_not_idle() {
    for path in [DataPath::Buffered, DataPath::Splice] {
        slow_reader(path).await;
    }
}

async fn slow_reader(path: DataPath) {
    let idle = Duration::from_millis(300);
    let limits = Limits {
        buffer_size: 256 * 1024,
        idle_timeout: idle,
        data_path: path,
    };
    // Small socket buffers towards the client, set before the handshake so the window
    // stays small: what the kernels hold in flight drains well within the timeout, while
    // one chunk (up to buffer_size) takes several timeouts to go out, in partial writes.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let (client, accepted) = tokio::join!(socket.connect(l.local_addr().unwrap()), l.accept());
    let (client, proxy_client_side) = (client.unwrap(), accepted.unwrap().0);
    socket2::SockRef::from(&proxy_client_side)
        .set_send_buffer_size(4096)
        .unwrap();
    let (mut client, mut origin, task) = run_with(
        limits,
        client,
        proxy_client_side,
        tokio_util::sync::CancellationToken::new(),
    )
    .await;
    let reply = vec![5u8; 256 * 1024];
    let writer = tokio::spawn(async move {
        origin.write_all(&reply).await.unwrap();
        origin
    });
    // ~160 KB/s: a 64 KiB chunk takes ~0.4 s to go out, longer than the timeout.
    let mut got = 0;
    let mut buf = [0u8; 4096];
    while got < 256 * 1024 {
        let n = tokio::time::timeout(Duration::from_secs(5), client.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        if n == 0 {
            let (t, _, _) = task.await.unwrap();
            panic!("{path:?}: closed after {got} bytes: {}", t.reason);
        }
        got += n;
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(!task.is_finished(), "{path:?}: closed while bytes flowed");
    let mut origin = writer.await.unwrap();
    origin.shutdown().await.unwrap();
    client.shutdown().await.unwrap();
    let (t, _, down) = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(t.reason, CloseReason::Done { .. }),
        "{path:?}: {}",
        t.reason
    );
    assert_eq!(down, 256 * 1024);
}

#[tokio::test]
async fn abort_closes_every_connection_of_the_sweep() {
    let abort = tokio_util::sync::CancellationToken::new();
    let (mut client, _origin, task) =
        run_until(Duration::from_secs(60), DataPath::Buffered, abort.clone()).await;
    client.write_all(b"x").await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    abort.cancel();
    let (t, _, _) = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(t.reason, CloseReason::Shutdown), "{}", t.reason);
}

#[tokio::test]
async fn splicing_direction_switches_mid_stream_without_losing_or_reordering_bytes() {
    let (mut client, mut origin, task) = run(Duration::from_secs(10), DataPath::Splice).await;
    // Well past SPLICE_AFTER, in a pattern that shows any lost or reordered chunk.
    let data: Vec<u8> = (0..1_000_003u32).map(|i| (i % 251) as u8).collect();
    let expect = data.clone();
    let writer = tokio::spawn(async move {
        client.write_all(&data).await.unwrap();
        client.shutdown().await.unwrap();
        client
    });
    let mut got = Vec::new();
    origin.read_to_end(&mut got).await.unwrap();
    assert!(got == expect, "payload differs after the switch to splice");
    origin.shutdown().await.unwrap();
    let mut client = writer.await.unwrap();
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).await.unwrap();
    let (t, up, _) = task.await.unwrap();
    assert_eq!((t.to_origin, up), (1_000_003, 1_000_003));
    assert!(matches!(t.reason, CloseReason::Done { .. }), "{}", t.reason);
    // The upstream pipe ended empty and went back to this thread's pool.
    let pooled = pipe::pooled();
    assert!(pooled >= 1, "{pooled} pipes pooled");
}
