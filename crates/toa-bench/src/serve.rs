//! The origin server of the benchmarks (`toa-bench serve`), run in the origin
//! namespace: one listener per mode, so each scenario reaches the behaviour it
//! needs through a port. Every mode is as cheap as it can be, so that the
//! proxy in front of it, not the origin, limits the rates measured.

use crate::message::{MESSAGE_LEN, Reply};
use crate::ppv2;
use std::io;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// getpeername() calls timed per connection on a `getpeername` listener, so the
/// per-call cost stands out from the clock's own cost.
const GETPEERNAME_CALLS: u32 = 100;
/// Listen backlog: short-connection bursts at concurrency 64 must never see a full queue.
const BACKLOG: u32 = 8192;
const SINK_BUFFER: usize = 256 * 1024;

/// What a listener does with each connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Read the 64-byte request, reply 64 bytes, wait for the client's close.
    /// The reply reports the peer from accept() and one timed getpeername().
    Respond,
    /// As `Respond`, but a PROXY v2 header comes first; its source is the peer.
    RespondPpv2,
    /// As `Respond`, timing `GETPEERNAME_CALLS` getpeername() calls.
    Getpeername,
    /// Count bytes until the client half-closes, then reply with the count (8 bytes, LE).
    Sink,
    /// Echo one byte, then hold the connection open until the client closes it.
    Hold,
}

/// `ADDR:PORT=MODE`, e.g. `198.18.2.2:10000=respond`.
#[derive(Debug, Clone)]
pub struct Listen {
    pub addr: SocketAddr,
    pub mode: Mode,
}

impl FromStr for Listen {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, mode) = s.rsplit_once('=').ok_or("expected ADDR:PORT=MODE")?;
        let mode = match mode {
            "respond" => Mode::Respond,
            "respond-ppv2" => Mode::RespondPpv2,
            "getpeername" => Mode::Getpeername,
            "sink" => Mode::Sink,
            "hold" => Mode::Hold,
            m => return Err(format!("unknown mode {m:?}")),
        };
        let addr = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
        Ok(Listen { addr, mode })
    }
}

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// `ADDR:PORT=MODE` with MODE one of respond, respond-ppv2, getpeername, sink, hold.
    #[arg(long, required = true)]
    pub listen: Vec<Listen>,
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut tasks = Vec::new();
        for l in args.listen {
            let socket = if l.addr.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            socket.set_reuseaddr(true)?;
            socket.bind(l.addr)?;
            let listener = socket.listen(BACKLOG)?;
            tasks.push(tokio::spawn(accept_loop(listener, l.mode)));
        }
        for t in tasks {
            t.await?;
        }
        anyhow::Ok(())
    })
}

async fn accept_loop(listener: TcpListener, mode: Mode) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let accepted = Instant::now();
                tokio::spawn(async move {
                    // A client that vanishes mid-exchange (a health check, a killed
                    // load generator) is normal here, not an error worth reporting.
                    let _ = serve_one(stream, peer, accepted, mode).await;
                });
            }
            // Out of descriptors or a connection reset before accept: back off, never exit.
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

async fn serve_one(
    mut s: TcpStream,
    peer: SocketAddr,
    accepted: Instant,
    mode: Mode,
) -> io::Result<()> {
    match mode {
        Mode::Respond | Mode::RespondPpv2 | Mode::Getpeername => {
            respond(&mut s, peer, accepted, mode).await?
        }
        Mode::Sink => {
            let mut buf = vec![0u8; SINK_BUFFER];
            let mut total = 0u64;
            loop {
                let n = s.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                total += n as u64;
            }
            s.write_all(&total.to_le_bytes()).await?;
            return Ok(());
        }
        Mode::Hold => {
            let mut b = [0u8; 1];
            s.read_exact(&mut b).await?;
            s.write_all(&b).await?;
        }
    }
    wait_for_close(&mut s).await
}

async fn respond(
    s: &mut TcpStream,
    accepted_peer: SocketAddr,
    accepted: Instant,
    mode: Mode,
) -> io::Result<()> {
    let calls = match mode {
        Mode::RespondPpv2 => 0,
        Mode::Getpeername => GETPEERNAME_CALLS,
        _ => 1,
    };
    let mut getpeername_ns = 0;
    if calls > 0 {
        let t = Instant::now();
        for _ in 0..calls {
            // peer_addr() is exactly one getpeername(2) on the socket.
            std::hint::black_box(s.peer_addr()?);
        }
        getpeername_ns = t.elapsed().as_nanos() as u64 / u64::from(calls);
    }

    let mut buf = [0u8; 1024];
    let mut have = 0;
    let mut header_len = if mode == Mode::RespondPpv2 {
        None
    } else {
        Some(0)
    };
    let (mut peer, mut parse_ns, mut first_byte) = (accepted_peer, 0, None);
    loop {
        let n = s.read(&mut buf[have..]).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        have += n;
        if header_len.is_none() && have >= ppv2::FIXED_LEN {
            let t = Instant::now();
            let len = ppv2::header_len(&buf[..have])
                .filter(|len| len + MESSAGE_LEN <= buf.len())
                .ok_or(io::ErrorKind::InvalidData)?;
            if have >= len {
                peer = ppv2::source(&buf[..len]).ok_or(io::ErrorKind::InvalidData)?;
                parse_ns = t.elapsed().as_nanos() as u64;
                header_len = Some(len);
            }
        }
        if let Some(h) = header_len {
            if first_byte.is_none() && have > h {
                first_byte = Some(Instant::now());
            }
            if have >= h + MESSAGE_LEN {
                break;
            }
        }
    }
    let ttfb_ns = first_byte.map_or(0, |t| t.duration_since(accepted).as_nanos() as u64);
    let reply = Reply {
        peer,
        ttfb_ns,
        getpeername_ns,
        parse_ns,
    };
    s.write_all(&reply.encode()).await
}

async fn wait_for_close(s: &mut TcpStream) -> io::Result<()> {
    let mut buf = [0u8; 64];
    while s.read(&mut buf).await? > 0 {}
    Ok(())
}
