//! Host-name origins: looked up at load (every A and AAAA address becomes an origin of
//! its own) and again every `resolve_interval` while the proxy runs.
//!
//! A changed answer rebuilds the rule's origins at once, so new connections follow it;
//! open connections keep the origin they have. A failed lookup keeps the last good set.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::config::{Config, OriginSpec};
use crate::server::Server;

/// Looks up due host names for `server` until `stop`; its own task, so slow lookups never
/// hold up signal handling (a reload waits only for the apply, not for DNS).
pub async fn run(server: std::sync::Arc<Server>, stop: CancellationToken) {
    let mut schedule = Schedule::default();
    loop {
        let next = tokio::select! {
            _ = stop.cancelled() => return,
            next = server.resolve_due(&mut schedule) => next,
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep_until(next) => {}
        }
    }
}

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

/// Looks up every name (blocking); a failure is kept as its reason.
pub fn lookup_all(names: &BTreeSet<String>) -> HashMap<String, Result<Vec<IpAddr>, String>> {
    names.iter().map(|n| (n.clone(), lookup(n))).collect()
}

/// `config` with the origins of every online rule that uses one of `answers`' names rebuilt
/// from them, or `None` if no rule's origins change. A failed answer keeps the addresses the
/// rule has now for that name (the last good set). Also returns one line per change, for the log.
pub fn updated(
    config: &Config,
    answers: &HashMap<String, Result<Vec<IpAddr>, String>>,
) -> Option<(Config, Vec<String>)> {
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

/// Every address of `name`: an IP literal as is, a host name through getaddrinfo (blocking),
/// sorted and deduplicated so that two answers compare equal when they hold the same set.
pub fn lookup(name: &str) -> Result<Vec<IpAddr>, String> {
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Ok(vec![ip]);
    }
    if let Some(hint) = port_hint(name) {
        return Err(hint);
    }
    let unresolvable = || format!("cannot resolve host name \"{name}\"");
    let mut addresses: Vec<IpAddr> = (name, 0)
        .to_socket_addrs()
        .map_err(|_| unresolvable())?
        .map(|sa| sa.ip().to_canonical())
        .collect();
    addresses.sort();
    addresses.dedup();
    if addresses.is_empty() {
        return Err(unresolvable());
    }
    Ok(addresses)
}

/// `"host:port"` or `"[v6]:port"` written as an origin: the port belongs in `origin_ports`.
fn port_hint(name: &str) -> Option<String> {
    let (host, port) = match name.parse::<SocketAddr>() {
        Ok(sa) => (sa.ip().to_string(), sa.port()),
        Err(_) => {
            let (host, port) = name.rsplit_once(':')?;
            if host.contains(':') {
                return None;
            }
            (host.to_string(), port.parse::<u16>().ok()?)
        }
    };
    Some(format!(
        "\"{name}\" has a port; write origins = [\"{host}\"] and origin_ports = \"{port}\""
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port_written_as_an_origin_gets_an_origin_ports_hint() {
        assert_eq!(
            lookup("origin.example:8080").unwrap_err(),
            "\"origin.example:8080\" has a port; write origins = [\"origin.example\"] and origin_ports = \"8080\""
        );
        assert!(
            lookup("[fd00:2::2]:80")
                .unwrap_err()
                .contains("origin_ports = \"80\"")
        );
        assert_eq!(
            lookup("fd00:2::2").unwrap(),
            vec!["fd00:2::2".parse::<IpAddr>().unwrap()]
        );
    }

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

        let failed = HashMap::from([("localhost".to_string(), Err("cannot resolve".to_string()))]);
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

    #[test]
    fn localhost_resolves_to_every_address_sorted() {
        let all = lookup("localhost").unwrap();
        assert!(all.iter().all(IpAddr::is_loopback));
        assert!(all.windows(2).all(|w| w[0] < w[1]));
    }
}
