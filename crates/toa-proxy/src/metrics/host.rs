//! Pressure on the proxy's own host, read when metrics are scraped: TIME_WAIT sockets
//! and the ephemeral port range of the proxy's network namespace (what runs out first
//! under many short upstream connections), and the process's descriptors.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use std::fmt;

use toa_metrics_http::{fd_limit, open_fds};

use super::family::gauge;

/// The host gauges, read from /proc when scraped.
#[derive(Debug)]
pub struct HostGauges;

impl Collector for HostGauges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let e = &mut encoder;
        gauge(
            e,
            "toa_proxy_tcp_time_wait",
            "TCP sockets in TIME_WAIT in the proxy's network namespace (each holds an ephemeral port).",
            time_wait(),
        )?;
        gauge(
            e,
            "toa_proxy_local_port_range_size",
            "Ephemeral ports per (source address, origin address and port): net.ipv4.ip_local_port_range.",
            local_port_range_size(),
        )?;
        gauge(
            e,
            "toa_proxy_open_fds",
            "File descriptors the proxy has open.",
            open_fds(),
        )?;
        gauge(
            e,
            "toa_proxy_fd_limit",
            "The proxy's open-file limit (soft RLIMIT_NOFILE).",
            fd_limit(),
        )
    }
}

/// `tw` of the `TCP:` line of /proc/net/sockstat: TIME_WAIT sockets in this namespace.
pub fn time_wait() -> u64 {
    let text = std::fs::read_to_string("/proc/net/sockstat").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("TCP: "))
        .and_then(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            words
                .chunks(2)
                .find(|kv| kv[0] == "tw")
                .and_then(|kv| kv.get(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Ports in net.ipv4.ip_local_port_range (IPv6 uses the same range).
pub fn local_port_range_size() -> u64 {
    let text =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    let mut it = text
        .split_whitespace()
        .filter_map(|w| w.parse::<u64>().ok());
    match (it.next(), it.next()) {
        (Some(lo), Some(hi)) if hi >= lo => hi - lo + 1,
        _ => 0,
    }
}
