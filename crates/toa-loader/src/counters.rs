//! Reading the per-CPU counter arrays: one snapshot type, [`Counters`], for
//! every counter set declared with `toa_common::counters!` (the origin's
//! [`Counter`] and the edge writer's [`EdgeCounter`]), with per-CPU columns
//! for `toa origin stats` and totals for everything else.

use crate::{LoaderError, Result};
use aya::maps::{Map, MapData, PerCpuArray};
use std::marker::PhantomData;
use std::path::Path;
use toa_common::counters::CounterId;
use toa_common::edge::EdgeCounter;
use toa_common::origin::Counter;

/// A snapshot of the origin receiver's counters.
pub type OriginCounters = Counters<Counter>;
/// A snapshot of the edge writer's counters.
pub type EdgeCounters = Counters<EdgeCounter>;

/// A snapshot of one per-CPU counter array: every counter of the set `C`, per
/// CPU. A counter is read by its enum variant (its doc says what it counts),
/// never by a name string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counters<C> {
    /// `rows[counter][cpu]`; one row per counter of `C`.
    rows: Vec<Vec<u64>>,
    set: PhantomData<C>,
}

impl<C: CounterId> Counters<C> {
    /// Reads every counter of a per-CPU `u64` array.
    pub(crate) fn read(map: &PerCpuArray<MapData, u64>) -> Result<Counters<C>> {
        let rows = C::all()
            .iter()
            .map(|c| {
                let values = map
                    .get(&(c.index() as u32), 0)
                    .map_err(LoaderError::ebpf("reading counters"))?;
                Ok(values.iter().copied().collect())
            })
            .collect::<Result<_>>()?;
        Ok(Counters {
            rows,
            set: PhantomData,
        })
    }

    /// Reads a pinned per-CPU counter array.
    pub(crate) fn read_pinned(path: &Path) -> Result<Counters<C>> {
        let data = MapData::from_pin(path)
            .map_err(LoaderError::ebpf(format!("opening {}", path.display())))?;
        let map = Map::from_map_data(data).map_err(LoaderError::ebpf("opening counters"))?;
        let map = PerCpuArray::try_from(map).map_err(LoaderError::ebpf("opening counters"))?;
        Counters::read(&map)
    }

    /// Every counter at zero, on no CPU (what a map that cannot be read shows).
    pub fn zero() -> Counters<C> {
        Counters {
            rows: vec![Vec::new(); C::all().len()],
            set: PhantomData,
        }
    }

    /// Number of CPU columns (possible CPUs).
    pub fn cpus(&self) -> usize {
        self.rows.first().map_or(0, Vec::len)
    }

    /// One counter, per CPU.
    pub fn per_cpu(&self, counter: C) -> &[u64] {
        &self.rows[counter.index()]
    }

    /// One counter, summed over CPUs.
    pub fn total(&self, counter: C) -> u64 {
        self.per_cpu(counter).iter().sum()
    }

    /// Every counter with its total, in index order: exporters that loop over
    /// this list every counter, new ones included (name and help come from
    /// the counter: `C::name`, `C::help`).
    pub fn totals(&self) -> impl Iterator<Item = (C, u64)> + '_ {
        C::all().iter().map(|&c| (c, self.total(c)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_snapshot_has_every_counter_at_zero() {
        let zero = EdgeCounters::zero();
        assert_eq!(zero.cpus(), 0);
        assert_eq!(zero.totals().count(), EdgeCounter::ALL.len());
        assert!(zero.totals().all(|(_, v)| v == 0));
        assert_eq!(OriginCounters::zero().total(Counter::GetnameToaInvalid), 0);
    }
}
