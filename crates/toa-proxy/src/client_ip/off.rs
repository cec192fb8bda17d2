//! `pass_client_ip = "off"`: the origin sees the proxy's address.

use super::ClientIpWriter;

pub struct Off;

impl ClientIpWriter for Off {
    fn name(&self) -> &'static str {
        "off"
    }
}
