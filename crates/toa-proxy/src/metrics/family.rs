//! How the proxy's metric families are written with `prometheus-client`: the helpers
//! every collector uses to encode one family (label enums are [`crate::labels`]).
//!
//! The data path counts into plain atomics (one `fetch_add`, no lookup); a scrape reads
//! them into `ConstCounter`/`ConstGauge` values labelled by typed label sets, so a label
//! value is always a variant of an enum and never a string typed at a call site.

use std::fmt;

use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// A counter family, one sample per label set. Counter names are given without the
/// `_total` the encoder appends: `toa_proxy_reloads` is exposed as `toa_proxy_reloads_total`.
pub fn counters<S: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (S, u64)>,
) -> fmt::Result {
    family(
        encoder,
        name,
        help,
        MetricType::Counter,
        rows.into_iter().map(|(l, v)| (l, ConstCounter::new(v))),
    )
}

/// A gauge family, one sample per label set.
pub fn gauges<S: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (S, u64)>,
) -> fmt::Result {
    family(
        encoder,
        name,
        help,
        MetricType::Gauge,
        rows.into_iter().map(|(l, v)| (l, ConstGauge::new(v))),
    )
}

/// A counter without labels (named without `_total`, as for [`counters`]).
pub fn counter(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> fmt::Result {
    let value = ConstCounter::new(value);
    value.encode(encoder.encode_descriptor(name, help, None, value.metric_type())?)
}

/// A gauge without labels.
pub fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> fmt::Result {
    let value = ConstGauge::new(value);
    value.encode(encoder.encode_descriptor(name, help, None, value.metric_type())?)
}

fn family<S: EncodeLabelSet, M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric_type: MetricType,
    rows: impl IntoIterator<Item = (S, M)>,
) -> fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, None, metric_type)?;
    for (labels, value) in rows {
        value.encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}
