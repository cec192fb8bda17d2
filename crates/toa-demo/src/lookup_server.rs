//! The demo's lookup server: an IPv4-only HTTP responder that asks libtoa for
//! each connection's real client. An IPv6 client cannot be returned by
//! `getpeername()` on an AF_INET socket, so this is how a server on an IPv4
//! listener learns it (`toa_get_peer()` in C, `libtoa::peer_addr()` in Rust).
//!
//! It runs as `toa demo --lookup-server ADDR`, spawned in the origin's cgroup.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

/// Serves forever, logging one access line per connection to stdout:
/// `REAL_ADDR port N (libtoa lookup; TCP peer PROXY_ADDR) "GET / HTTP/1.1"`.
pub fn serve(bind: SocketAddr) -> anyhow::Result<()> {
    let listener = TcpListener::bind(bind)?;
    println!("lookup server on {bind}");
    for stream in listener.incoming() {
        match stream {
            Ok(stream) => {
                if let Err(e) = answer(stream) {
                    println!("connection failed: {e}");
                }
            }
            Err(e) => println!("accept failed: {e}"),
        }
    }
    Ok(())
}

fn answer(mut stream: TcpStream) -> anyhow::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let tcp_peer = stream.peer_addr()?;
    let (who, how) = match libtoa::peer_addr(&stream) {
        Ok(Some(real)) => (real, "libtoa lookup".to_owned()),
        Ok(None) => (tcp_peer, "no TOA on this connection".to_owned()),
        Err(e) => (tcp_peer, format!("libtoa lookup failed: {e}")),
    };
    let request = read_request_line(&stream)?;
    if request.is_empty() {
        // A bare connect, such as the proxy's health check: nothing to log,
        // just as python's and nginx's access logs skip it.
        return Ok(());
    }
    println!(
        "{} port {} ({how}; TCP peer {}) {request:?}",
        who.ip(),
        who.port(),
        tcp_peer.ip()
    );
    let body = format!(
        "hello {} from the origin (libtoa lookup server)\n",
        who.ip()
    );
    write!(
        stream,
        "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    Ok(())
}

/// The request line; the rest of the header is read and ignored.
fn read_request_line(stream: &TcpStream) -> anyhow::Result<String> {
    let mut reader = BufReader::new(stream);
    let mut first = String::new();
    reader.read_line(&mut first)?;
    let mut line = String::new();
    while reader.read_line(&mut line)? > 0 && line.trim_end() != "" {
        line.clear();
    }
    Ok(first.trim_end().to_owned())
}
