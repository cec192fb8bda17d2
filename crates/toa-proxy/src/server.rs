//! The running proxy: listeners, their routes, health checks, reload and drain.
//!
//! Each listener's accept loop reads its [`Route`] per connection, so a reload only swaps
//! routes: listeners whose (protocol, address, port) stays are never closed, new ones are
//! bound *before* anything changes (a bind failure rejects the reload whole), and removed
//! ones stop accepting while their connections finish.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::client_ip;
use crate::health::HealthRegistry;
use crate::limit::{Limit, LimitRegistry};
use crate::metrics::Metrics;
use crate::open::{Fresh, Kept};
use crate::origin_admin::{self, OriginRow, SetStateError};
use crate::origin_state::OriginState;
use crate::rules::{self, ListenKey};
use crate::runtime::Built;
pub use crate::state::ServerError;
use crate::state::{Route, Routes, Shared, TcpRule, UdpRule};
use crate::steer::{PortSteering, SteeredRange};
use crate::workers::{AcceptLoop, AcceptWorkers};
use crate::{listener, resolve, udp};
use toa_config::{Config, Protocol};

/// A running listener: its route, swapped by reloads, and what stops it.
struct ListenerHandle<R> {
    routes: Routes<R>,
    stop: CancellationToken,
    /// A steered range: steering stops when the handle is dropped (the listener closed).
    steered: Option<Box<dyn SteeredRange>>,
}

impl<R> ListenerHandle<R> {
    /// The same listener, routing new connections by `route` from now on.
    fn swap(self, route: Route<R>) -> Self {
        self.routes.store(Arc::new(route));
        self
    }

    /// Whether a reload can keep this listener for `binding`: a steered range stays a
    /// steered range (its last port may move), a single port a single port.
    fn serves(&self, binding: &rules::Binding) -> bool {
        self.steered.is_some() == binding.span.is_some()
    }

    fn kept(&self) -> Kept<'_> {
        let route = self.routes.load();
        Kept {
            steered: self.steered.as_deref(),
            last: route.ports.span.map_or(route.port, |s| s.last),
        }
    }
}

struct State {
    config: Option<Config>,
    /// The listener table last logged: logged again when a (re)load changes it.
    listening: Vec<rules::Listening>,
    tcp: HashMap<ListenKey, ListenerHandle<TcpRule>>,
    udp: HashMap<ListenKey, ListenerHandle<UdpRule>>,
    health_stop: CancellationToken,
}

/// Summary of an applied (re)load, for the log line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    pub rules: usize,
    pub listeners_kept: usize,
    pub listeners_opened: usize,
    pub listeners_closed: usize,
}

pub struct Server {
    shared: Arc<Shared>,
    state: Mutex<State>,
    /// Stops accept loops and health checks (first step of a drain).
    stop_accepting: CancellationToken,
    /// Ends every open connection (the drain deadline passed).
    abort: CancellationToken,
    /// Accept loops, connections and health checks; drained on shutdown.
    tasks: TaskTracker,
    metrics_stop: CancellationToken,
    /// Held by a reload and by applying re-resolved origins, so neither undoes the other.
    changes: Mutex<()>,
    /// The threads TCP connections are accepted and served on.
    accept: AcceptWorkers,
    /// Steers wide port ranges to one listener each; without it every port is bound.
    steering: Option<Arc<dyn PortSteering>>,
}

impl Server {
    /// Binds every listener of `config` and starts accepting. `toa_tagger` attaches the
    /// TOA writer when a rule first asks for it; without it, TOA rules are refused.
    pub async fn start(
        config: Config,
        toa_tagger: Option<Arc<dyn client_ip::UpstreamTaggerFactory>>,
        steering: Option<Arc<dyn PortSteering>>,
    ) -> Result<Server, ServerError> {
        let server = Server {
            shared: Arc::new(Shared {
                metrics: Metrics::default(),
                health: HealthRegistry::default(),
                origin_states: Default::default(),
                global_limit: Limit::new(0),
                limits: LimitRegistry::default(),
                persist: Default::default(),
                next_connection_id: AtomicU64::new(1),
                modes: client_ip::Modes::new(toa_tagger),
            }),
            state: Mutex::new(State {
                config: None,
                listening: Vec::new(),
                tcp: HashMap::new(),
                udp: HashMap::new(),
                health_stop: CancellationToken::new(),
            }),
            stop_accepting: CancellationToken::new(),
            abort: CancellationToken::new(),
            tasks: TaskTracker::new(),
            metrics_stop: CancellationToken::new(),
            changes: Mutex::new(()),
            accept: AcceptWorkers::start().map_err(ServerError::AcceptWorkers)?,
            steering,
        };
        server.apply(config).await?;
        Ok(server)
    }

    /// Applies a validated config: all of it, or (on error) none of it.
    pub async fn reload(&self, config: Config) -> Result<Applied, ServerError> {
        let _change = self.changes.lock().await;
        let result = self.apply(config).await;
        let counter = if result.is_ok() {
            &self.shared.metrics.reloads_ok
        } else {
            &self.shared.metrics.reloads_rejected
        };
        counter.fetch_add(1, Ordering::Relaxed);
        result
    }

    /// Looks up the host names of rules whose `resolve_interval` passed and applies changed
    /// address sets at once (listeners, limits' tags and open connections are untouched);
    /// returns when the next lookup is due.
    pub async fn resolve_due(&self, schedule: &mut resolve::Schedule) -> tokio::time::Instant {
        let now = std::time::Instant::now();
        let snapshot = self.state.lock().await.config.clone();
        let Some(snapshot) = snapshot else {
            return tokio::time::Instant::now() + Duration::from_secs(1);
        };
        let (names, next) = schedule.due(&snapshot, now);
        let next = tokio::time::Instant::from_std(next);
        if names.is_empty() {
            return next;
        }
        let answers = tokio::task::spawn_blocking(move || toa_config::dns::lookup_all(&names))
            .await
            .unwrap_or_default();
        for (name, answer) in &answers {
            if let Err(reason) = answer {
                tracing::warn!(name = %name, "origin lookup failed, keeping its last addresses: {reason}");
            }
        }
        // Rebuilt from the config running now: a reload during the lookups stays applied.
        let _change = self.changes.lock().await;
        let current = self.state.lock().await.config.clone();
        if let Some((config, changes)) = current.and_then(|c| resolve::updated(&c, &answers)) {
            match self.apply(config).await {
                Ok(_) => {
                    for change in changes {
                        tracing::info!("host name re-resolved: {change}");
                    }
                }
                Err(e) => tracing::warn!("re-resolved origins not applied: {e}"),
            }
        }
        next
    }

    /// `toa proxy origin set-state`: `address`'s state in the rules `name` picks.
    pub async fn set_origin_state(
        &self,
        name: &str,
        address: IpAddr,
        state: OriginState,
    ) -> Result<String, SetStateError> {
        match &self.state.lock().await.config {
            Some(config) => origin_admin::set_state(&self.shared, config, name, address, state),
            None => Err(SetStateError::UnknownName { name: name.into() }),
        }
    }

    /// `toa proxy origin list`: every online rule's origins.
    pub async fn origins(&self) -> Vec<OriginRow> {
        let state = self.state.lock().await;
        let config = state.config.as_ref();
        config.map_or_else(Vec::new, |c| origin_admin::list(&self.shared, c))
    }

    /// Counts a reload rejected before it reached the server (the file did not validate).
    pub fn count_rejected_reload(&self) {
        self.shared
            .metrics
            .reloads_rejected
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Serves `/metrics` on `listener` until shutdown completes, at most `max_connections` at once.
    pub fn serve_metrics(&self, listener: TcpListener, max_connections: usize) {
        let shared = self.shared.clone();
        let counts = shared.metrics.endpoint.clone();
        let render = move || toa_metrics_http::infallible(shared.metrics.render(&shared.health));
        tokio::spawn(toa_metrics_http::serve(
            listener,
            toa_metrics_http::routes(render),
            max_connections,
            counts,
            self.metrics_stop.clone(),
        ));
    }

    /// Stops accepting, lets open connections finish for up to `drain_timeout`, then ends them.
    pub async fn shutdown(&self) {
        let drain = {
            let state = self.state.lock().await;
            state.health_stop.cancel();
            state
                .config
                .as_ref()
                .map_or(Duration::ZERO, |c| c.proxy.drain_timeout)
        };
        self.stop_accepting.cancel();
        self.tasks.close();
        if tokio::time::timeout(drain, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                "drain deadline ({}ms) passed: closing the connections still open",
                drain.as_millis()
            );
            self.abort.cancel();
            self.tasks.wait().await;
        }
        self.metrics_stop.cancel();
    }

    async fn apply(&self, config: Config) -> Result<Applied, ServerError> {
        let mut state = self.state.lock().await;
        let wanted = rules::bindings(&config, self.steering.is_some());

        // Everything that can fail happens before anything changes: the rules are built,
        // then every new listener is opened (crate::open).
        let runtimes = crate::runtime::build(&self.shared, &config)?;
        let is_tcp = |b: &rules::Binding| matches!(runtimes[b.rule], Built::Tcp(_));
        let kept = |key: &ListenKey, b: &rules::Binding| match &runtimes[b.rule] {
            Built::Tcp(_) => state.tcp.get(key).filter(|h| h.serves(b)).map(|h| h.kept()),
            Built::Udp(_) => state.udp.get(key).filter(|h| h.serves(b)).map(|h| h.kept()),
        };
        let steering = self.steering.as_deref();
        let workers = self.accept.count();
        let Fresh {
            tcp: mut fresh_tcp,
            udp: mut fresh_udp,
            steered: mut fresh_steered,
        } = crate::open::open(&wanted, is_tcp, kept, steering, workers)?;

        let fresh_count = fresh_tcp.len() + fresh_udp.len();
        let mut applied = Applied {
            rules: runtimes.len(),
            ..Applied::default()
        };
        let (mut keep_tcp, mut keep_udp) = (HashMap::new(), HashMap::new());
        for (key, binding) in &wanted {
            // A steered range's connections arrive on many ports: getsockname tells.
            let local = listener::fixed_local_addr(key).filter(|_| binding.span.is_none());
            let steered = fresh_steered.remove(key);
            let kept = match &runtimes[binding.rule] {
                Built::Tcp(rule) => {
                    let route = Route {
                        rule: rule.clone(),
                        ports: *binding,
                        port: key.port,
                        local,
                    };
                    let handle = match fresh_tcp.remove(key) {
                        None => state.tcp.remove(key).expect("kept above").swap(route),
                        Some(sockets) => self.spawn_accept_loops(*key, sockets, route, steered),
                    };
                    keep_tcp.insert(*key, handle).is_some()
                }
                Built::Udp(rule) => {
                    let route = Route {
                        rule: rule.clone(),
                        ports: *binding,
                        port: key.port,
                        local,
                    };
                    let handle = match fresh_udp.remove(key) {
                        None => state.udp.remove(key).expect("kept above").swap(route),
                        Some(socket) => self.spawn_udp_listener(*key, socket, route, steered),
                    };
                    keep_udp.insert(*key, handle).is_some()
                }
            };
            debug_assert!(!kept, "one binding per key");
        }
        applied.listeners_kept = wanted.len() - fresh_count;
        applied.listeners_opened = fresh_count;
        let tcp_gone = std::mem::replace(&mut state.tcp, keep_tcp);
        let udp_gone = std::mem::replace(&mut state.udp, keep_udp);
        let tcp_gone = tcp_gone.into_iter().map(|(key, gone)| (key, gone.stop));
        let udp_gone = udp_gone.into_iter().map(|(key, gone)| (key, gone.stop));
        for (key, stop) in tcp_gone.chain(udp_gone) {
            tracing::info!(listener = %key, "listener closed: no rule uses it any more");
            stop.cancel();
            applied.listeners_closed += 1;
        }

        let targets: Vec<SocketAddr> = {
            let mut t: Vec<_> = config
                .online_rules()
                .filter(|r| r.protocol() == Protocol::Tcp)
                .flat_map(rules::health_targets)
                .collect();
            t.sort();
            t.dedup();
            t
        };
        let health_stop = self.stop_accepting.child_token();
        self.shared
            .health
            .spawn_checks(&targets, &config.health, &health_stop, &self.tasks);
        std::mem::replace(&mut state.health_stop, health_stop).cancel();
        self.shared.health.retain(&targets);
        self.shared.origin_states.retain(&config);
        crate::origin_admin::refresh_checks(&self.shared, &config);

        // Limits count what is open, so a new maximum holds exactly from now on, whatever
        // is open and however many reloads came before.
        self.shared
            .global_limit
            .set_max(config.proxy.max_connections);
        for (rule, runtime) in config.rules.iter().zip(&runtimes) {
            runtime.limits().apply(rule);
        }
        self.shared.limits.retain(&config);
        let listening = rules::listening(&config);
        if listening != state.listening {
            for l in &listening {
                tracing::info!(rule = ?l.rule, client_ip_mode = ?l.mode, "listening on {l}");
            }
            state.listening = listening;
        }
        state.config = Some(config);
        Ok(applied)
    }

    fn spawn_udp_listener(
        &self,
        key: ListenKey,
        socket: toa_pktinfo::ListenSocket,
        route: Route<UdpRule>,
        steered: Option<Box<dyn SteeredRange>>,
    ) -> ListenerHandle<UdpRule> {
        let handle = ListenerHandle {
            routes: Arc::new(ArcSwap::from_pointee(route)),
            stop: self.stop_accepting.child_token(),
            steered,
        };
        tracing::debug!(listener = %key, "listening");
        self.tasks.spawn(udp::listener::run(
            key,
            socket,
            handle.routes.clone(),
            self.shared.clone(),
            handle.stop.clone(),
            self.tasks.clone(),
        ));
        handle
    }

    fn spawn_accept_loops(
        &self,
        key: ListenKey,
        sockets: Vec<std::net::TcpListener>,
        route: Route<TcpRule>,
        steered: Option<Box<dyn SteeredRange>>,
    ) -> ListenerHandle<TcpRule> {
        let handle = ListenerHandle {
            routes: Arc::new(ArcSwap::from_pointee(route)),
            stop: self.stop_accepting.child_token(),
            steered,
        };
        tracing::debug!(listener = %key, "listening");
        let accept_loop = AcceptLoop {
            routes: handle.routes.clone(),
            stop: handle.stop.clone(),
            shared: self.shared.clone(),
            abort: self.abort.clone(),
            tasks: self.tasks.clone(),
        };
        self.accept.spawn(key, sockets, accept_loop);
        handle
    }
}
