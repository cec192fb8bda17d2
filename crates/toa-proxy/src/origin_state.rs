//! An origin's state in one rule, as an operator sets it (`toa proxy origin set-state`):
//! ready, drain (no new connections, open ones kept, health checks go on) or maint (drain,
//! and no health checks), with the connections open to it now. Kept per (rule tag,
//! address) in [`OriginStates`] across reloads, so a SIGHUP does not undo what was set.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use toa_config::Config;

toa_common::names! {
    /// What new connections may do with an origin. `weight = 0` in the config is `Drain`
    /// (see [`OriginState::with_weight`]).
    pub enum OriginState {
        /// New connections go to it while its health is up.
        Ready => "ready",
        /// No new connections; open ones are kept; health checks go on.
        Drain => "drain",
        /// No new connections and no health checks (open ones are kept).
        Maint => "maint",
    }
}

impl OriginState {
    /// The state the data path acts on: weight 0 drains an origin set ready (an operator's
    /// `ready` does not override the file's weight; `maint` still stops its checks).
    pub fn with_weight(self, weight: u32) -> OriginState {
        match (self, weight) {
            (OriginState::Ready, 0) => OriginState::Drain,
            (state, _) => state,
        }
    }
}

/// A state word that is none of [`OriginState`]'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown state {0:?}; use ready, drain or maint")]
pub struct UnknownState(pub String);

impl std::str::FromStr for OriginState {
    type Err = UnknownState;

    fn from_str(s: &str) -> Result<OriginState, UnknownState> {
        OriginState::from_name(s).ok_or_else(|| UnknownState(s.to_string()))
    }
}

impl std::fmt::Display for OriginState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One origin of one rule: its set state and its open connections, shared by every
/// runtime of the rule (connections opened before a reload count until they close).
#[derive(Debug, Default)]
pub struct OriginCell {
    /// Index into [`OriginState::ALL`].
    state: AtomicU8,
    /// Connections (TCP) or flows (UDP) open to the origin now; least connections reads it.
    pub(crate) active: AtomicUsize,
}

impl OriginCell {
    pub fn state(&self) -> OriginState {
        let i = usize::from(self.state.load(Ordering::Relaxed));
        OriginState::ALL
            .get(i)
            .copied()
            .unwrap_or(OriginState::Ready)
    }

    /// Sets `state` and returns the one it replaces.
    pub fn set(&self, state: OriginState) -> OriginState {
        let i = OriginState::ALL.iter().position(|s| *s == state);
        let old = self.state.swap(i.unwrap_or(0) as u8, Ordering::Relaxed);
        OriginState::ALL
            .get(usize::from(old))
            .copied()
            .unwrap_or(OriginState::Ready)
    }

    pub fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }
}

/// Every rule's origins by (rule tag, address), kept across reloads.
#[derive(Default)]
pub struct OriginStates {
    cells: Mutex<HashMap<(String, IpAddr), Arc<OriginCell>>>,
}

impl OriginStates {
    /// The cell of `address` in rule `tag`, created ready on first use.
    pub fn get(&self, tag: &str, address: IpAddr) -> Arc<OriginCell> {
        let mut cells = self.cells.lock().unwrap_or_else(|p| p.into_inner());
        cells.entry((tag.to_string(), address)).or_default().clone()
    }

    /// Forgets origins no rule of `config` has any more (after a reload): one that comes
    /// back later starts ready.
    pub fn retain(&self, config: &Config) {
        let keep: HashSet<(&str, IpAddr)> = config
            .rules
            .iter()
            .flat_map(|r| r.origins.iter().map(|o| (r.tag.as_str(), o.address)))
            .collect();
        let mut cells = self.cells.lock().unwrap_or_else(|p| p.into_inner());
        cells.retain(|(tag, address), _| keep.contains(&(tag.as_str(), *address)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_state_is_read_back_and_weight_zero_drains_only_a_ready_origin() {
        let cell = OriginCell::default();
        assert_eq!(cell.state(), OriginState::Ready);
        assert_eq!(cell.set(OriginState::Maint), OriginState::Ready);
        assert_eq!(cell.state(), OriginState::Maint);
        assert_eq!(OriginState::Ready.with_weight(0), OriginState::Drain);
        assert_eq!(OriginState::Maint.with_weight(0), OriginState::Maint);
        assert_eq!(OriginState::Ready.with_weight(1), OriginState::Ready);
        assert_eq!(
            "paused".parse::<OriginState>().unwrap_err().to_string(),
            "unknown state \"paused\"; use ready, drain or maint"
        );
    }
}
