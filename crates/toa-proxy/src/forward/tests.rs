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
    let (client, proxy_client_side) = pair().await;
    let (proxy_origin_side, origin) = pair().await;
    let task = tokio::spawn(async move {
        let (up, down) = (AtomicU64::new(0), AtomicU64::new(0));
        let limits = Limits {
            buffer_size: 1024,
            idle_timeout: idle,
            data_path,
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
    let pooled = splice::pooled();
    assert!(pooled >= 1, "{pooled} pipes pooled");
}
