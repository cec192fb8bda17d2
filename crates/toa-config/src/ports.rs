//! A rule's listen ports: one range (`ports = "81-85"`) or EdgeOne's list form
//! (`ports = ["80", "443", "8000-8002"]`), and how they map onto `origin_ports`.

use std::fmt;

use crate::values::{PortRange, ValueError};

/// The listen ports of one rule: non-empty ranges, in the order written, none overlapping.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ports(Vec<PortRange>);

impl Ports {
    /// Parses each item as a port or range; the reason names the first bad item.
    pub fn parse<S: AsRef<str>>(items: &[S]) -> Result<Ports, ValueError> {
        if items.is_empty() {
            return Err(ValueError::NoPorts);
        }
        let mut ranges: Vec<PortRange> = Vec::with_capacity(items.len());
        for item in items {
            let range = PortRange::parse(item.as_ref())?;
            if let Some(earlier) = ranges.iter().find(|r| r.overlaps(&range)) {
                return Err(ValueError::Overlap {
                    range,
                    earlier: *earlier,
                });
            }
            ranges.push(range);
        }
        Ok(Ports(ranges))
    }

    pub fn ranges(&self) -> &[PortRange] {
        &self.0
    }

    /// Every listen port, in the order written.
    pub fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        self.0.iter().flat_map(PortRange::iter)
    }

    /// How many ports in total.
    pub fn len(&self) -> usize {
        self.0.iter().map(PortRange::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// The first port written: health checks and overlap errors name it.
    pub fn first(&self) -> u16 {
        self.0.first().map_or(0, |r| r.first)
    }

    pub fn overlaps(&self, other: &Ports) -> bool {
        self.0.iter().any(|a| other.0.iter().any(|b| a.overlaps(b)))
    }

    /// The first port of `self` that `other` also has.
    pub fn shared_port(&self, other: &Ports) -> Option<u16> {
        self.iter()
            .find(|p| other.0.iter().any(|r| (r.first..=r.last).contains(p)))
    }

    /// The origin port for listen `port`: none given keeps the port, a single origin port
    /// takes every listen port, a range maps the n-th listen port (in the order written)
    /// to its n-th port.
    pub fn map_to(&self, port: u16, origin: Option<&PortRange>) -> u16 {
        let Some(origin) = origin else {
            return port;
        };
        if origin.first == origin.last {
            return origin.first;
        }
        origin
            .first
            .wrapping_add(self.index_of(port).unwrap_or(0) as u16)
    }

    /// Where `port` comes in the order written, counted over ranges (not ports: a rule
    /// of 60,000 ports maps each of them at start).
    pub fn index_of(&self, port: u16) -> Option<usize> {
        let mut before = 0;
        for range in &self.0 {
            if (range.first..=range.last).contains(&port) {
                return Some(before + usize::from(port - range.first));
            }
            before += range.len();
        }
        None
    }
}

impl From<PortRange> for Ports {
    fn from(range: PortRange) -> Ports {
        Ports(vec![range])
    }
}

impl fmt::Display for Ports {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_of_ports_maps_in_written_order_onto_an_origin_range() {
        let ports = Ports::parse(&["443", "80", "8000-8001"]).unwrap();
        assert_eq!(ports.len(), 4);
        let origin = PortRange::parse("9000-9003").unwrap();
        let mapped: Vec<u16> = ports
            .iter()
            .map(|p| ports.map_to(p, Some(&origin)))
            .collect();
        assert_eq!(mapped, vec![9000, 9001, 9002, 9003]);
        assert_eq!(ports.to_string(), "443,80,8000-8001");
    }

    #[test]
    fn overlapping_items_in_one_list_are_rejected() {
        assert_eq!(
            Ports::parse(&["80-90", "85"]).unwrap_err().to_string(),
            "\"85\" overlaps \"80-90\" in the same list"
        );
    }
}
