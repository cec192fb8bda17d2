//! The origin side of a flow: its connected upstream socket, and the task that relays the
//! origin's replies to the client (through the mode, which may strip a header) until the
//! flow has been idle for `udp_idle_timeout` or the listener stops.

use std::cell::RefCell;
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
use crate::access_log::Event;
use crate::metrics::DropReason;
use toa_pktinfo::ListenSocket;

/// Room for the largest datagram the origin can send.
const REPLY_BUFFER: usize = 64 * 1024;
/// Replies relayed per wake-up before the task yields, so one busy flow cannot starve others.
const BATCH: usize = 64;

thread_local! {
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0; REPLY_BUFFER]);
}

/// What became of one queued reply.
enum Relayed {
    /// The upstream queue is empty.
    Empty,
    /// Sent, dropped or counted: go on with the next one.
    Done,
    /// The client side's send buffer is full: these bytes wait for room.
    Blocked(Vec<u8>),
}

/// Relays up to [`BATCH`] replies queued on the flow's upstream socket, from the flow's
/// reply socket if it has one, else from its listener.
async fn relay_queued(flow: &Flow, listener: &ListenSocket) {
    let listener = flow.setup.reply.as_ref().unwrap_or(listener);
    for _ in 0..BATCH {
        // The scratch buffer is borrowed only inside this synchronous step, never across an await.
        let step = SCRATCH.with_borrow_mut(|buf| relay_one(flow, listener, buf));
        match step {
            Relayed::Empty => return,
            Relayed::Done => {}
            Relayed::Blocked(reply) => match listener
                .send(&reply, flow.setup.peer, flow.setup.local)
                .await
            {
                Ok(()) => flow.count_to_client(reply.len()),
                Err(e) => client_send_failed(flow, &e),
            },
        }
    }
}

fn relay_one(flow: &Flow, listener: &ListenSocket, buf: &mut [u8]) -> Relayed {
    let udp = &flow.setup.rule.metrics.udp;
    let datagram = match flow.setup.upstream.try_recv(buf) {
        Ok(n) => &buf[..n],
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Relayed::Empty,
        Err(e) => {
            // ICMP unreachable for an earlier datagram: that one is lost, the flow goes on.
            udp.drop(DropReason::OriginUnreachable);
            tracing::debug!(client = %flow.setup.info.client, origin = %flow.setup.origin, "origin error: {e}");
            return Relayed::Done;
        }
    };
    flow.touch();
    let reply = match flow.setup.writer.reply(datagram) {
        Reply::Forward(r) => r,
        Reply::Unmarked(r) => {
            udp.replies_unmarked.fetch_add(1, Ordering::Relaxed);
            r
        }
        Reply::Drop(reason) => {
            udp.drop(reason);
            tracing::debug!(client = %flow.setup.info.client, origin = %flow.setup.origin, "origin reply dropped: {}", reason.name());
            return Relayed::Done;
        }
    };
    match listener.try_send(reply, flow.setup.peer, flow.setup.local) {
        Ok(()) => flow.count_to_client(reply.len()),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Relayed::Blocked(reply.to_vec()),
        Err(e) => client_send_failed(flow, &e),
    }
    Relayed::Done
}

fn client_send_failed(flow: &Flow, e: &io::Error) {
    flow.setup
        .rule
        .metrics
        .udp
        .drop(DropReason::ClientSendFailed);
    tracing::debug!(client = %flow.setup.info.client, "client error: cannot send the reply: {e}");
}

/// A socket on an ephemeral port connected to `origin`.
pub async fn connect(origin: SocketAddr) -> io::Result<UdpSocket> {
    let any = if origin.is_ipv4() {
        SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0)
    } else {
        SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), 0)
    };
    let socket = UdpSocket::bind(any).await?;
    // After the bind, so the kernel still picks a port no other socket holds: a steered
    // range (often over the ephemeral ports) binds a reply socket to whichever port a
    // client sent to, and a socket without SO_REUSEADDR on that port would refuse it.
    // Sharing is safe: this socket is connected, so only its origin's datagrams reach it.
    socket2::SockRef::from(&socket).set_reuse_address(true)?;
    socket.connect(origin).await?;
    Ok(socket)
}

/// Relays replies of `flow` until it expires or ends early (`flow.end`: evicted, or its
/// listener's `stop`), then forgets it. An idle flow holds no buffer: replies are read
/// into a per-thread scratch buffer.
pub async fn relay_replies(
    flow: Arc<Flow>,
    listener: Arc<ListenSocket>,
    table: Arc<FlowTable>,
    idle: Duration,
    stop: CancellationToken,
) {
    let mut deadline = Instant::now() + idle;
    let ended = loop {
        tokio::select! {
            _ = flow.end.cancelled() => {
                table.remove(&flow);
                break if stop.is_cancelled() { "listener stopped" } else { "evicted" };
            }
            _ = tokio::time::sleep_until(deadline) => match table.expire(&flow, idle) {
                None => break "idle timeout",
                Some(left) => deadline = Instant::now() + left,
            },
            ready = flow.setup.upstream.readable() => match ready {
                Ok(()) => relay_queued(&flow, &listener).await,
                Err(e) => {
                    tracing::warn!(client = %flow.setup.info.client, origin = %flow.setup.origin, "proxy error: upstream socket failed: {e}");
                    table.remove(&flow);
                    break "upstream socket error";
                }
            },
        }
    };
    if flow.setup.rule.settings.access_log {
        flow.log(Event::Close, Some(ended));
    } else {
        tracing::debug!(rule = %flow.setup.rule.tag, client = %flow.setup.info.client, origin = %flow.setup.origin, "udp flow ended: {ended}");
    }
}

#[cfg(test)]
mod tests {
    use crate::rules::ListenKey;
    use toa_config::{ListenAddr, Protocol};

    #[tokio::test]
    async fn a_flow_reply_socket_binds_the_port_of_an_upstream_socket() {
        let origin = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let upstream = super::connect(origin.local_addr().unwrap()).await.unwrap();
        let key = ListenKey {
            protocol: Protocol::Udp,
            addr: ListenAddr::Ip("127.0.0.1".parse().unwrap()),
            port: upstream.local_addr().unwrap().port(),
        };
        crate::listener::bind_udp_reply(&key).expect("a client may send to any port of a range");
    }
}
