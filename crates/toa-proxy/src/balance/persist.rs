//! Session persistence: remembers each client IP's origin for the TTL after its last
//! connection, so a client stays put even when the hash ring's usable set changes.
//! New clients (and clients whose origin went down) are placed by the consistent hash.
//! The table holds at most `session_persist_max` clients: beyond that the least recently
//! seen one is evicted (and counted), so a flood of source addresses costs bounded memory.

use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lru::LruCache;

use super::{Backend, ConsistentHash, Selector};
use crate::metrics::RuleMetrics;

pub struct Persistent {
    hash: ConsistentHash,
    ttl: Duration,
    /// Client → (backend index, last seen), least recently seen first out.
    table: Mutex<LruCache<IpAddr, (usize, Instant)>>,
    metrics: Arc<RuleMetrics>,
}

impl Persistent {
    pub fn new(
        hash: ConsistentHash,
        ttl: Duration,
        max_clients: usize,
        metrics: Arc<RuleMetrics>,
    ) -> Persistent {
        let cap = NonZeroUsize::new(max_clients).unwrap_or(NonZeroUsize::MIN);
        Persistent {
            hash,
            ttl,
            table: Mutex::new(LruCache::new(cap)),
            metrics,
        }
    }

    fn select_at(
        &self,
        now: Instant,
        client: IpAddr,
        backends: &[Arc<Backend>],
        usable: &dyn Fn(usize) -> bool,
    ) -> Option<usize> {
        // Poisoning only means another thread panicked mid-insert; the map stays valid.
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((i, seen)) = table.get(&client).copied()
            && now.duration_since(seen) < self.ttl
            && usable(i)
        {
            table.put(client, (i, now));
            return Some(i);
        }
        let chosen = self.hash.select(client, backends, usable)?;
        if let Some((evicted, (_, seen))) = table.push(client, (chosen, now))
            && evicted != client
            && now.duration_since(seen) < self.ttl
        {
            // A client still within its TTL was forgotten to make room.
            self.metrics
                .persist_evictions
                .fetch_add(1, Ordering::Relaxed);
        }
        self.metrics
            .persist_clients
            .store(table.len() as u64, Ordering::Relaxed);
        Some(chosen)
    }
}

impl Selector for Persistent {
    fn select(
        &self,
        client: IpAddr,
        backends: &[Arc<Backend>],
        usable: &dyn Fn(usize) -> bool,
    ) -> Option<usize> {
        self.select_at(Instant::now(), client, backends, usable)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    fn persistent(ttl: Duration, max: usize) -> Persistent {
        Persistent::new(
            ConsistentHash::new(&[1, 1, 1]),
            ttl,
            max,
            Arc::new(RuleMetrics::default()),
        )
    }

    #[test]
    fn client_sticks_to_its_origin_after_the_ring_changes_until_ttl() {
        let b = backends(&[1, 1, 1]);
        let p = persistent(Duration::from_secs(60), 100);
        let t0 = Instant::now();
        let c = client(7);
        let first = p.select_at(t0, c, &b, &|_| true).unwrap();
        // Its origin goes down: the client moves, and the new origin is remembered...
        let moved = p.select_at(t0, c, &b, &|i| i != first).unwrap();
        assert_ne!(moved, first);
        // ...so it stays there within the TTL even after the first origin is back,
        for k in 1..5 {
            assert_eq!(
                p.select_at(t0 + Duration::from_secs(10 * k), c, &b, &|_| true),
                Some(moved)
            );
        }
        // and once the TTL passes without a connection the hash places it afresh.
        let later = t0 + Duration::from_secs(40) + Duration::from_secs(61);
        assert_eq!(p.select_at(later, c, &b, &|_| true), Some(first));
    }

    #[test]
    fn the_table_is_capped_and_the_least_recently_seen_client_is_evicted() {
        let b = backends(&[1, 1, 1]);
        let p = persistent(Duration::from_secs(60), 3);
        let t0 = Instant::now();
        for n in 0..10 {
            p.select_at(t0, client(n), &b, &|_| true);
        }
        assert_eq!(p.table.lock().unwrap().len(), 3);
        assert_eq!(p.metrics.persist_evictions.load(Ordering::Relaxed), 7);
        assert_eq!(p.metrics.persist_clients.load(Ordering::Relaxed), 3);
    }
}
