//! PROXY v2 properties: any header the encoder accepts parses back to itself (payload
//! left alone, every strict prefix incomplete), and a flipped address byte fails its CRC32C.

use crate::common::socket_addr;
use proptest::prelude::*;
use toa_wire::Parsed;
use toa_wire::proxy_v2::{
    self, Addresses, Command, Error, Header, SslTlv, Tlv, Transport, UNIX_ADDR_LEN,
};

fn text() -> impl Strategy<Value = String> {
    ".{0,12}"
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..=max)
}

fn ssl_tlv() -> impl Strategy<Value = SslTlv> {
    prop_oneof![
        text().prop_map(SslTlv::Version),
        text().prop_map(SslTlv::CommonName),
        text().prop_map(SslTlv::Cipher),
        text().prop_map(SslTlv::SigAlg),
        text().prop_map(SslTlv::KeyAlg),
        ((0x26u8..=0xff), bytes(8)).prop_map(|(kind, value)| SslTlv::Other { kind, value }),
    ]
}

fn tlv() -> impl Strategy<Value = Tlv> {
    prop_oneof![
        bytes(8).prop_map(Tlv::Alpn),
        text().prop_map(Tlv::Authority),
        (0u16..20).prop_map(|len| Tlv::Noop { len }),
        bytes(128).prop_map(Tlv::UniqueId),
        (
            any::<u8>(),
            any::<u32>(),
            prop::collection::vec(ssl_tlv(), 0..4)
        )
            .prop_map(|(client, verify, sub_tlvs)| Tlv::Ssl {
                client,
                verify,
                sub_tlvs
            }),
        text().prop_map(Tlv::Netns),
        (0xe0u8..=0xef, bytes(8)).prop_map(|(kind, value)| Tlv::Custom { kind, value }),
        (
            prop_oneof![0x06u8..0x20, 0x31u8..0xe0, 0xf0u8..=0xff],
            bytes(8)
        )
            .prop_map(|(kind, value)| Tlv::Other { kind, value }),
    ]
}

fn header() -> impl Strategy<Value = Header> {
    let command = prop_oneof![Just(Command::Local), Just(Command::Proxy)];
    let transport = prop_oneof![Just(Transport::Stream), Just(Transport::Dgram)];
    let unix = any::<[[u8; 4]; 2]>().prop_map(|[s, d]| {
        let (mut src, mut dst) = ([0; UNIX_ADDR_LEN], [0; UNIX_ADDR_LEN]);
        src[..4].copy_from_slice(&s);
        dst[..4].copy_from_slice(&d);
        Addresses::Unix { src, dst }
    });
    let inet = (socket_addr(), socket_addr()).prop_map(|(src, dst)| Addresses::Inet { src, dst });
    let layout = prop_oneof![
        1 => Just((Transport::Unspec, Addresses::Unspec)),
        6 => (transport.clone(), inet),
        1 => (transport, unix),
    ];
    let tlvs = (
        prop::collection::vec(tlv(), 0..5),
        any::<bool>(),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(mut tlvs, crc, at)| {
            if crc {
                tlvs.insert(at.index(tlvs.len() + 1), Tlv::Crc32c);
            }
            tlvs
        });
    (command, layout, tlvs).prop_map(|(command, (transport, addresses), tlvs)| Header {
        command,
        transport,
        addresses,
        tlvs,
    })
}

fn canonical(mut header: Header) -> Header {
    if let Addresses::Inet { src, dst } = header.addresses {
        header.addresses = Addresses::Inet {
            src: toa_wire::canonical(src),
            dst: toa_wire::canonical(dst),
        };
    }
    header
}

proptest! {
    #[test]
    fn parse_inverts_encode_and_leaves_the_payload(
        header in header(),
        payload in bytes(16),
    ) {
        let encoded = header.encode().unwrap();
        let mut stream = encoded.clone();
        stream.extend_from_slice(&payload);
        prop_assert_eq!(
            proxy_v2::parse(&stream),
            Ok(Parsed::Complete { header: canonical(header), consumed: encoded.len() })
        );
        let cut = payload.len() % encoded.len();
        prop_assert_eq!(proxy_v2::parse(&stream[..cut]), Ok(Parsed::Incomplete));
    }

    #[test]
    fn a_flipped_address_byte_fails_the_checksum(
        header in header(),
        at in any::<prop::sample::Index>(),
        flip in 1u8..,
    ) {
        let mut header = header;
        prop_assume!(header.addresses != Addresses::Unspec);
        header.tlvs.retain(|tlv| *tlv != Tlv::Crc32c);
        header.tlvs.push(Tlv::Crc32c);
        let mut bytes = header.encode().unwrap();
        let address_len = if bytes[13] >> 4 == 1 { 12 } else if bytes[13] >> 4 == 2 { 36 } else { 216 };
        bytes[proxy_v2::FIXED_LEN + at.index(address_len)] ^= flip;
        prop_assert!(
            matches!(proxy_v2::parse(&bytes), Err(Error::ChecksumMismatch { .. })),
            "{:?}", proxy_v2::parse(&bytes)
        );
    }
}
