//! Session persistence: remembers each client IP's origin for the TTL after its last
//! connection, so a client stays put even when the hash ring's usable set changes.
//! New clients (and clients whose origin went down) are placed by the consistent hash.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Backend, ConsistentHash, Selector};

/// Expired entries are swept when the table grows past this many since the last sweep.
const SWEEP_EVERY: usize = 4096;

pub struct Persistent {
    hash: ConsistentHash,
    ttl: Duration,
    table: Mutex<Table>,
}

struct Table {
    entries: HashMap<IpAddr, (usize, Instant)>,
    size_at_last_sweep: usize,
}

impl Persistent {
    pub fn new(hash: ConsistentHash, ttl: Duration) -> Persistent {
        Persistent {
            hash,
            ttl,
            table: Mutex::new(Table {
                entries: HashMap::new(),
                size_at_last_sweep: 0,
            }),
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
        if let Some((i, seen)) = table.entries.get(&client).copied()
            && now.duration_since(seen) < self.ttl
            && usable(i)
        {
            table.entries.insert(client, (i, now));
            return Some(i);
        }
        let chosen = self.hash.select(client, backends, usable)?;
        table.entries.insert(client, (chosen, now));
        if table.entries.len() > table.size_at_last_sweep + SWEEP_EVERY {
            let ttl = self.ttl;
            table
                .entries
                .retain(|_, (_, seen)| now.duration_since(*seen) < ttl);
            table.size_at_last_sweep = table.entries.len();
        }
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

    #[test]
    fn client_sticks_to_its_origin_after_the_ring_changes_until_ttl() {
        let b = backends(&[1, 1, 1]);
        let p = Persistent::new(ConsistentHash::new(&[1, 1, 1]), Duration::from_secs(60));
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
}
