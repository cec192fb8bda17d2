//! Flows and the per-listener flow table. A flow is one client address and port talking to
//! one listener; it owns a connected upstream socket, so the origin's replies on that socket
//! belong to exactly that client. A flow ends after `udp_idle_timeout` without a datagram
//! in either direction.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;

use super::client_ip::{DatagramWriter, FlowHeaders, FlowInfo};
use crate::balance::ActiveGuard;
use crate::limit::{ClientGuard, LimitGuard};
use crate::server::RuleRuntime;

pub struct Flow {
    /// What the flow was opened with (a reload does not move open flows).
    pub setup: FlowSetup,
    pub opened: Instant,
    /// What this flow moved, for the access log line.
    pub counts: FlowCounts,
    /// Set once a datagram carrying `setup.headers.first` reached the origin's socket.
    first_delivered: AtomicBool,
    /// Milliseconds since the table's epoch at the last datagram either way.
    last_seen: AtomicU64,
}

/// Everything a flow is opened with.
pub struct FlowSetup {
    pub info: FlowInfo,
    /// The client and the address it sent to, in the listening socket's form (v4-mapped
    /// on a dual-stack socket): replies are sent with these.
    pub peer: SocketAddr,
    pub local: IpAddr,
    pub origin: SocketAddr,
    /// Connected to `origin`: the kernel only hands it datagrams from there.
    pub upstream: UdpSocket,
    pub writer: Arc<dyn DatagramWriter>,
    pub headers: FlowHeaders,
    /// `accept_proxy` with SPP: every datagram from the client side starts with an SPP
    /// header, removed before the payload goes on.
    pub spp_in: bool,
    /// The rule as it was when the flow opened (a reload does not move open flows).
    pub rule: Arc<RuleRuntime>,
    /// Held for the flow's life: the rule's flow cap, its per-client cap and the origin's active count.
    pub _permit: LimitGuard,
    pub _client: ClientGuard,
    pub _open: ActiveGuard,
}

impl Flow {
    pub fn new(setup: FlowSetup) -> Flow {
        let udp = &setup.rule.metrics.udp;
        udp.flows_total.fetch_add(1, Ordering::Relaxed);
        udp.flows_active.fetch_add(1, Ordering::Relaxed);
        Flow {
            setup,
            opened: Instant::now(),
            counts: FlowCounts::default(),
            first_delivered: AtomicBool::new(false),
            last_seen: AtomicU64::new(0),
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

    pub fn touch(&self, now_ms: u64) {
        self.last_seen.store(now_ms, Ordering::Relaxed);
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

#[derive(Default)]
pub struct FlowCounts {
    pub datagrams_to_origin: AtomicU64,
    pub datagrams_to_client: AtomicU64,
    pub bytes_to_origin: AtomicU64,
    pub bytes_to_client: AtomicU64,
}

impl Drop for Flow {
    fn drop(&mut self) {
        self.setup
            .rule
            .metrics
            .udp
            .flows_active
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// The flows of one listener, by client address (as the socket reports it).
pub struct FlowTable {
    flows: Mutex<HashMap<SocketAddr, Arc<Flow>>>,
    epoch: Instant,
}

impl Default for FlowTable {
    fn default() -> Self {
        FlowTable {
            flows: Mutex::new(HashMap::new()),
            epoch: Instant::now(),
        }
    }
}

impl FlowTable {
    pub fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// The flow of `peer`, marked active now. Touched under the table lock, so an expiry
    /// check cannot remove a flow between this lookup and the datagram it forwards.
    pub fn touch(&self, peer: &SocketAddr) -> Option<Arc<Flow>> {
        let flows = self.flows.lock().unwrap_or_else(|p| p.into_inner());
        let flow = flows.get(peer)?;
        flow.touch(self.now_ms());
        Some(flow.clone())
    }

    pub fn insert(&self, flow: Arc<Flow>) {
        flow.touch(self.now_ms());
        let mut flows = self.flows.lock().unwrap_or_else(|p| p.into_inner());
        flows.insert(flow.setup.peer, flow);
    }

    /// Removes `flow` if it has seen no datagram for `idle`; otherwise returns how long
    /// until it could have.
    pub fn expire(&self, flow: &Arc<Flow>, idle: Duration) -> Option<Duration> {
        let mut flows = self.flows.lock().unwrap_or_else(|p| p.into_inner());
        let idle_ms = idle.as_millis() as u64;
        let quiet = self
            .now_ms()
            .saturating_sub(flow.last_seen.load(Ordering::Relaxed));
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

    fn remove_locked(flows: &mut HashMap<SocketAddr, Arc<Flow>>, flow: &Arc<Flow>) {
        if flows
            .get(&flow.setup.peer)
            .is_some_and(|f| Arc::ptr_eq(f, flow))
        {
            flows.remove(&flow.setup.peer);
        }
    }

    pub fn len(&self) -> usize {
        self.flows.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}
