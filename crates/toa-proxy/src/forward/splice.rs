//! Zero-copy forwarding of one direction with splice(2): socket → pipe → socket, so the
//! payload stays in kernel pages. The pipe is the bounded buffer (sized like `buffer_size`).
//! Pipes come from a small per-thread pool ([`Pipe::take`]) and go back to it when a
//! direction ends cleanly with the pipe empty ([`Pipe::recycle`]).

use std::cell::RefCell;
use std::future::poll_fn;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use tokio::io::Interest;
use tokio::net::TcpStream;

use super::Direction;
use crate::forward::CloseReason;

/// Empty pipes kept per thread for reuse. Bounded so that a burst of bulk connections
/// leaves at most this many idle pipes (2 descriptors each) per worker thread behind.
const POOL_MAX: usize = 16;

thread_local! {
    static POOL: RefCell<Vec<Pipe>> = const { RefCell::new(Vec::new()) };
}

/// One non-blocking pipe: bytes spliced in from one socket wait here for the other.
pub(super) struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    /// The size asked for at creation (pooled pipes are only reused for the same size).
    requested: usize,
    capacity: usize,
}

impl Pipe {
    fn new(size: usize) -> io::Result<Pipe> {
        let mut fds = [0 as RawFd; 2];
        // SAFETY: pipe2 writes two descriptors into the array we own.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: both descriptors were just created and are owned by nobody else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // The kernel rounds up to pages and may refuse above /proc/sys/fs/pipe-max-size;
        // the default (64 KiB) is then what we get, which is fine.
        // SAFETY: F_SETPIPE_SZ/F_GETPIPE_SZ on a pipe we own.
        unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, size as libc::c_int) };
        let capacity = unsafe { libc::fcntl(write.as_raw_fd(), libc::F_GETPIPE_SZ) };
        Ok(Pipe {
            read,
            write,
            requested: size,
            capacity: usize::try_from(capacity).unwrap_or(64 * 1024).max(4096),
        })
    }

    /// An empty pipe of `size` bytes: from this thread's pool if it has one, else a new one.
    pub(super) fn take(size: usize) -> io::Result<Pipe> {
        let pooled = POOL.with_borrow_mut(|pool| {
            let i = pool.iter().rposition(|p| p.requested == size)?;
            Some(pool.swap_remove(i))
        });
        match pooled {
            Some(pipe) => Ok(pipe),
            None => Pipe::new(size),
        }
    }

    /// Returns an empty pipe to this thread's pool (or closes it if the pool is full).
    /// Only call this when every byte spliced in was spliced out again.
    fn recycle(self) {
        POOL.with_borrow_mut(|pool| {
            if pool.len() < POOL_MAX {
                pool.push(self);
            }
        });
    }
}

/// Pipes in this thread's pool.
#[cfg(test)]
pub(super) fn pooled() -> usize {
    POOL.with_borrow(Vec::len)
}

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
    pipe: Pipe,
    dir: &Direction<'_>,
) -> Result<(), CloseReason> {
    loop {
        // Socket → pipe. The pipe is empty here, so only the socket can block; tokio's
        // readiness is cleared by try_io when it does.
        let n = loop {
            // The socket holds the waker (poll_*_ready), not this task's future: smaller
            // idle connections.
            poll_fn(|cx| from.poll_read_ready(cx))
                .await
                .map_err(|e| dir.read_error(e))?;
            match from.try_io(Interest::READABLE, || {
                splice(from.as_raw_fd(), pipe.write.as_raw_fd(), pipe.capacity)
            }) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(dir.read_error(e)),
            }
        };
        if n == 0 {
            dir.finish(to);
            // Empty (the previous chunk was fully written out): safe to hand to another connection.
            pipe.recycle();
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
    }
}
