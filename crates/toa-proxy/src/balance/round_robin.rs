//! Plain round robin: each usable backend in turn.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use super::{Backend, Selector, rotation};

#[derive(Default)]
pub struct RoundRobin {
    next: AtomicUsize,
}

impl Selector for RoundRobin {
    fn select(
        &self,
        _client: IpAddr,
        backends: &[Arc<Backend>],
        usable: &dyn Fn(usize) -> bool,
    ) -> Option<usize> {
        rotation(&self.next, backends.len()).find(|&i| usable(i))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn rotates_evenly_and_skips_unusable() {
        let b = backends(&[1, 1, 1]);
        let rr = RoundRobin::default();
        assert_eq!(tally(&rr, &b, 300, &|_| true), vec![100, 100, 100]);
        let counts = tally(&rr, &b, 300, &|i| i != 1);
        assert_eq!(counts[1], 0);
        assert_eq!(counts[0] + counts[2], 300);
        assert_eq!(rr.select(client(1), &b, &|_| false), None);
    }
}
