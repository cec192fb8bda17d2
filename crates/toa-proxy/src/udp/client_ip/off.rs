//! `pass_client_ip = "off"` on UDP: datagrams pass unchanged both ways; the origin sees
//! the proxy's address.

use super::{DatagramWriter, FlowHeaders, FlowInfo};
use crate::client_ip::HeaderError;

pub struct Off;

impl DatagramWriter for Off {
    fn name(&self) -> &'static str {
        "off"
    }

    fn headers(&self, _flow: &FlowInfo) -> Result<FlowHeaders, HeaderError> {
        Ok(FlowHeaders::default())
    }
}
