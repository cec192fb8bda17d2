//! The origin side of a flow: its connected upstream socket, and the task that relays the
//! origin's replies to the client (through the mode, which may strip a header) until the
//! flow has been idle for `udp_idle_timeout` or the listener stops.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::client_ip::Reply;
use super::flow::{Flow, FlowTable};
use super::socket::ListenSocket;

/// Room for the largest datagram the origin can send.
const REPLY_BUFFER: usize = 64 * 1024;

/// A socket on an ephemeral port connected to `origin`.
pub async fn connect(origin: SocketAddr) -> io::Result<UdpSocket> {
    let any = if origin.is_ipv4() {
        SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0)
    } else {
        SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), 0)
    };
    let socket = UdpSocket::bind(any).await?;
    socket.connect(origin).await?;
    Ok(socket)
}

/// Relays replies of `flow` until it expires or `stop` is cancelled, then forgets it.
pub async fn relay_replies(
    flow: Arc<Flow>,
    listener: Arc<ListenSocket>,
    table: Arc<FlowTable>,
    idle: Duration,
    stop: CancellationToken,
) {
    let mut buf = vec![0u8; REPLY_BUFFER];
    let udp = &flow.rule.metrics.udp;
    let mut deadline = Instant::now() + idle;
    let ended = loop {
        tokio::select! {
            _ = stop.cancelled() => {
                table.remove(&flow);
                break "listener stopped";
            }
            _ = tokio::time::sleep_until(deadline) => match table.expire(&flow, idle) {
                None => break "idle timeout",
                Some(left) => deadline = Instant::now() + left,
            },
            received = flow.upstream.recv(&mut buf) => {
                let datagram = match received {
                    Ok(n) => &buf[..n],
                    Err(e) => {
                        // ICMP unreachable for an earlier datagram: that one is lost, the flow goes on.
                        udp.drop("origin_unreachable");
                        tracing::debug!(client = %flow.info.client, origin = %flow.origin, "origin error: {e}");
                        continue;
                    }
                };
                flow.touch(table.now_ms());
                let reply = match flow.writer.reply(datagram) {
                    Reply::Forward(r) => r,
                    Reply::Unmarked(r) => {
                        udp.replies_unmarked.fetch_add(1, Ordering::Relaxed);
                        r
                    }
                    Reply::Drop(reason) => {
                        udp.drop(reason);
                        tracing::debug!(client = %flow.info.client, origin = %flow.origin, "origin reply dropped: {reason}");
                        continue;
                    }
                };
                match listener.send(reply, flow.peer, flow.local).await {
                    Ok(()) => flow.count_to_client(reply.len()),
                    Err(e) => {
                        udp.drop("client_send_failed");
                        tracing::debug!(client = %flow.info.client, "client error: cannot send the reply: {e}");
                    }
                }
            }
        }
    };
    let c = &flow.counts;
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let duration_ms = flow.opened.elapsed().as_millis() as u64;
    if flow.rule.settings.access_log {
        tracing::info!(target: "toa_proxy::access", rule = %flow.rule.tag, client = %flow.info.client,
            proxy = %flow.info.proxy, origin = %flow.origin, mode = flow.writer.name(),
            datagrams_to_origin = load(&c.datagrams_to_origin), datagrams_to_client = load(&c.datagrams_to_client),
            bytes_to_origin = load(&c.bytes_to_origin), bytes_to_client = load(&c.bytes_to_client),
            duration_ms, close = ended, "udp flow ended");
    } else {
        tracing::debug!(rule = %flow.rule.tag, client = %flow.info.client, origin = %flow.origin, "udp flow ended: {ended}");
    }
}
