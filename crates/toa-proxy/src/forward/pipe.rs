//! The pipes a splicing direction moves its bytes through, and how big they are.
//!
//! A pipe starts at `buffer_size` (its base size), the bound on what a slow reader makes
//! the proxy hold. A direction whose two ends both keep up gets a bigger pipe
//! ([`Sizing`]): the same bytes then take fewer splice calls. The bytes pipes hold above
//! their base size are bounded for the whole process by [`GROWTH_BUDGET`], so the memory
//! a proxy may hold stays `buffer_size` per direction plus that budget, and growth takes
//! at most half of the user's pipe quota (`fs.pipe-user-pages-soft`, past which the
//! kernel gives new pipes 8 KiB).
//!
//! Empty pipes wait in a small per-thread pool ([`Pipe::take`], [`Pipe::recycle`]),
//! always at their base size.

use std::cell::RefCell;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Empty pipes kept per thread for reuse. Bounded so that a burst of bulk connections
/// leaves at most this many idle pipes (2 descriptors each) per worker thread behind.
const POOL_MAX: usize = 16;

thread_local! {
    static POOL: RefCell<Vec<Pipe>> = const { RefCell::new(Vec::new()) };
}

/// The most a pipe grows to: the kernel's default `fs.pipe-max-size`, the most a process
/// without CAP_SYS_RESOURCE may ask for. (4 MiB measured slower than 1 MiB in the bulk
/// bench, 512 KiB no different.)
const GROWN_PIPE: usize = 1024 * 1024;

/// The bytes all pipes of the process may hold above their base size: about 34 pipes
/// grown from 64 KiB to 1 MiB, half the default per-user pipe quota of 64 MiB.
const GROWTH_BUDGET: usize = 32 * 1024 * 1024;

/// The process's growth budget.
static GROWN: Budget = Budget::new(GROWTH_BUDGET);

/// Bytes reserved out of a fixed limit, shared by every thread.
pub(super) struct Budget {
    limit: usize,
    used: AtomicUsize,
}

impl Budget {
    pub(super) const fn new(limit: usize) -> Budget {
        Budget {
            limit,
            used: AtomicUsize::new(0),
        }
    }

    /// Takes `n` bytes if they fit.
    fn reserve(&self, n: usize) -> bool {
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(n).filter(|&total| total <= self.limit)
            })
            .is_ok()
    }

    /// Takes `n` bytes even past the limit (what the kernel gave beyond a reservation).
    fn take(&self, n: usize) {
        self.used.fetch_add(n, Ordering::Relaxed);
    }

    fn release(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::Relaxed);
    }

    #[cfg(test)]
    pub(super) fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }
}

/// One non-blocking pipe: bytes spliced in from one socket wait here for the other.
pub(super) struct Pipe {
    pub(super) read: OwnedFd,
    pub(super) write: OwnedFd,
    /// The size asked for at creation (pooled pipes are only reused for the same size).
    requested: usize,
    /// What the kernel gave for `requested`.
    base: usize,
    /// The size now: `base`, or more while grown (the excess is reserved from `budget`).
    pub(super) capacity: usize,
    budget: &'static Budget,
}

impl Pipe {
    fn new(size: usize, budget: &'static Budget) -> io::Result<Pipe> {
        let mut fds = [0 as RawFd; 2];
        // SAFETY: pipe2 writes two descriptors into the array we own.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: both descriptors were just created and are owned by nobody else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // The kernel rounds up to a power of two pages and may refuse above
        // fs.pipe-max-size; the default (64 KiB) is then what we get, which is fine.
        let base = set_pipe_size(&write, size).or_else(|_| {
            // SAFETY: F_GETPIPE_SZ on a pipe we own.
            let got = unsafe { libc::fcntl(write.as_raw_fd(), libc::F_GETPIPE_SZ) };
            usize::try_from(got).map_err(|_| io::Error::last_os_error())
        })?;
        Ok(Pipe {
            read,
            write,
            requested: size,
            base,
            capacity: base,
            budget,
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
            None => Pipe::new(size, &GROWN),
        }
    }

    /// Returns an empty pipe to this thread's pool (or closes it if the pool is full).
    /// Only call this when every byte spliced in was spliced out again.
    pub(super) fn recycle(mut self) {
        // The pool holds pipes at their base size only, and not the ones the kernel made
        // smaller than asked (over the user's pipe quota it gives 8 KiB): a new pipe may
        // get the full size again.
        if self.base < self.requested || self.shrink().is_err() {
            return;
        }
        POOL.with_borrow_mut(|pool| {
            if pool.len() < POOL_MAX {
                pool.push(self);
            }
        });
    }

    /// Grows the empty pipe to `size`. `Ok(false)`: the process's budget has no room now.
    /// An error: the kernel refused (above fs.pipe-max-size, or the user's pipe quota
    /// without CAP_SYS_RESOURCE or CAP_SYS_ADMIN).
    fn grow(&mut self, size: usize) -> io::Result<bool> {
        let more = size.saturating_sub(self.capacity);
        if more == 0 || !self.budget.reserve(more) {
            return Ok(more == 0);
        }
        match set_pipe_size(&self.write, size) {
            Ok(got) => {
                // The kernel rounds up to a power of two pages (the same size for the
                // doublings asked for here); account for whatever it gave.
                if got > size {
                    self.budget.take(got - size);
                } else {
                    self.budget.release(size - got);
                }
                self.capacity = got;
                Ok(true)
            }
            Err(e) => {
                self.budget.release(more);
                Err(e)
            }
        }
    }

    /// Above its base size (so a pause in the sender should shrink it: [`Sizing::paused`]).
    pub(super) fn is_grown(&self) -> bool {
        self.capacity > self.base
    }

    /// Back to the base size (the pipe must be empty) and the growth back to the budget.
    fn shrink(&mut self) -> io::Result<()> {
        if self.is_grown() {
            set_pipe_size(&self.write, self.base)?;
            self.budget.release(self.capacity - self.base);
            self.capacity = self.base;
        }
        Ok(())
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        self.budget.release(self.capacity - self.base);
    }
}

/// F_SETPIPE_SZ: the size the kernel gave.
fn set_pipe_size(pipe: &OwnedFd, size: usize) -> io::Result<usize> {
    let size = libc::c_int::try_from(size).unwrap_or(libc::c_int::MAX);
    // SAFETY: F_SETPIPE_SZ on a pipe we own.
    let got = unsafe { libc::fcntl(pipe.as_raw_fd(), libc::F_SETPIPE_SZ, size) };
    usize::try_from(got).map_err(|_| io::Error::last_os_error())
}

/// Bytes written to `socket` that the kernel has not sent yet (SIOCOUTQNSD): they wait
/// for the peer's receive window, which stays shut while the reader is behind.
fn unsent_bytes(socket: RawFd) -> io::Result<usize> {
    let mut unsent: libc::c_int = 0;
    // SAFETY: SIOCOUTQNSD writes one int, into a local we own.
    if unsafe { libc::ioctl(socket, libc::SIOCOUTQNSD as _, &mut unsent) } != 0 {
        return Err(io::Error::last_os_error());
    }
    usize::try_from(unsent).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))
}

/// Pipes in this thread's pool.
#[cfg(test)]
pub(super) fn pooled() -> usize {
    POOL.with_borrow(Vec::len)
}

/// How often a direction measures its rate to size its pipe.
pub(super) const SIZING_WINDOW: Duration = Duration::from_millis(10);

/// How a direction sizes its pipe. A direction that moves at least its base size per
/// millisecond (62.5 MiB/s by default) over two [`SIZING_WINDOW`]s in a row, with no more
/// than a pipe's worth left unsent in its destination's send buffer, doubles its pipe, and
/// again after each further fast window, up to [`GROWN_PIPE`] and as the
/// [`GROWTH_BUDGET`] allows: both ends keep up, so a bigger
/// pipe moves the same bytes in fewer system calls and holds them only briefly (at that
/// rate a full 1 MiB pipe drains in 16 ms). A window below that rate (a slow reader, a
/// slow sender) takes it back to the base size, and so does a window with nothing from
/// the sender ([`Sizing::paused`]): a slow download holds `buffer_size`, as with a fixed
/// pipe, once it has written out the grown chunk it held when it slowed down.
pub(super) struct Sizing {
    /// The size to grow to; the base size once the kernel refused to grow this pipe.
    ceiling: usize,
    window_start: Instant,
    window_bytes: usize,
    /// Fast windows in a row. A pipe grows from the second on: one window can look fast
    /// for a slow reader too, when the proxy was preempted in the middle of writing a
    /// burst the reader's socket had room for, but the next one takes in the wait for
    /// the reader and is slow.
    fast_streak: u32,
}

impl Sizing {
    pub(super) fn new(pipe: &Pipe) -> Sizing {
        Sizing {
            ceiling: GROWN_PIPE.max(pipe.base),
            window_start: Instant::now(),
            window_bytes: 0,
            fast_streak: 0,
        }
    }

    /// The sender has sent nothing for a whole window with the pipe empty: back to the base
    /// size now, rather than after the next chunk (which would still come in at the grown
    /// size), so a connection that pauses does not keep a grown pipe.
    pub(super) fn paused(&mut self, pipe: &mut Pipe) {
        if pipe.shrink().is_err() {
            self.ceiling = pipe.base;
        }
        self.window_start = Instant::now();
        self.window_bytes = 0;
        self.fast_streak = 0;
    }

    /// Called with the pipe empty after each chunk of `n` bytes went out to `to`.
    pub(super) fn after_chunk(&mut self, pipe: &mut Pipe, n: usize, to: RawFd) {
        self.after_chunk_with(pipe, n, || unsent_bytes(to))
    }

    /// [`Sizing::after_chunk`], with the destination's unsent bytes read by `unsent` (only
    /// when the pipe is about to grow).
    fn after_chunk_with(
        &mut self,
        pipe: &mut Pipe,
        n: usize,
        unsent: impl FnOnce() -> io::Result<usize>,
    ) {
        self.window_bytes += n;
        let elapsed = self.window_start.elapsed();
        if elapsed < SIZING_WINDOW {
            return;
        }
        let fast = self.window_bytes as u128 * 1000 >= pipe.base as u128 * elapsed.as_micros();
        self.window_start += elapsed;
        self.window_bytes = 0;
        self.fast_streak = if fast { self.fast_streak + 1 } else { 0 };
        let refused = if !fast {
            pipe.shrink().is_err()
        } else if self.fast_streak >= 2 && pipe.capacity < self.ceiling {
            // Fast windows can come from a slow reader too: after a wait for room, the
            // proxy fills the room its socket's send buffer made (megabytes) at full speed,
            // and if the proxy is preempted during that burst it spans two windows. The
            // bytes then wait in the send buffer for the reader's receive window: more
            // unsent there than a pipe holds means the reader is behind, so no growth.
            if unsent().is_ok_and(|bytes| bytes <= pipe.capacity) {
                pipe.grow((pipe.capacity * 2).min(self.ceiling)).is_err()
            } else {
                self.fast_streak = 0;
                false
            }
        } else {
            false
        };
        if refused {
            // Stay at whatever size the pipe has, and stop asking.
            self.ceiling = pipe.base;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Grown pipes take their growth from the budget and give it back when they shrink
    /// or close; a pipe that does not fit stays at its base size.
    #[test]
    fn growth_is_bounded_by_the_budget_and_returned() {
        static BUDGET: Budget = Budget::new(3 * 64 * 1024);
        let mut a = Pipe::new(64 * 1024, &BUDGET).unwrap();
        let mut b = Pipe::new(64 * 1024, &BUDGET).unwrap();
        assert!(a.grow(128 * 1024).unwrap());
        assert!(a.grow(256 * 1024).unwrap());
        assert_eq!((a.capacity, BUDGET.used()), (256 * 1024, 3 * 64 * 1024));
        // No room left for b.
        assert!(!b.grow(128 * 1024).unwrap());
        assert_eq!(b.capacity, 64 * 1024);
        a.shrink().unwrap();
        assert_eq!((a.capacity, BUDGET.used()), (64 * 1024, 0));
        assert!(b.grow(128 * 1024).unwrap());
        assert_eq!(BUDGET.used(), 64 * 1024);
        drop(b);
        assert_eq!(BUDGET.used(), 0);
    }

    /// Two windows at 64 MiB per 10 ms, each closed by one chunk after the window's time.
    fn two_fast_windows(sizing: &mut Sizing, pipe: &mut Pipe, unsent: usize) {
        for _ in 0..2 {
            std::thread::sleep(SIZING_WINDOW + Duration::from_millis(1));
            sizing.after_chunk_with(pipe, 64 << 20, || Ok(unsent));
        }
    }

    /// A direction grows its pipe after two fast windows only while what it wrote leaves:
    /// bytes piling up unsent in the destination's send buffer mean a slow reader, whose
    /// pipe stays at its base size (the CI flake of proxy_splice.rs, where a slow reader's
    /// pipe grew to 128 KiB after a burst into its send buffer).
    #[test]
    fn a_pipe_grows_only_while_the_destination_sends_what_it_gets() {
        static BUDGET: Budget = Budget::new(GROWTH_BUDGET);
        let mut pipe = Pipe::new(64 * 1024, &BUDGET).unwrap();
        let mut sizing = Sizing::new(&pipe);
        two_fast_windows(&mut sizing, &mut pipe, 4 << 20);
        two_fast_windows(&mut sizing, &mut pipe, 4 << 20);
        assert_eq!(pipe.capacity, 64 * 1024, "a reader behind by 4 MiB");
        two_fast_windows(&mut sizing, &mut pipe, 16 * 1024);
        assert_eq!(pipe.capacity, 128 * 1024, "a reader that keeps up");
    }
}
