//! `pass_client_ip = "ppv2"` on UDP: a PROXY v2 header (command PROXY, transport DGRAM) in
//! front of the first datagram of each flow only, as EdgeOne sends it. Replies pass
//! unchanged. The header itself (and the optional UNIQUE_ID) is built by the TCP mode.

use toa_wire::proxy_v2::Transport;

use super::{DatagramWriter, FlowHeaders, FlowInfo};
use crate::client_ip::{ConnInfo, HeaderError, ProxyV2};

pub struct ProxyV2Dgram {
    stream: ProxyV2,
}

impl ProxyV2Dgram {
    pub fn new(stream: ProxyV2) -> ProxyV2Dgram {
        ProxyV2Dgram { stream }
    }
}

impl DatagramWriter for ProxyV2Dgram {
    fn name(&self) -> &'static str {
        "ppv2"
    }

    fn headers(&self, flow: &FlowInfo) -> Result<FlowHeaders, HeaderError> {
        let conn = ConnInfo {
            id: flow.id,
            client: flow.client,
            proxy: flow.proxy,
        };
        let mut header = self.stream.header(&conn);
        header.transport = Transport::Dgram;
        let first = header.encode()?;
        Ok(FlowHeaders {
            first,
            every: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use toa_wire::Parsed;
    use toa_wire::proxy_v2::{Addresses, Command, parse};

    fn flow(client: &str, proxy: &str) -> FlowInfo {
        FlowInfo {
            id: 9,
            client: client.parse().unwrap(),
            proxy: proxy.parse().unwrap(),
        }
    }

    #[test]
    fn header_is_proxy_dgram_on_the_first_datagram_only() {
        for (client, proxy, family) in [
            ("198.18.1.2:40000", "198.18.1.1:10000", 0x12),
            ("[fd00:1::2]:40000", "[fd00:1::1]:10000", 0x22),
        ] {
            let f = flow(client, proxy);
            let headers = ProxyV2Dgram::new(ProxyV2 { unique_id: None })
                .headers(&f)
                .unwrap();
            assert!(headers.every.is_empty());
            assert_eq!(headers.first[13], family, "family/transport byte");
            let Ok(Parsed::Complete { header, consumed }) = parse(&headers.first) else {
                panic!("does not parse")
            };
            assert_eq!(consumed, headers.first.len());
            assert_eq!(header.command, Command::Proxy);
            assert_eq!(header.transport, Transport::Dgram);
            assert_eq!(
                header.addresses,
                Addresses::Inet {
                    src: f.client,
                    dst: f.proxy
                }
            );
        }
    }
}
