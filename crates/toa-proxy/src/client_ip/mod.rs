//! Pass-client-IP modes, one file each behind [`ClientIpWriter`]: how the origin learns
//! the client's address. TOA acts on the upstream socket before `connect()`; PROXY v1/v2
//! put a header in front of the first client byte; `off` does nothing.

mod off;
mod ppv1;
mod ppv2;
mod toa;

use std::io;
use std::net::SocketAddr;

use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex};

use toa_loader::EdgeWriter;
use tokio::net::TcpSocket;

use crate::config::{ClientIpMode, Rule, ToaSettings};
use crate::metrics::Metrics;

pub use off::Off;
pub use ppv1::ProxyV1;
pub use ppv2::ProxyV2;
pub use toa::Toa;

/// What a mode needs to know about one client connection. Addresses are normalized
/// (`toa_wire::normalize`, once, at accept):
/// an IPv4 client that reached a dual-stack listener as `::ffff:a.b.c.d` is IPv4 here.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    /// Unique per proxy process; PROXY v2 sends it as UNIQUE_ID.
    pub id: u64,
    pub client: SocketAddr,
    /// The proxy address the client connected to.
    pub proxy: SocketAddr,
}

/// One pass-client-IP mode on TCP.
pub trait ClientIpWriter: Send + Sync {
    /// Config name of the mode (`toa`, `ppv1`, `ppv2`, `off`), for logs.
    fn name(&self) -> &'static str;

    /// Runs on the upstream socket after `socket()` and before `connect()`.
    fn prepare(&self, _socket: &TcpSocket, _conn: &ConnInfo) -> io::Result<()> {
        Ok(())
    }

    /// Bytes the origin must read before any byte from the client.
    fn preamble(&self, _conn: &ConnInfo) -> Option<Vec<u8>> {
        None
    }
}

/// Builds the writer for each rule's mode; holds what modes share across reloads.
pub struct Modes {
    /// Random per process, so PROXY v2 UNIQUE_IDs stay unique across restarts.
    nonce: u64,
    /// The TOA writer, attached when a rule first asks for TOA, with the kind it writes.
    toa: Mutex<Option<(u8, Arc<EdgeWriter>)>>,
}

impl Default for Modes {
    fn default() -> Self {
        Modes {
            nonce: std::hash::RandomState::new().build_hasher().finish(),
            toa: Mutex::new(None),
        }
    }
}

impl Modes {
    /// The PROXY v2 header builder for `rule` (TCP, and UDP's first datagram).
    pub fn proxy_v2(&self, rule: &Rule) -> ProxyV2 {
        ProxyV2 {
            unique_id: rule.ppv2_unique_id.then_some(self.nonce),
        }
    }

    /// The writer for `rule`'s mode, or why this proxy cannot provide it.
    pub fn writer(
        &self,
        rule: &Rule,
        toa: &ToaSettings,
        metrics: &Metrics,
    ) -> Result<Arc<dyn ClientIpWriter>, String> {
        Ok(match rule.pass_client_ip {
            ClientIpMode::Off => Arc::new(Off),
            ClientIpMode::ProxyV1 => Arc::new(ProxyV1),
            ClientIpMode::ProxyV2 => Arc::new(self.proxy_v2(rule)),
            ClientIpMode::Toa => Arc::new(Toa {
                writer: self.toa_writer(toa.kind, metrics)?,
            }),
            ClientIpMode::Spp => return Err("spp is a UDP mode".into()),
        })
    }

    /// The edge writer, attached to this process on first use. The option kind is fixed
    /// from then on: changing it needs a restart.
    fn toa_writer(&self, kind: u8, metrics: &Metrics) -> Result<Arc<EdgeWriter>, String> {
        let mut slot = self.toa.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((attached, writer)) = slot.as_ref() {
            return if *attached == kind {
                Ok(writer.clone())
            } else {
                Err(format!(
                    "[toa] kind changed from {attached} to {kind}; restart the proxy to change it"
                ))
            };
        }
        let writer = Arc::new(
            EdgeWriter::attach_to_self(kind)
                .map_err(|e| format!("cannot load the TOA edge writer: {e}"))?,
        );
        tracing::info!(kind, cgroup = %writer.cgroup().display(), "TOA edge writer attached");
        let stats = writer.clone();
        metrics.set_toa_source(Box::new(move || stats.totals()));
        *slot = Some((kind, writer.clone()));
        Ok(writer)
    }
}
