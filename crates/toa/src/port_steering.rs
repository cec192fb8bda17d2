//! toa-loader's sk_lookup [`PortSteerer`] behind toa-proxy's [`PortSteering`] seam: the
//! proxy crate knows only the trait, so it builds without aya; this binary wires the two.
//!
//! The steerer attaches at start, before the proxy drops CAP_NET_ADMIN (attaching to the
//! network namespace needs it), and only when the config at start has a range wide
//! enough to steer. Later ranges are steered through the same attachment (map writes
//! need only CAP_BPF, which the proxy then keeps). Without it, ranges get a socket set
//! per port, which the proxy checks against the open-file limit.

use std::error::Error;
use std::os::fd::BorrowedFd;
use std::sync::Arc;

use toa_config::{ListenAddr, Protocol};
use toa_loader::{PortSteerer, SteerRange};
use toa_proxy::{PortSteering, SteeredPorts, SteeredRange};

/// The steerer attached to this process's network namespace.
#[derive(Debug)]
pub struct RangeSteerer(Arc<PortSteerer>);

impl RangeSteerer {
    /// Attaches the steerer if `config` has ranges to steer; logs and returns `None` when
    /// it has none or the steerer cannot attach (the proxy then binds every port).
    pub fn attach_at_start(config: &toa_config::Config) -> Option<RangeSteerer> {
        let ranges = toa_proxy::steered_ranges(config);
        let first = ranges.first()?;
        match PortSteerer::attach_to_own_netns() {
            Ok(steerer) => {
                tracing::info!(
                    ranges = ranges.len(),
                    "port ranges steered through sk_lookup"
                );
                Some(RangeSteerer(Arc::new(steerer)))
            }
            Err(e) => {
                tracing::warn!(
                    ranges = ranges.len(),
                    "port ranges get a socket per port and worker ({first} among them): sk_lookup unavailable: {e}"
                );
                None
            }
        }
    }
}

impl PortSteering for RangeSteerer {
    fn steer(
        &self,
        ports: &SteeredPorts,
        socket: BorrowedFd<'_>,
    ) -> Result<Box<dyn SteeredRange>, Box<dyn Error + Send + Sync>> {
        let range = steer_range(ports);
        let slot = self.0.add(range, socket)?;
        Ok(Box::new(Slot {
            steerer: self.0.clone(),
            slot,
            range,
        }))
    }
}

/// One range in the steerer's maps, removed on drop.
struct Slot {
    steerer: Arc<PortSteerer>,
    slot: u32,
    range: SteerRange,
}

impl SteeredRange for Slot {
    fn set_last(&self, last: u16) -> Result<(), Box<dyn Error + Send + Sync>> {
        let range = SteerRange { last, ..self.range };
        Ok(self.steerer.set_last(self.slot, range)?)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.steerer.remove(self.slot);
    }
}

/// The kernel's view of a steered range (see [`SteerRange::for_listener`]).
fn steer_range(ports: &SteeredPorts) -> SteerRange {
    let listen = match ports.addr {
        ListenAddr::DualStack => None,
        ListenAddr::Ip(ip) => Some(ip),
    };
    let tcp = ports.protocol == Protocol::Tcp;
    SteerRange::for_listener(tcp, listen, ports.first, ports.last)
}
