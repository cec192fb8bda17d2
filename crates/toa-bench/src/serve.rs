//! The origin server of the benchmarks (`toa-bench serve`), run in the origin
//! namespace: one listener per mode, so each scenario reaches the behaviour it
//! needs through a port. Every mode is as cheap as it can be, so that the
//! proxy in front of it, not the origin, limits the rates measured.

use crate::message::{MESSAGE_LEN, Reply};
use std::io;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::{Duration, Instant};
use toa_wire::Parsed;
use toa_wire::proxy_v2::{self, Addresses};
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
            tasks.push(tokio::spawn(serve(listener, l.mode)));
        }
        for t in tasks {
            t.await?;
        }
        anyhow::Ok(())
    })
}

/// Serves `mode` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, mode: Mode) {
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
        if header_len.is_none() {
            let t = Instant::now();
            match proxy_v2::parse(&buf[..have]) {
                Ok(Parsed::Complete { header, consumed }) => {
                    parse_ns = t.elapsed().as_nanos() as u64;
                    let Addresses::Inet { src, .. } = header.addresses else {
                        return Err(io::ErrorKind::InvalidData.into());
                    };
                    (peer, header_len) = (src, Some(consumed));
                }
                // The proxy's headers are small; a full buffer means a bad one.
                Ok(Parsed::Incomplete) if have < buf.len() => {}
                _ => return Err(io::ErrorKind::InvalidData.into()),
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

#[cfg(test)]
mod tests {
    use super::*;
    use toa_wire::proxy_v2::{Header, Transport};

    async fn start(mode: Mode) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, mode));
        addr
    }

    async fn exchange(addr: SocketAddr, prefix: &[u8]) -> (Reply, SocketAddr) {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let local = s.local_addr().unwrap();
        s.write_all(prefix).await.unwrap();
        s.write_all(&[b'q'; MESSAGE_LEN]).await.unwrap();
        let mut reply = [0u8; MESSAGE_LEN];
        s.read_exact(&mut reply).await.unwrap();
        (Reply::decode(&reply).unwrap(), local)
    }

    #[tokio::test]
    async fn respond_reports_the_connecting_address_and_getpeername_cost() {
        let addr = start(Mode::Getpeername).await;
        let (reply, local) = exchange(addr, &[]).await;
        assert_eq!(reply.peer, local);
        assert!(reply.getpeername_ns > 0 && reply.ttfb_ns > 0);
        assert_eq!(reply.parse_ns, 0);
    }

    #[tokio::test]
    async fn respond_ppv2_reports_the_header_source_not_the_socket_peer() {
        let addr = start(Mode::RespondPpv2).await;
        let client: SocketAddr = "198.18.1.2:40000".parse().unwrap();
        let header = Header::proxy(Transport::Stream, client, addr)
            .encode()
            .unwrap();
        let (reply, _) = exchange(addr, &header).await;
        assert_eq!(reply.peer, client);
        assert!(reply.parse_ns > 0);
    }

    #[tokio::test]
    async fn sink_replies_with_the_byte_count_after_half_close() {
        let addr = start(Mode::Sink).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(&[7u8; 300_000]).await.unwrap();
        s.shutdown().await.unwrap();
        let mut count = [0u8; 8];
        s.read_exact(&mut count).await.unwrap();
        assert_eq!(u64::from_le_bytes(count), 300_000);
    }
}
