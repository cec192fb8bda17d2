//! toa-loader's eBPF [`EdgeWriter`] behind toa-proxy's [`UpstreamTagger`] seam: the proxy
//! crate knows only the trait, so it builds without aya; this binary wires the two.
//!
//! The writer attaches at start, before the proxy drops the capabilities attaching needs
//! (`cmd::proxy`): [`EdgeWriterFactory::attach_at_start`] runs while the process is one
//! thread, and the proxy's [`UpstreamTaggerFactory::attach`] hands out that writer. A
//! reload that asks for TOA when the config at start did not (or for another kind) is
//! refused with a line that says to restart.

use std::error::Error;
use std::io;
use std::net::SocketAddr;
use std::os::fd::BorrowedFd;
use std::sync::{Arc, Mutex};

use toa_loader::{EdgeCounter, EdgeWriter};
use toa_proxy::{EdgeTotals, UpstreamTagger, UpstreamTaggerFactory};

/// The writer attached at start (or why it could not be), for the proxy to pick up.
#[derive(Debug, Default)]
pub struct EdgeWriterFactory {
    prepared: Mutex<Option<Prepared>>,
}

#[derive(Debug)]
struct Prepared {
    kind: u8,
    writer: Result<Arc<EdgeTagger>, String>,
}

impl EdgeWriterFactory {
    /// Attaches the writer of option `kind` to this process's cgroup. A failure is kept
    /// and reported by [`UpstreamTaggerFactory::attach`], where the proxy names the rule.
    /// Returns whether the writer is attached.
    pub fn attach_at_start(&self, kind: u8) -> bool {
        let writer = EdgeWriter::attach_to_self(kind)
            .map(|writer| {
                tracing::info!(kind, cgroup = %writer.cgroup().display(), "TOA edge writer attached");
                Arc::new(EdgeTagger(writer))
            })
            .map_err(|e| e.to_string());
        let attached = writer.is_ok();
        *self.prepared.lock().unwrap_or_else(|p| p.into_inner()) = Some(Prepared { kind, writer });
        attached
    }
}

impl UpstreamTaggerFactory for EdgeWriterFactory {
    fn attach(&self, kind: u8) -> Result<Arc<dyn UpstreamTagger>, Box<dyn Error + Send + Sync>> {
        match self.prepared.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            Some(prepared) if prepared.kind == kind => match &prepared.writer {
                Ok(writer) => Ok(writer.clone()),
                Err(e) => Err(e.clone().into()),
            },
            _ => Err(format!(
                "the edge writer (kind {kind}) attaches only at start, before the proxy drops CAP_BPF and CAP_NET_ADMIN, and the config at start had no such rule; restart the proxy"
            )
            .into()),
        }
    }
}

/// The attached writer, as the proxy sees it.
#[derive(Debug)]
struct EdgeTagger(EdgeWriter);

impl UpstreamTagger for EdgeTagger {
    fn register(&self, socket: BorrowedFd<'_>, client: SocketAddr) -> io::Result<()> {
        self.0.register(socket, client).map_err(io::Error::other)
    }

    fn counters(&self) -> EdgeTotals {
        let mut totals = [0; EdgeCounter::COUNT as usize];
        for (counter, value) in self.0.totals() {
            totals[counter as usize] = value;
        }
        totals
    }
}
