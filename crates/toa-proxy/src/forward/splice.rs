//! Zero-copy forwarding of one direction with splice(2): socket → pipe → socket, so the
//! payload stays in kernel pages. The pipe ([`Pipe`]) is the bounded buffer; its size
//! follows the direction's rate ([`Sizing`]).

use std::future::poll_fn;
use std::io;
use std::os::fd::{AsRawFd, RawFd};

use tokio::io::Interest;
use tokio::net::TcpStream;

use super::Direction;
use super::pipe::{Pipe, SIZING_WINDOW, Sizing};
use crate::forward::CloseReason;

fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
    // SAFETY: plain descriptors, null offsets (sockets and pipes have none).
    let n = unsafe {
        libc::splice(
            from,
            std::ptr::null_mut(),
            to,
            std::ptr::null_mut(),
            len,
            libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

pub(super) async fn splice_half(
    from: &TcpStream,
    to: &TcpStream,
    mut pipe: Pipe,
    dir: &Direction<'_>,
) -> Result<(), CloseReason> {
    let mut sizing = Sizing::new(&pipe);
    loop {
        // Socket → pipe. The pipe is empty here, so only the socket can block; tokio's
        // readiness is cleared by try_io when it does.
        let n = loop {
            // The socket holds the waker (poll_*_ready), not this task's future: smaller
            // idle connections.
            let readable = poll_fn(|cx| from.poll_read_ready(cx));
            let ready = if pipe.is_grown() {
                match tokio::time::timeout(SIZING_WINDOW, readable).await {
                    Ok(ready) => ready,
                    Err(_) => {
                        sizing.paused(&mut pipe);
                        poll_fn(|cx| from.poll_read_ready(cx)).await
                    }
                }
            } else {
                readable.await
            };
            ready.map_err(|e| dir.read_error(e))?;
            match from.try_io(Interest::READABLE, || {
                splice(from.as_raw_fd(), pipe.write.as_raw_fd(), pipe.capacity)
            }) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(dir.read_error(e)),
            }
        };
        if n == 0 {
            // Empty (the previous chunk was fully written out): safe to hand to another
            // connection. Before the FIN goes on, so the pipe is back in the pool at its
            // base size by the time the peer sees the end.
            pipe.recycle();
            dir.finish(to);
            return Ok(());
        }
        // Pipe → socket until the pipe is empty again.
        let mut left = n;
        while left > 0 {
            poll_fn(|cx| to.poll_write_ready(cx))
                .await
                .map_err(|e| dir.write_error(e))?;
            match to.try_io(Interest::WRITABLE, || {
                splice(pipe.read.as_raw_fd(), to.as_raw_fd(), left)
            }) {
                Ok(k) => {
                    left -= k;
                    if left > 0 {
                        dir.progressed();
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(dir.write_error(e)),
            }
        }
        dir.moved(n);
        sizing.after_chunk(&mut pipe, n, to.as_raw_fd());
    }
}
