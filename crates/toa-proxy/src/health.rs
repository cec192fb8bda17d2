//! Origin health: active TCP connect checks (interval, timeout, rise, fall) and passive
//! marking when a real connection fails. State is per origin address and port, shared by
//! every rule that uses it, and survives reloads through the [`HealthRegistry`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::error::{ConnectError, ConnectErrorKind};
use toa_config::HealthSettings;

pub struct OriginHealth {
    pub addr: SocketAddr,
    up: AtomicBool,
    /// Cleared while every rule that uses the origin has it in maint: no checks then.
    checked: AtomicBool,
    streak: Mutex<Streak>,
    /// Active-check timeout, kept for the log line.
    timeout: Duration,
}

/// Consecutive results in the direction opposite to the current state.
#[derive(Default)]
struct Streak {
    ok: u32,
    failed: u32,
    /// Why the latest failure failed: the down line names it.
    cause: Option<ConnectErrorKind>,
}

impl OriginHealth {
    /// A new origin starts up: a first connection should not wait for `rise` checks.
    pub fn new(addr: SocketAddr, timeout: Duration) -> OriginHealth {
        OriginHealth {
            addr,
            up: AtomicBool::new(true),
            checked: AtomicBool::new(true),
            streak: Mutex::new(Streak::default()),
            timeout,
        }
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Whether active checks run (not while every rule has the origin in maint).
    pub fn is_checked(&self) -> bool {
        self.checked.load(Ordering::Relaxed)
    }

    pub fn set_checked(&self, checked: bool) {
        self.checked.store(checked, Ordering::Relaxed);
    }

    /// Why the latest failed check or connection failed, if any did.
    pub fn last_failure(&self) -> Option<ConnectErrorKind> {
        self.streak.lock().unwrap_or_else(|p| p.into_inner()).cause
    }

    /// Records one active check (`Err`: why it failed); flips the state after `rise`
    /// successes or `fall` failures in a row.
    pub fn record_check(&self, result: Result<(), ConnectErrorKind>, rise: u32, fall: u32) {
        let mut streak = self.streak.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(cause) = result {
            streak.cause = Some(cause);
        }
        if result.is_ok() {
            streak.failed = 0;
            streak.ok += 1;
            if !self.is_up() && streak.ok >= rise {
                self.up.store(true, Ordering::Relaxed);
                tracing::info!(origin = %self.addr, "origin up: {rise} checks passed");
            }
        } else {
            streak.ok = 0;
            streak.failed += 1;
            if self.is_up() && streak.failed >= fall {
                self.up.store(false, Ordering::Relaxed);
                let cause = streak.cause.map_or("unknown", ConnectErrorKind::name);
                tracing::warn!(origin = %self.addr, cause, "origin down: {fall} checks failed, the last: {cause} (timeout {}ms)", self.timeout.as_millis());
            }
        }
    }

    /// A client connection could not reach the origin (passive check). It counts like a
    /// failed active check, so `fall` failures of either kind take the origin out, and a
    /// single lost SYN does not empty a one-origin rule. The client itself is retried on
    /// another origin.
    pub fn mark_failed(&self, cause: ConnectErrorKind, rise: u32, fall: u32) {
        self.record_check(Err(cause), rise, fall);
    }
}

/// Every checked origin, by address and port.
#[derive(Default)]
pub struct HealthRegistry {
    origins: Mutex<HashMap<SocketAddr, Arc<OriginHealth>>>,
}

impl HealthRegistry {
    /// The shared state for `addr`, created (up) on first use.
    pub fn get(&self, addr: SocketAddr, settings: &HealthSettings) -> Arc<OriginHealth> {
        let mut map = self.origins.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(addr)
            .or_insert_with(|| Arc::new(OriginHealth::new(addr, settings.timeout)))
            .clone()
    }

    /// The state for `addr`, if a rule checks it.
    pub fn find(&self, addr: SocketAddr) -> Option<Arc<OriginHealth>> {
        let map = self.origins.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&addr).cloned()
    }

    /// Forgets origins no rule uses any more (after a reload).
    pub fn retain(&self, keep: &[SocketAddr]) {
        let mut map = self.origins.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|addr, _| keep.contains(addr));
    }

    /// (address, up) for every origin, sorted, for metrics.
    pub fn snapshot(&self) -> Vec<(SocketAddr, bool)> {
        let map = self.origins.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<_> = map.values().map(|h| (h.addr, h.is_up())).collect();
        v.sort();
        v
    }

    /// Starts one check loop per origin in `addrs`; they stop when `stop` is cancelled.
    pub fn spawn_checks(
        &self,
        addrs: &[SocketAddr],
        settings: &HealthSettings,
        stop: &CancellationToken,
        tasks: &TaskTracker,
    ) {
        for addr in addrs {
            let health = self.get(*addr, settings);
            tasks.spawn(check_loop(health, settings.clone(), stop.clone()));
        }
    }
}

async fn check_loop(health: Arc<OriginHealth>, settings: HealthSettings, stop: CancellationToken) {
    let mut ticker = tokio::time::interval(settings.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        if !health.is_checked() {
            continue;
        }
        let result =
            match tokio::time::timeout(settings.timeout, TcpStream::connect(health.addr)).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => match ConnectError::from_io(health.addr, e) {
                    e @ ConnectError::Local { .. } => {
                        // The proxy's own ports or descriptors ran out: says nothing about the origin.
                        tracing::debug!(origin = %health.addr, "health check skipped: {e}");
                        continue;
                    }
                    e => Err(e.kind()),
                },
                Err(_) => Err(ConnectErrorKind::Timeout),
            };
        health.record_check(result, settings.rise, settings.fall);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> OriginHealth {
        OriginHealth::new("198.18.2.2:80".parse().unwrap(), Duration::from_secs(1))
    }

    #[test]
    fn goes_down_after_fall_failures_and_up_after_rise_successes() {
        let h = origin();
        h.record_check(Err(ConnectErrorKind::Refused), 2, 3);
        h.record_check(Err(ConnectErrorKind::Refused), 2, 3);
        assert!(h.is_up());
        h.record_check(Err(ConnectErrorKind::Refused), 2, 3);
        assert!(!h.is_up());
        h.record_check(Ok(()), 2, 3);
        assert!(!h.is_up());
        h.record_check(Ok(()), 2, 3);
        assert!(h.is_up());
    }

    #[test]
    fn a_success_resets_the_failure_streak() {
        let h = origin();
        for _ in 0..5 {
            h.record_check(Err(ConnectErrorKind::Refused), 2, 3);
            h.record_check(Err(ConnectErrorKind::Refused), 2, 3);
            h.record_check(Ok(()), 2, 3);
        }
        assert!(h.is_up());
    }

    #[test]
    fn failed_client_connects_count_like_failed_checks() {
        let h = origin();
        h.mark_failed(ConnectErrorKind::Timeout, 2, 2);
        h.record_check(Err(ConnectErrorKind::Refused), 2, 2);
        assert!(!h.is_up());
        h.record_check(Ok(()), 2, 3);
        h.record_check(Ok(()), 2, 3);
        assert!(h.is_up());
    }

    #[tokio::test]
    async fn active_check_finds_a_closed_port_down_and_an_open_one_up() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = listener.local_addr().unwrap();
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let settings = HealthSettings {
            interval: Duration::from_millis(10),
            timeout: Duration::from_millis(200),
            rise: 1,
            fall: 2,
        };
        let reg = HealthRegistry::default();
        let (stop, tasks) = (CancellationToken::new(), TaskTracker::new());
        reg.spawn_checks(&[open, closed], &settings, &stop, &tasks);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let snapshot = reg.snapshot();
        assert!(
            snapshot.contains(&(open, true)) && snapshot.contains(&(closed, false)),
            "{snapshot:?}"
        );
        stop.cancel();
        tasks.close();
        tasks.wait().await;
    }
}
