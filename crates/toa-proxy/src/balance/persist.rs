//! Session persistence: remembers each client IP's origin for the TTL after its last
//! connection, so a client stays put even when the hash ring's usable set changes.
//! New clients (and clients whose origin went down) are placed by the consistent hash.
//! The table holds at most `session_persist_max` clients: beyond that the least recently
//! seen one is evicted (and counted), so a flood of source addresses costs bounded memory.
//! It remembers origin addresses, not positions in the origin list, and lives in the
//! [`PersistTables`] by rule tag: a reload or a DNS re-resolution that keeps a client's
//! origin keeps the client there, however the list around it was reordered or grown.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use lru::LruCache;

use super::{Backend, ConsistentHash, Selector};
use crate::metrics::RuleMetrics;

/// Client → (origin address, last seen), least recently seen first out.
pub type PersistTable = Mutex<LruCache<IpAddr, (IpAddr, Instant)>>;

/// Each session-persistent rule's table by tag, shared by the rule's runtimes across
/// reloads. Held weakly: a table lives as long as a runtime of its rule does, so a rule
/// that is removed (and whose last connection has ended) leaves nothing behind.
#[derive(Default)]
pub struct PersistTables {
    tables: Mutex<HashMap<String, Weak<PersistTable>>>,
}

impl PersistTables {
    /// The table of rule `tag`, capped at `max_clients` (a reload may change the cap: the
    /// least recently seen clients beyond a lowered one are dropped).
    pub fn get(&self, tag: &str, max_clients: usize) -> Arc<PersistTable> {
        let cap = NonZeroUsize::new(max_clients).unwrap_or(NonZeroUsize::MIN);
        let mut tables = self.tables.lock().unwrap_or_else(|p| p.into_inner());
        tables.retain(|_, t| t.strong_count() > 0);
        if let Some(table) = tables.get(tag).and_then(Weak::upgrade) {
            table.lock().unwrap_or_else(|p| p.into_inner()).resize(cap);
            return table;
        }
        let table = Arc::new(Mutex::new(LruCache::new(cap)));
        tables.insert(tag.to_string(), Arc::downgrade(&table));
        table
    }
}

pub struct Persistent {
    hash: ConsistentHash,
    ttl: Duration,
    table: Arc<PersistTable>,
    metrics: Arc<RuleMetrics>,
}

impl Persistent {
    pub fn new(
        hash: ConsistentHash,
        ttl: Duration,
        table: Arc<PersistTable>,
        metrics: Arc<RuleMetrics>,
    ) -> Persistent {
        Persistent {
            hash,
            ttl,
            table,
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
        if let Some((origin, seen)) = table.get(&client).copied()
            && now.duration_since(seen) < self.ttl
            && let Some(i) = backends.iter().position(|b| b.address == origin)
            && usable(i)
        {
            table.put(client, (origin, now));
            return Some(i);
        }
        let chosen = self.hash.select(client, backends, usable)?;
        let origin = backends.get(chosen)?.address;
        if let Some((evicted, (_, seen))) = table.push(client, (origin, now))
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
            Arc::new(Mutex::new(LruCache::new(NonZeroUsize::new(max).unwrap()))),
            Arc::new(RuleMetrics::default()),
        )
    }

    #[test]
    fn client_stays_on_its_origin_after_a_reload_that_reorders_and_adds_origins() {
        let tables = PersistTables::default();
        let ttl = Duration::from_secs(60);
        let metrics = Arc::new(RuleMetrics::default());
        let before = backends(&[1, 1, 1]);
        let p = Persistent::new(
            ConsistentHash::new(&[1, 1, 1]),
            ttl,
            tables.get("web", 100),
            metrics.clone(),
        );
        let t0 = Instant::now();
        // Pin each client to origin B (198.18.2.3, index 1): the other two are down.
        let clients: Vec<IpAddr> = (0..20).map(client).collect();
        for c in &clients {
            assert_eq!(p.select_at(t0, *c, &before, &|i| i == 1), Some(1));
        }
        // The reload reverses the list and adds two origins, so B moves to index 3 and the
        // hash would place most clients elsewhere; the old runtime is still alive.
        let mut after = before.clone();
        after.reverse();
        after.splice(0..0, backends(&[1, 1, 1, 1, 1]).into_iter().skip(3));
        let b = after.iter().position(|o| o.address == before[1].address);
        assert_eq!(b, Some(3));
        let reloaded = Persistent::new(
            ConsistentHash::new(&[1, 1, 1, 1, 1]),
            ttl,
            tables.get("web", 100),
            metrics,
        );
        drop(p);
        for c in &clients {
            assert_eq!(reloaded.select_at(t0, *c, &after, &|_| true), b);
        }
    }

    #[test]
    fn a_removed_rule_leaves_no_table_behind() {
        let tables = PersistTables::default();
        let held = tables.get("web", 10);
        drop(tables.get("gone", 10));
        tables.get("web", 5);
        assert_eq!(tables.tables.lock().unwrap().len(), 1);
        assert_eq!(
            held.lock().unwrap().cap().get(),
            5,
            "the reload's cap applies"
        );
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
