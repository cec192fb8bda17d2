//! Idle timeouts and the shutdown abort for the connections of one listener on one accept
//! worker: one sweeper task wakes the connections whose idle deadline passed, and all of
//! them when the proxy aborts, so a connection holds neither a timer (tokio's `Sleep`,
//! 184 bytes) nor a cancellation wait (72 bytes) of its own, only a slot number here.
//!
//! The sweep runs every [`tick`] of the shortest idle timeout among its connections, so a
//! connection closes at most one tick (≤ 1 s, and ≤ a tenth of its timeout) after its
//! deadline. A connection's slot holds the deadline it last saw; moving bytes only pushes
//! its deadline later, so when the sweep wakes it, it checks its own activity and either
//! ends or sets a new deadline.

use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Activity, CloseReason};

/// How often the sweep runs for connections with `idle_timeout`: a tenth of it, at most 1 s.
pub fn tick(idle_timeout: Duration) -> Duration {
    (idle_timeout / 10).clamp(Duration::from_millis(1), Duration::from_secs(1))
}

/// The connections of one listener on one accept worker, as the sweeper sees them.
pub struct Sweep {
    state: Mutex<State>,
    /// Wakes the sweeper when its first connection arrives, and when this is dropped.
    sweeper: Arc<Notify>,
}

#[derive(Default)]
struct State {
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// Occupied slots.
    open: usize,
    aborted: bool,
    /// The sweep interval: [`tick`] of the shortest idle timeout registered so far.
    tick: Option<Duration>,
}

#[derive(Default)]
struct Slot {
    /// `None`: a free slot.
    waker: Option<Waker>,
    /// When the sweep wakes this connection; `None` once woken, until it looks again.
    due: Option<Instant>,
}

impl Sweep {
    /// A sweep whose sweeper task runs on the current runtime until the `Sweep` is dropped
    /// (by the accept loop and every connection) or `abort` fires.
    pub fn start(abort: CancellationToken) -> Arc<Sweep> {
        let sweeper = Arc::new(Notify::new());
        let sweep = Arc::new(Sweep {
            state: Mutex::new(State::default()),
            sweeper: sweeper.clone(),
        });
        tokio::spawn(run(Arc::downgrade(&sweep), sweeper, abort));
        sweep
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Sweep {
    fn drop(&mut self) {
        self.sweeper.notify_one();
    }
}

async fn run(sweep: Weak<Sweep>, wake: Arc<Notify>, abort: CancellationToken) {
    loop {
        let tick = {
            let Some(sweep) = sweep.upgrade() else { return };
            let state = sweep.state();
            (state.open > 0).then_some(state.tick).flatten()
        };
        tokio::select! {
            () = abort.cancelled() => {
                if let Some(sweep) = sweep.upgrade() {
                    let mut state = sweep.state();
                    state.aborted = true;
                    state.slots.iter().filter_map(|s| s.waker.as_ref()).for_each(Waker::wake_by_ref);
                }
                return;
            }
            () = wake.notified(), if tick.is_none() => {}
            () = tokio::time::sleep(tick.unwrap_or_default()), if tick.is_some() => {
                let Some(sweep) = sweep.upgrade() else { return };
                let now = Instant::now();
                let mut state = sweep.state();
                for slot in &mut state.slots {
                    if let Some(waker) = &slot.waker
                        && slot.due.is_some_and(|due| due <= now)
                    {
                        slot.due = None;
                        waker.wake_by_ref();
                    }
                }
            }
        }
    }
}

/// One connection's place in a [`Sweep`], taken at its first poll and given back on drop.
pub(super) struct Registration<'a> {
    sweep: &'a Sweep,
    slot: Option<u32>,
}

impl<'a> Registration<'a> {
    pub(super) fn new(sweep: &'a Sweep) -> Registration<'a> {
        Registration { sweep, slot: None }
    }

    /// Ready when the connection has idled out or the proxy aborts it.
    pub(super) fn poll(
        &mut self,
        cx: &mut Context<'_>,
        activity: &Activity,
        idle_timeout: Duration,
    ) -> Poll<CloseReason> {
        let mut state = self.sweep.state();
        if state.aborted {
            return Poll::Ready(CloseReason::Shutdown);
        }
        let index = match self.slot {
            Some(i) => i as usize,
            None => {
                let i = match state.free.pop() {
                    Some(i) => i as usize,
                    None => {
                        state.slots.push(Slot::default());
                        state.slots.len() - 1
                    }
                };
                self.slot = Some(i as u32);
                state.open += 1;
                let tick = tick(idle_timeout);
                state.tick = Some(state.tick.map_or(tick, |t| t.min(tick)));
                if state.open == 1 {
                    self.sweep.sweeper.notify_one();
                }
                i
            }
        };
        let slot = &mut state.slots[index];
        if slot.due.is_none() {
            let deadline = activity.idle_deadline(idle_timeout);
            if Instant::now() >= deadline {
                return Poll::Ready(CloseReason::IdleTimeout);
            }
            slot.due = Some(deadline);
        }
        match &mut slot.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            w => *w = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        if let Some(i) = self.slot {
            let mut state = self.sweep.state();
            state.slots[i as usize] = Slot::default();
            state.free.push(i);
            state.open -= 1;
        }
    }
}
