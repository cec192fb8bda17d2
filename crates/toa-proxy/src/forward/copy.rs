//! Buffered copy of one direction: read into a bounded buffer, write it all, repeat.

use tokio::io::Interest;
use tokio::net::TcpStream;

use super::{Direction, half_close};
use crate::forward::CloseReason;

pub(super) async fn copy_half(
    from: &TcpStream,
    to: &TcpStream,
    buffer_size: usize,
    dir: &Direction<'_>,
) -> Result<(), CloseReason> {
    let mut buf = vec![0u8; buffer_size];
    loop {
        let n = loop {
            from.readable().await.map_err(|e| dir.read_error(e))?;
            match from.try_read(&mut buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(dir.read_error(e)),
            }
        };
        if n == 0 {
            half_close(to);
            return Ok(());
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
    }
}
