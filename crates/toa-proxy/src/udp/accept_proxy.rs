//! `accept_proxy` on UDP rules: a trusted upstream names the client in a PROXY v2 DGRAM
//! header or (with `accept_proxy = "any"`) an SPP header. Every datagram is read: a header
//! is removed before the payload goes on, and the client it names is the flow's client for
//! its mode header, balancing, persistence, limits, logs and metrics, so an upstream that
//! reuses a source port for another client opens that client's own flow. SPP is on every
//! datagram; PROXY v2 may be on a flow's first one only (as EdgeOne and toa's own `ppv2`
//! send it), so a bare datagram after a v2 header belongs to the client it named.

use std::net::SocketAddr;

use toa_wire::{Parsed, proxy_v2, spp};

use crate::accept_proxy::{Refusal, v2_client};
use toa_config::{AcceptProxy, ProxyVersion};
use toa_wire::normalize;

/// The client a datagram's header names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The header's client; the UDP source itself for a v2 LOCAL header.
    pub client: SocketAddr,
    /// The header's destination, when it names one.
    pub proxy: Option<SocketAddr>,
    /// Bytes of header in front of the payload.
    pub len: usize,
    /// SPP: every later datagram from this source carries an SPP header too.
    pub spp: bool,
}

/// Reads the header of a datagram from `peer` (normalized). `last`: the kind of the last
/// header from this source whose flow is still open (`Some(true)` SPP, `Some(false)` PROXY
/// v2); a source keeps to its kind, so a v2 upstream's bare payload is never taken for SPP.
/// `Ok(None)`: no header, which only a v2 source may send.
pub fn read(
    datagram: &[u8],
    peer: SocketAddr,
    accept: &AcceptProxy,
    last: Option<bool>,
) -> Result<Option<Header>, Refusal> {
    if !accept.trusts(peer.ip()) {
        return Err(Refusal::Untrusted);
    }
    let spp_allowed = accept.version == ProxyVersion::Any && last != Some(false);
    if spp_allowed && spp::starts_with_magic(datagram) {
        let (header, _) = spp::parse(datagram).map_err(|_| Refusal::Malformed)?;
        return Ok(Some(Header {
            client: normalize(header.client),
            proxy: Some(normalize(header.proxy)),
            len: spp::HEADER_LEN,
            spp: true,
        }));
    }
    if last != Some(true) && datagram.starts_with(&proxy_v2::SIGNATURE) {
        return match proxy_v2::parse(datagram) {
            Ok(Parsed::Complete { header, consumed }) => {
                let (client, proxy) = v2_client(header, peer);
                Ok(Some(Header {
                    client,
                    proxy,
                    len: consumed,
                    spp: false,
                }))
            }
            // A datagram is all there is: a header cut short never completes.
            Ok(Parsed::Incomplete) | Err(_) => Err(Refusal::Malformed),
        };
    }
    match last {
        Some(false) => Ok(None),
        Some(true) | None => Err(Refusal::Missing),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use toa_config::accept_net;

    fn accept(version: ProxyVersion) -> AcceptProxy {
        AcceptProxy {
            version,
            from: vec![accept_net("198.18.1.2").unwrap()],
        }
    }

    #[test]
    fn every_datagram_header_names_its_client_and_is_stripped() {
        let peer: SocketAddr = "198.18.1.2:4000".parse().unwrap();
        let client: SocketAddr = "[fd00:9::7]:5353".parse().unwrap();
        let proxy: SocketAddr = "[fd00:1::1]:53".parse().unwrap();
        let v2 = proxy_v2::Header::proxy(proxy_v2::Transport::Dgram, client, proxy)
            .encode()
            .unwrap();
        let got = read(
            &[&v2[..], b"payload"].concat(),
            peer,
            &accept(ProxyVersion::V2),
            None,
        )
        .unwrap()
        .unwrap();
        assert_eq!((got.client, got.len, got.spp), (client, v2.len(), false));
        let spp_header = spp::Header { client, proxy }.encode();
        let got = read(
            &[&spp_header[..], b"x"].concat(),
            peer,
            &accept(ProxyVersion::Any),
            Some(true),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (got.client, got.len, got.spp),
            (client, spp::HEADER_LEN, true)
        );
        // After a v2 header a bare datagram continues its client; after SPP it is refused.
        let any = accept(ProxyVersion::Any);
        assert_eq!(read(b"bare", peer, &any, Some(false)), Ok(None));
        assert_eq!(read(b"bare", peer, &any, Some(true)), Err(Refusal::Missing));
        // A v2 source's payload that happens to start with the SPP magic is payload.
        assert_eq!(read(&spp_header, peer, &any, Some(false)), Ok(None));
        // A signature with a broken header is malformed, never forwarded.
        let broken = [&v2[..14], &[0xff, 0xff][..]].concat();
        assert_eq!(
            read(&broken, peer, &any, Some(false)),
            Err(Refusal::Malformed)
        );
    }

    #[test]
    fn untrusted_sources_and_bare_datagrams_are_refused() {
        let trusted: SocketAddr = "198.18.1.2:4000".parse().unwrap();
        let other: SocketAddr = "198.18.1.3:4000".parse().unwrap();
        assert_eq!(
            read(b"hello", other, &accept(ProxyVersion::Any), Some(false)),
            Err(Refusal::Untrusted)
        );
        assert_eq!(
            read(b"hello", trusted, &accept(ProxyVersion::Any), None),
            Err(Refusal::Missing)
        );
        // SPP is only taken with "any": with "v2" an SPP datagram is not a header.
        let spp_header = spp::Header {
            client: trusted,
            proxy: trusted,
        }
        .encode();
        assert_eq!(
            read(&spp_header, trusted, &accept(ProxyVersion::V2), None),
            Err(Refusal::Missing)
        );
    }
}
