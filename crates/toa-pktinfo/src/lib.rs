//! toa-pktinfo — the listening UDP socket. One bound to a wildcard address (the dual-stack
//! default, or an explicit `0.0.0.0`/`::`) cannot tell which of the host's addresses a
//! datagram was sent to, so it asks the kernel for each datagram
//! (`IP_PKTINFO`/`IPV6_RECVPKTINFO`): the SPP and PROXY headers then carry the real listener
//! address, and each reply leaves from the address its client sent to (a client drops
//! replies from any other).
//!
//! A socket serving a steered port range (an sk_lookup program hands it datagrams sent to
//! any port of the range) learns address and port from `IP_ORIGDSTADDR`/`IPV6_ORIGDSTADDR`
//! instead; a reply socket ([`ListenSocket::bind_reply`]) answers from one of those ports.
//!
//! Its users: toa-proxy's UDP listeners (which map a rule's listen key to [`ListenSocket::bind`])
//! and `toa spp-echo` (toa-spp-echo), an origin-side tool that needs this socket and none
//! of the proxy.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

use nix::sys::socket::{
    self, ControlMessage, ControlMessageOwned, MsgFlags, SockaddrIn, SockaddrIn6, SockaddrStorage,
    sockopt,
};
use socket2::{Domain, Socket, Type};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Kernel receive buffer asked for per listener, so a burst from many clients is queued,
/// not dropped, while the receive loop catches up (capped by `net.core.rmem_max`).
const RECV_BUFFER: usize = 4 << 20;

/// A UDP socket bound for listening, answering from the address each datagram came to.
pub struct ListenSocket {
    io: UdpSocket,
    destination: Destination,
    bound: SocketAddr,
}

/// How a socket learns each datagram's destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Destination {
    /// The bound address and port: the socket is bound to one address.
    Bound,
    /// The address from `IP_PKTINFO`/`IPV6_PKTINFO`, the bound port: a wildcard address.
    PacketInfo,
    /// Address and port from `IP_ORIGDSTADDR`/`IPV6_ORIGDSTADDR`: a steered port range,
    /// whose datagrams arrive on every port of the range.
    Original,
}

/// One datagram's addressing, in the socket's own form: on a dual-stack socket an IPv4
/// client and the address it sent to are v4-mapped, which is what replies must use.
#[derive(Debug, Clone, Copy)]
pub struct Received {
    pub len: usize,
    pub peer: SocketAddr,
    pub local: IpAddr,
    /// The port the datagram was sent to.
    pub local_port: u16,
}

impl ListenSocket {
    /// Binds `addr`; `v6only` `None` keeps the system default (`net.ipv6.bindv6only`), and
    /// `Some(false)` on `[::]` also takes IPv4 (v4-mapped).
    pub fn bind(addr: SocketAddr, v6only: Option<bool>) -> io::Result<ListenSocket> {
        let destination = if addr.ip().is_unspecified() {
            Destination::PacketInfo
        } else {
            Destination::Bound
        };
        Self::open(addr, v6only, destination, false)
    }

    /// Binds `addr` (the first port of a steered range) for datagrams steered to it from
    /// every port of the range, each reported with the address and port it was sent to.
    /// With `SO_REUSEADDR`, as its reply sockets have, so a reload can bind a range's new
    /// first port while a flow of the old range still has a reply socket there.
    pub fn bind_range(addr: SocketAddr, v6only: Option<bool>) -> io::Result<ListenSocket> {
        Self::open(addr, v6only, Destination::Original, true)
    }

    /// Binds `addr` (a port of a steered range) to send replies from it. It receives
    /// nothing while the range is steered (the steerer takes the port's datagrams first).
    /// `SO_REUSEADDR` lets the flows of several clients on one port, and the range's own
    /// socket, bind the same address and port.
    pub fn bind_reply(addr: SocketAddr, v6only: Option<bool>) -> io::Result<ListenSocket> {
        Self::open(addr, v6only, Destination::Bound, true)
    }

    fn open(
        addr: SocketAddr,
        v6only: Option<bool>,
        destination: Destination,
        reuse: bool,
    ) -> io::Result<ListenSocket> {
        let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, None)?;
        if let Some(only) = v6only {
            socket.set_only_v6(only)?;
        }
        let v4 = addr.is_ipv4() || v6only == Some(false);
        match destination {
            Destination::Bound => {}
            // Also reports IPv4 datagrams on a dual-stack socket, as v4-mapped addresses.
            Destination::PacketInfo if addr.is_ipv6() => {
                socket::setsockopt(&socket, sockopt::Ipv6RecvPacketInfo, &true)?
            }
            Destination::PacketInfo => socket::setsockopt(&socket, sockopt::Ipv4PacketInfo, &true)?,
            Destination::Original => {
                // A dual-stack socket reports an IPv4 datagram's destination at the IP
                // level (IP_ORIGDSTADDR), an IPv6 one's at the IPv6 level: it asks for both.
                if v4 {
                    socket::setsockopt(&socket, sockopt::Ipv4OrigDstAddr, &true)?;
                }
                if addr.is_ipv6() {
                    socket::setsockopt(&socket, sockopt::Ipv6OrigDstAddr, &true)?;
                }
            }
        }
        if reuse {
            socket.set_reuse_address(true)?;
        }
        // Best effort: a smaller buffer only means drops under a burst. A cap, not an
        // allocation: a reply socket, which receives nothing, costs nothing by it.
        let _ = socket.set_recv_buffer_size(RECV_BUFFER);
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        Ok(ListenSocket {
            io: UdpSocket::from_std(socket.into())?,
            destination,
            bound: addr,
        })
    }

    /// Receives one datagram into `buf`.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<Received> {
        if self.destination == Destination::Bound {
            let (len, peer) = self.io.recv_from(buf).await?;
            return Ok(Received {
                len,
                peer,
                local: self.bound.ip(),
                local_port: self.bound.port(),
            });
        }
        let fd = self.io.as_raw_fd();
        let received = self
            .io
            .async_io(Interest::READABLE, || recv_with_destination(fd, buf))
            .await?;
        let (local, local_port) = match received.original {
            // In the socket's own form, as IP_PKTINFO gives it on a dual-stack socket.
            Some(original) if self.bound.is_ipv6() => (
                IpAddr::V6(toa_wire::mapped::mapped_v6(original.ip())),
                original.port(),
            ),
            Some(original) => (original.ip(), original.port()),
            None => (received.local.unwrap_or(self.bound.ip()), self.bound.port()),
        };
        Ok(Received {
            len: received.len,
            peer: received.peer,
            local,
            local_port,
        })
    }

    /// Sends `buf` to `peer` from local address `from` (both as [`Received`] gave them).
    pub async fn send(&self, buf: &[u8], peer: SocketAddr, from: IpAddr) -> io::Result<()> {
        if !self.wildcard() || from.is_unspecified() {
            self.io.send_to(buf, peer).await?;
            return Ok(());
        }
        let fd = self.io.as_raw_fd();
        let v6_socket = self.bound.is_ipv6();
        self.io
            .async_io(Interest::WRITABLE, || {
                send_with_pktinfo(fd, buf, peer, from, v6_socket)
            })
            .await
    }

    /// [`ListenSocket::send`] without waiting: `WouldBlock` when the send buffer is full.
    pub fn try_send(&self, buf: &[u8], peer: SocketAddr, from: IpAddr) -> io::Result<()> {
        if !self.wildcard() || from.is_unspecified() {
            self.io.try_send_to(buf, peer)?;
            return Ok(());
        }
        let fd = self.io.as_raw_fd();
        let v6_socket = self.bound.is_ipv6();
        self.io.try_io(Interest::WRITABLE, || {
            send_with_pktinfo(fd, buf, peer, from, v6_socket)
        })
    }

    /// Bound to a wildcard address: a reply names its source address.
    fn wildcard(&self) -> bool {
        self.bound.ip().is_unspecified()
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.local_addr()
    }
}

impl AsFd for ListenSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.io.as_fd()
    }
}

/// Room for the one control message a socket asks for (`in6_pktinfo` or `sockaddr_in6`,
/// the larger of each pair), aligned for the `cmsghdr` at its start: `cmsg_space!` would
/// allocate a `Vec` per datagram.
#[repr(C, align(8))]
struct ControlBuffer([u8; 64]);

struct Datagram {
    len: usize,
    peer: SocketAddr,
    /// From IP_PKTINFO.
    local: Option<IpAddr>,
    /// From IP_ORIGDSTADDR.
    original: Option<SocketAddr>,
}

fn recv_with_destination(fd: RawFd, buf: &mut [u8]) -> io::Result<Datagram> {
    let mut control = ControlBuffer([0; 64]);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = socket::recvmsg::<SockaddrStorage>(
        fd,
        &mut iov,
        Some(&mut control.0[..]),
        MsgFlags::empty(),
    )?;
    let peer = msg
        .address
        .as_ref()
        .and_then(std_addr)
        .ok_or_else(|| io::Error::other("datagram from a non-IP address"))?;
    let (mut local, mut original) = (None, None);
    for cmsg in msg.cmsgs()? {
        match cmsg {
            ControlMessageOwned::Ipv4PacketInfo(info) => {
                local = Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                    info.ipi_addr.s_addr,
                ))));
            }
            ControlMessageOwned::Ipv6PacketInfo(info) => {
                local = Some(IpAddr::V6(Ipv6Addr::from(info.ipi6_addr.s6_addr)));
            }
            ControlMessageOwned::Ipv4OrigDstAddr(addr) => {
                original = Some(SocketAddr::V4(SockaddrIn::from(addr).into()));
            }
            ControlMessageOwned::Ipv6OrigDstAddr(addr) => {
                original = Some(SocketAddr::V6(SockaddrIn6::from(addr).into()));
            }
            _ => {}
        }
    }
    Ok(Datagram {
        len: msg.bytes,
        peer,
        local,
        original,
    })
}

fn std_addr(addr: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = addr.as_sockaddr_in() {
        return Some(SocketAddr::V4((*v4).into()));
    }
    addr.as_sockaddr_in6()
        .map(|v6| SocketAddr::V6((*v6).into()))
}

fn send_with_pktinfo(
    fd: RawFd,
    buf: &[u8],
    peer: SocketAddr,
    from: IpAddr,
    v6_socket: bool,
) -> io::Result<()> {
    let to = SockaddrStorage::from(peer);
    let iov = [IoSlice::new(buf)];
    let v4_info;
    let v6_info;
    let cmsg = match from {
        IpAddr::V4(v4) if !v6_socket => {
            v4_info = libc::in_pktinfo {
                ipi_ifindex: 0,
                ipi_spec_dst: libc::in_addr {
                    s_addr: u32::from(v4).to_be(),
                },
                ipi_addr: libc::in_addr { s_addr: 0 },
            };
            ControlMessage::Ipv4PacketInfo(&v4_info)
        }
        ip => {
            let v6 = toa_wire::mapped::mapped_v6(ip);
            v6_info = libc::in6_pktinfo {
                ipi6_addr: libc::in6_addr {
                    s6_addr: v6.octets(),
                },
                ipi6_ifindex: 0,
            };
            ControlMessage::Ipv6PacketInfo(&v6_info)
        }
    };
    socket::sendmsg(fd, &iov, &[cmsg], MsgFlags::empty(), Some(&to))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dual_stack_socket_learns_the_destination_and_replies_from_it() {
        let listener = ListenSocket::bind("[::]:0".parse().unwrap(), Some(false)).unwrap();
        let port = listener.local_addr().unwrap().port();
        for (client_bind, dest) in [("127.0.0.1:0", "127.0.0.1"), ("[::1]:0", "::1")] {
            let client = UdpSocket::bind(client_bind).await.unwrap();
            let dest: IpAddr = dest.parse().unwrap();
            client.send_to(b"ping", (dest, port)).await.unwrap();
            let mut buf = [0u8; 64];
            let got = listener.recv(&mut buf).await.unwrap();
            assert_eq!(&buf[..got.len], b"ping");
            assert_eq!(got.local.to_canonical(), dest);
            assert_eq!(
                got.peer.ip().to_canonical(),
                client.local_addr().unwrap().ip()
            );
            listener.send(b"pong", got.peer, got.local).await.unwrap();
            let (n, from) = client.recv_from(&mut buf).await.unwrap();
            assert_eq!(
                (&buf[..n], from),
                (&b"pong"[..], SocketAddr::new(dest, port))
            );
        }
    }

    #[test]
    fn control_buffer_holds_an_in6_pktinfo_or_sockaddr_in6_message() {
        assert!(size_of::<ControlBuffer>() >= nix::cmsg_space!(libc::in6_pktinfo).len());
        assert!(size_of::<ControlBuffer>() >= nix::cmsg_space!(libc::sockaddr_in6).len());
    }

    #[tokio::test]
    async fn ipv4_wildcard_socket_learns_the_destination() {
        let listener = ListenSocket::bind("0.0.0.0:0".parse().unwrap(), None).unwrap();
        let port = listener.local_addr().unwrap().port();
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        client.send_to(b"x", ("127.0.0.1", port)).await.unwrap();
        let mut buf = [0u8; 8];
        let got = listener.recv(&mut buf).await.unwrap();
        assert_eq!(got.local, IpAddr::from(Ipv4Addr::LOCALHOST));
        listener.try_send(b"y", got.peer, got.local).unwrap();
        let (n, from) = client.recv_from(&mut buf).await.unwrap();
        assert_eq!((n, from.port()), (1, port));
    }

    /// Without a steerer only the bound port arrives; the test checks what a steered range
    /// relies on: the original destination reported (v4, v6 and v4 on a dual-stack socket)
    /// and a reply socket sharing the port, answering from it.
    #[tokio::test]
    async fn range_socket_reports_the_original_destination_and_a_reply_socket_shares_its_port() {
        for (bind, v6only, client_bind, dest) in [
            ("127.0.0.1:0", None, "127.0.0.1:0", "127.0.0.1"),
            ("[::1]:0", Some(true), "[::1]:0", "::1"),
            ("[::]:0", Some(false), "127.0.0.1:0", "127.0.0.1"),
            ("[::]:0", Some(false), "[::1]:0", "::1"),
        ] {
            let range = ListenSocket::bind_range(bind.parse().unwrap(), v6only).unwrap();
            let port = range.local_addr().unwrap().port();
            let client = UdpSocket::bind(client_bind).await.unwrap();
            let dest: IpAddr = dest.parse().unwrap();
            client.send_to(b"ping", (dest, port)).await.unwrap();
            let mut buf = [0u8; 64];
            let got = range.recv(&mut buf).await.unwrap();
            assert_eq!(got.local.to_canonical(), dest, "{bind} from {client_bind}");
            assert_eq!(got.local_port, port);
            assert_eq!(
                got.local.is_ipv6(),
                bind.starts_with('['),
                "the socket's form"
            );
            let mut at = range.local_addr().unwrap();
            at.set_ip(bind.parse::<SocketAddr>().unwrap().ip());
            let reply = ListenSocket::bind_reply(at, v6only).unwrap();
            reply.send(b"pong", got.peer, got.local).await.unwrap();
            let (n, from) = client.recv_from(&mut buf).await.unwrap();
            assert_eq!(
                (&buf[..n], from),
                (&b"pong"[..], SocketAddr::new(dest, port))
            );
        }
    }
}
