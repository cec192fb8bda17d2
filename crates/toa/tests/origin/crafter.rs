//! Hand-made handshake ACKs from the edge to the origin, through `craft.py`:
//! the spoofed source's neighbour entry on the origin, and batches of cases
//! sent by one python process (one reply line per case).

use crate::lab::*;
use std::collections::HashMap;
use toa_lab::{Topology, addr};

const CRAFT: &str = include_str!("craft.py");
/// An address nobody owns, routed back to the edge, so no kernel resets the
/// half-made connections.
pub const SPOOFED_SOURCE: &str = "198.18.2.77";

/// One case: destination port, source port, the ACK's option bytes.
pub type CraftCase = (u16, u16, Vec<u8>);

/// Sends crafted handshakes from the edge of one topology.
pub struct Crafter {
    edge_if: String,
}

impl Crafter {
    /// Routes [`SPOOFED_SOURCE`] on the origin to the edge's MAC address.
    pub fn new(topo: &Topology) -> Crafter {
        let (edge_if, edge_mac) = interface(&topo.edge, addr::EDGE_ORIGIN_SIDE_V4);
        let (origin_if, _) = interface(&topo.origin, addr::ORIGIN_V4);
        topo.origin
            .run(&[
                "ip",
                "neigh",
                "replace",
                SPOOFED_SOURCE,
                "lladdr",
                &edge_mac,
                "dev",
                &origin_if,
                "nud",
                "permanent",
            ])
            .unwrap();
        Crafter { edge_if }
    }

    /// Runs every case against the origin's IPv4 address; the probe server's
    /// reply fields per case (`error=timeout` if it never answered).
    pub fn run(&self, topo: &Topology, cases: &[CraftCase]) -> Vec<HashMap<String, String>> {
        let file = topo.lab.dir().join(format!("craft-{}.txt", cases.len()));
        let lines: String = cases
            .iter()
            .map(|(dport, sport, options)| {
                let hex: String = options.iter().map(|b| format!("{b:02x}")).collect();
                let hex = if hex.is_empty() { "-".into() } else { hex };
                format!("{dport} {sport} {hex}\n")
            })
            .collect();
        std::fs::write(&file, lines).unwrap();
        let at = format!("@{}", file.display());
        let out = topo
            .edge
            .run(&[
                "python3",
                "-c",
                CRAFT,
                &self.edge_if,
                SPOOFED_SOURCE,
                addr::ORIGIN_V4,
                &at,
            ])
            .unwrap();
        let replies: Vec<_> = out.lines().map(fields).collect();
        assert_eq!(replies.len(), cases.len(), "one reply per case:\n{out}");
        replies
    }
}
