//! Flows and the per-listener flow table. A flow is one client talking to one listener:
//! the datagrams' source address and port, and on `accept_proxy` rules the client the
//! upstream's header names (one upstream port may carry many clients, one after another).
//! It owns a connected upstream socket, so the origin's replies on that socket belong to
//! exactly that client. A flow ends after `udp_idle_timeout` without a datagram in either
//! direction, or when it is evicted to admit a new flow ([`super::evict`]).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use toa_config::Protocol;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use super::client_ip::{DatagramWriter, FlowHeaders, FlowInfo};
use crate::access_log::{self, Entry, Event};
use crate::balance::ActiveGuard;
use crate::limit::{Evictable, Held};
use crate::state::UdpRule;
use toa_pktinfo::ListenSocket;

/// Milliseconds since the process's first flow clock read: one clock for every listener,
/// so flows of one rule on different listeners compare by activity.
pub fn now_ms() -> u64 {
    static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);
    EPOCH.elapsed().as_millis() as u64
}

/// What a flow is found by: where its datagrams come from (as the socket reports it), the
/// port they were sent to (one of a steered range's, which a client may use several of),
/// and the client it carries (the source itself, normalized, unless a header named another).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub peer: SocketAddr,
    pub port: u16,
    pub client: SocketAddr,
}

pub struct Flow {
    /// What the flow was opened with (a reload does not move open flows).
    pub setup: FlowSetup,
    pub opened: Instant,
    /// What this flow moved, for the access log line.
    pub counts: FlowCounts,
    /// Cancelled when the flow ends early: evicted, or its listener stopped. Its relay
    /// task then ends, and the flow table no longer hands it out.
    pub end: CancellationToken,
    /// The rule's flow slot and the client's, until the flow ends or an eviction hands
    /// them to the flow that replaces it.
    held: Mutex<Option<Held>>,
    /// Set once a datagram carrying `setup.headers.first` reached the origin's socket.
    first_delivered: AtomicBool,
    /// [`now_ms`] at the last datagram either way.
    last_seen: AtomicU64,
    /// The activity this flow is filed under in its rule's [`super::evict::FlowLru`].
    filed: AtomicU64,
}

/// Everything a flow is opened with.
pub struct FlowSetup {
    pub info: FlowInfo,
    /// The client and the address it sent to, in the listening socket's form (v4-mapped
    /// on a dual-stack socket): replies are sent with these.
    pub peer: SocketAddr,
    pub local: IpAddr,
    /// The proxy address the client sent to, normalized: its access log `listen`.
    pub listen: SocketAddr,
    /// The port the client sent to; replies must leave from it.
    pub local_port: u16,
    /// Bound to `local_port` when that is not the listener's own port (a steered range):
    /// replies leave from it. Opened with the flow, closed with it.
    pub reply: Option<ListenSocket>,
    pub origin: SocketAddr,
    /// Connected to `origin`: the kernel only hands it datagrams from there.
    pub upstream: UdpSocket,
    pub writer: Arc<dyn DatagramWriter>,
    pub headers: FlowHeaders,
    /// `accept_proxy` with SPP: every datagram from the client side starts with an SPP
    /// header, removed before the payload goes on.
    pub spp_in: bool,
    /// The rule as it was when the flow opened (a reload does not move open flows).
    pub rule: Arc<UdpRule>,
    /// Held for the flow's life: the origin's active count.
    pub _open: ActiveGuard,
}

impl Flow {
    /// A new flow, filed in its rule's eviction index; `end` is cancelled with its listener.
    pub fn open(setup: FlowSetup, held: Held, end: CancellationToken) -> Arc<Flow> {
        let udp = &setup.rule.metrics.udp;
        udp.flows_total.fetch_add(1, Ordering::Relaxed);
        udp.flows_active.fetch_add(1, Ordering::Relaxed);
        let flow = Arc::new(Flow {
            setup,
            opened: Instant::now(),
            counts: FlowCounts::default(),
            end,
            held: Mutex::new(Some(held)),
            first_delivered: AtomicBool::new(false),
            last_seen: AtomicU64::new(now_ms()),
            filed: AtomicU64::new(0),
        });
        if let Some(lru) = &flow.setup.rule.limits.flows {
            let filed: Arc<dyn Evictable> = flow.clone();
            lru.insert(&filed);
        }
        flow
    }

    pub fn key(&self) -> FlowKey {
        FlowKey {
            peer: self.setup.peer,
            port: self.setup.local_port,
            client: self.setup.info.client,
        }
    }

    /// The header bytes for the next datagram to the origin.
    pub fn next_header(&self) -> (&[u8], &[u8]) {
        let first = if self.first_delivered.load(Ordering::Relaxed) {
            &[][..]
        } else {
            &self.setup.headers.first[..]
        };
        (first, &self.setup.headers.every)
    }

    /// Records that a datagram went to the origin (with `headers.first` if it was due).
    pub fn delivered(&self) {
        self.first_delivered.store(true, Ordering::Relaxed);
    }

    /// Marks the flow active now.
    pub fn touch(&self) {
        self.last_seen.store(now_ms(), Ordering::Relaxed);
    }

    /// Counts a datagram of `payload` bytes forwarded to the origin, in the rule and the flow.
    pub fn count_to_origin(&self, payload: usize) {
        let m = &self.setup.rule.metrics;
        m.udp.datagrams_to_origin.fetch_add(1, Ordering::Relaxed);
        m.bytes_to_origin
            .fetch_add(payload as u64, Ordering::Relaxed);
        self.counts
            .datagrams_to_origin
            .fetch_add(1, Ordering::Relaxed);
        self.counts
            .bytes_to_origin
            .fetch_add(payload as u64, Ordering::Relaxed);
    }

    /// Counts a datagram of `payload` bytes forwarded to the client, in the rule and the flow.
    pub fn count_to_client(&self, payload: usize) {
        let m = &self.setup.rule.metrics;
        m.udp.datagrams_to_client.fetch_add(1, Ordering::Relaxed);
        m.bytes_to_client
            .fetch_add(payload as u64, Ordering::Relaxed);
        self.counts
            .datagrams_to_client
            .fetch_add(1, Ordering::Relaxed);
        self.counts
            .bytes_to_client
            .fetch_add(payload as u64, Ordering::Relaxed);
    }
}

impl Flow {
    /// Writes the flow's access log line for `event` if its rule asks for one; `close` is
    /// why it ended.
    pub fn log(&self, event: Event, close: Option<&str>) {
        let settings = &self.setup.rule.settings;
        let wanted = match event {
            Event::Open => settings.access_log_open,
            Event::Close => settings.access_log,
        };
        if !wanted {
            return;
        }
        let c = &self.counts;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let entry = Entry {
            event,
            proto: Protocol::Udp,
            rule: &self.setup.rule.tag,
            client: self.setup.info.client,
            listen: self.setup.listen,
            proxy: self.setup.info.proxy,
            origin: self.setup.origin,
            client_ip_mode: self.setup.writer.name(),
            duration_ms: self.opened.elapsed().as_millis() as u64,
            bytes_to_origin: load(&c.bytes_to_origin),
            bytes_to_client: load(&c.bytes_to_client),
            datagrams_to_origin: Some(load(&c.datagrams_to_origin)),
            datagrams_to_client: Some(load(&c.datagrams_to_client)),
            close,
        };
        access_log::write(settings.access_log_format, &entry);
    }
}

#[derive(Default)]
pub struct FlowCounts {
    pub datagrams_to_origin: AtomicU64,
    pub datagrams_to_client: AtomicU64,
    pub bytes_to_origin: AtomicU64,
    pub bytes_to_client: AtomicU64,
}

impl Evictable for Flow {
    fn id(&self) -> u64 {
        self.setup.info.id
    }

    fn client(&self) -> SocketAddr {
        self.setup.info.client
    }

    fn last_active(&self) -> u64 {
        self.last_seen.load(Ordering::Relaxed)
    }

    fn filed(&self) -> u64 {
        self.filed.load(Ordering::Relaxed)
    }

    fn filed_at(&self, at: u64) {
        self.filed.store(at, Ordering::Relaxed);
    }

    /// Its relay task stops and its table forgets it.
    fn evict(&self) -> Option<Held> {
        self.end.cancel();
        self.held.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

impl Drop for Flow {
    fn drop(&mut self) {
        if let Some(lru) = &self.setup.rule.limits.flows {
            lru.remove(self);
        }
        self.setup
            .rule
            .metrics
            .udp
            .flows_active
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// The flows of one listener, by [`FlowKey`].
#[derive(Default)]
pub struct FlowTable {
    flows: Mutex<Flows>,
}

#[derive(Default)]
struct Flows {
    by_key: HashMap<FlowKey, Arc<Flow>>,
    /// `accept_proxy`: the client the last header from each source (and port it sent to)
    /// named. A PROXY v2 upstream sends the header on a flow's first datagram only, so its
    /// bare datagrams belong to that client. Only sources with such a flow open have an entry.
    latest: HashMap<(SocketAddr, u16), SocketAddr>,
}

impl Flows {
    /// The flow at `key`, marked active now, unless it has ended.
    fn touch(&self, key: &FlowKey) -> Option<Arc<Flow>> {
        let flow = self.by_key.get(key).filter(|f| !f.end.is_cancelled())?;
        flow.touch();
        Some(flow.clone())
    }
}

impl FlowTable {
    /// The flow at `key`, marked active now; `named`: a header named its client, so the
    /// source's bare datagrams go to it from now on. Touched under the table lock, so an
    /// expiry check cannot remove a flow between this lookup and the datagram it forwards.
    pub fn touch(&self, key: &FlowKey, named: bool) -> Option<Arc<Flow>> {
        let mut flows = self.flows.lock().unwrap_or_else(|p| p.into_inner());
        let flow = flows.touch(key)?;
        if named {
            flows.latest.insert((key.peer, key.port), key.client);
        }
        Some(flow)
    }

    /// The flow of the client the last header from `peer` to `port` named, marked active now.
    pub fn latest(&self, peer: SocketAddr, port: u16) -> Option<Arc<Flow>> {
        let flows = self.flows.lock().unwrap_or_else(|p| p.into_inner());
        let client = *flows.latest.get(&(peer, port))?;
        flows.touch(&FlowKey { peer, port, client })
    }

    pub fn insert(&self, flow: Arc<Flow>, named: bool) {
        let key = flow.key();
        let mut flows = self.flows.lock().unwrap_or_else(|p| p.into_inner());
        if named {
            flows.latest.insert((key.peer, key.port), key.client);
        }
        flows.by_key.insert(key, flow);
    }

    /// Removes `flow` if it has seen no datagram for `idle`; otherwise returns how long
    /// until it could have.
    pub fn expire(&self, flow: &Arc<Flow>, idle: Duration) -> Option<Duration> {
        let mut flows = self.flows.lock().unwrap_or_else(|p| p.into_inner());
        let idle_ms = idle.as_millis() as u64;
        let quiet = now_ms().saturating_sub(flow.last_active());
        if quiet < idle_ms {
            return Some(Duration::from_millis(idle_ms - quiet));
        }
        Self::remove_locked(&mut flows, flow);
        None
    }

    pub fn remove(&self, flow: &Arc<Flow>) {
        let mut flows = self.flows.lock().unwrap_or_else(|p| p.into_inner());
        Self::remove_locked(&mut flows, flow);
    }

    /// Removes `flow`, not a newer flow opened under its key after it was evicted.
    fn remove_locked(flows: &mut Flows, flow: &Arc<Flow>) {
        let key = flow.key();
        if flows.by_key.get(&key).is_some_and(|f| Arc::ptr_eq(f, flow)) {
            flows.by_key.remove(&key);
            if flows.latest.get(&(key.peer, key.port)) == Some(&key.client) {
                flows.latest.remove(&(key.peer, key.port));
            }
        }
    }

    pub fn len(&self) -> usize {
        self.flows
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .by_key
            .len()
    }
}
