//! Pass-client-IP modes for datagrams, one file each behind [`DatagramWriter`]: what the
//! proxy puts in front of a flow's datagrams to the origin (PROXY v2 on the first one, SPP
//! on every one, or nothing) and how it reads the origin's replies. The TCP modes are in
//! [`crate::client_ip`].

mod off;
mod ppv2;
mod spp;

use std::net::SocketAddr;
use std::sync::Arc;

use crate::client_ip::{HeaderError, Modes};
use crate::metrics::DropReason;
use toa_config::{Rule, UdpMode};

pub use off::Off;
pub use ppv2::ProxyV2Dgram;
pub use spp::Spp;

/// The largest UDP payload an IPv4 datagram can carry (65,535 − 20 IP − 8 UDP): a datagram
/// that would be longer with the header cannot be sent, so it is dropped and counted.
pub const MAX_DATAGRAM: usize = 65_507;

/// The addresses of one flow, normalized: an IPv4 client that reached a dual-stack listener
/// as `::ffff:a.b.c.d` is IPv4 here, and so is the proxy address it sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowInfo {
    /// Unique per proxy process (PROXY v2 UNIQUE_ID), shared with the TCP connection ids.
    pub id: u64,
    pub client: SocketAddr,
    /// The listener address and port the client sent to.
    pub proxy: SocketAddr,
}

/// The bytes a flow puts in front of its datagrams to the origin. Computed once per flow:
/// a flow's addresses never change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlowHeaders {
    /// In front of the first datagram that reaches the origin only (PROXY v2).
    pub first: Vec<u8>,
    /// In front of every datagram (SPP), after `first` on the first one.
    pub every: Vec<u8>,
}

/// What the client gets for one datagram from the origin.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply<'a> {
    /// Send these bytes.
    Forward(&'a [u8]),
    /// The reply lacks the header the mode expects; it is sent unchanged and counted.
    Unmarked(&'a [u8]),
    /// Not sent; the reason is the `reason` label of the drop counter.
    Drop(DropReason),
}

/// One pass-client-IP mode on UDP.
pub trait DatagramWriter: Send + Sync {
    /// Config name of the mode (`ppv2`, `spp`, `off`), for logs.
    fn name(&self) -> &'static str;

    /// The headers of a new flow, or why none can be built (the flow is then refused).
    fn headers(&self, flow: &FlowInfo) -> Result<FlowHeaders, HeaderError>;

    /// What to send the client for `datagram`, which the origin sent.
    fn reply<'a>(&self, datagram: &'a [u8]) -> Reply<'a> {
        Reply::Forward(datagram)
    }
}

/// The writer for `mode` on UDP rule `rule`; `modes` holds what PROXY v2 shares with TCP.
pub fn writer_for(mode: UdpMode, rule: &Rule, modes: &Modes) -> Arc<dyn DatagramWriter> {
    match mode {
        UdpMode::Off => Arc::new(Off),
        UdpMode::ProxyV2 => Arc::new(ProxyV2Dgram::new(modes.proxy_v2(rule))),
        UdpMode::Spp => Arc::new(Spp),
    }
}
