//! Buffered copy of one direction: read a chunk, write it all, repeat.
//!
//! Reads land in a per-thread scratch buffer and are written out at once; only a chunk
//! the destination cannot take whole is copied into a buffer of this connection (at most
//! `buffer_size` bytes) until it drains. So a connection holds no buffer while it waits,
//! and short exchanges allocate nothing per connection.

use std::cell::RefCell;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::Poll;

use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::tcp::{ReadHalf, WriteHalf};

use super::Direction;
use crate::forward::CloseReason;

thread_local! {
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// How a copy ended without error.
pub(super) enum Copied {
    /// `from` reached EOF and `to` was half-closed: this direction is done.
    Eof,
    /// At least the requested number of bytes moved; nothing is left unwritten.
    Enough,
}

/// What one read-and-write step did.
enum Step {
    Eof,
    /// `n` bytes read, of which `rest` could not be written yet.
    Read {
        n: usize,
        rest: Vec<u8>,
    },
}

/// One read from `from` into the scratch buffer, written on to `to` straight away.
///
/// The read goes through `AsyncRead::poll_read`, not `try_read`: tokio clears the
/// socket's readiness after a short read (the queue is empty; an edge-triggered epoll
/// reports the next arrival), so the task parks without a `recv` that returns EAGAIN.
/// That saves one `recv` per read, two on a request/response connection.
fn poll_read_and_write(
    cx: &mut std::task::Context<'_>,
    from: &mut ReadHalf<'_>,
    to: &WriteHalf<'_>,
    size: usize,
) -> Poll<Result<Step, (bool, io::Error)>> {
    SCRATCH.with_borrow_mut(|buf| {
        if buf.len() < size {
            buf.resize(size, 0);
        }
        let mut read = ReadBuf::new(&mut buf[..size]);
        match Pin::new(&mut *from).poll_read(cx, &mut read) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(e)) => return Poll::Ready(Err((true, e))),
            Poll::Ready(Ok(())) => {}
        }
        let n = read.filled().len();
        if n == 0 {
            return Poll::Ready(Ok(Step::Eof));
        }
        let sent = match to.try_write(&buf[..n]) {
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
            Err(e) => return Poll::Ready(Err((false, e))),
        };
        Poll::Ready(Ok(Step::Read {
            n,
            rest: buf[sent..n].to_vec(),
        }))
    })
}

/// Copies `from` → `to`, reading at most `buffer_size` bytes at a time, until EOF or, with
/// `stop_after`, until that many bytes have moved (checked between chunks, so nothing is
/// left unwritten when it returns).
pub(super) async fn copy_half(
    from: &mut ReadHalf<'_>,
    to: &WriteHalf<'_>,
    buffer_size: usize,
    dir: &Direction<'_>,
    stop_after: Option<u64>,
) -> Result<Copied, CloseReason> {
    let mut moved = 0u64;
    loop {
        if stop_after.is_some_and(|limit| moved >= limit) {
            return Ok(Copied::Enough);
        }
        let (n, rest) = match poll_fn(|cx| poll_read_and_write(cx, from, to, buffer_size)).await {
            Ok(Step::Eof) => {
                dir.finish(to.as_ref());
                return Ok(Copied::Eof);
            }
            Ok(Step::Read { n, rest }) => (n, rest),
            Err((true, e)) => return Err(dir.read_error(e)),
            Err((false, e)) => return Err(dir.write_error(e)),
        };
        let mut sent = 0;
        while sent < rest.len() {
            // poll_write_ready keeps its waker in the socket, not in this task's future
            // (as a `ready()` future would, for every idle connection).
            poll_fn(|cx| to.as_ref().poll_write_ready(cx))
                .await
                .map_err(|e| dir.write_error(e))?;
            match to.try_write(&rest[sent..]) {
                Ok(k) => sent += k,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(dir.write_error(e)),
            }
        }
        dir.moved(n);
        moved += n as u64;
    }
}
