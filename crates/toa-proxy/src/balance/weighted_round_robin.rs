//! Smooth weighted round robin (nginx's): weights 5,1,1 give a,a,b,a,c,a,a — spread out,
//! not bursts of the heavy backend.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use super::{Backend, Selector};

pub struct WeightedRoundRobin {
    weights: Vec<i64>,
    current: Mutex<Vec<i64>>,
}

impl WeightedRoundRobin {
    pub fn new(weights: &[u32]) -> WeightedRoundRobin {
        WeightedRoundRobin {
            weights: weights.iter().map(|&w| i64::from(w)).collect(),
            current: Mutex::new(vec![0; weights.len()]),
        }
    }
}

impl Selector for WeightedRoundRobin {
    fn select(
        &self,
        _client: IpAddr,
        _backends: &[Arc<Backend>],
        usable: &dyn Fn(usize) -> bool,
    ) -> Option<usize> {
        // Poisoning only means another thread panicked mid-update; the weights stay valid.
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        let mut total = 0;
        let mut best: Option<usize> = None;
        for (i, w) in self.weights.iter().enumerate().filter(|(i, _)| usable(*i)) {
            current[i] += w;
            total += w;
            if best.is_none_or(|b| current[i] > current[b]) {
                best = Some(i);
            }
        }
        let chosen = best?;
        current[chosen] -= total;
        Some(chosen)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn shares_follow_weights() {
        let b = backends(&[10, 5, 1]);
        let wrr = WeightedRoundRobin::new(&[10, 5, 1]);
        assert_eq!(tally(&wrr, &b, 1600, &|_| true), vec![1000, 500, 100]);
    }

    #[test]
    fn heavy_backend_is_interleaved_not_bursted() {
        let b = backends(&[5, 1, 1]);
        let wrr = WeightedRoundRobin::new(&[5, 1, 1]);
        let seq: Vec<usize> = (0..7)
            .map(|_| wrr.select(client(0), &b, &|_| true).unwrap())
            .collect();
        assert_eq!(seq, vec![0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn unusable_backend_gets_nothing() {
        let b = backends(&[10, 5]);
        let wrr = WeightedRoundRobin::new(&[10, 5]);
        assert_eq!(tally(&wrr, &b, 100, &|i| i == 1), vec![0, 100]);
    }
}
