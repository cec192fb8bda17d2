//! toa-spp-echo — the reference origin behind `toa spp-echo`: a UDP echo server that understands what the
//! proxy puts in front of datagrams, so users can check their setup and tests have a real
//! origin. For each datagram it:
//! - **SPP**: strips the header, logs each new client once
//!   (`spp client 198.18.1.2:40000 via proxy 198.18.1.1:10000`), and echoes the payload
//!   with the same header in front, as an SPP-aware origin should;
//! - **PROXY v2**: logs the header (`ppv2 client ... via proxy ... (dgram)`; the proxy sends
//!   it on a flow's first datagram only) and echoes the payload without it;
//! - **anything else**: echoes it unchanged and logs each new sender once.
//!
//! A datagram that starts like a header but does not parse is logged and not answered.
//!
//! Replies leave from the address each datagram came to, through toa-pktinfo's
//! [`ListenSocket`]; the headers are toa-wire's codecs.

use std::collections::HashSet;
use std::net::SocketAddr;

use toa_wire::proxy_v2::{self, Addresses, Transport};
use toa_wire::{Parsed, spp};
use tokio_util::sync::CancellationToken;

use toa_pktinfo::ListenSocket;

/// Distinct senders remembered for the "new client" lines; beyond it the set starts over
/// (a client may then be logged again), which bounds memory under a flood of sources.
const MAX_REMEMBERED: usize = 65_536;

/// What one datagram asks of the echo server.
#[derive(Debug, PartialEq, Eq)]
pub struct Echo {
    /// A log line, if this datagram deserves one.
    pub line: Option<String>,
    /// The reply, if any.
    pub reply: Option<Vec<u8>>,
}

/// Answers datagrams as `toa spp-echo` does, remembering which clients it has logged.
#[derive(Default)]
pub struct EchoServer {
    seen: HashSet<SocketAddr>,
}

impl EchoServer {
    /// Handles one datagram from `from` (the proxy, when one is in front).
    pub fn handle(&mut self, datagram: &[u8], from: SocketAddr) -> Echo {
        if spp::starts_with_magic(datagram) {
            return match spp::parse(datagram) {
                Ok((header, payload)) => {
                    let line = self.first_time(header.client).then(|| {
                        format!("spp client {} via proxy {}", header.client, header.proxy)
                    });
                    let mut reply = header.encode().to_vec();
                    reply.extend_from_slice(payload);
                    Echo {
                        line,
                        reply: Some(reply),
                    }
                }
                Err(e) => malformed(from, &e),
            };
        }
        if datagram.starts_with(&proxy_v2::SIGNATURE) {
            return match proxy_v2::parse(datagram) {
                Ok(Parsed::Complete { header, consumed }) => {
                    let transport = match header.transport {
                        Transport::Dgram => "dgram",
                        Transport::Stream => "stream",
                        Transport::Unspec => "unspec",
                    };
                    let line = match header.addresses {
                        Addresses::Inet { src, dst } => {
                            format!("ppv2 client {src} via proxy {dst} ({transport})")
                        }
                        _ => format!("ppv2 {:?} header from {from} ({transport})", header.command),
                    };
                    Echo {
                        line: Some(line),
                        reply: Some(datagram.get(consumed..).unwrap_or_default().to_vec()),
                    }
                }
                Ok(Parsed::Incomplete) => {
                    malformed(from, &"PROXY v2 header cut short by the datagram's end")
                }
                Err(e) => malformed(from, &e),
            };
        }
        Echo {
            line: self
                .first_time(from)
                .then(|| format!("plain datagram from {from}")),
            reply: Some(datagram.to_vec()),
        }
    }

    fn first_time(&mut self, client: SocketAddr) -> bool {
        if self.seen.len() >= MAX_REMEMBERED {
            self.seen.clear();
        }
        self.seen.insert(client)
    }
}

fn malformed(from: SocketAddr, reason: &dyn std::fmt::Display) -> Echo {
    Echo {
        line: Some(format!("malformed datagram from {from}: {reason}")),
        reply: None,
    }
}

/// Serves on `socket` until `stop` is cancelled, passing each log line to `log`.
pub async fn serve(socket: ListenSocket, stop: CancellationToken, mut log: impl FnMut(&str)) {
    let mut server = EchoServer::default();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let got = tokio::select! {
            _ = stop.cancelled() => return,
            r = socket.recv(&mut buf) => match r {
                Ok(got) => got,
                Err(e) => {
                    log(&format!("receive failed: {e}"));
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let from = toa_wire::canonical(got.peer);
        let echo = server.handle(&buf[..got.len], from);
        if let Some(line) = &echo.line {
            log(line);
        }
        if let Some(reply) = echo.reply
            && let Err(e) = socket.send(&reply, got.peer, got.local).await
        {
            log(&format!("cannot reply to {from}: {e}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROXY: &str = "198.18.2.1:5000";

    #[test]
    fn spp_client_is_logged_once_and_the_header_comes_back() {
        let header = spp::Header {
            client: "198.18.1.2:40000".parse().unwrap(),
            proxy: "198.18.1.1:10000".parse().unwrap(),
        };
        let mut datagram = header.encode().to_vec();
        datagram.extend_from_slice(b"hello");
        let mut server = EchoServer::default();
        let first = server.handle(&datagram, PROXY.parse().unwrap());
        assert_eq!(
            first.line.as_deref(),
            Some("spp client 198.18.1.2:40000 via proxy 198.18.1.1:10000")
        );
        assert_eq!(first.reply.as_deref(), Some(&datagram[..]));
        assert_eq!(server.handle(&datagram, PROXY.parse().unwrap()).line, None);
    }

    #[test]
    fn ppv2_header_is_logged_and_stripped_from_the_echo() {
        let mut datagram = proxy_v2::Header::proxy(
            Transport::Dgram,
            "[fd00:1::2]:40000".parse().unwrap(),
            "[fd00:1::1]:10000".parse().unwrap(),
        )
        .encode()
        .unwrap();
        datagram.extend_from_slice(b"hi");
        let echo = EchoServer::default().handle(&datagram, PROXY.parse().unwrap());
        assert_eq!(
            echo.line.as_deref(),
            Some("ppv2 client [fd00:1::2]:40000 via proxy [fd00:1::1]:10000 (dgram)")
        );
        assert_eq!(echo.reply.as_deref(), Some(&b"hi"[..]));
    }

    #[test]
    fn plain_echoes_unchanged_and_malformed_headers_get_no_reply() {
        let mut server = EchoServer::default();
        let plain = server.handle(b"ping", PROXY.parse().unwrap());
        assert_eq!(plain.reply.as_deref(), Some(&b"ping"[..]));
        let short = server.handle(&[0x56, 0xEC, 1, 2], PROXY.parse().unwrap());
        assert_eq!(short.reply, None);
        assert!(short.line.unwrap().starts_with("malformed datagram from"));
        let cut = server.handle(&proxy_v2::SIGNATURE, PROXY.parse().unwrap());
        assert_eq!(cut.reply, None);
    }
}
