//! The eBPF edge writer's counters, as the proxy exports them. The writer is loaded
//! outside this module; it hands over its counters as plain (name, total) rows, so the
//! metrics need no BPF types.

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet};

use super::family::{counter, counters};

/// Every counter of the edge writer as (name, total over CPUs), read when scraped.
pub type ToaSource = Box<dyn Fn() -> Vec<(&'static str, u64)> + Send + Sync>;

/// The row of a TOA option written (SYN or handshake ACK): `toa_proxy_toa_options_written_total`.
pub const OPTIONS_WRITTEN: &str = "options_written";
/// The row of an option with no room in the TCP header: `toa_proxy_toa_options_failed_total`.
pub const RESERVE_FAILED: &str = "reserve_failed";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CounterLabels {
    counter: &'static str,
}

/// One read of the edge writer's counters; empty while no TOA rule has loaded it.
#[derive(Debug)]
pub struct EdgeFamilies(pub Vec<(&'static str, u64)>);

impl EdgeFamilies {
    fn total(&self, name: &str) -> u64 {
        self.0.iter().find(|(n, _)| *n == name).map_or(0, |r| r.1)
    }
}

impl Collector for EdgeFamilies {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let e = &mut encoder;
        counter(
            e,
            "toa_proxy_toa_options_written",
            "TOA options written by the edge writer (SYN and handshake ACK).",
            self.total(OPTIONS_WRITTEN),
        )?;
        counter(
            e,
            "toa_proxy_toa_options_failed",
            "TOA options not written: no room in the TCP header.",
            self.total(RESERVE_FAILED),
        )?;
        counters(
            e,
            "toa_proxy_edge_writer",
            "Every counter of the eBPF edge writer, by name (see the README's counter table).",
            self.0
                .iter()
                .map(|&(counter, v)| (CounterLabels { counter }, v)),
        )
    }
}
