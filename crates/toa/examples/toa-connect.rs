//! The smallest TCP client: connects, says from where, reads until the server
//! closes. The client peer of the arm64 kernel run (scripts/kernel/arm64),
//! which has no curl or socat inside its busybox guest.
//!
//! Usage: `toa-connect ADDR [LOCAL_PORT]`, e.g. `toa-connect 198.18.1.1:8000 40001`.
//! Prints `connected LOCAL -> ADDR` once the handshake is done, then
//! `closed BYTES` when the server closes. A fixed local port lets the caller
//! check the whole client address the origin reports, port included.

use socket2::{Domain, Socket, Type};
use std::io::Read;
use std::net::{SocketAddr, TcpStream};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(
        (2..=3).contains(&args.len()),
        "usage: toa-connect ADDR [LOCAL_PORT]"
    );
    let remote: SocketAddr = args[1].parse()?;
    let local_port: u16 = args.get(2).map_or(Ok(0), |p| p.parse())?;
    let socket = Socket::new(Domain::for_address(remote), Type::STREAM, None)?;
    if local_port != 0 {
        let any: SocketAddr = if remote.is_ipv4() {
            ([0, 0, 0, 0], local_port).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, local_port).into()
        };
        socket.bind(&any.into())?;
    }
    socket.connect(&remote.into())?;
    let mut stream: TcpStream = socket.into();
    println!("connected {} -> {remote}", stream.local_addr()?);
    let mut received = Vec::new();
    stream.read_to_end(&mut received)?;
    println!("closed {}", received.len());
    Ok(())
}
