//! SPP header: known-answer vectors, malformed datagrams and round-trip properties.

mod common;

use common::{addr, socket_addr};
use proptest::prelude::*;
use toa_wire::spp::{self, Error, HEADER_LEN, Header};

#[test]
fn ipv4_header_is_magic_mapped_addresses_then_ports() {
    let header = Header {
        client: addr("198.18.1.2:40000"),
        proxy: addr("198.18.2.1:53"),
    };
    #[rustfmt::skip]
    let expected: [u8; HEADER_LEN] = [
        0x56, 0xec,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 18, 1, 2,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 18, 2, 1,
        0x9c, 0x40,
        0x00, 0x35,
    ];
    assert_eq!(header.encode(), expected);

    let mut datagram = expected.to_vec();
    datagram.extend_from_slice(b"query");
    assert_eq!(spp::parse(&datagram), Ok((header, &b"query"[..])));
}

#[test]
fn ipv6_header_carries_both_addresses_verbatim() {
    let header = Header {
        client: addr("[fd00:1::2]:1"),
        proxy: addr("[fd00:2::1]:65535"),
    };
    #[rustfmt::skip]
    let expected: [u8; HEADER_LEN] = [
        0x56, 0xec,
        0xfd, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2,
        0xfd, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
        0x00, 0x01,
        0xff, 0xff,
    ];
    assert_eq!(header.encode(), expected);
    assert_eq!(spp::parse(&expected), Ok((header, &[][..])));
    assert!(spp::starts_with_magic(&expected));
}

#[test]
fn malformed_datagrams_are_rejected_with_the_reason() {
    let valid = Header {
        client: addr("198.18.1.2:1"),
        proxy: addr("198.18.2.1:2"),
    }
    .encode();
    let mut wrong_magic = valid;
    wrong_magic[1] = 0xed;
    let table: &[(&[u8], Error)] = &[
        (&[], Error::TooShort { len: 0 }),
        (&[0x56, 0xec], Error::TooShort { len: 2 }),
        (&valid[..37], Error::TooShort { len: 37 }),
        (&wrong_magic, Error::BadMagic { found: 0x56ed }),
        (&[0; 40], Error::BadMagic { found: 0 }),
    ];
    for (datagram, expected) in table {
        assert_eq!(
            spp::parse(datagram),
            Err(*expected),
            "datagram {datagram:02x?}"
        );
    }
    assert!(!spp::starts_with_magic(&[0x56]));
    assert!(!spp::starts_with_magic(b"GET"));
}

proptest! {
    #[test]
    fn parse_inverts_encode_and_returns_the_payload(
        client in socket_addr(),
        proxy in socket_addr(),
        payload in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let header = Header { client, proxy };
        let mut datagram = header.encode().to_vec();
        datagram.extend_from_slice(&payload);
        let expected = Header {
            client: toa_wire::canonical(client),
            proxy: toa_wire::canonical(proxy),
        };
        prop_assert_eq!(spp::parse(&datagram), Ok((expected, &payload[..])));
    }
}
