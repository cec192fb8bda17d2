//! A minimal TCP relay that writes TOA through `toa_loader::EdgeWriter`: the
//! stand-in edge for `tests/origin.rs` until `toa proxy` is used there.
//!
//! Usage: `toa-test-relay LISTEN UPSTREAM [KIND]`, e.g.
//! `toa-test-relay [fd00:1::1]:8000 198.18.2.2:8000 254`. Prints `ready` once
//! listening. For each client: socket(), register the client, connect(), then
//! copy both ways (half-closes forwarded). SIGTERM/SIGINT print the writer's
//! counters (`edge-stats ...`) and drop it, which detaches it and removes its
//! cgroup. Threads only; it is a test tool.

use socket2::{Domain, Socket, Type};
use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use toa_loader::EdgeWriter;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(
        args.len() >= 3,
        "usage: toa-test-relay LISTEN UPSTREAM [KIND]"
    );
    let listen: SocketAddr = args[1].parse()?;
    let upstream: SocketAddr = args[2].parse()?;
    let kind: u8 = args
        .get(3)
        .map_or(Ok(toa_wire::toa::DEFAULT_KIND), |k| k.parse())?;

    // Block the stop signals in every thread; main waits for them below.
    let signals = stop_signals();
    let writer = Arc::new(EdgeWriter::attach_to_self(kind)?);
    let listener = TcpListener::bind(listen)?;
    listener.set_nonblocking(true)?;
    println!("ready");
    std::io::stdout().flush()?;

    let stop = Arc::new(AtomicBool::new(false));
    let acceptor = {
        let (writer, stop) = (Arc::clone(&writer), Arc::clone(&stop));
        std::thread::spawn(move || accept_loop(&listener, &writer, upstream, &stop))
    };
    let mut signal = 0;
    // SAFETY: `signals` is an initialized set, blocked in all threads.
    unsafe { libc::sigwait(&signals, &mut signal) };
    stop.store(true, Ordering::Relaxed);
    let _ = acceptor.join();
    let counters: Vec<String> = writer
        .totals()
        .into_iter()
        .map(|(c, total)| format!("{}={total}", c.name()))
        .collect();
    println!("edge-stats {}", counters.join(" "));
    drop(writer); // the last reference: detaches, leaves and removes the cgroup
    Ok(())
}

fn stop_signals() -> libc::sigset_t {
    // SAFETY: plain sigset manipulation on a zeroed set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

fn accept_loop(
    listener: &TcpListener,
    writer: &EdgeWriter,
    upstream: SocketAddr,
    stop: &AtomicBool,
) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((client, peer)) => {
                // Registration happens here, before connect(): connection
                // threads never need the writer.
                let socket = Socket::new(Domain::for_address(upstream), Type::STREAM, None)
                    .and_then(|s| client.set_nonblocking(false).map(|()| s));
                match socket.map_err(anyhow::Error::from).and_then(|s| {
                    writer.register(s.as_fd(), peer)?;
                    Ok(s)
                }) {
                    Ok(socket) => {
                        std::thread::spawn(move || {
                            if let Err(err) = relay(client, socket, upstream) {
                                eprintln!("relay: {err}");
                            }
                        });
                    }
                    Err(err) => eprintln!("relay: {err}"),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(err) => eprintln!("accept: {err}"),
        }
    }
}

fn relay(client: TcpStream, socket: Socket, upstream: SocketAddr) -> anyhow::Result<()> {
    socket.connect(&upstream.into())?;
    let origin: TcpStream = socket.into();
    let (client2, origin2) = (client.try_clone()?, origin.try_clone()?);
    let up = std::thread::spawn(move || pipe(client2, origin2));
    pipe(origin, client);
    let _ = up.join();
    Ok(())
}

/// Copies until EOF, then forwards the half-close.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let _ = std::io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Write);
}
