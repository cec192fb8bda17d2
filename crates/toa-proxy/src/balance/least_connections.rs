//! Least connections: the usable backend with the fewest open connections per unit of
//! weight; ties rotate so equal backends share new connections.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use super::{Backend, Selector, rotation};

#[derive(Default)]
pub struct LeastConnections {
    tie_break: AtomicUsize,
}

impl Selector for LeastConnections {
    fn select(
        &self,
        _client: IpAddr,
        backends: &[Arc<Backend>],
        usable: &dyn Fn(usize) -> bool,
    ) -> Option<usize> {
        // Compare active_a / weight_a < active_b / weight_b without division.
        let load = |i: usize| {
            (
                backends[i].origin.active() as u64,
                u64::from(backends[i].weight.max(1)),
            )
        };
        rotation(&self.tie_break, backends.len())
            .filter(|&i| usable(i))
            .fold(None, |best: Option<usize>, i| match best {
                Some(b) => {
                    let ((ai, wi), (ab, wb)) = (load(i), load(b));
                    if ai * wb < ab * wi { Some(i) } else { Some(b) }
                }
                None => Some(i),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use std::sync::atomic::Ordering;

    #[test]
    fn picks_the_backend_with_fewest_open_connections() {
        let b = backends(&[1, 1, 1]);
        b[0].origin.active.store(5, Ordering::Relaxed);
        b[1].origin.active.store(2, Ordering::Relaxed);
        b[2].origin.active.store(7, Ordering::Relaxed);
        let lc = LeastConnections::default();
        assert_eq!(lc.select(client(0), &b, &|_| true), Some(1));
        assert_eq!(lc.select(client(0), &b, &|i| i != 1), Some(0));
    }

    #[test]
    fn open_guards_spread_connections_evenly() {
        let b = backends(&[1, 1]);
        let lc = LeastConnections::default();
        let guards: Vec<_> = (0..10)
            .map(|_| b[lc.select(client(0), &b, &|_| true).unwrap()].open())
            .collect();
        assert_eq!(b[0].origin.active.load(Ordering::Relaxed), 5);
        drop(guards);
        assert_eq!(b[1].origin.active.load(Ordering::Relaxed), 0);
    }
}
