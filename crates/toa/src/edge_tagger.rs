//! toa-loader's eBPF [`EdgeWriter`] behind toa-proxy's [`UpstreamTagger`] seam: the proxy
//! crate knows only the trait, so it builds without aya; this binary wires the two.

use std::error::Error;
use std::io;
use std::net::SocketAddr;
use std::os::fd::BorrowedFd;
use std::sync::Arc;

use toa_loader::{EdgeCounter, EdgeWriter};
use toa_proxy::{UpstreamTagger, UpstreamTaggerFactory};

/// Attaches the edge writer to this process's cgroup when a rule first asks for TOA.
#[derive(Debug, Default)]
pub struct EdgeWriterFactory;

impl UpstreamTaggerFactory for EdgeWriterFactory {
    fn attach(&self, kind: u8) -> Result<Arc<dyn UpstreamTagger>, Box<dyn Error + Send + Sync>> {
        let writer = EdgeWriter::attach_to_self(kind)?;
        tracing::info!(kind, cgroup = %writer.cgroup().display(), "TOA edge writer attached");
        Ok(Arc::new(EdgeTagger(writer)))
    }
}

/// The attached writer, as the proxy sees it.
struct EdgeTagger(EdgeWriter);

impl UpstreamTagger for EdgeTagger {
    fn register(&self, socket: BorrowedFd<'_>, client: SocketAddr) -> io::Result<()> {
        self.0.register(socket, client).map_err(io::Error::other)
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        self.0
            .totals()
            .into_iter()
            .map(|(counter, value): (EdgeCounter, u64)| (counter.name(), value))
            .collect()
    }
}
