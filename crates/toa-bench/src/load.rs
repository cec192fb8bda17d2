//! The load generator (`toa-bench load ...`), run in the client namespace. Each
//! command is bounded by a duration and a count, prints one JSON object on
//! stdout, and exits; the runner parses it.

use crate::message::{MESSAGE_LEN, Reply};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Any single connection, transfer or exchange that takes longer is an error.
const OP_TIMEOUT: Duration = Duration::from_secs(5);
const BULK_CHUNK: usize = 128 * 1024;
/// Idle connections opened at once while filling up to `--count`.
const IDLE_OPEN_PARALLEL: usize = 64;
/// An idle connection that takes longer to open counts as failed.
const IDLE_OPEN_TIMEOUT: Duration = Duration::from_secs(2);
/// Failed idle connections after which the holder stops opening more: the
/// proxy is out of descriptors or memory, and waiting on it proves nothing.
const IDLE_MAX_ERRORS: u64 = 50;

#[derive(clap::Subcommand, Debug)]
pub enum LoadCmd {
    /// Short connections: connect, 64-byte request, 64-byte reply, close.
    Rr(RrArgs),
    /// Bulk upload into the origin's sink; Gbit/s from the bytes the sink counted.
    Bulk(BulkArgs),
    /// Open N connections, exchange one byte on each, hold them idle.
    Idle(IdleArgs),
}

#[derive(clap::Args, Debug)]
pub struct RrArgs {
    #[arg(long)]
    pub target: SocketAddr,
    #[arg(long)]
    pub concurrency: usize,
    #[arg(long)]
    pub duration_ms: u64,
    /// Upper bound on connections, whatever the duration.
    #[arg(long, default_value_t = 2_000_000)]
    pub max_connections: u64,
}

#[derive(clap::Args, Debug)]
pub struct BulkArgs {
    #[arg(long)]
    pub target: SocketAddr,
    #[arg(long)]
    pub streams: usize,
    #[arg(long)]
    pub duration_ms: u64,
}

#[derive(clap::Args, Debug)]
pub struct IdleArgs {
    #[arg(long)]
    pub target: SocketAddr,
    #[arg(long)]
    pub count: usize,
    /// How long to hold the connections after they are all open (the runner
    /// normally stops this process earlier).
    #[arg(long, default_value_t = 120_000)]
    pub hold_ms: u64,
}

/// Percentiles of a set of durations, in nanoseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50: u64,
    pub p99: u64,
    pub p999: u64,
}

impl Percentiles {
    pub fn of(samples: &mut [u64]) -> Percentiles {
        if samples.is_empty() {
            return Percentiles::default();
        }
        samples.sort_unstable();
        let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
        Percentiles {
            p50: at(0.50),
            p99: at(0.99),
            p999: at(0.999),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RrResult {
    pub connections: u64,
    pub errors: u64,
    pub secs: f64,
    /// Client-side latency of one whole connection (connect to reply).
    pub latency: Percentiles,
    /// Origin-side: accept() to first request byte.
    pub ttfb: Percentiles,
    /// Origin-side: median ns per getpeername() call.
    pub getpeername_ns: u64,
    /// Origin-side: median ns to parse a PROXY v2 header (0 without).
    pub parse_ns: u64,
    /// Connections on which the origin reported exactly our address and port.
    pub peer_is_client: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BulkResult {
    /// Bytes the origin's sink counted, over all streams.
    pub bytes: u64,
    pub secs: f64,
    pub errors: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdleResult {
    pub established: u64,
    pub errors: u64,
    pub secs: f64,
}

pub fn run(cmd: LoadCmd) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let json = match cmd {
            LoadCmd::Rr(a) => serde_json::to_string(&rr(a).await)?,
            LoadCmd::Bulk(a) => serde_json::to_string(&bulk(a).await)?,
            LoadCmd::Idle(a) => return idle(a).await,
        };
        println!("{json}");
        Ok(())
    })
}

/// One connection's client latency and the origin's reply, plus whether the
/// origin saw our own address.
async fn exchange(target: SocketAddr) -> anyhow::Result<(Reply, bool)> {
    let mut s = TcpStream::connect(target).await?;
    s.set_nodelay(true)?;
    let local = s.local_addr()?;
    s.write_all(&[b'q'; MESSAGE_LEN]).await?;
    let mut reply = [0u8; MESSAGE_LEN];
    s.read_exact(&mut reply).await?;
    let reply = Reply::decode(&reply).ok_or_else(|| anyhow::anyhow!("malformed reply"))?;
    Ok((reply, reply.peer == local))
}

#[derive(Default)]
struct RrSamples {
    latency: Vec<u64>,
    ttfb: Vec<u64>,
    getpeername: Vec<u64>,
    parse: Vec<u64>,
    errors: u64,
    peer_is_client: u64,
}

async fn rr(a: RrArgs) -> RrResult {
    let start = Instant::now();
    let deadline = start + Duration::from_millis(a.duration_ms);
    let budget = Arc::new(AtomicU64::new(a.max_connections));
    let workers: Vec<_> = (0..a.concurrency.max(1))
        .map(|_| {
            let budget = budget.clone();
            tokio::spawn(async move {
                let mut s = RrSamples::default();
                while Instant::now() < deadline && take(&budget) {
                    let t0 = Instant::now();
                    match tokio::time::timeout(OP_TIMEOUT, exchange(a.target)).await {
                        Ok(Ok((reply, own))) => {
                            s.latency.push(t0.elapsed().as_nanos() as u64);
                            s.ttfb.push(reply.ttfb_ns);
                            s.getpeername.push(reply.getpeername_ns);
                            s.parse.push(reply.parse_ns);
                            s.peer_is_client += u64::from(own);
                        }
                        _ => s.errors += 1,
                    }
                }
                s
            })
        })
        .collect();
    let mut all = RrSamples::default();
    for w in workers {
        let s = w.await.expect("worker panicked");
        all.latency.extend(s.latency);
        all.ttfb.extend(s.ttfb);
        all.getpeername.extend(s.getpeername);
        all.parse.extend(s.parse);
        all.errors += s.errors;
        all.peer_is_client += s.peer_is_client;
    }
    RrResult {
        connections: all.latency.len() as u64,
        errors: all.errors,
        secs: start.elapsed().as_secs_f64(),
        latency: Percentiles::of(&mut all.latency),
        ttfb: Percentiles::of(&mut all.ttfb),
        getpeername_ns: Percentiles::of(&mut all.getpeername).p50,
        parse_ns: Percentiles::of(&mut all.parse).p50,
        peer_is_client: all.peer_is_client,
    }
}

fn take(budget: &AtomicU64) -> bool {
    budget
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
        .is_ok()
}

async fn bulk(a: BulkArgs) -> BulkResult {
    let start = Instant::now();
    let deadline = start + Duration::from_millis(a.duration_ms);
    let streams: Vec<_> = (0..a.streams.max(1))
        .map(|_| tokio::spawn(upload(a.target, deadline)))
        .collect();
    let (mut bytes, mut errors) = (0, 0);
    for s in streams {
        match s.await.expect("stream panicked") {
            Ok(n) => bytes += n,
            Err(_) => errors += 1,
        }
    }
    BulkResult {
        bytes,
        secs: start.elapsed().as_secs_f64(),
        errors,
    }
}

/// Writes until `deadline`, half-closes, and returns the byte count the sink reports.
async fn upload(target: SocketAddr, deadline: Instant) -> anyhow::Result<u64> {
    let mut s = tokio::time::timeout(OP_TIMEOUT, TcpStream::connect(target)).await??;
    let chunk = vec![0x5au8; BULK_CHUNK];
    while Instant::now() < deadline {
        tokio::time::timeout(OP_TIMEOUT, s.write_all(&chunk)).await??;
    }
    s.shutdown().await?;
    let mut count = [0u8; 8];
    tokio::time::timeout(OP_TIMEOUT, s.read_exact(&mut count)).await??;
    Ok(u64::from_le_bytes(count))
}

/// Opens the connections, prints the result line (the runner waits for it),
/// then holds them for `hold_ms`.
async fn idle(a: IdleArgs) -> anyhow::Result<()> {
    let start = Instant::now();
    let next = Arc::new(AtomicU64::new(a.count as u64));
    let failed = Arc::new(AtomicU64::new(0));
    let openers: Vec<_> = (0..IDLE_OPEN_PARALLEL.min(a.count.max(1)))
        .map(|_| {
            let (next, failed) = (next.clone(), failed.clone());
            tokio::spawn(async move {
                let (mut held, mut errors) = (Vec::new(), 0u64);
                while failed.load(Ordering::Relaxed) < IDLE_MAX_ERRORS && take(&next) {
                    match tokio::time::timeout(IDLE_OPEN_TIMEOUT, open_idle(a.target)).await {
                        Ok(Ok(s)) => held.push(s),
                        _ => {
                            errors += 1;
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                (held, errors)
            })
        })
        .collect();
    let (mut held, mut errors) = (Vec::new(), 0);
    for o in openers {
        let (h, e) = o.await?;
        held.extend(h);
        errors += e;
    }
    let result = IdleResult {
        established: held.len() as u64,
        errors,
        secs: start.elapsed().as_secs_f64(),
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", serde_json::to_string(&result)?)?;
    out.flush()?;
    drop(out);
    tokio::time::sleep(Duration::from_millis(a.hold_ms)).await;
    drop(held);
    Ok(())
}

async fn open_idle(target: SocketAddr) -> anyhow::Result<TcpStream> {
    let mut s = TcpStream::connect(target).await?;
    s.write_all(b"i").await?;
    let mut b = [0u8; 1];
    s.read_exact(&mut b).await?;
    Ok(s)
}
