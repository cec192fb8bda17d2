//! Buffered copy of one direction: read into a bounded buffer, write it all, repeat.

use tokio::io::Interest;
use tokio::net::TcpStream;

use super::{Direction, half_close};
use crate::forward::CloseReason;

/// How a copy ended without error.
pub(super) enum Copied {
    /// `from` reached EOF and `to` was half-closed: this direction is done.
    Eof,
    /// At least the requested number of bytes moved; nothing is left in the buffer.
    Enough,
}

/// Copies `from` → `to` through a buffer of `buffer_size` bytes until EOF or, with
/// `stop_after`, until that many bytes have moved (checked between chunks, so the buffer
/// is always empty when it returns). The buffer is allocated when `from` turns readable
/// and freed whenever it has nothing more to read, so an idle connection holds no buffer.
pub(super) async fn copy_half(
    from: &TcpStream,
    to: &TcpStream,
    buffer_size: usize,
    dir: &Direction<'_>,
    stop_after: Option<u64>,
) -> Result<Copied, CloseReason> {
    let mut buf = Vec::new();
    let mut moved = 0u64;
    loop {
        if stop_after.is_some_and(|limit| moved >= limit) {
            return Ok(Copied::Enough);
        }
        let n = loop {
            from.readable().await.map_err(|e| dir.read_error(e))?;
            if buf.is_empty() {
                buf = vec![0u8; buffer_size];
            }
            match from.try_read(&mut buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    // Nothing to move (the buffer is empty here): hold no memory while waiting.
                    buf = Vec::new();
                    continue;
                }
                Err(e) => return Err(dir.read_error(e)),
            }
        };
        if n == 0 {
            half_close(to);
            return Ok(Copied::Eof);
        }
        let mut sent = 0;
        while sent < n {
            to.ready(Interest::WRITABLE)
                .await
                .map_err(|e| dir.write_error(e))?;
            match to.try_write(&buf[sent..n]) {
                Ok(k) => sent += k,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(dir.write_error(e)),
            }
        }
        dir.moved(n);
        moved += n as u64;
    }
}
