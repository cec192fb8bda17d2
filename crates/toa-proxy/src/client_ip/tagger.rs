//! The seam between the proxy and whatever writes the TOA option. The proxy only
//! registers each upstream socket's client before `connect()`; the `toa` binary supplies
//! the eBPF edge writer behind these traits, so this crate builds and tests without the
//! BPF toolchain (nightly, bpf-linker) and without aya.

use std::error::Error;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::BorrowedFd;
use std::sync::Arc;

pub use crate::metrics::EdgeTotals;

/// Marks upstream sockets so their handshake carries the client's address.
pub trait UpstreamTagger: Send + Sync {
    /// Registers `socket`'s client and sets TCP_NODELAY on it, which the proxy wants on
    /// every upstream socket: a tagger may do both in one system call (the eBPF writer
    /// does). The proxy calls it between `socket()` and `connect()`.
    fn register(&self, socket: BorrowedFd<'_>, client: SocketAddr) -> io::Result<()>;

    /// Every counter of the tagger, indexed by `EdgeCounter`, for the proxy's metrics
    /// (`toa_proxy_edge_writer_total{counter=NAME}`).
    fn counters(&self) -> EdgeTotals;
}

/// Attaches an [`UpstreamTagger`] writing TCP option `kind`. The proxy calls it once,
/// when a rule first asks for `pass_client_ip = "toa"`, and keeps the tagger for the
/// life of the process (the kind is fixed from then on).
pub trait UpstreamTaggerFactory: Send + Sync + fmt::Debug {
    fn attach(&self, kind: u8) -> Result<Arc<dyn UpstreamTagger>, Box<dyn Error + Send + Sync>>;
}
