//! PROXY v2: hand-written vectors, malformed headers and encode errors here; round-trip
//! properties in `properties`.

#[path = "../common/mod.rs"]
mod common;
mod properties;

use common::addr;
use toa_wire::Parsed;
use toa_wire::proxy_v2::{
    self, Addresses, Error, Header, SIGNATURE, SSL_CLIENT_CERT_CONN, SSL_CLIENT_SSL, SslTlv, Tlv,
    Transport, UNIX_ADDR_LEN,
};

fn complete(bytes: &[u8]) -> Header {
    match proxy_v2::parse(bytes) {
        Ok(Parsed::Complete { header, consumed }) => {
            assert_eq!(consumed, bytes.len(), "whole input is the header");
            header
        }
        other => panic!("{bytes:02x?} did not parse: {other:?}"),
    }
}

/// Signature, then `ver_cmd`, `fam`, big-endian length of `body`, then `body`.
fn frame(ver_cmd: u8, fam: u8, body: &[u8]) -> Vec<u8> {
    let mut out = SIGNATURE.to_vec();
    out.extend_from_slice(&[ver_cmd, fam]);
    out.extend_from_slice(&(body.len() as u16).to_be_bytes());
    out.extend_from_slice(body);
    out
}

const TCP4_ADDRESSES: [u8; 12] = [
    0xc0, 0xa8, 0x00, 0x01, // 192.168.0.1
    0xc0, 0xa8, 0x00, 0x0b, // 192.168.0.11
    0xdc, 0x04, // 56324
    0x01, 0xbb, // 443
];

#[test]
fn signature_is_the_twelve_bytes_of_the_spec() {
    assert_eq!(
        SIGNATURE,
        [
            0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A
        ]
    );
}

#[test]
fn tcp_over_ipv4_vector() {
    #[rustfmt::skip]
    let bytes = [
        0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
        0x21, 0x11, 0x00, 0x0c,
        0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0x0b, 0xdc, 0x04, 0x01, 0xbb,
    ];
    let header = Header::proxy(
        Transport::Stream,
        addr("192.168.0.1:56324"),
        addr("192.168.0.11:443"),
    );
    assert_eq!(header.encode().unwrap(), bytes);
    assert_eq!(complete(&bytes), header);
    // v4-mapped endpoints are sent as AF_INET.
    let mapped = Header::proxy(
        Transport::Stream,
        addr("[::ffff:192.168.0.1]:56324"),
        addr("[::ffff:192.168.0.11]:443"),
    );
    assert_eq!(mapped.encode().unwrap(), bytes);
}

#[test]
fn udp_over_ipv6_vector() {
    #[rustfmt::skip]
    let body = [
        0xfd, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, // fd00:1::2
        0xfd, 0x00, 0x00, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, // fd00:2::1
        0x13, 0x88, // 5000
        0x00, 0x35, // 53
    ];
    let bytes = frame(0x21, 0x22, &body);
    let header = Header::proxy(
        Transport::Dgram,
        addr("[fd00:1::2]:5000"),
        addr("[fd00:2::1]:53"),
    );
    assert_eq!(header.encode().unwrap(), bytes);
    assert_eq!(complete(&bytes), header);
}

#[test]
fn local_vector_and_local_with_an_undefined_family() {
    let bytes = frame(0x20, 0x00, &[]);
    assert_eq!(Header::local().encode().unwrap(), bytes);
    assert_eq!(complete(&bytes), Header::local());
    // LOCAL ignores the family byte and skips the block, as the spec asks.
    assert_eq!(complete(&frame(0x20, 0x4f, &[1, 2, 3])), Header::local());
}

#[test]
fn unix_stream_addresses_parse() {
    let mut src = [0; UNIX_ADDR_LEN];
    src[..9].copy_from_slice(b"/run/a.sk");
    let mut dst = [0; UNIX_ADDR_LEN];
    dst[..9].copy_from_slice(b"/run/b.sk");
    let bytes = frame(0x21, 0x31, &[src, dst].concat());
    let header = complete(&bytes);
    assert_eq!(header.addresses, Addresses::Unix { src, dst });
    assert_eq!(header.transport, Transport::Stream);
    assert_eq!(header.encode().unwrap(), bytes);
}

#[test]
fn crc32c_is_computed_over_the_header_with_the_field_zeroed() {
    // CRC32C of the same TCP4 header with TLV `03 0004 00000000` appended is 0x1c1ae9c6.
    let body = [
        &TCP4_ADDRESSES[..],
        &[0x03, 0x00, 0x04, 0x1c, 0x1a, 0xe9, 0xc6],
    ]
    .concat();
    let bytes = frame(0x21, 0x11, &body);
    let mut header = Header::proxy(
        Transport::Stream,
        addr("192.168.0.1:56324"),
        addr("192.168.0.11:443"),
    );
    header.tlvs.push(Tlv::Crc32c);
    assert_eq!(header.encode().unwrap(), bytes);
    assert_eq!(complete(&bytes), header);
}

#[test]
fn tlv_vectors_decode_to_their_variants() {
    #[rustfmt::skip]
    let tlvs: &[u8] = &[
        0x01, 0x00, 0x02, b'h', b'2',                               // ALPN "h2"
        0x02, 0x00, 0x0b, b'e', b'x', b'a', b'm', b'p', b'l', b'e', b'.', b'c', b'o', b'm',
        0x04, 0x00, 0x03, 0, 0, 0,                                  // NOOP, 3 bytes
        0x05, 0x00, 0x04, 0xde, 0xad, 0xbe, 0xef,                   // UNIQUE_ID
        0x20, 0x00, 0x14, 0x03, 0x00, 0x00, 0x00, 0x00,             // SSL, client 3, verify 0
            0x21, 0x00, 0x07, b'T', b'L', b'S', b'v', b'1', b'.', b'3',
            0x22, 0x00, 0x02, b'c', b'n',
        0x30, 0x00, 0x03, b'b', b'l', b'u',                         // NETNS "blu"
        0xe0, 0x00, 0x01, 0x2a,                                     // custom
        0xf0, 0x00, 0x00,                                           // experimental
    ];
    let bytes = frame(0x21, 0x11, &[&TCP4_ADDRESSES[..], tlvs].concat());
    let header = complete(&bytes);
    assert_eq!(
        header.tlvs,
        vec![
            Tlv::Alpn(b"h2".to_vec()),
            Tlv::Authority("example.com".into()),
            Tlv::Noop { len: 3 },
            Tlv::UniqueId(vec![0xde, 0xad, 0xbe, 0xef]),
            Tlv::Ssl {
                client: SSL_CLIENT_SSL | SSL_CLIENT_CERT_CONN,
                verify: 0,
                sub_tlvs: vec![
                    SslTlv::Version("TLSv1.3".into()),
                    SslTlv::CommonName("cn".into())
                ],
            },
            Tlv::Netns("blu".into()),
            Tlv::Custom {
                kind: 0xe0,
                value: vec![0x2a]
            },
            Tlv::Other {
                kind: 0xf0,
                value: vec![]
            },
        ]
    );
    assert_eq!(header.encode().unwrap(), bytes);
}

#[test]
fn every_strict_prefix_is_incomplete() {
    let mut header = Header::proxy(
        Transport::Stream,
        addr("[fd00:1::2]:1"),
        addr("198.18.2.2:2"),
    );
    header.tlvs = vec![Tlv::Crc32c, Tlv::Authority("origin".into())];
    let bytes = header.encode().unwrap();
    for end in 0..bytes.len() {
        assert_eq!(
            proxy_v2::parse(&bytes[..end]),
            Ok(Parsed::Incomplete),
            "prefix of {end} bytes"
        );
    }
    assert_eq!(complete(&bytes), header);
}

#[test]
fn malformed_headers_are_rejected_with_the_reason() {
    let tcp4 = |tlvs: &[u8]| frame(0x21, 0x11, &[&TCP4_ADDRESSES[..], tlvs].concat());
    let mut bad_crc = tcp4(&[0x03, 0x00, 0x04, 0x1c, 0x1a, 0xe9, 0xc6]);
    *bad_crc.last_mut().unwrap() ^= 1;
    let long_id = [&[0x05, 0x00, 129][..], &[7; 129]].concat();
    let table: Vec<(Vec<u8>, Error)> = vec![
        (b"PROXY TCP4".to_vec(), Error::NotProxyV2),
        (vec![0x0D, 0x0A, 0x0D, 0x0A, 0x01], Error::NotProxyV2),
        (
            frame(0x11, 0x11, &TCP4_ADDRESSES),
            Error::UnsupportedVersion { version: 1 },
        ),
        (
            frame(0x22, 0x11, &TCP4_ADDRESSES),
            Error::UnknownCommand { command: 2 },
        ),
        (
            frame(0x21, 0x13, &TCP4_ADDRESSES),
            Error::UnknownFamilyTransport { byte: 0x13 },
        ),
        (
            frame(0x21, 0x10, &TCP4_ADDRESSES),
            Error::UnknownFamilyTransport { byte: 0x10 },
        ),
        (
            frame(0x21, 0x41, &[]),
            Error::UnknownFamilyTransport { byte: 0x41 },
        ),
        (
            frame(0x21, 0x11, &TCP4_ADDRESSES[..11]),
            Error::LengthTooShort {
                len: 11,
                family: "AF_INET",
                needed: 12,
            },
        ),
        (
            frame(0x21, 0x21, &TCP4_ADDRESSES),
            Error::LengthTooShort {
                len: 12,
                family: "AF_INET6",
                needed: 36,
            },
        ),
        (
            frame(0x21, 0x32, &[0; 215]),
            Error::LengthTooShort {
                len: 215,
                family: "AF_UNIX",
                needed: 216,
            },
        ),
        (
            tcp4(&[0x01, 0x00]),
            Error::TlvTruncated {
                offset: 28,
                needed: 3,
                available: 2,
            },
        ),
        (
            tcp4(&[0x01, 0x00, 0x05, b'h']),
            Error::TlvTruncated {
                offset: 28,
                needed: 8,
                available: 4,
            },
        ),
        (
            tcp4(&[0x03, 0x00, 0x03, 0, 0, 0]),
            Error::Crc32cLength { len: 3 },
        ),
        (
            bad_crc,
            Error::ChecksumMismatch {
                received: 0x1c1ae9c7,
                computed: 0x1c1ae9c6,
            },
        ),
        (
            tcp4(&[3, 0, 4, 0, 0, 0, 0, 3, 0, 4, 0, 0, 0, 0]),
            Error::DuplicateCrc32c,
        ),
        (tcp4(&long_id), Error::UniqueIdTooLong { len: 129 }),
        (
            tcp4(&[0x20, 0x00, 0x04, 1, 0, 0, 0]),
            Error::SslTooShort { len: 4 },
        ),
        (
            tcp4(&[0x20, 0x00, 0x07, 1, 0, 0, 0, 0, 0x21, 0x00]),
            Error::TlvTruncated {
                offset: 36,
                needed: 3,
                available: 2,
            },
        ),
        (
            tcp4(&[0x02, 0x00, 0x02, 0xc3, 0x28]),
            Error::InvalidUtf8 { kind: 0x02 },
        ),
        (
            tcp4(&[0x20, 0x00, 0x09, 1, 0, 0, 0, 0, 0x21, 0x00, 0x01, 0xff]),
            Error::InvalidUtf8 { kind: 0x21 },
        ),
    ];
    for (bytes, expected) in table {
        assert_eq!(proxy_v2::parse(&bytes), Err(expected), "input {bytes:02x?}");
    }
}

#[test]
fn headers_that_cannot_be_encoded_are_refused_with_the_reason() {
    let inet = |tlvs: Vec<Tlv>| Header {
        tlvs,
        ..Header::proxy(
            Transport::Stream,
            addr("198.18.1.2:1"),
            addr("198.18.2.2:2"),
        )
    };
    let table: Vec<(Header, Error)> = vec![
        (
            inet(vec![Tlv::UniqueId(vec![0; 129])]),
            Error::UniqueIdTooLong { len: 129 },
        ),
        (
            inet(vec![Tlv::Custom {
                kind: 0xf0,
                value: vec![],
            }]),
            Error::CustomKindOutOfRange { kind: 0xf0 },
        ),
        (
            inet(vec![Tlv::Other {
                kind: 0x01,
                value: vec![],
            }]),
            Error::ReservedKind { kind: 0x01 },
        ),
        (
            inet(vec![Tlv::Other {
                kind: 0xe5,
                value: vec![],
            }]),
            Error::ReservedKind { kind: 0xe5 },
        ),
        (
            inet(vec![Tlv::Ssl {
                client: 1,
                verify: 0,
                sub_tlvs: vec![SslTlv::Other {
                    kind: 0x22,
                    value: vec![],
                }],
            }]),
            Error::ReservedKind { kind: 0x22 },
        ),
        (inet(vec![Tlv::Crc32c, Tlv::Crc32c]), Error::DuplicateCrc32c),
        (
            inet(vec![Tlv::Alpn(vec![0; 70_000])]),
            Error::TlvTooLong {
                kind: 0x01,
                len: 70_000,
            },
        ),
        (
            inet(vec![Tlv::Alpn(vec![0; 40_000]), Tlv::Alpn(vec![0; 40_000])]),
            Error::HeaderTooLong {
                len: 12 + 2 * 40_003,
            },
        ),
        (
            Header {
                transport: Transport::Stream,
                ..Header::local()
            },
            Error::AddressesTransportMismatch {
                addresses: "AF_UNSPEC",
                transport: Transport::Stream,
            },
        ),
        (
            Header {
                transport: Transport::Unspec,
                ..inet(vec![])
            },
            Error::AddressesTransportMismatch {
                addresses: "IP",
                transport: Transport::Unspec,
            },
        ),
    ];
    for (header, expected) in table {
        assert_eq!(header.encode(), Err(expected));
    }
}
