//! `pass_client_ip = "ppv2"`: the binary PROXY protocol v2 header (command PROXY,
//! transport STREAM) before the first client byte, optionally with a UNIQUE_ID TLV.

use toa_wire::proxy_v2::{Header, Tlv, Transport};

use super::{ClientIpWriter, ConnInfo, HeaderError};

pub struct ProxyV2 {
    /// Sends `UNIQUE_ID` = 8 bytes of process nonce + 8 bytes of connection id, so ids
    /// stay unique across proxy restarts.
    pub unique_id: Option<u64>,
}

impl ProxyV2 {
    pub fn header(&self, conn: &ConnInfo) -> Header {
        let mut header = Header::proxy(Transport::Stream, conn.client, conn.proxy);
        if let Some(nonce) = self.unique_id {
            let mut id = nonce.to_be_bytes().to_vec();
            id.extend_from_slice(&conn.id.to_be_bytes());
            header.tlvs.push(Tlv::UniqueId(id));
        }
        header
    }
}

impl ClientIpWriter for ProxyV2 {
    fn name(&self) -> &'static str {
        "ppv2"
    }

    /// Fails closed: a header that cannot be encoded closes the connection. No connection
    /// triggers it today, so no test does: the addresses are IP and the transport STREAM
    /// (a pair that always encodes; mixed families become AF_INET6 with the IPv4 one
    /// v4-mapped), and the only TLV is the 16-byte UNIQUE_ID (128 allowed), far from the
    /// 65,535-byte length limit.
    fn preamble(&self, conn: &ConnInfo) -> Result<Option<Vec<u8>>, HeaderError> {
        Ok(Some(self.header(conn).encode()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use toa_wire::Parsed;
    use toa_wire::proxy_v2::{Addresses, parse};

    fn conn(client: &str, proxy: &str) -> ConnInfo {
        ConnInfo {
            id: 42,
            client: client.parse().unwrap(),
            proxy: proxy.parse().unwrap(),
        }
    }

    #[test]
    fn ipv4_client_is_af_inet_with_unique_id() {
        let c = conn("198.18.1.2:40000", "198.18.1.1:80");
        let bytes = ProxyV2 { unique_id: Some(7) }
            .preamble(&c)
            .unwrap()
            .unwrap();
        assert_eq!(bytes[13], 0x11, "AF_INET + STREAM");
        let Ok(Parsed::Complete { header: value, .. }) = parse(&bytes) else {
            panic!("does not parse")
        };
        assert_eq!(
            value.addresses,
            Addresses::Inet {
                src: c.client,
                dst: c.proxy
            }
        );
        let mut id = 7u64.to_be_bytes().to_vec();
        id.extend_from_slice(&42u64.to_be_bytes());
        assert_eq!(value.tlvs, vec![Tlv::UniqueId(id)]);
    }

    #[test]
    fn ipv6_client_is_af_inet6_without_tlvs_by_default() {
        let bytes = ProxyV2 { unique_id: None }
            .preamble(&conn("[fd00:1::2]:40000", "[fd00:1::1]:80"))
            .unwrap()
            .unwrap();
        assert_eq!(bytes[13], 0x21, "AF_INET6 + STREAM");
        assert_eq!(bytes.len(), 16 + 36);
    }

    #[test]
    fn ipv4_client_named_to_an_ipv6_listener_still_gets_a_header() {
        // accept_proxy can name an IPv4 client on an IPv6 listener: the pair is encoded as
        // AF_INET6 with the client v4-mapped, not refused.
        let bytes = ProxyV2 { unique_id: Some(1) }
            .preamble(&conn("198.18.1.2:40000", "[fd00:1::1]:80"))
            .unwrap()
            .unwrap();
        assert_eq!(bytes[13], 0x21, "AF_INET6 + STREAM");
    }
}
