//! Raw measurements and their summaries: every figure in the report is the
//! min/median/max of one value over the rounds, and every ratio is taken
//! within a round (numerator and denominator measured back to back) before
//! being summarised the same way.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One value set measured once: scenario, target (peer or variant), case
/// (concurrency, stream count, ...), round.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sample {
    pub scenario: String,
    pub target: String,
    pub case: String,
    pub round: usize,
    pub values: BTreeMap<String, f64>,
}

/// min / median / max over rounds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stat {
    pub min: f64,
    pub median: f64,
    pub max: f64,
    pub n: usize,
}

impl Stat {
    pub fn of(values: &[f64]) -> Option<Stat> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let mid = v.len() / 2;
        let median = if v.len() % 2 == 1 {
            v[mid]
        } else {
            (v[mid - 1] + v[mid]) / 2.0
        };
        Some(Stat {
            min: v[0],
            median,
            max: v[v.len() - 1],
            n: v.len(),
        })
    }
}

/// Everything a run measured, plus its context; saved as JSON so the report
/// and charts can be redrawn without measuring again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    pub date: String,
    pub quick: bool,
    pub rounds: usize,
    pub machine: crate::machine::Machine,
    pub versions: BTreeMap<String, String>,
    pub settings: BTreeMap<String, String>,
    pub notes: Vec<String>,
    pub samples: Vec<Sample>,
    #[serde(default)]
    pub profiles: Vec<Profile>,
}

impl Run {
    /// The value `key` of (scenario, target, case) over all rounds.
    pub fn stat(&self, scenario: &str, target: &str, case: &str, key: &str) -> Option<Stat> {
        Stat::of(
            &self
                .values(scenario, target, case, key)
                .into_values()
                .collect::<Vec<_>>(),
        )
    }

    fn values(&self, scenario: &str, target: &str, case: &str, key: &str) -> BTreeMap<usize, f64> {
        self.samples
            .iter()
            .filter(|s| s.scenario == scenario && s.target == target && s.case == case)
            .filter_map(|s| Some((s.round, *s.values.get(key)?)))
            .collect()
    }

    /// `num / den` for `key`, computed per round (both measured in that round), then summarised.
    pub fn ratio(
        &self,
        scenario: &str,
        case: &str,
        key: &str,
        num: &str,
        den: &str,
    ) -> Option<Stat> {
        self.ratio_across(scenario, case, key, (scenario, num), den)
    }

    /// Like [`Run::ratio`], but the numerator may come from another scenario's samples.
    pub fn ratio_across(
        &self,
        scenario: &str,
        case: &str,
        key: &str,
        num: (&str, &str),
        den: &str,
    ) -> Option<Stat> {
        let n = self.values(num.0, num.1, case, key);
        let d = self.values(scenario, den, case, key);
        let ratios: Vec<f64> = n
            .iter()
            .filter_map(|(round, n)| Some(n / d.get(round)?))
            .collect();
        Stat::of(&ratios)
    }

    /// The case of `scenario`'s first sample (the idle scenario has one), or "".
    pub fn first_case(&self, scenario: &str) -> String {
        self.samples
            .iter()
            .find(|s| s.scenario == scenario)
            .map(|s| s.case.clone())
            .unwrap_or_default()
    }

    /// Targets that have samples in `scenario`, in first-seen order.
    pub fn targets(&self, scenario: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for s in self.samples.iter().filter(|s| s.scenario == scenario) {
            if !out.contains(&s.target) {
                out.push(s.target.clone());
            }
        }
        out
    }
}

/// One perf profile of a proxy under one case (written by `profile`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Profile {
    pub target: String,
    pub case: String,
    /// `perf report` lines: share of samples, command, object, symbol.
    pub top: Vec<String>,
    pub file: String,
    /// Share of samples per object (kernel, the proxy binary, libc, ...).
    #[serde(default)]
    pub objects: Vec<String>,
    /// System calls and context switches during the run, per unit of work
    /// (per connection for short connections, per MB for bulk).
    #[serde(default)]
    pub syscalls_per_unit: f64,
    #[serde(default)]
    pub switches_per_unit: f64,
    #[serde(default)]
    pub unit: String,
    /// The most frequent system calls, per unit, from a separate traced run.
    #[serde(default)]
    pub syscall_mix: Vec<(String, f64)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_takes_the_middle_of_sorted_values() {
        let s = Stat::of(&[5.0, 1.0, 3.0, 9.0, 7.0]).unwrap();
        assert_eq!((s.min, s.median, s.max, s.n), (1.0, 5.0, 9.0, 5));
        assert_eq!(Stat::of(&[1.0, 2.0]).unwrap().median, 1.5);
        assert_eq!(Stat::of(&[]), None);
    }

    #[test]
    fn ratio_pairs_values_of_the_same_round() {
        let sample = |target: &str, round, v| Sample {
            scenario: "rate".into(),
            target: target.into(),
            case: "c16".into(),
            round,
            values: [("conn_per_s".to_string(), v)].into(),
        };
        let run = Run {
            date: String::new(),
            quick: true,
            rounds: 2,
            machine: crate::machine::Machine::probe(),
            versions: BTreeMap::new(),
            settings: BTreeMap::new(),
            notes: Vec::new(),
            samples: vec![
                sample("a", 0, 10.0),
                sample("b", 0, 5.0),
                sample("a", 1, 30.0),
                sample("b", 1, 10.0),
            ],
            profiles: Vec::new(),
        };
        let r = run.ratio("rate", "c16", "conn_per_s", "a", "b").unwrap();
        assert_eq!((r.min, r.max), (2.0, 3.0));
    }
}
