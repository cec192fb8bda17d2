//! How busy each accept worker is: the connections in progress on it, counted by a
//! guard of zero bytes in each connection's task.

use std::cell::OnceCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use super::HANDOFF_MARGIN;

/// Connections in progress on each worker. Each count has a cache line of its own:
/// every connection's start and end writes its worker's count, and every accept reads
/// all of them.
pub(super) struct Loads(Box<[PaddedCount]>);

#[repr(align(64))]
#[derive(Default)]
struct PaddedCount(AtomicUsize);

impl Loads {
    pub(super) fn new(workers: usize) -> Loads {
        Loads((0..workers).map(|_| PaddedCount::default()).collect())
    }

    pub(super) fn of(&self, worker: usize) -> usize {
        self.0[worker].0.load(Ordering::Relaxed)
    }

    /// The worker a connection accepted by `me` runs on: the least busy one when `me`
    /// has more than [`HANDOFF_MARGIN`] connections above it, otherwise `me`.
    pub(super) fn choose(&self, me: usize) -> usize {
        let (least, least_load) = (0..self.0.len())
            .map(|w| (w, self.of(w)))
            .min_by_key(|&(_, load)| load)
            .unwrap_or((me, 0));
        if self.of(me) > least_load + HANDOFF_MARGIN {
            least
        } else {
            me
        }
    }

    /// `task`, counted as a connection on `worker` until it is dropped, which must happen
    /// on that worker's thread: spawn it on that worker's runtime.
    pub(super) fn counted<F: Future>(&self, worker: usize, task: F) -> Counted<F> {
        self.0[worker].0.fetch_add(1, Ordering::Relaxed);
        Counted {
            task,
            _in_progress: InProgress(()),
        }
    }
}

thread_local! {
    /// On an accept worker's thread: the counts, and which of them is this worker's.
    pub(super) static WORKER_LOAD: OnceCell<(Arc<Loads>, usize)> = const { OnceCell::new() };
}

/// A connection counted on the worker whose thread drops it. It takes no bytes: a
/// connection's task fills one of the 128-byte steps tokio allocates tasks in, so a
/// guard that named its worker would make every idle connection a step larger. (The
/// tasks alive on a worker's runtime are no substitute: not all are connections.)
/// Only [`Loads::counted`] makes one, after counting.
struct InProgress(());

impl Drop for InProgress {
    fn drop(&mut self) {
        // Dropped on another thread only when the chosen worker's runtime had already
        // shut down and the task was dropped where it was spawned. The workers are then
        // ending: the chosen worker's count stays one too high, and the spawning worker's
        // falls by one or, at zero, saturates rather than wraps.
        let _ = WORKER_LOAD.try_with(|load| {
            if let Some((loads, me)) = load.get() {
                let _ = loads.0[*me]
                    .0
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
            }
        });
    }
}

/// A connection's task, counted on its worker while it lives. A struct, not an async
/// block: an async block would keep a second copy of the task it awaits
/// (rust-lang/rust#62958), and every idle connection would pay for it.
pub(super) struct Counted<F> {
    task: F,
    _in_progress: InProgress,
}

impl<F: Future> Future for Counted<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `task` is pinned whenever `self` is: it is never moved out of,
        // `Counted` has no Drop of its own that could move it, is not `repr(packed)`, and
        // is `Unpin` only when `F` is.
        unsafe { self.map_unchecked_mut(|c| &mut c.task) }.poll(cx)
    }
}
