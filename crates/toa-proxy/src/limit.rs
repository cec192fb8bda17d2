//! Connection and flow limits that stay exact across reloads. A [`Limit`] counts what is
//! open and compares with a maximum a reload may change at any time: lowering it with
//! more open than the new maximum admits nothing until enough have ended, raising it
//! admits exactly the difference. (A tokio `Semaphore` cannot do this: `forget_permits`
//! only removes free permits.) Each rule's limits live in the [`LimitRegistry`] by tag,
//! so a kept rule keeps its counts instead of getting a fresh quota per reload; with them,
//! `flows` orders a UDP rule's open flows by activity, for eviction at its limits.

mod flows;

pub(crate) use flows::{Evictable, FlowLru};

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use toa_config::{Config, Protocol, Rule, Transport};

/// A maximum that no limit sets: the count is kept, nothing is refused.
pub const UNLIMITED: usize = usize::MAX;

/// Open count against a maximum.
#[derive(Debug)]
pub struct Limit {
    max: AtomicUsize,
    open: AtomicUsize,
}

impl Limit {
    pub fn new(max: usize) -> Arc<Limit> {
        Arc::new(Limit {
            max: AtomicUsize::new(max),
            open: AtomicUsize::new(0),
        })
    }

    pub fn set_max(&self, max: usize) {
        self.max.store(max, Ordering::Relaxed);
    }

    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// One more open, or `None` at the maximum. Held until the guard drops.
    pub fn try_acquire(self: &Arc<Self>) -> Option<LimitGuard> {
        let max = self.max.load(Ordering::Relaxed);
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()?;
        Some(LimitGuard(self.clone()))
    }
}

/// One open connection or flow of a [`Limit`].
#[derive(Debug)]
pub struct LimitGuard(Arc<Limit>);

impl Drop for LimitGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Open connections per client IP of one rule, against `max_connections_per_client`.
#[derive(Debug)]
pub struct ClientCounts {
    max: AtomicUsize,
    /// Only clients with an open connection have an entry: the map is bounded by the
    /// rule's open connections.
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl ClientCounts {
    fn new() -> Arc<ClientCounts> {
        Arc::new(ClientCounts {
            max: AtomicUsize::new(UNLIMITED),
            open: Mutex::new(HashMap::new()),
        })
    }

    /// One more open connection of `client`, or `None` at the maximum. Counted even
    /// while the rule sets no maximum (one map update under a lock per connection): a
    /// reload that adds `max_connections_per_client` then finds the real counts.
    pub fn try_acquire(self: &Arc<Self>, client: IpAddr) -> Option<ClientGuard> {
        let max = self.max.load(Ordering::Relaxed);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(client).or_insert(0);
        if *n >= max {
            if *n == 0 {
                open.remove(&client);
            }
            return None;
        }
        *n += 1;
        Some(ClientGuard {
            counts: self.clone(),
            client,
        })
    }
}

/// One open connection of one client.
#[derive(Debug)]
pub struct ClientGuard {
    counts: Arc<ClientCounts>,
    client: IpAddr,
}

impl Drop for ClientGuard {
    fn drop(&mut self) {
        let mut open = self.counts.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.client);
            }
        }
    }
}

/// The limits of one rule: TCP connections (or UDP flows) and connections per client.
pub struct RuleLimits {
    pub open: Arc<Limit>,
    pub per_client: Arc<ClientCounts>,
    /// UDP rules: their open flows by activity, so that a full limit evicts the least
    /// recently active flow instead of refusing the new one. `None` on TCP rules.
    pub(crate) flows: Option<FlowLru>,
}

impl RuleLimits {
    /// Sets the maxima `rule` asks for (called once the reload can no longer fail).
    pub fn apply(&self, rule: &Rule) {
        self.open.set_max(match rule.transport {
            Transport::Tcp {
                max_connections, ..
            } => max_connections.unwrap_or(UNLIMITED),
            Transport::Udp { max_flows, .. } => max_flows,
        });
        self.per_client
            .max
            .store(rule.max_connections_per_client, Ordering::Relaxed);
    }
}

/// Every rule's limits by (protocol, tag), kept across reloads.
#[derive(Default)]
pub struct LimitRegistry {
    rules: Mutex<HashMap<(Protocol, String), Arc<RuleLimits>>>,
}

impl LimitRegistry {
    /// The limits of `rule`, created unlimited on first use; maxima change only in [`RuleLimits::apply`].
    pub fn get(&self, rule: &Rule) -> Arc<RuleLimits> {
        let mut rules = self.rules.lock().unwrap_or_else(|p| p.into_inner());
        rules
            .entry((rule.protocol(), rule.tag.clone()))
            .or_insert_with(|| {
                Arc::new(RuleLimits {
                    open: Limit::new(UNLIMITED),
                    per_client: ClientCounts::new(),
                    flows: (rule.protocol() == Protocol::Udp).then(FlowLru::default),
                })
            })
            .clone()
    }

    /// Forgets rules `config` no longer has once their last connection ended; until then a
    /// rule added back under the same tag still counts them.
    pub fn retain(&self, config: &Config) {
        let mut rules = self.rules.lock().unwrap_or_else(|p| p.into_inner());
        rules.retain(|(protocol, tag), limits| {
            limits.open.open() > 0
                || config
                    .rules
                    .iter()
                    .any(|r| r.protocol() == *protocol && r.tag == *tag)
        });
    }
}

/// A UDP flow's places under its rule's `max_flows` and its client's
/// `max_connections_per_client`.
pub struct Held {
    pub flow: LimitGuard,
    pub client: ClientGuard,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowering_below_the_open_count_admits_nothing_until_enough_end() {
        let limit = Limit::new(10);
        let mut held: Vec<_> = (0..8).map(|_| limit.try_acquire().unwrap()).collect();
        limit.set_max(4);
        assert!(limit.try_acquire().is_none());
        held.truncate(3);
        let one = limit.try_acquire().unwrap();
        assert!(limit.try_acquire().is_none());
        limit.set_max(10);
        let more: Vec<_> = (0..6).map(|_| limit.try_acquire().unwrap()).collect();
        assert!(limit.try_acquire().is_none());
        drop((one, more, held));
        assert_eq!(limit.open(), 0);
    }

    #[test]
    fn per_client_counts_are_per_address_and_forget_closed_clients() {
        let counts = ClientCounts::new();
        counts.max.store(2, Ordering::Relaxed);
        let a: IpAddr = "198.18.1.2".parse().unwrap();
        let b: IpAddr = "198.18.1.3".parse().unwrap();
        let held = [
            counts.try_acquire(a).unwrap(),
            counts.try_acquire(a).unwrap(),
        ];
        assert!(counts.try_acquire(a).is_none());
        let other = counts.try_acquire(b).unwrap();
        drop((held, other));
        assert!(counts.open.lock().unwrap().is_empty());
    }
}
