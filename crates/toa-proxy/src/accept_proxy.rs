//! Accepting PROXY v1/v2 headers on a rule's listeners (`accept_proxy`): the client a
//! trusted upstream names becomes the client for everything downstream (pass_client_ip,
//! balancing, session persistence, limits, logs, metrics).
//!
//! Only sources in `accept_proxy_from` may connect at all; each must send a header within
//! `[proxy] accept_proxy_timeout`. The header is parsed incrementally with toa-wire's
//! parsers, so one split across several segments is read whole; bytes the client sent
//! after it are kept and go to the origin first.

use std::net::SocketAddr;
use std::time::Duration;

use toa_wire::{Parsed, proxy_v1, proxy_v2};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use toa_config::AcceptProxy;
use toa_wire::normalize;

toa_common::names! {
    /// Why a connection on an `accept_proxy` rule was closed before any origin was tried
    /// (the `reason` label of `toa_proxy_connections_rejected_total`).
    pub enum Refusal {
        /// The TCP peer (or UDP source) is not in `accept_proxy_from`.
        Untrusted => "proxy_header_untrusted",
        /// The first bytes are not a PROXY header of an accepted version, or the stream ended first.
        Missing => "proxy_header_missing",
        /// A header of an accepted version that does not parse.
        Malformed => "proxy_header_malformed",
        /// No complete header within `accept_proxy_timeout`.
        Timeout => "proxy_header_timeout",
    }
}

/// Who the connection is from once its header is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The header's source; the TCP peer for LOCAL (v2) and UNKNOWN (v1) headers.
    pub client: SocketAddr,
    /// The header's destination: the address the client connected to upstream.
    pub proxy: Option<SocketAddr>,
    /// Client bytes read past the header: they go to the origin before anything else.
    pub leftover: Vec<u8>,
}

/// What the bytes so far say.
#[derive(Debug, PartialEq, Eq)]
pub enum Progress {
    Done { accepted: Accepted },
    NeedMore,
    Refused(Refusal),
}

/// Reads the header from `stream`, whose TCP peer is `peer` (normalized).
pub async fn read(
    stream: &mut TcpStream,
    peer: SocketAddr,
    accept: &AcceptProxy,
    timeout: Duration,
) -> Result<Accepted, Refusal> {
    if !accept.trusts(peer.ip()) {
        return Err(Refusal::Untrusted);
    }
    let reading = async {
        let mut buf = Vec::with_capacity(256);
        let mut chunk = [0u8; 512];
        loop {
            let n = stream
                .read(&mut chunk)
                .await
                .map_err(|_| Refusal::Missing)?;
            if n == 0 {
                return Err(if buf.is_empty() {
                    Refusal::Missing
                } else {
                    Refusal::Malformed
                });
            }
            buf.extend_from_slice(&chunk[..n]);
            match parse(&buf, peer, accept) {
                Progress::Done { accepted } => return Ok(accepted),
                Progress::NeedMore => continue,
                Progress::Refused(r) => return Err(r),
            }
        }
    };
    tokio::time::timeout(timeout, reading)
        .await
        .unwrap_or(Err(Refusal::Timeout))
}

/// Parses the bytes received so far with every version `accept` allows.
pub fn parse(buf: &[u8], peer: SocketAddr, accept: &AcceptProxy) -> Progress {
    let mut need_more = false;
    if accept.version.accepts_v2() {
        match proxy_v2::parse(buf) {
            Ok(Parsed::Complete { header, consumed }) => {
                let (client, proxy) = v2_client(header, peer);
                return done(client, proxy, buf, consumed);
            }
            Ok(Parsed::Incomplete) => need_more = true,
            Err(proxy_v2::Error::NotProxyV2) => {}
            Err(_) => return Progress::Refused(Refusal::Malformed),
        }
    }
    if accept.version.accepts_v1() {
        match proxy_v1::parse(buf) {
            Ok(Parsed::Complete { header, consumed }) => {
                let (client, proxy) = match header.addresses {
                    proxy_v1::Addresses::Tcp { src, dst } => (normalize(src), Some(normalize(dst))),
                    proxy_v1::Addresses::Unknown => (peer, None),
                };
                return done(client, proxy, buf, consumed);
            }
            Ok(Parsed::Incomplete) => need_more = true,
            Err(proxy_v1::Error::NotProxyV1) => {}
            Err(_) => return Progress::Refused(Refusal::Malformed),
        }
    }
    if need_more {
        Progress::NeedMore
    } else {
        Progress::Refused(Refusal::Missing)
    }
}

/// The client and destination a v2 header names; `peer` for LOCAL (the upstream's own
/// health check) and for families without IP addresses, as proxy-protocol.txt says.
pub fn v2_client(header: proxy_v2::Header, peer: SocketAddr) -> (SocketAddr, Option<SocketAddr>) {
    match (header.command, header.addresses) {
        (proxy_v2::Command::Proxy, proxy_v2::Addresses::Inet { src, dst }) => {
            (normalize(src), Some(normalize(dst)))
        }
        _ => (peer, None),
    }
}

fn done(client: SocketAddr, proxy: Option<SocketAddr>, buf: &[u8], consumed: usize) -> Progress {
    Progress::Done {
        accepted: Accepted {
            client,
            proxy,
            leftover: buf.get(consumed..).unwrap_or_default().to_vec(),
        },
    }
}

#[cfg(test)]
mod tests;
