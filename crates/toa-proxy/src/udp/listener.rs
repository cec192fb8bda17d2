//! One UDP listener's receive loop: each datagram is matched to its flow by its source and
//! (on `accept_proxy` rules) the client its header names; a new client opens a flow (a
//! place under the flow caps, evicting the least recently active flow when one is full;
//! origin choice, upstream socket, mode headers). The datagram gets the mode's header
//! written in front of it and goes out on the flow's upstream socket.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::accept_proxy;
use super::client_ip::{FlowInfo, MAX_DATAGRAM};
use super::flow::{Flow, FlowKey, FlowSetup, FlowTable};
use super::upstream;
use crate::access_log::Event;
use crate::client_ip::HeaderError;
use crate::limit::Held;
use crate::metrics::{DropReason, Eviction};
use crate::origin_state::OriginState;
use crate::rules::ListenKey;
use crate::state::{Route, Routes, Shared, UdpRule};
use toa_config::Protocol;
use toa_pktinfo::{ListenSocket, Received};
use toa_wire::normalize;

/// Bytes kept free in front of each received payload, so a header is written in place
/// instead of copying the payload. Larger than any header a mode builds (SPP 38, PROXY v2
/// with IPv6 addresses and UNIQUE_ID 71).
const HEADROOM: usize = 128;
/// Room for the largest datagram a client can send.
const PAYLOAD_BUFFER: usize = 64 * 1024;

/// Runs `socket`'s receive loop until `stop` is cancelled; its flows end with it.
pub(crate) async fn run(
    key: ListenKey,
    socket: ListenSocket,
    routes: Routes<UdpRule>,
    shared: Arc<Shared>,
    stop: CancellationToken,
    tasks: TaskTracker,
) {
    let socket = Arc::new(socket);
    let table = Arc::new(FlowTable::default());
    let mut buf = vec![0u8; HEADROOM + PAYLOAD_BUFFER];
    let mut backoff = Duration::from_millis(10);
    loop {
        let received = tokio::select! {
            _ = stop.cancelled() => break,
            r = socket.recv(&mut buf[HEADROOM..]) => r,
        };
        let got = match received {
            Ok(got) => got,
            Err(e) => {
                // Out of memory or a transient socket error: wait and try again, never exit.
                tracing::warn!(listener = %key, "receive failed, retrying in {}ms: {e}", backoff.as_millis());
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        backoff = Duration::from_millis(10);
        let mut len = got.len;
        let route = routes.load_full();
        let rule = &route.rule;
        let peer = normalize(got.peer);
        // The flow the datagram belongs to if open, and the client its header named.
        let (found, named) = match &rule.accept_proxy {
            None => {
                let key = FlowKey {
                    peer: got.peer,
                    port: got.local_port,
                    client: peer,
                };
                (table.touch(&key, false), None)
            }
            Some(a) => {
                let latest = table.latest(got.peer, got.local_port);
                let last = latest.as_ref().map(|f| f.setup.spp_in);
                match accept_proxy::read(&buf[HEADROOM..HEADROOM + len], peer, a, last) {
                    // Bare, after a PROXY v2 header: the client that header named.
                    Ok(None) => (latest, None),
                    Ok(Some(h)) => {
                        len = strip(&mut buf, len, h.len);
                        let key = FlowKey {
                            peer: got.peer,
                            port: got.local_port,
                            client: h.client,
                        };
                        (table.touch(&key, true), Some(h))
                    }
                    Err(refusal) => {
                        let reason = refusal.into();
                        rule.metrics.udp.drop(reason);
                        let why = "no accepted PROXY header";
                        rule.refused(Protocol::Udp, reason, peer, "datagram", why);
                        continue;
                    }
                }
            }
        };
        let flow = match found {
            Some(flow) => flow,
            None => match open(&shared, &route, key, &got, named, stop.child_token()).await {
                Ok(flow) => {
                    flow.log(Event::Open, None);
                    table.insert(flow.clone(), named.is_some());
                    tasks.spawn(upstream::relay_replies(
                        flow.clone(),
                        socket.clone(),
                        table.clone(),
                        rule.settings.udp_idle_timeout,
                        stop.clone(),
                    ));
                    flow
                }
                Err(reason) => {
                    rule.metrics.udp.drop(reason);
                    continue;
                }
            },
        };
        forward(&flow, &mut buf, len).await;
    }
    tracing::debug!(listener = %key, flows = table.len(), "listener stopped; its flows end");
}

/// Removes a `header`-byte header in front of the `len`-byte payload at `buf[HEADROOM..]`
/// (moving the payload to `HEADROOM`); returns the payload's new length.
fn strip(buf: &mut [u8], len: usize, header: usize) -> usize {
    buf.copy_within(HEADROOM + header..HEADROOM + len, HEADROOM);
    len - header
}

/// Sends the payload at `buf[HEADROOM..HEADROOM + len]` to the origin, header in front.
async fn forward(flow: &Flow, buf: &mut [u8], len: usize) {
    let udp = &flow.setup.rule.metrics.udp;
    let (first, every) = flow.next_header();
    let header_len = first.len() + every.len();
    if len + header_len > MAX_DATAGRAM {
        udp.drop(DropReason::TooLarge);
        tracing::debug!(client = %flow.setup.info.client, "dropped a {len}-byte datagram: with the {header_len}-byte header it exceeds {MAX_DATAGRAM}");
        return;
    }
    let start = HEADROOM - header_len;
    buf[start..start + first.len()].copy_from_slice(first);
    buf[start + first.len()..HEADROOM].copy_from_slice(every);
    match flow.setup.upstream.send(&buf[start..HEADROOM + len]).await {
        Ok(_) => {
            flow.delivered();
            flow.count_to_origin(len);
        }
        Err(e) => {
            udp.drop(DropReason::OriginSendFailed);
            tracing::debug!(client = %flow.setup.info.client, origin = %flow.setup.origin, "origin error: send failed: {e}");
        }
    }
}

/// Opens the flow of a new client, or names the drop reason why not.
async fn open(
    shared: &Shared,
    route: &Route<UdpRule>,
    key: ListenKey,
    got: &Received,
    named: Option<accept_proxy::Header>,
    end: CancellationToken,
) -> Result<Arc<Flow>, DropReason> {
    let rule = &*route.rule;
    // The client a trusted upstream named is the client for the per-client limit too.
    let client = named.map_or_else(|| normalize(got.peer), |h| h.client);
    let held = admit(rule, client)?;
    let info = FlowInfo {
        id: shared.next_connection_id.fetch_add(1, Ordering::Relaxed),
        client,
        proxy: named
            .and_then(|h| h.proxy)
            .unwrap_or_else(|| normalize(SocketAddr::new(got.local, got.local_port))),
    };
    if !rule
        .backends
        .iter()
        .any(|b| b.state() == OriginState::Ready)
    {
        let reason = DropReason::OriginsDrained;
        let why = "every origin is drained or in maintenance";
        rule.refused(Protocol::Udp, reason, info.client, "datagram", why);
        return Err(reason);
    }
    let usable = |i: usize| rule.backends[i].takes_new();
    let Some(i) = rule
        .selector
        .select(info.client.ip(), &rule.backends, &usable)
    else {
        rule.metrics
            .connect_error(crate::error::ConnectErrorKind::NoHealthyOrigin);
        // At most once a second per rule, like TCP: during an outage every datagram lands here.
        if let Some(held_back) = rule.all_down_log.allow() {
            tracing::warn!(rule = %rule.tag, client = %info.client, held_back,
                "every origin is down: datagram dropped (held_back: datagrams dropped since the last line)");
        }
        return Err(DropReason::NoHealthyOrigin);
    };
    let backend = &rule.backends[i];
    let origin = backend.target(route.origin_port(got.local_port));
    let writer = rule.mode.clone();
    let proxy_error = |e: HeaderError| {
        tracing::warn!(rule = %rule.tag, client = %info.client, origin = %origin, "proxy error: {e}");
        DropReason::ProxySocket
    };
    let headers = writer.headers(&info).map_err(proxy_error)?;
    if headers.first.len() + headers.every.len() > HEADROOM {
        return Err(proxy_error(HeaderError::TooLong {
            mode: writer.name(),
            limit: HEADROOM,
        }));
    }
    // Out of descriptors, every new client's datagrams land here: one line a second.
    let socket_error = |what: &str, e: std::io::Error| {
        if let Some(held_back) = rule.local_error_log.allow() {
            tracing::warn!(rule = %rule.tag, client = %info.client, origin = %origin, held_back,
                "proxy error: cannot open the {what} socket: {e} (held_back: datagrams dropped since the last line)");
        }
        DropReason::ProxySocket
    };
    // A steered range's datagrams arrive on every port of the range; the client's socket
    // takes replies only from the port it sent to. No source selection can set a port
    // (IP_PKTINFO sets the address only), and IP_TRANSPARENT, which could, needs the
    // CAP_NET_ADMIN the proxy drops; a socket bound to that port can (see `bind_udp_reply`).
    let reply = match got.local_port == key.port {
        true => None,
        false => Some(
            crate::listener::bind_udp_reply(&ListenKey {
                port: got.local_port,
                ..key
            })
            .map_err(|e| socket_error("reply", e))?,
        ),
    };
    let upstream = upstream::connect(origin)
        .await
        .map_err(|e| socket_error("upstream", e))?;
    tracing::debug!(rule = %rule.tag, client = %info.client, proxy = %info.proxy, origin = %origin,
        mode = writer.name(), "flow opened");
    Ok(Flow::open(
        FlowSetup {
            info,
            peer: got.peer,
            local: got.local,
            listen: normalize(SocketAddr::new(got.local, got.local_port)),
            local_port: got.local_port,
            reply,
            origin,
            upstream,
            writer,
            headers,
            spp_in: named.is_some_and(|h| h.spp),
            rule: route.rule.clone(),
            _open: backend.open(),
        },
        held,
        end,
    ))
}

/// A new flow's places under the rule's `max_flows` and its client's
/// `max_connections_per_client`: free ones, or those of the flow evicted for it: the
/// client's own least recently active flow when the client is at its cap, the rule's
/// least recently active flow when the rule is. Refused only when no flow can be evicted.
fn admit(rule: &UdpRule, client: SocketAddr) -> Result<Held, DropReason> {
    let limits = &rule.limits;
    let udp = &rule.metrics.udp;
    let evict = |of: Option<IpAddr>, reason: Eviction| {
        let victim = limits.flows.as_ref()?.take_oldest(of)?;
        let held = victim.evict()?;
        udp.evicted(reason);
        tracing::debug!(rule = %rule.tag, client = %client, evicted = %victim.client(),
            limit = reason.name(), "flow evicted: the least recently active one made room");
        Some(held)
    };
    let (client_place, freed) = match limits.per_client.try_acquire(client.ip()) {
        Some(place) => (place, None),
        None => {
            let Some(held) = evict(Some(client.ip()), Eviction::ClientLimit) else {
                let reason = DropReason::ClientLimit;
                let why = "max_connections_per_client reached, no flow of the client to evict";
                rule.refused(Protocol::Udp, reason, client, "flow", why);
                return Err(reason);
            };
            (held.client, Some(held.flow))
        }
    };
    let flow_place = match freed.or_else(|| limits.open.try_acquire()) {
        Some(place) => place,
        None => {
            let Some(held) = evict(None, Eviction::FlowLimit) else {
                let reason = DropReason::FlowLimit;
                let why = "max_flows reached, no flow to evict";
                rule.refused(Protocol::Udp, reason, client, "flow", why);
                return Err(reason);
            };
            held.flow
        }
    };
    Ok(Held {
        flow: flow_place,
        client: client_place,
    })
}
