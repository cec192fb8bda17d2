//! `pass_client_ip = "spp"`: Tencent's 38-byte SPP header in front of every datagram to the
//! origin (client address and port, listener address and port). An SPP-aware origin echoes
//! a header on its replies; the proxy strips it. Replies without the magic are forwarded
//! unchanged and counted; a reply with the magic but too short to hold a header is dropped
//! and counted (stripping it would leave a header fragment to the client).

use toa_wire::spp;

use super::{DatagramWriter, FlowHeaders, FlowInfo, Reply};
use crate::client_ip::HeaderError;
use crate::metrics::DropReason;

pub struct Spp;

impl DatagramWriter for Spp {
    fn name(&self) -> &'static str {
        "spp"
    }

    fn headers(&self, flow: &FlowInfo) -> Result<FlowHeaders, HeaderError> {
        let header = spp::Header {
            client: flow.client,
            proxy: flow.proxy,
        };
        Ok(FlowHeaders {
            first: Vec::new(),
            every: header.encode().to_vec(),
        })
    }

    fn reply<'a>(&self, datagram: &'a [u8]) -> Reply<'a> {
        if !spp::starts_with_magic(datagram) {
            return Reply::Unmarked(datagram);
        }
        match spp::parse(datagram) {
            Ok((_, payload)) => Reply::Forward(payload),
            Err(_) => Reply::Drop(DropReason::ShortSppReply),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(client: &str, proxy: &str) -> FlowInfo {
        FlowInfo {
            id: 1,
            client: client.parse().unwrap(),
            proxy: proxy.parse().unwrap(),
        }
    }

    #[test]
    fn every_datagram_header_carries_client_and_listener() {
        let f = flow("198.18.1.2:40000", "198.18.1.1:10000");
        let headers = Spp.headers(&f).unwrap();
        assert!(headers.first.is_empty());
        assert_eq!(headers.every.len(), spp::HEADER_LEN);
        let (parsed, payload) = spp::parse(&headers.every).unwrap();
        assert_eq!((parsed.client, parsed.proxy), (f.client, f.proxy));
        assert!(payload.is_empty());
    }

    #[test]
    fn replies_are_stripped_passed_unmarked_or_dropped_when_short() {
        let mut marked = Spp
            .headers(&flow("[fd00:1::2]:1", "[fd00:1::1]:2"))
            .unwrap()
            .every;
        marked.extend_from_slice(b"pong");
        assert_eq!(Spp.reply(&marked), Reply::Forward(b"pong"));
        assert_eq!(Spp.reply(b"plain"), Reply::Unmarked(b"plain"));
        assert_eq!(
            Spp.reply(&[0x56, 0xEB, 0, 0]),
            Reply::Unmarked(&[0x56, 0xEB, 0, 0])
        );
        assert_eq!(
            Spp.reply(&marked[..20]),
            Reply::Drop(DropReason::ShortSppReply)
        );
        assert_eq!(Spp.reply(&[]), Reply::Unmarked(&[]));
    }
}
