//! Buffered copy of one direction: read a chunk, write it all, repeat.
//!
//! Reads land in a per-thread scratch buffer and are written out at once; only a chunk
//! the destination cannot take whole is copied into a buffer of this connection (at most
//! `buffer_size` bytes) until it drains. So a connection holds no buffer while it waits,
//! and short exchanges allocate nothing per connection.

use std::cell::RefCell;
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

/// One direction's buffered copy, written as a poll state machine rather than an async
/// fn: an idle connection holds only these fields (the unwritten chunk, if any, and two
/// counts), not an async fn's saved arguments and locals (a 160-byte future).
#[derive(Default)]
pub(super) struct Copy {
    /// A chunk `to` could not take whole; `rest[sent..]` is still to be written.
    rest: Vec<u8>,
    sent: usize,
    /// The size of the read `rest` is the tail of (counted as moved once all is written).
    chunk: usize,
    /// Bytes moved so far, for `stop_after`.
    moved: u64,
}

impl Copy {
    /// Copies `from` → `to`, reading at most `buffer_size` bytes at a time, until EOF or,
    /// with `stop_after`, until that many bytes have moved (checked between chunks, so
    /// nothing is left unwritten when it returns).
    pub(super) fn poll(
        &mut self,
        cx: &mut std::task::Context<'_>,
        from: &mut ReadHalf<'_>,
        to: &WriteHalf<'_>,
        buffer_size: usize,
        dir: &Direction<'_>,
        stop_after: Option<u64>,
    ) -> Poll<Result<Copied, CloseReason>> {
        loop {
            while self.sent < self.rest.len() {
                // poll_write_ready keeps its waker in the socket, not in this task's
                // future (as a `ready()` future would, for every idle connection).
                if let Err(e) = std::task::ready!(to.as_ref().poll_write_ready(cx)) {
                    return Poll::Ready(Err(dir.write_error(e)));
                }
                match to.try_write(&self.rest[self.sent..]) {
                    Ok(k) => {
                        self.sent += k;
                        if self.sent < self.rest.len() {
                            dir.progressed();
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(e) => return Poll::Ready(Err(dir.write_error(e))),
                }
            }
            if !self.rest.is_empty() {
                let n = self.chunk;
                // Not kept: an idle connection holds no buffer.
                self.rest = Vec::new();
                self.sent = 0;
                dir.moved(n);
                self.moved += n as u64;
            }
            if stop_after.is_some_and(|limit| self.moved >= limit) {
                return Poll::Ready(Ok(Copied::Enough));
            }
            match std::task::ready!(poll_read_and_write(cx, from, to, buffer_size)) {
                Ok(Step::Eof) => {
                    dir.finish(to.as_ref());
                    return Poll::Ready(Ok(Copied::Eof));
                }
                Ok(Step::Read { n, rest }) if rest.is_empty() => {
                    dir.moved(n);
                    self.moved += n as u64;
                }
                Ok(Step::Read { n, rest }) => {
                    self.rest = rest;
                    self.chunk = n;
                }
                Err((true, e)) => return Poll::Ready(Err(dir.read_error(e))),
                Err((false, e)) => return Poll::Ready(Err(dir.write_error(e))),
            }
        }
    }
}
