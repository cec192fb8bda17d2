//! A Rust TCP server reporting its clients the four ways a Rust program can
//! ask: the address `accept()` returned, std's `peer_addr()` (getpeername),
//! `libtoa::peer_addr` (the TOA lookup) and `libtoa::client_addr` (lookup, else
//! getpeername). The e2e test runs it behind a TOA relay; the arm64 kernel run
//! (scripts/kernel/arm64) runs it, built static, behind `toa proxy`.
//!
//! Usage: `toa-peer LISTEN COUNT`, e.g. `toa-peer 0.0.0.0:8000 1`. Prints
//! `listening ADDR`, then per connection: `accept ADDR`, `std ADDR`,
//! `libtoa::peer_addr ADDR|none|error ERRNO`, `libtoa::client_addr ADDR`.

use std::net::TcpListener;

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(listen), Some(count)) = (
        args.get(1),
        args.get(2).and_then(|c| c.parse::<usize>().ok()),
    ) else {
        eprintln!("usage: toa-peer LISTEN COUNT");
        std::process::exit(2);
    };
    let listener = TcpListener::bind(listen)?;
    println!("listening {}", listener.local_addr()?);
    for _ in 0..count {
        let (stream, accepted) = listener.accept()?;
        println!("accept {accepted}");
        println!("std {}", stream.peer_addr()?);
        match libtoa::peer_addr(&stream) {
            Ok(Some(client)) => println!("libtoa::peer_addr {client}"),
            Ok(None) => println!("libtoa::peer_addr none"),
            Err(err) => println!(
                "libtoa::peer_addr error {}",
                err.raw_os_error().unwrap_or(0)
            ),
        }
        println!("libtoa::client_addr {}", libtoa::client_addr(&stream)?);
    }
    Ok(())
}
