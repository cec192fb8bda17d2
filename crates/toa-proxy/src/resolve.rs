//! Host-name origins looked up again every `resolve_interval` while the proxy runs (the
//! lookup itself is [`toa_config::dns`], which the config also uses at load).
//!
//! A changed answer rebuilds the rule's origins at once, so new connections follow it;
//! open connections keep the origin they have. A failed lookup keeps the last good set.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use toa_config::dns::Answers;
use toa_config::{Config, OriginSpec};

/// When each rule with host-name origins is due for its next lookup.
#[derive(Debug, Default)]
pub struct Schedule {
    next: HashMap<String, Instant>,
}

/// Nothing to look up: check again after this long (a reload may add host names).
const IDLE_CHECK: Duration = Duration::from_secs(1);

impl Schedule {
    /// The host names due at `now` (rules whose interval passed) and when to look next.
    /// A rule seen for the first time was resolved at load: it is due one interval later.
    pub fn due(&mut self, config: &Config, now: Instant) -> (BTreeSet<String>, Instant) {
        let mut names = BTreeSet::new();
        let mut next = now + IDLE_CHECK;
        self.next
            .retain(|tag, _| config.rules.iter().any(|r| &r.tag == tag));
        for rule in config.online_rules().filter(|r| r.has_host_names(config)) {
            let due = self
                .next
                .entry(rule.tag.clone())
                .or_insert(now + rule.resolve_interval);
            if *due <= now {
                names.extend(
                    rule.written_origins(config)
                        .into_iter()
                        .map(|(n, _)| n)
                        .filter(|n| n.parse::<IpAddr>().is_err()),
                );
                *due = now + rule.resolve_interval;
            }
            next = next.min(*due);
        }
        (names, next)
    }
}

/// `config` with the origins of every online rule that uses one of `answers`' names rebuilt
/// from them, or `None` if no rule's origins change. A failed answer keeps the addresses the
/// rule has now for that name (the last good set). Also returns one line per change, for the log.
pub fn updated(config: &Config, answers: &Answers) -> Option<(Config, Vec<String>)> {
    let mut new = config.clone();
    let mut changes = Vec::new();
    for rule in new.rules.iter_mut().filter(|r| r.online) {
        let written = rule.written_origins(config);
        if !written.iter().any(|(n, _)| answers.contains_key(n)) {
            continue;
        }
        let mut origins = Vec::new();
        for (name, weight) in &written {
            match answers.get(name) {
                Some(Ok(addresses)) => {
                    origins.extend(addresses.iter().map(|&address| OriginSpec {
                        name: name.clone(),
                        address,
                        weight: *weight,
                    }))
                }
                // Not looked up this time, or the lookup failed: what the rule has now.
                _ => origins.extend(rule.origins.iter().filter(|o| &o.name == name).cloned()),
            }
        }
        if origins != rule.origins {
            let list = |o: &[OriginSpec]| {
                o.iter()
                    .map(|o| o.address.to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            changes.push(format!(
                "rule \"{}\": origins [{}] -> [{}]",
                rule.tag,
                list(&rule.origins),
                list(&origins)
            ));
            rule.origins = origins;
        }
    }
    (!changes.is_empty()).then_some((new, changes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::parse(
            std::path::Path::new("p.toml"),
            "[[rule]]\ntag = \"w\"\nports = \"80\"\norigins = [\"198.18.2.9\", \"localhost\"]\nresolve_interval = \"5s\"\n\n\
             [[rule]]\ntag = \"ip\"\nports = \"81\"\norigins = [\"198.18.2.9\"]\n",
        )
        .unwrap()
    }

    #[test]
    fn a_new_answer_replaces_the_name_s_addresses_and_a_failed_one_keeps_them() {
        let cfg = config();
        let v4: IpAddr = "198.18.2.2".parse().unwrap();
        let v6: IpAddr = "fd00:2::2".parse().unwrap();
        let answers = HashMap::from([("localhost".to_string(), Ok(vec![v4, v6]))]);
        let (new, changes) = updated(&cfg, &answers).unwrap();
        let addresses = |c: &Config| {
            c.rules[0]
                .origins
                .iter()
                .map(|o| o.address)
                .collect::<Vec<_>>()
        };
        assert_eq!(addresses(&new), vec!["198.18.2.9".parse().unwrap(), v4, v6]);
        assert_eq!(new.rules[0].origins[2].name, "localhost");
        assert_eq!(new.rules[1], cfg.rules[1]);
        assert_eq!(changes.len(), 1);

        let failed = HashMap::from([(
            "localhost".to_string(),
            Err(toa_config::dns::LookupError::Unresolvable(
                "localhost".to_string(),
            )),
        )]);
        assert!(
            updated(&new, &failed).is_none(),
            "a failed lookup changed the origins"
        );
        let same = HashMap::from([("localhost".to_string(), Ok(vec![v4, v6]))]);
        assert!(updated(&new, &same).is_none());
    }

    #[test]
    fn only_rules_with_host_names_are_scheduled_each_at_its_interval() {
        let cfg = config();
        let mut schedule = Schedule::default();
        let t0 = Instant::now();
        let (names, next) = schedule.due(&cfg, t0);
        assert!(names.is_empty(), "resolved at load: not due at once");
        assert_eq!(next, t0 + IDLE_CHECK);
        let (names, next) = schedule.due(&cfg, t0 + Duration::from_secs(5));
        assert_eq!(names.into_iter().collect::<Vec<_>>(), ["localhost"]);
        assert_eq!(next, t0 + Duration::from_secs(6));
    }
}
