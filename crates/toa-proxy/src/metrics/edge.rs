//! The eBPF edge writer's counters, as the proxy exports them. The writer is loaded
//! outside this crate; it hands over its totals indexed by `toa_common`'s
//! [`EdgeCounter`] (no aya, no BPF types), so every row is named by the enum itself.

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet};
use toa_common::edge::EdgeCounter;

use super::family::{counter, counters};

/// The edge writer's totals over CPUs, indexed by [`EdgeCounter`].
pub type EdgeTotals = [u64; EdgeCounter::COUNT as usize];

/// Reads the edge writer's totals when scraped.
pub type ToaSource = Box<dyn Fn() -> EdgeTotals + Send + Sync>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CounterLabels {
    counter: &'static str,
}

/// One read of the edge writer's counters; `None` while no TOA rule has loaded it.
#[derive(Debug)]
pub struct EdgeFamilies(pub Option<EdgeTotals>);

impl EdgeFamilies {
    fn total(&self, counter: EdgeCounter) -> u64 {
        self.0.map_or(0, |totals| totals[counter as usize])
    }
}

impl Collector for EdgeFamilies {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let e = &mut encoder;
        counter(
            e,
            "toa_proxy_toa_options_written",
            "TOA options written by the edge writer (SYN and handshake ACK).",
            self.total(EdgeCounter::OptionsWritten),
        )?;
        counter(
            e,
            "toa_proxy_toa_options_failed",
            "TOA options not written: no room in the TCP header.",
            self.total(EdgeCounter::ReserveFailed),
        )?;
        let rows = self.0.iter().flat_map(|totals| {
            EdgeCounter::ALL.map(|c| (CounterLabels { counter: c.name() }, totals[c as usize]))
        });
        counters(
            e,
            "toa_proxy_edge_writer",
            "Every counter of the eBPF edge writer, by name (see the README's counter table).",
            rows,
        )
    }
}
