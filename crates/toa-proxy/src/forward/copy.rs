//! Buffered copy of one direction: read a chunk, write it all, repeat.
//!
//! Reads land in a per-thread scratch buffer and are written out at once; only a chunk
//! the destination cannot take whole is copied into a buffer of this connection (at most
//! `buffer_size` bytes) until it drains. So a connection holds no buffer while it waits,
//! and short exchanges allocate nothing per connection.

use std::cell::RefCell;
use std::io;

use tokio::io::Interest;
use tokio::net::TcpStream;

use super::{Direction, half_close};
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
fn read_and_write(
    from: &TcpStream,
    to: &TcpStream,
    size: usize,
) -> Result<Step, (bool, io::Error)> {
    SCRATCH.with_borrow_mut(|buf| {
        if buf.len() < size {
            buf.resize(size, 0);
        }
        let n = from.try_read(&mut buf[..size]).map_err(|e| (true, e))?;
        if n == 0 {
            return Ok(Step::Eof);
        }
        let sent = match to.try_write(&buf[..n]) {
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
            Err(e) => return Err((false, e)),
        };
        Ok(Step::Read {
            n,
            rest: buf[sent..n].to_vec(),
        })
    })
}

/// Copies `from` → `to`, reading at most `buffer_size` bytes at a time, until EOF or, with
/// `stop_after`, until that many bytes have moved (checked between chunks, so nothing is
/// left unwritten when it returns).
pub(super) async fn copy_half(
    from: &TcpStream,
    to: &TcpStream,
    buffer_size: usize,
    dir: &Direction<'_>,
    stop_after: Option<u64>,
) -> Result<Copied, CloseReason> {
    let mut moved = 0u64;
    loop {
        if stop_after.is_some_and(|limit| moved >= limit) {
            return Ok(Copied::Enough);
        }
        let (n, rest) = loop {
            from.readable().await.map_err(|e| dir.read_error(e))?;
            match read_and_write(from, to, buffer_size) {
                Ok(Step::Eof) => {
                    half_close(to);
                    return Ok(Copied::Eof);
                }
                Ok(Step::Read { n, rest }) => break (n, rest),
                Err((true, e)) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err((true, e)) => return Err(dir.read_error(e)),
                Err((false, e)) => return Err(dir.write_error(e)),
            }
        };
        let mut sent = 0;
        while sent < rest.len() {
            to.ready(Interest::WRITABLE)
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
