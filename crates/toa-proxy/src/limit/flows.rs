//! Room for new UDP flows under pressure: one rule's open flows (across its listeners and
//! reloads) ordered by their last activity, so that at `max_flows` the rule's least
//! recently active flow ends to admit a new one, and at `max_connections_per_client` the
//! client's own least recently active flow does. A flood therefore recycles the flood's
//! own flows first, and a flow that keeps talking outlives any number of silent ones.
//!
//! Datagrams stamp a flow's activity without this index's lock; a flow is filed under
//! its activity when filed, never later than its real one. Before the oldest entry is
//! evicted its real activity is read: a flow active since is filed again under it, and
//! the search goes on. So the flow evicted is the least recently active one, exactly up
//! to [`REFILE_MAX`] refilings per eviction.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, Weak};

use std::net::SocketAddr;

use super::Held;

/// A UDP flow as its rule's index sees it (the flow type itself lives with the UDP path).
pub(crate) trait Evictable: Send + Sync {
    fn id(&self) -> u64;
    /// The client the flow is for (its address decides the per-client cap).
    fn client(&self) -> SocketAddr;
    /// Activity in ms, stamped by datagrams without the index's lock.
    fn last_active(&self) -> u64;
    /// The activity it is filed under; only [`FlowLru`] files flows, under its lock.
    fn filed(&self) -> u64;
    fn filed_at(&self, at: u64);
    /// Ends the flow now and hands over its places; `None` if another eviction took them.
    fn evict(&self) -> Option<Held>;
}

/// (activity in ms, flow id): unique per flow.
type Key = (u64, u64);

/// Flows filed again per eviction at most: past it the oldest entry is evicted as it is,
/// so one eviction stays cheap even when every flow was active since it was filed.
const REFILE_MAX: usize = 64;

/// The open flows of one UDP rule, least recently active first.
#[derive(Default)]
pub(crate) struct FlowLru {
    index: Mutex<Index>,
}

#[derive(Default)]
struct Index {
    all: BTreeMap<Key, (IpAddr, Weak<dyn Evictable>)>,
    /// The keys of each client's flows; a client with no open flow has no entry.
    by_client: HashMap<IpAddr, BTreeSet<Key>>,
}

impl Index {
    fn file(&mut self, key: Key, client: IpAddr, flow: Weak<dyn Evictable>) {
        self.all.insert(key, (client, flow));
        self.by_client.entry(client).or_default().insert(key);
    }

    fn unfile(&mut self, key: Key) {
        let Some((client, _)) = self.all.remove(&key) else {
            return;
        };
        if let Some(keys) = self.by_client.get_mut(&client) {
            keys.remove(&key);
            if keys.is_empty() {
                self.by_client.remove(&client);
            }
        }
    }
}

impl FlowLru {
    /// Files a new flow under its activity now.
    pub fn insert(&self, flow: &Arc<dyn Evictable>) {
        let mut index = self.index.lock().unwrap_or_else(|p| p.into_inner());
        let at = flow.last_active();
        flow.filed_at(at);
        index.file((at, flow.id()), flow.client().ip(), Arc::downgrade(flow));
    }

    /// Forgets `flow` (it ended); nothing if it was evicted.
    pub fn remove(&self, flow: &dyn Evictable) {
        let mut index = self.index.lock().unwrap_or_else(|p| p.into_inner());
        index.unfile((flow.filed(), flow.id()));
    }

    /// Takes the least recently active flow of the rule (`client` `None`) or of `client`
    /// out of the index; the caller evicts it. `None`: no flow to take.
    pub fn take_oldest(&self, client: Option<IpAddr>) -> Option<Arc<dyn Evictable>> {
        // Declared before the lock guard, so dropped after it: a flow's last reference
        // may drop here, and its drop takes this lock (`remove`).
        let mut refiled = Vec::new();
        let mut index = self.index.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let key = match client {
                None => *index.all.keys().next()?,
                Some(ip) => *index.by_client.get(&ip)?.first()?,
            };
            let (ip, weak) = index.all.get(&key).cloned()?;
            index.unfile(key);
            let Some(flow) = weak.upgrade() else {
                // Ending right now; its drop finds nothing left to remove.
                continue;
            };
            let at = flow.last_active();
            if at > key.0 && refiled.len() < REFILE_MAX {
                flow.filed_at(at);
                index.file((at, key.1), ip, weak);
                refiled.push(flow);
                continue;
            }
            return Some(flow);
        }
    }
}
