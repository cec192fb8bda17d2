//! `pass_client_ip = "ppv1"`: the PROXY protocol v1 text line before the first client byte.

use super::{ClientIpWriter, ConnInfo, HeaderError};

pub struct ProxyV1;

impl ClientIpWriter for ProxyV1 {
    fn name(&self) -> &'static str {
        "ppv1"
    }

    fn preamble(&self, conn: &ConnInfo) -> Result<Option<Vec<u8>>, HeaderError> {
        Ok(Some(
            toa_wire::proxy_v1::Header::tcp(conn.client, conn.proxy)
                .encode()
                .into_bytes(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_client_gets_a_tcp4_line() {
        let conn = ConnInfo {
            id: 1,
            client: "198.18.1.2:40000".parse().unwrap(),
            proxy: "198.18.1.1:80".parse().unwrap(),
        };
        assert_eq!(
            ProxyV1.preamble(&conn).unwrap().unwrap(),
            b"PROXY TCP4 198.18.1.2 198.18.1.1 40000 80\r\n"
        );
    }

    #[test]
    fn ipv6_client_gets_a_tcp6_line() {
        let conn = ConnInfo {
            id: 1,
            client: "[fd00:1::2]:40000".parse().unwrap(),
            proxy: "[fd00:1::1]:80".parse().unwrap(),
        };
        assert_eq!(
            ProxyV1.preamble(&conn).unwrap().unwrap(),
            b"PROXY TCP6 fd00:1::2 fd00:1::1 40000 80\r\n"
        );
    }
}
