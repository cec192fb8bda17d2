//! `accept_proxy` on UDP rules: a trusted upstream names the client in a PROXY v2 DGRAM
//! header on a flow's first datagram, or (with `accept_proxy = "any"`) in an SPP header on
//! every datagram. The header is removed before the payload goes on; the named client is
//! the flow's client for its mode header, balancing, persistence, logs and metrics.

use std::net::SocketAddr;

use toa_wire::{Parsed, proxy_v2, spp};

use crate::accept_proxy::{Refusal, v2_client};
use crate::config::{AcceptProxy, ProxyVersion};
use toa_wire::normalize;

/// What the first datagram of a new flow carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirstHeader {
    /// The header's client; the UDP source itself for a v2 LOCAL header.
    pub client: SocketAddr,
    /// The header's destination, when it names one.
    pub proxy: Option<SocketAddr>,
    /// Bytes of header in front of the payload.
    pub len: usize,
    /// SPP: every later datagram of the flow carries an SPP header too.
    pub spp: bool,
}

/// Reads the header on the first datagram of a flow from `peer` (normalized).
pub fn first(
    datagram: &[u8],
    peer: SocketAddr,
    accept: &AcceptProxy,
) -> Result<FirstHeader, Refusal> {
    if !accept.trusts(peer.ip()) {
        return Err(Refusal::Untrusted);
    }
    if accept.version == ProxyVersion::Any && spp::starts_with_magic(datagram) {
        let (header, _) = spp::parse(datagram).map_err(|_| Refusal::Malformed)?;
        return Ok(FirstHeader {
            client: normalize(header.client),
            proxy: Some(normalize(header.proxy)),
            len: spp::HEADER_LEN,
            spp: true,
        });
    }
    match proxy_v2::parse(datagram) {
        Ok(Parsed::Complete { header, consumed }) => {
            let (client, proxy) = v2_client(header, peer);
            Ok(FirstHeader {
                client,
                proxy,
                len: consumed,
                spp: false,
            })
        }
        // A datagram is all there is: a header cut short never completes.
        Ok(Parsed::Incomplete) => Err(Refusal::Malformed),
        Err(proxy_v2::Error::NotProxyV2) => Err(Refusal::Missing),
        Err(_) => Err(Refusal::Malformed),
    }
}

/// The SPP header length on a later datagram of an SPP flow.
pub fn every(datagram: &[u8]) -> Result<usize, Refusal> {
    match spp::parse(datagram) {
        Ok(_) => Ok(spp::HEADER_LEN),
        Err(spp::Error::BadMagic { .. }) => Err(Refusal::Missing),
        Err(spp::Error::TooShort { .. }) => Err(Refusal::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::accept_net;

    fn accept(version: ProxyVersion) -> AcceptProxy {
        AcceptProxy {
            version,
            from: vec![accept_net("198.18.1.2").unwrap()],
        }
    }

    #[test]
    fn first_datagram_headers_name_the_client_and_are_stripped() {
        let peer: SocketAddr = "198.18.1.2:4000".parse().unwrap();
        let client: SocketAddr = "[fd00:9::7]:5353".parse().unwrap();
        let proxy: SocketAddr = "[fd00:1::1]:53".parse().unwrap();
        let v2 = proxy_v2::Header::proxy(proxy_v2::Transport::Dgram, client, proxy)
            .encode()
            .unwrap();
        let got = first(
            &[&v2[..], b"payload"].concat(),
            peer,
            &accept(ProxyVersion::V2),
        )
        .unwrap();
        assert_eq!((got.client, got.len, got.spp), (client, v2.len(), false));
        let spp_header = spp::Header { client, proxy }.encode();
        let got = first(
            &[&spp_header[..], b"x"].concat(),
            peer,
            &accept(ProxyVersion::Any),
        )
        .unwrap();
        assert_eq!(
            (got.client, got.len, got.spp),
            (client, spp::HEADER_LEN, true)
        );
        assert_eq!(every(&spp_header), Ok(spp::HEADER_LEN));
        assert_eq!(every(b"no header"), Err(Refusal::Malformed));
    }

    #[test]
    fn untrusted_sources_and_bare_datagrams_are_refused() {
        let trusted: SocketAddr = "198.18.1.2:4000".parse().unwrap();
        let other: SocketAddr = "198.18.1.3:4000".parse().unwrap();
        assert_eq!(
            first(b"hello", other, &accept(ProxyVersion::Any)),
            Err(Refusal::Untrusted)
        );
        assert_eq!(
            first(b"hello", trusted, &accept(ProxyVersion::Any)),
            Err(Refusal::Missing)
        );
        // SPP is only taken with "any": with "v2" an SPP datagram is not a header.
        let spp_header = spp::Header {
            client: trusted,
            proxy: trusted,
        }
        .encode();
        assert_eq!(
            first(&spp_header, trusted, &accept(ProxyVersion::V2)),
            Err(Refusal::Missing)
        );
    }
}
