//! The settings of an attached receiver: read back from its pinned maps and
//! updated in place on a reload.

use super::Origin;
use crate::settings::Settings;
use crate::trust::TrustedNet;
use crate::{LoaderError, Result};
use aya::maps::lpm_trie::Key;
use aya::maps::{Array, LpmTrie, Map, MapData};
use std::path::Path;
use toa_common::origin::{self as shared, OriginConfig, TrustAddr};

impl Origin {
    /// The settings in force, read back from the kernel.
    pub fn settings(&self) -> Result<Settings> {
        let config: OriginConfig = config_map(&self.pins)?
            .get(&0, 0)
            .map_err(LoaderError::ebpf("reading config"))?;
        let kinds = config.kinds.iter().copied().filter(|&k| k != 0).collect();
        let trie = trust_map(&self.pins)?;
        let mut trust = Vec::new();
        for key in trie.keys() {
            let key = key.map_err(LoaderError::ebpf("reading trust list"))?;
            trust.push(TrustedNet::from_key(key.prefix_len(), key.data()));
        }
        trust.sort_by_key(|n| (n.addr.is_ipv6(), n.addr, n.prefix_len));
        Ok(Settings { kinds, trust })
    }

    /// Updates config and trust list of an attached receiver. New trusted
    /// networks go in before the config can switch trust on, stale ones go
    /// after, so no moment trusts less than both old and new lists agree on.
    pub(super) fn apply(&self, config: OriginConfig, trust: &[TrustedNet]) -> Result<()> {
        let mut trie = trust_map(&self.pins)?;
        let wanted: Vec<(u32, TrustAddr)> = trust.iter().map(TrustedNet::key).collect();
        for &(prefix, addr) in &wanted {
            trie.insert(&Key::new(prefix, addr), 1, 0)
                .map_err(LoaderError::ebpf("writing the trust list"))?;
        }
        config_map(&self.pins)?
            .set(0, config, 0)
            .map_err(LoaderError::ebpf("writing the config"))?;
        let stale: Vec<Key<TrustAddr>> = trie
            .keys()
            .filter_map(|k| k.ok())
            .filter(|k| !wanted.contains(&(k.prefix_len(), k.data())))
            .collect();
        for key in stale {
            trie.remove(&key)
                .map_err(LoaderError::ebpf("pruning the trust list"))?;
        }
        Ok(())
    }
}

fn pinned_map(pins: &Path, name: &str) -> Result<Map> {
    let path = pins.join(name);
    let data = MapData::from_pin(&path)
        .map_err(LoaderError::ebpf(format!("opening {}", path.display())))?;
    Map::from_map_data(data).map_err(LoaderError::ebpf(format!("opening {}", path.display())))
}

pub(super) fn config_map(pins: &Path) -> Result<Array<MapData, OriginConfig>> {
    Array::try_from(pinned_map(pins, shared::MAP_CONFIG)?)
        .map_err(LoaderError::ebpf("opening the config map"))
}

pub(super) fn trust_map(pins: &Path) -> Result<LpmTrie<MapData, TrustAddr, u32>> {
    LpmTrie::try_from(pinned_map(pins, shared::MAP_TRUST)?)
        .map_err(LoaderError::ebpf("opening the trust map"))
}
