//! Rate-limited log lines: during an outage every connection hits the same error, and one
//! line per second tells the operator as much as ten thousand. [`RefusalLog`] throttles
//! refused clients, TCP and UDP alike (`RuleRuntime::refused` logs them).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use toa_common::names::Named;

use crate::metrics::{DropReason, Reject};

/// Lets one event through per `every`; counts the ones held back in between.
pub struct LogThrottle {
    every: Duration,
    /// Milliseconds since [`epoch`] before which events are held back.
    next_ms: AtomicU64,
    held_back: AtomicU64,
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

impl LogThrottle {
    pub fn new(every: Duration) -> LogThrottle {
        LogThrottle {
            every,
            next_ms: AtomicU64::new(0),
            held_back: AtomicU64::new(0),
        }
    }

    /// `Some(n)` when this event should be logged, `n` being how many were held back
    /// since the last one; `None` when it should not.
    pub fn allow(&self) -> Option<u64> {
        let now = epoch().elapsed().as_millis() as u64;
        let next = self.next_ms.load(Ordering::Relaxed);
        if now >= next
            && self
                .next_ms
                .compare_exchange(
                    next,
                    now + self.every.as_millis() as u64,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            return Some(self.held_back.swap(0, Ordering::Relaxed));
        }
        self.held_back.fetch_add(1, Ordering::Relaxed);
        None
    }
}

/// Refusal reasons a rule can log: TCP's [`Reject`] or UDP's [`DropReason`], each
/// reason its own throttle.
const REFUSAL_SLOTS: usize = if Reject::ALL.len() > DropReason::ALL.len() {
    Reject::ALL.len()
} else {
    DropReason::ALL.len()
};

/// A rule's refused clients are logged at most once a second per reason, so a flood of
/// refusals writes a line a second and the line says how many it stands for.
pub struct RefusalLog([LogThrottle; REFUSAL_SLOTS]);

impl Default for RefusalLog {
    fn default() -> Self {
        RefusalLog(std::array::from_fn(|_| {
            LogThrottle::new(Duration::from_secs(1))
        }))
    }
}

impl RefusalLog {
    /// `Some(suppressed)` when a refusal for `reason` should be logged now (`suppressed`:
    /// how many of that reason were held back since the last line); `None` when not.
    pub fn allow<R: Named + PartialEq>(&self, reason: R) -> Option<u64> {
        let slot = R::all().iter().position(|r| *r == reason).unwrap_or(0);
        self.0[slot].allow()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_event_per_period_passes_and_the_rest_are_counted() {
        let t = LogThrottle::new(Duration::from_millis(200));
        assert_eq!(t.allow(), Some(0));
        for _ in 0..5 {
            assert_eq!(t.allow(), None);
        }
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(t.allow(), Some(5));
    }
}
