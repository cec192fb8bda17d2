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
        let config = self.config()?;
        let kinds = config.kinds.iter().copied().filter(|&k| k != 0).collect();
        let trie = trust_map(&self.pins, config.trust_slot)?;
        let mut trust = Vec::new();
        for key in trie.keys() {
            let key = key.map_err(LoaderError::ebpf("reading trust list"))?;
            trust.push(TrustedNet::from_key(key.prefix_len(), key.data()));
        }
        trust.sort_by_key(|n| (n.addr.is_ipv6(), n.addr, n.prefix_len));
        Ok(Settings { kinds, trust })
    }

    fn config(&self) -> Result<OriginConfig> {
        config_map(&self.pins)?
            .get(&0, 0)
            .map_err(LoaderError::ebpf("reading config"))
    }

    /// Updates config and trust list of an attached receiver, all or nothing:
    /// the new list is written whole into the trie not in force, then one
    /// config write switches kinds and trie together. If the list cannot be
    /// written, the config is untouched and the list in force stays exactly
    /// as it was.
    pub(super) fn apply(&self, mut config: OriginConfig, trust: &[TrustedNet]) -> Result<()> {
        let active = self.config()?.trust_slot & 1;
        let next = active ^ 1;
        let mut trie = trust_map(&self.pins, next)?;
        if let Err(err) = fill(&mut trie, trust) {
            let _ = clear(&mut trie);
            return Err(err);
        }
        config.trust_slot = next;
        config_map(&self.pins)?
            .set(0, config, 0)
            .map_err(LoaderError::ebpf("writing the config"))?;
        // Programs that read the old slot just before the switch may still
        // look in the old trie: emptying it only ever trusts less.
        clear(&mut trust_map(&self.pins, active)?)
    }
}

type Trie = LpmTrie<MapData, TrustAddr, u32>;

/// Makes `trie` hold exactly `trust`.
fn fill(trie: &mut Trie, trust: &[TrustedNet]) -> Result<()> {
    clear(trie)?;
    for net in trust {
        let (prefix, addr) = net.key();
        trie.insert(&Key::new(prefix, addr), 1, 0)
            .map_err(LoaderError::ebpf("writing the trust list"))?;
    }
    Ok(())
}

fn clear(trie: &mut Trie) -> Result<()> {
    let keys: Vec<Key<TrustAddr>> = trie.keys().filter_map(|k| k.ok()).collect();
    for key in keys {
        trie.remove(&key)
            .map_err(LoaderError::ebpf("emptying a trust list"))?;
    }
    Ok(())
}

fn pinned_map(pins: &Path, name: &str) -> Result<Map> {
    let path = pins.join(name);
    let data = MapData::from_pin(&path)
        .map_err(LoaderError::ebpf(format!("opening {}", path.display())))?;
    Map::from_map_data(data).map_err(LoaderError::ebpf(format!("opening {}", path.display())))
}

fn config_map(pins: &Path) -> Result<Array<MapData, OriginConfig>> {
    Array::try_from(pinned_map(pins, shared::MAP_CONFIG)?)
        .map_err(LoaderError::ebpf("opening the config map"))
}

fn trust_map(pins: &Path, slot: u8) -> Result<Trie> {
    let name = shared::MAP_TRUST[usize::from(slot & 1)];
    LpmTrie::try_from(pinned_map(pins, name)?).map_err(LoaderError::ebpf("opening the trust map"))
}
