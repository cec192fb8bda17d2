//! Origin selection: one file per algorithm behind [`Selector`] (pingora's `BackendSelection`).
//! Selectors only choose among the backends `usable` admits; health lives in [`crate::health`],
//! an origin's set state (ready, drain, maint) in [`crate::origin_state`].

mod consistent_hash;
mod least_connections;
mod persist;
mod round_robin;
mod weighted_round_robin;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

pub use consistent_hash::ConsistentHash;
pub use least_connections::LeastConnections;
pub use persist::{PersistTables, Persistent};
pub use round_robin::RoundRobin;
pub use weighted_round_robin::WeightedRoundRobin;

use crate::health::OriginHealth;
use crate::metrics::RuleMetrics;
use crate::origin_state::{OriginCell, OriginState};
use toa_config::{Balance, Rule};

/// One origin of one rule.
pub struct Backend {
    pub address: IpAddr,
    pub weight: u32,
    /// Shared by every rule that checks the same origin address and port.
    pub health: Arc<OriginHealth>,
    /// The state set for this origin in this rule and its open connections, shared with
    /// the rule's earlier runtimes.
    pub origin: Arc<OriginCell>,
}

impl Backend {
    pub fn is_up(&self) -> bool {
        self.health.is_up()
    }

    /// The set state, with weight 0 as drain.
    pub fn state(&self) -> OriginState {
        self.origin.state().with_weight(self.weight)
    }

    /// Whether a new connection may go here: ready and up.
    pub fn takes_new(&self) -> bool {
        self.state() == OriginState::Ready && self.is_up()
    }

    /// Counts a connection as open until the guard drops.
    pub fn open(self: &Arc<Self>) -> ActiveGuard {
        self.origin.active.fetch_add(1, Ordering::Relaxed);
        ActiveGuard(self.clone())
    }

    pub fn target(&self, port: u16) -> SocketAddr {
        SocketAddr::new(self.address, port)
    }
}

pub struct ActiveGuard(Arc<Backend>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.origin.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Picks the backend for a new connection.
pub trait Selector: Send + Sync {
    /// Index into `backends` of the chosen one, among those `usable` admits; `None` when none is.
    fn select(
        &self,
        client: IpAddr,
        backends: &[Arc<Backend>],
        usable: &dyn Fn(usize) -> bool,
    ) -> Option<usize>;
}

/// Indices `0..n` starting at the next turn of `counter`, wrapping around: the order in
/// which rotating selectors try backends.
fn rotation(counter: &AtomicUsize, n: usize) -> impl Iterator<Item = usize> {
    let start = counter.fetch_add(1, Ordering::Relaxed);
    (0..n).map(move |k| (start + k) % n)
}

/// The selector a rule asks for: session persistence wins, then the `balance` key;
/// round robin becomes weighted when the weights differ.
/// Session persistence keeps its clients in the rule's table from `persist` (so they
/// survive reloads) and counts the table and evictions in the rule's `metrics`.
pub fn selector_for(
    rule: &Rule,
    persist: &PersistTables,
    metrics: &Arc<RuleMetrics>,
) -> Box<dyn Selector> {
    let weights: Vec<u32> = rule.origins.iter().map(|o| o.weight).collect();
    if let Some(ttl) = rule.session_persist {
        return Box::new(Persistent::new(
            ConsistentHash::new(&weights),
            ttl,
            persist.get(&rule.tag, rule.session_persist_max),
            metrics.clone(),
        ));
    }
    match rule.balance {
        Balance::LeastConnections => Box::new(LeastConnections::default()),
        Balance::RoundRobin if weights.windows(2).all(|w| w[0] == w[1]) => {
            Box::new(RoundRobin::default())
        }
        Balance::RoundRobin => Box::new(WeightedRoundRobin::new(&weights)),
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;
    use std::time::Duration;

    pub fn backends(weights: &[u32]) -> Vec<Arc<Backend>> {
        weights
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let address: IpAddr = format!("198.18.2.{}", i + 2).parse().unwrap();
                Arc::new(Backend {
                    address,
                    weight: *w,
                    health: Arc::new(OriginHealth::new(
                        SocketAddr::new(address, 80),
                        Duration::from_secs(1),
                    )),
                    origin: Default::default(),
                })
            })
            .collect()
    }

    pub fn client(n: u32) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::from(0xC612_0100 + n))
    }

    /// How many of `n` selections from one client land on each backend.
    pub fn tally(
        s: &dyn Selector,
        b: &[Arc<Backend>],
        n: usize,
        usable: &dyn Fn(usize) -> bool,
    ) -> Vec<usize> {
        let mut counts = vec![0; b.len()];
        for i in 0..n {
            counts[s.select(client(i as u32 % 7), b, usable).unwrap()] += 1;
        }
        counts
    }
}
