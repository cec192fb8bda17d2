//! Consistent hash on the client IP: a ring of virtual nodes (more for heavier backends),
//! so one client keeps its origin, and losing one origin moves only that origin's clients.

use std::net::IpAddr;
use std::sync::Arc;

use super::{Backend, Selector};

/// Ring points per unit of weight: enough for an even spread across a handful of origins.
const POINTS_PER_WEIGHT: u32 = 160;

pub struct ConsistentHash {
    /// (point, backend index), sorted by point.
    ring: Vec<(u64, usize)>,
}

impl ConsistentHash {
    pub fn new(weights: &[u32]) -> ConsistentHash {
        let mut ring = Vec::new();
        for (i, w) in weights.iter().enumerate() {
            for v in 0..w.max(&1) * POINTS_PER_WEIGHT {
                ring.push((
                    fnv1a(&[&(i as u64).to_be_bytes()[..], &v.to_be_bytes()[..]]),
                    i,
                ));
            }
        }
        ring.sort_unstable();
        ConsistentHash { ring }
    }
}

impl Selector for ConsistentHash {
    fn select(
        &self,
        client: IpAddr,
        _backends: &[Arc<Backend>],
        usable: &dyn Fn(usize) -> bool,
    ) -> Option<usize> {
        let key = match client {
            IpAddr::V4(v4) => fnv1a(&[&v4.octets()[..]]),
            IpAddr::V6(v6) => fnv1a(&[&v6.octets()[..]]),
        };
        let start = self.ring.partition_point(|(p, _)| *p < key);
        let n = self.ring.len();
        (0..n)
            .map(|k| self.ring[(start + k) % n].1)
            .find(|&i| usable(i))
    }
}

/// FNV-1a, 64 bit, then a final avalanche so nearby inputs spread around the ring.
/// Stable across runs and versions, unlike `DefaultHasher`.
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in parts.iter().flat_map(|p| p.iter()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn same_client_always_gets_same_backend() {
        let b = backends(&[1, 1, 1]);
        let ch = ConsistentHash::new(&[1, 1, 1]);
        for n in 0..50 {
            let first = ch.select(client(n), &b, &|_| true);
            assert!((0..10).all(|_| ch.select(client(n), &b, &|_| true) == first));
        }
    }

    #[test]
    fn clients_spread_over_backends_and_only_the_lost_ones_move() {
        let b = backends(&[1, 1, 1]);
        let ch = ConsistentHash::new(&[1, 1, 1]);
        let before: Vec<usize> = (0..3000)
            .map(|n| ch.select(client(n), &b, &|_| true).unwrap())
            .collect();
        for i in 0..3 {
            let share = before.iter().filter(|&&x| x == i).count();
            assert!(
                (700..1300).contains(&share),
                "backend {i} got {share} of 3000"
            );
        }
        let after: Vec<usize> = (0..3000)
            .map(|n| ch.select(client(n), &b, &|i| i != 2).unwrap())
            .collect();
        for (x, y) in before.iter().zip(&after) {
            if *x != 2 {
                assert_eq!(x, y, "a client of a healthy backend moved");
            }
        }
    }
}
