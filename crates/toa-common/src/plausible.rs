//! Which client addresses a trusted TOA may carry, for the kernel receiver's
//! [`ClientAddr`]. The rule and its reasons are `toa_wire::plausible`, shared
//! with user space.

use crate::ClientAddr;

/// Whether `client` could be a real TCP client: [`toa_wire::plausible()`] on
/// the stored form.
#[inline(always)]
pub fn plausible(client: &ClientAddr) -> bool {
    toa_wire::plausible::plausible_mapped(&client.addr, client.port_be)
}
