//! One client connection, start to end: limits, origin choice with one retry, the
//! pass-client-IP mode, the copy, and the access log line.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::accept_proxy;
use crate::access_log::{self, Entry, Event};
use crate::balance::{ActiveGuard, Backend};
use crate::client_ip::ConnInfo;
use crate::error::{ConnectError, ConnectErrorKind};
use crate::forward::{ByteCounters, CloseReason, DataPath, Limits, Sweep, forward};
use crate::limit::{ClientGuard, LimitGuard};
use crate::metrics::Reject;
use crate::origin_state::OriginState;
use crate::state::{Route, Shared, TcpRule};
use toa_config::Protocol;
use toa_wire::normalize;

/// Counts a connection as active in its rule's gauge until dropped.
struct ActiveConnection(Arc<TcpRule>);

impl Drop for ActiveConnection {
    fn drop(&mut self) {
        self.0
            .metrics
            .connections_active
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// What a forwarding connection keeps besides its two sockets: what its access log line
/// names, and the guards that count it against the limits and gauges until it ends.
struct Opened {
    client: SocketAddr,
    target: SocketAddr,
    /// The proxy address the client reached, and the one the origin is told of.
    listen: SocketAddr,
    proxy: SocketAddr,
    /// The pass-client-IP mode's name.
    mode: &'static str,
    started: Instant,
    _limits: (LimitGuard, LimitGuard, ClientGuard),
    _active: ActiveConnection,
    _open: ActiveGuard,
}

/// The connection's task. Not an async fn: one would keep its arguments (the client
/// socket, its address) for the task's whole life beside the copies moved on
/// (rust-lang/rust#62958); this block holds only the boxed setup, the rule and the worker's `sweep`.
pub(crate) fn handle(
    shared: Arc<Shared>,
    route: Arc<Route<TcpRule>>,
    client: TcpStream,
    peer: SocketAddr,
    sweep: Arc<Sweep>,
) -> impl std::future::Future<Output = ()> + Send {
    let rule = route.rule.clone();
    // Boxed, and freed before forwarding starts: a task is as large as its largest state,
    // and the setup's is larger than forwarding's, a size an idle connection would keep.
    let opening = Box::pin(open(shared, route, client, peer));
    async move {
        let Some((client, origin, opened)) = opening.await else {
            return;
        };
        let settings = &rule.settings;
        let limits = Limits {
            buffer_size: settings.buffer_size,
            idle_timeout: settings.idle_timeout,
            data_path: if settings.splice {
                DataPath::Splice
            } else {
                DataPath::Buffered
            },
        };
        let counters = ByteCounters {
            to_origin: &rule.metrics.bytes_to_origin,
            to_client: &rule.metrics.bytes_to_client,
        };
        let t = forward(client, origin, &limits, counters, &sweep).await;
        // Only now: references into `opened` held across the await would each be kept
        // in every idle connection's task.
        let quiet = matches!(
            t.reason,
            CloseReason::Done { .. } | CloseReason::IdleTimeout
        );
        if rule.settings.access_log {
            let close = t.reason.to_string();
            let entry = Entry {
                event: Event::Close,
                duration_ms: opened.started.elapsed().as_millis() as u64,
                bytes_to_origin: t.to_origin,
                bytes_to_client: t.to_client,
                close: Some(&close),
                ..opened.entry(&rule.tag)
            };
            access_log::write(rule.settings.access_log_format, &entry);
        } else if !quiet {
            tracing::debug!(rule = %rule.tag, client = %opened.client, origin = %opened.target, close = %t.reason, "connection closed");
        }
    }
}

impl Opened {
    /// The connection's access log entry as it opens: nothing moved yet.
    fn entry<'a>(&self, rule: &'a str) -> Entry<'a> {
        Entry {
            event: Event::Open,
            proto: Protocol::Tcp,
            rule,
            client: self.client,
            listen: self.listen,
            proxy: self.proxy,
            origin: self.target,
            client_ip_mode: self.mode,
            duration_ms: 0,
            bytes_to_origin: 0,
            bytes_to_client: 0,
            datagrams_to_origin: None,
            datagrams_to_client: None,
            close: None,
        }
    }
}

/// Counts a client closed at accept and logs it with its reason (rate-limited).
fn refuse(rule: &TcpRule, reason: Reject, client: SocketAddr, why: &str) {
    rule.metrics.reject(reason);
    rule.refused(Protocol::Tcp, reason, client, "connection", why);
}

/// Everything before forwarding: the PROXY header a trusted upstream sends, the limits,
/// the origin connection and the client-address preamble. `None` when the connection
/// ends here (already counted and logged).
async fn open(
    shared: Arc<Shared>,
    route: Arc<Route<TcpRule>>,
    mut client: TcpStream,
    peer: SocketAddr,
) -> Option<(TcpStream, TcpStream, Opened)> {
    let rule = &*route.rule;
    let metrics = &rule.metrics;
    // From here on `peer` is the client everything downstream sees: the TCP peer, or the
    // client a trusted upstream named in its PROXY header.
    let (peer, upstream_proxy, leftover) = match &rule.accept_proxy {
        None => (normalize(peer), None, Vec::new()),
        Some(accept) => {
            let tcp_peer = normalize(peer);
            match accept_proxy::read(
                &mut client,
                tcp_peer,
                accept,
                rule.settings.accept_proxy_timeout,
            )
            .await
            {
                Ok(a) => (a.client, a.proxy, a.leftover),
                Err(refusal) => {
                    refuse(rule, refusal.into(), tcp_peer, "no accepted PROXY header");
                    return None;
                }
            }
        }
    };
    // Set states change only by command or reload: a rule with no origin that takes new
    // connections refuses them, with a line that says so rather than "down".
    if !rule
        .backends
        .iter()
        .any(|b| b.state() == OriginState::Ready)
    {
        refuse(
            rule,
            Reject::OriginsDrained,
            peer,
            "every origin is drained or in maintenance",
        );
        return None;
    }
    // Over a limit the client is closed at once: queueing would only hide overload.
    let Some(global) = shared.global_limit.try_acquire() else {
        refuse(
            rule,
            Reject::GlobalLimit,
            peer,
            "global max_connections reached",
        );
        return None;
    };
    let Some(rule_permit) = rule.limits.open.try_acquire() else {
        refuse(
            rule,
            Reject::RuleLimit,
            peer,
            "rule max_connections reached",
        );
        return None;
    };
    let Some(client_permit) = rule.limits.per_client.try_acquire(peer.ip()) else {
        refuse(
            rule,
            Reject::ClientLimit,
            peer,
            "max_connections_per_client reached",
        );
        return None;
    };
    metrics.connections_total.fetch_add(1, Ordering::Relaxed);
    metrics.connections_active.fetch_add(1, Ordering::Relaxed);
    let active = ActiveConnection(route.rule.clone());
    let started = Instant::now();

    let local = route.local.or_else(|| client.local_addr().ok())?;
    let conn = ConnInfo {
        id: shared.next_connection_id.fetch_add(1, Ordering::Relaxed),
        client: peer,
        proxy: upstream_proxy.unwrap_or_else(|| normalize(local)),
    };
    let origin_port = route.origin_port(local.port());
    let (mut origin, backend, open) = match connect(rule, origin_port, &conn).await {
        Ok(c) => c,
        Err(e) => {
            if matches!(e, ConnectError::NoHealthyOrigin) {
                metrics.connect_error(e.kind());
                if let Some(held_back) = rule.all_down_log.allow() {
                    tracing::warn!(rule = %rule.tag, client = %conn.client, held_back,
                        "every origin is down: closing the client (held_back: clients closed since the last line)");
                }
                // RST instead of FIN: the client learns at once instead of after a read.
                let _ = socket2::SockRef::from(&client).set_linger(Some(Duration::ZERO));
            } else if e.blames_origin() {
                tracing::warn!(rule = %rule.tag, client = %conn.client, "closing the client: {e}");
            } else {
                // Already logged (throttled) where the connect failed.
                tracing::debug!(rule = %rule.tag, client = %conn.client, "closing the client: {e}");
            }
            return None;
        }
    };
    // Where connect() went: no getpeername() needed.
    let target = backend.target(origin_port);
    let preamble = match rule.mode.preamble(&conn) {
        Ok(preamble) => preamble,
        Err(e) => {
            // Never forwarded without the header the origin expects.
            metrics.connect_error(ConnectErrorKind::ProxySocket);
            tracing::warn!(rule = %rule.tag, client = %conn.client, origin = %target, "proxy error: {e}");
            return None;
        }
    };
    if let Some(preamble) = preamble
        && let Err(e) = origin.write_all(&preamble).await
    {
        tracing::warn!(rule = %rule.tag, client = %conn.client, origin = %target, "origin error: cannot send the {} header: {e}", rule.mode.name());
        return None;
    }
    if !leftover.is_empty() {
        if let Err(e) = origin.write_all(&leftover).await {
            tracing::warn!(rule = %rule.tag, client = %conn.client, origin = %target, "origin error: cannot send the first client bytes: {e}");
            return None;
        }
        metrics
            .bytes_to_origin
            .fetch_add(leftover.len() as u64, Ordering::Relaxed);
    }

    let opened = Opened {
        client: conn.client,
        target,
        listen: normalize(local),
        proxy: conn.proxy,
        mode: rule.mode.name(),
        started,
        _limits: (global, rule_permit, client_permit),
        _active: active,
        _open: open,
    };
    if rule.settings.access_log_open {
        access_log::write(rule.settings.access_log_format, &opened.entry(&rule.tag));
    }
    Some((client, origin, opened))
}

/// Connects to an origin the selector picks; if that fails, once more to a different one.
async fn connect(
    rule: &TcpRule,
    port: u16,
    conn: &ConnInfo,
) -> Result<(TcpStream, Arc<Backend>, ActiveGuard), ConnectError> {
    let mut failed: Option<usize> = None;
    let mut last_error = None;
    for _attempt in 0..2 {
        let usable = |i: usize| Some(i) != failed && rule.backends[i].takes_new();
        let Some(i) = rule
            .selector
            .select(conn.client.ip(), &rule.backends, &usable)
        else {
            break;
        };
        let backend = &rule.backends[i];
        let open = backend.open();
        match crate::upstream::connect(rule, backend.target(port), conn).await {
            Ok(stream) => return Ok((stream, backend.clone(), open)),
            Err(e) => {
                rule.metrics.connect_error(e.kind());
                let next = if failed.is_none() {
                    "trying another origin if one is up"
                } else {
                    "giving up"
                };
                if e.blames_origin() {
                    backend
                        .health
                        .mark_failed(e.kind(), rule.health_rise, rule.health_fall);
                    tracing::warn!(rule = %rule.tag, client = %conn.client, side = %e.side(), "connect failed, {next}: {e}");
                } else if let Some(held_back) = rule.local_error_log.allow() {
                    // The proxy's own ports or descriptors ran out: every connection hits it.
                    tracing::warn!(rule = %rule.tag, client = %conn.client, side = %e.side(), held_back,
                        "connect failed, {next}: {e} (held_back: local failures since the last line)");
                }
                failed = Some(i);
                last_error = Some(e);
            }
        }
    }
    Err(last_error.unwrap_or(ConnectError::NoHealthyOrigin))
}
