//! Pass-client-IP modes, one file each behind [`ClientIpWriter`]: how the origin learns
//! the client's address. TOA acts on the upstream socket before `connect()`; PROXY v1/v2
//! put a header in front of the first client byte; `off` does nothing. TOA's writer
//! comes from outside, through [`UpstreamTaggerFactory`] (the `toa` binary supplies it).

mod off;
mod ppv1;
mod ppv2;
mod tagger;
mod toa;

use std::io;
use std::net::SocketAddr;

use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex};

use tokio::net::TcpSocket;

use crate::metrics::Metrics;
use toa_config::{Rule, TcpMode, ToaSettings};

pub use off::Off;
pub use ppv1::ProxyV1;
pub use ppv2::ProxyV2;
pub use tagger::{EdgeTotals, UpstreamTagger, UpstreamTaggerFactory};
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

/// Why a mode cannot build the header the origin must read first: the connection or flow
/// is then refused, never forwarded without it.
#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    #[error("cannot encode the PROXY v2 header: {0}")]
    ProxyV2(#[from] toa_wire::proxy_v2::Error),
    /// With the header, the first datagram would not fit in one UDP datagram.
    #[error("the {mode} header is longer than {limit} bytes")]
    TooLong { mode: &'static str, limit: usize },
}

/// Why this proxy cannot provide a rule's mode: the (re)load is refused.
#[derive(Debug, thiserror::Error)]
pub enum ModeError {
    #[error("[toa] kind changed from {attached} to {requested}; restart the proxy to change it")]
    ToaKindChanged { attached: u8, requested: u8 },
    #[error(
        "pass_client_ip = \"toa\" needs the eBPF edge writer, and this proxy was started without one (run it as `toa proxy`)"
    )]
    NoToaWriter,
    #[error("cannot load the TOA edge writer: {0}")]
    ToaAttach(Box<dyn std::error::Error + Send + Sync>),
}

/// One pass-client-IP mode on TCP.
pub trait ClientIpWriter: Send + Sync {
    /// Config name of the mode (`toa`, `ppv1`, `ppv2`, `off`), for logs.
    fn name(&self) -> &'static str;

    /// Sets up the upstream socket after `socket()` and before `connect()`: TCP_NODELAY
    /// (small writes go out at once, as the client sent them; the client side inherits
    /// it from its listener, listener.rs), plus whatever the mode needs. TOA does both
    /// in one system call.
    fn prepare(&self, socket: &TcpSocket, _conn: &ConnInfo) -> io::Result<()> {
        socket.set_nodelay(true)
    }

    /// Bytes the origin must read before any byte from the client, or why they cannot be
    /// built: the connection is then closed, never forwarded without its header.
    fn preamble(&self, _conn: &ConnInfo) -> Result<Option<Vec<u8>>, HeaderError> {
        Ok(None)
    }
}

/// Builds the writer for each rule's mode; holds what modes share across reloads.
pub struct Modes {
    /// Random per process, so PROXY v2 UNIQUE_IDs stay unique across restarts.
    nonce: u64,
    /// What attaches the TOA writer; without it, TOA rules are refused.
    tagger_factory: Option<Arc<dyn UpstreamTaggerFactory>>,
    /// The TOA writer, attached when a rule first asks for TOA, with the kind it writes.
    toa: Mutex<Option<(u8, Arc<dyn UpstreamTagger>)>>,
}

impl Modes {
    /// The modes of one proxy process; `tagger_factory` provides TOA (none: TOA rules
    /// are refused).
    pub fn new(tagger_factory: Option<Arc<dyn UpstreamTaggerFactory>>) -> Modes {
        Modes {
            nonce: std::hash::RandomState::new().build_hasher().finish(),
            tagger_factory,
            toa: Mutex::new(None),
        }
    }

    /// The PROXY v2 header builder for `rule` (TCP, and UDP's first datagram).
    pub fn proxy_v2(&self, rule: &Rule) -> ProxyV2 {
        ProxyV2 {
            unique_id: rule.ppv2_unique_id.then_some(self.nonce),
        }
    }

    /// The writer for `mode` on TCP rule `rule`, or why this proxy cannot provide it.
    pub fn writer(
        &self,
        mode: TcpMode,
        rule: &Rule,
        toa: &ToaSettings,
        metrics: &Metrics,
    ) -> Result<Arc<dyn ClientIpWriter>, ModeError> {
        Ok(match mode {
            TcpMode::Off => Arc::new(Off),
            TcpMode::ProxyV1 => Arc::new(ProxyV1),
            TcpMode::ProxyV2 => Arc::new(self.proxy_v2(rule)),
            TcpMode::Toa => Arc::new(Toa {
                writer: self.toa_writer(toa.kind, metrics)?,
            }),
        })
    }

    /// The edge writer, attached to this process on first use. The option kind is fixed
    /// from then on: changing it needs a restart.
    fn toa_writer(
        &self,
        kind: u8,
        metrics: &Metrics,
    ) -> Result<Arc<dyn UpstreamTagger>, ModeError> {
        let mut slot = self.toa.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((attached, writer)) = slot.as_ref() {
            return if *attached == kind {
                Ok(writer.clone())
            } else {
                Err(ModeError::ToaKindChanged {
                    attached: *attached,
                    requested: kind,
                })
            };
        }
        let factory = self.tagger_factory.as_ref().ok_or(ModeError::NoToaWriter)?;
        let writer = factory.attach(kind).map_err(ModeError::ToaAttach)?;
        let stats = writer.clone();
        metrics.set_toa_source(Box::new(move || stats.counters()));
        *slot = Some((kind, writer.clone()));
        Ok(writer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toa_rule_without_a_tagger_is_refused_in_one_line() {
        let config = toa_config::Config::parse(
            std::path::Path::new("proxy.toml"),
            "[[rule]]\ntag = \"web\"\nports = \"80\"\norigins = [\"198.18.2.2\"]\npass_client_ip = \"toa\"\n",
        )
        .unwrap();
        let modes = Modes::new(None);
        let refused = modes
            .writer(
                TcpMode::Toa,
                &config.rules[0],
                &config.toa,
                &Metrics::default(),
            )
            .err()
            .expect("no tagger, no TOA");
        assert_eq!(
            refused.to_string(),
            "pass_client_ip = \"toa\" needs the eBPF edge writer, and this proxy was started without one (run it as `toa proxy`)"
        );
        let ppv2 = toa_config::Config::parse(
            std::path::Path::new("proxy.toml"),
            "[[rule]]\ntag = \"web\"\nports = \"80\"\norigins = [\"198.18.2.2\"]\npass_client_ip = \"ppv2\"\n",
        )
        .unwrap();
        let writer = modes.writer(
            TcpMode::ProxyV2,
            &ppv2.rules[0],
            &ppv2.toa,
            &Metrics::default(),
        );
        assert_eq!(writer.map(|w| w.name()).ok(), Some("ppv2"));
    }
}
