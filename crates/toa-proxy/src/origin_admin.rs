//! What `toa proxy origin set-state` and `origin list` do in the running proxy: set an
//! origin's state in the rules a name picks (the rule with that tag, and every rule of the
//! origin group with that name), stop the health checks of an origin while every rule
//! that checks it has it in maint, and list each rule's origins as a table.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

use crate::error::ConnectErrorKind;
use crate::origin_state::OriginState;
use crate::rules;
use crate::state::Shared;
use toa_config::{Config, Protocol, Rule};

/// Why `origin set-state` changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum SetStateError {
    #[error("no online rule or origin group is named {name:?}")]
    UnknownName { name: String },
    #[error("{address} is not an origin of {name:?} (its origins: {known})")]
    UnknownAddress {
        name: String,
        address: IpAddr,
        known: String,
    },
}

/// An origin's health as `origin list` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Up,
    /// Down, with why the latest check or connection failed.
    Down(Option<ConnectErrorKind>),
    /// Not checked: a UDP rule's origin, or one every rule has in maint.
    Unchecked,
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Health::Up => f.write_str("up"),
            Health::Down(Some(cause)) => write!(f, "down ({})", cause.name()),
            Health::Down(None) => f.write_str("down"),
            Health::Unchecked => f.write_str("unchecked"),
        }
    }
}

/// One origin of one rule, as `origin list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginRow {
    pub rule: String,
    pub group: Option<String>,
    pub address: IpAddr,
    pub weight: u32,
    /// What new connections see: the set state, with weight 0 as drain.
    pub state: OriginState,
    pub health: Health,
    /// Connections (TCP) or flows (UDP) open to it in this rule.
    pub open: usize,
}

/// The online rules `name` picks: the rule tagged so and the rules of the group so named.
fn named<'a>(config: &'a Config, name: &str) -> Vec<&'a Rule> {
    config
        .online_rules()
        .filter(|r| r.tag == name || r.origin_group.as_deref() == Some(name))
        .collect()
}

/// Sets `address`'s state in every rule `name` picks that has it; the answer says what
/// each rule's origin was and is (weight 0 keeps a `ready` origin drained).
pub fn set_state(
    shared: &Shared,
    config: &Config,
    name: &str,
    address: IpAddr,
    state: OriginState,
) -> Result<String, SetStateError> {
    let rules = named(config, name);
    if rules.is_empty() {
        return Err(SetStateError::UnknownName { name: name.into() });
    }
    let mut changed = Vec::new();
    for rule in &rules {
        let Some(origin) = rule.origins.iter().find(|o| o.address == address) else {
            continue;
        };
        let was = shared.origin_states.get(&rule.tag, address).set(state);
        let now = state.with_weight(origin.weight);
        let weight = if now == state { "" } else { ", weight 0" };
        changed.push(format!("rule \"{}\": {now} (was {was}{weight})", rule.tag));
    }
    if changed.is_empty() {
        let mut known: Vec<IpAddr> = rules
            .iter()
            .flat_map(|r| r.origins.iter().map(|o| o.address))
            .collect();
        known.sort();
        known.dedup();
        let known: Vec<String> = known.iter().map(IpAddr::to_string).collect();
        return Err(SetStateError::UnknownAddress {
            name: name.into(),
            address,
            known: known.join(", "),
        });
    }
    refresh_checks(shared, config);
    let changed = changed.join("; ");
    tracing::info!(name, origin = %address, state = %state, "origin state set: {changed}");
    Ok(format!("{address}: {changed}"))
}

/// Pauses the health checks of each origin every online TCP rule that checks it has in
/// maint, and resumes the others (run after every set-state and every (re)load).
pub fn refresh_checks(shared: &Shared, config: &Config) {
    let mut all_maint: HashMap<SocketAddr, bool> = HashMap::new();
    for rule in config
        .online_rules()
        .filter(|r| r.protocol() == Protocol::Tcp)
    {
        for (origin, target) in rule.origins.iter().zip(rules::health_targets(rule)) {
            let maint =
                shared.origin_states.get(&rule.tag, origin.address).state() == OriginState::Maint;
            *all_maint.entry(target).or_insert(true) &= maint;
        }
    }
    for (target, maint) in all_maint {
        if let Some(health) = shared.health.find(target) {
            health.set_checked(!maint);
        }
    }
}

/// Every online rule's origins, in file order.
pub fn list(shared: &Shared, config: &Config) -> Vec<OriginRow> {
    let mut rows = Vec::new();
    for rule in config.online_rules() {
        for (origin, target) in rule.origins.iter().zip(rules::health_targets(rule)) {
            let cell = shared.origin_states.get(&rule.tag, origin.address);
            let health = match shared.health.find(target) {
                Some(h) if rule.protocol() == Protocol::Tcp && h.is_checked() => match h.is_up() {
                    true => Health::Up,
                    false => Health::Down(h.last_failure()),
                },
                _ => Health::Unchecked,
            };
            rows.push(OriginRow {
                rule: rule.tag.clone(),
                group: rule.origin_group.clone(),
                address: origin.address,
                weight: origin.weight,
                state: cell.state().with_weight(origin.weight),
                health,
                open: cell.active(),
            });
        }
    }
    rows
}

/// `rows` as a table with a header line, columns aligned, one line per origin.
pub fn table(rows: &[OriginRow]) -> Vec<String> {
    let header = [
        "RULE", "GROUP", "ADDRESS", "WEIGHT", "STATE", "HEALTH", "OPEN",
    ];
    let mut cells: Vec<[String; 7]> = vec![header.map(String::from)];
    cells.extend(rows.iter().map(|r| {
        [
            r.rule.clone(),
            r.group.clone().unwrap_or_else(|| "-".into()),
            r.address.to_string(),
            r.weight.to_string(),
            r.state.to_string(),
            r.health.to_string(),
            r.open.to_string(),
        ]
    }));
    let widths: Vec<usize> = (0..header.len())
        .map(|c| {
            cells
                .iter()
                .map(|row| row[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    cells
        .iter()
        .map(|row| {
            let padded: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(cell, w)| format!("{cell:<w$}"))
                .collect();
            padded.join("  ").trim_end().to_string()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns_and_names_a_down_origins_cause() {
        let row = |rule: &str, address: &str, state, health| OriginRow {
            rule: rule.into(),
            group: None,
            address: address.parse().unwrap(),
            weight: 1,
            state,
            health,
            open: 0,
        };
        let rows = [
            row("web", "198.18.2.2", OriginState::Drain, Health::Up),
            row(
                "api-long",
                "198.18.2.3",
                OriginState::Ready,
                Health::Down(Some(ConnectErrorKind::Refused)),
            ),
        ];
        assert_eq!(
            table(&rows),
            [
                "RULE      GROUP  ADDRESS     WEIGHT  STATE  HEALTH          OPEN",
                "web       -      198.18.2.2  1       drain  up              0",
                "api-long  -      198.18.2.3  1       ready  down (refused)  0",
            ]
        );
    }
}
