//! PROXY v1: the examples of proxy-protocol.txt, malformed lines and round-trip properties.

mod common;

use common::{addr, socket_addr};
use proptest::prelude::*;
use toa_wire::Parsed;
use toa_wire::proxy_v1::{self, Addresses, Error, Header, MAX_LEN};

fn complete(line: &str) -> (Header, usize) {
    match proxy_v1::parse(line.as_bytes()) {
        Ok(Parsed::Complete { header, consumed }) => (header, consumed),
        other => panic!("{line:?} did not parse: {other:?}"),
    }
}

#[test]
fn spec_example_before_an_http_request() {
    let stream = b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET / HTTP/1.1\r\nHost: 192.168.0.11\r\n\r\n";
    let expected = Header::tcp(addr("192.168.0.1:56324"), addr("192.168.0.11:443"));
    assert_eq!(
        proxy_v1::parse(stream),
        Ok(Parsed::Complete {
            header: expected,
            consumed: 47
        })
    );
    assert_eq!(
        expected.encode(),
        "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"
    );
}

#[test]
fn spec_maximum_length_lines_parse() {
    let ffff = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
    let tcp4 = "PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n";
    let tcp6 = format!("PROXY TCP6 {ffff} {ffff} 65535 65535\r\n");
    let unknown_short = "PROXY UNKNOWN\r\n";
    let unknown_worst = format!("PROXY UNKNOWN {ffff} {ffff} 65535 65535\r\n");
    assert_eq!(
        (
            tcp4.len(),
            tcp6.len(),
            unknown_short.len(),
            unknown_worst.len()
        ),
        (56, 104, 15, MAX_LEN)
    );

    let max4 = addr("255.255.255.255:65535");
    assert_eq!(complete(tcp4), (Header::tcp(max4, max4), 56));
    let max6 = addr(&format!("[{ffff}]:65535"));
    assert_eq!(complete(&tcp6), (Header::tcp(max6, max6), 104));
    assert_eq!(complete(unknown_short), (Header::unknown(), 15));
    assert_eq!(complete(&unknown_worst), (Header::unknown(), MAX_LEN));
    assert_eq!(Header::tcp(max6, max6).encode(), tcp6);
    assert_eq!(Header::unknown().encode(), unknown_short);
}

#[test]
fn ipv6_is_written_compressed_and_v4_mapped_pairs_as_tcp4() {
    let header = Header::tcp(addr("[2001:db8::1]:1"), addr("[fd00:2::2]:80"));
    assert_eq!(header.encode(), "PROXY TCP6 2001:db8::1 fd00:2::2 1 80\r\n");

    let mapped = Header::tcp(
        addr("[::ffff:198.18.1.2]:1"),
        addr("[::ffff:198.18.2.2]:80"),
    );
    assert_eq!(mapped.encode(), "PROXY TCP4 198.18.1.2 198.18.2.2 1 80\r\n");

    let mixed = Header::tcp(addr("198.18.1.2:1"), addr("[fd00:2::2]:80"));
    assert_eq!(
        mixed.encode(),
        "PROXY TCP6 ::ffff:c612:102 fd00:2::2 1 80\r\n"
    );
    let (parsed, _) = complete(&mixed.encode());
    assert_eq!(parsed, mixed, "the mapped source comes back as IPv4");

    // The longest zero run is shortened; on a tie, the first.
    let zeros = Header::tcp(addr("[::]:0"), addr("[1:0:0:2:0:0:3:4]:0"));
    assert_eq!(zeros.encode(), "PROXY TCP6 :: 1::2:0:0:3:4 0 0\r\n");
    let single = Header::tcp(addr("[1:0:2:3:4:5:6:7]:0"), addr("[1:2:3:4:5:6:7::]:0"));
    assert_eq!(
        single.encode(),
        "PROXY TCP6 1:0:2:3:4:5:6:7 1:2:3:4:5:6:7:0 0 0\r\n"
    );
}

#[test]
fn every_strict_prefix_is_incomplete() {
    let line = "PROXY TCP6 2001:db8::1 fd00:2::2 1 80\r\n";
    for end in 0..line.len() {
        assert_eq!(
            proxy_v1::parse(&line.as_bytes()[..end]),
            Ok(Parsed::Incomplete),
            "prefix {:?}",
            &line[..end]
        );
    }
}

#[test]
fn malformed_lines_are_rejected_with_the_reason() {
    let s = |v: &str| v.to_owned();
    let too_long = format!("PROXY UNKNOWN {}", "a".repeat(MAX_LEN - 14));
    let table: Vec<(&[u8], Error)> = vec![
        (b"GET / HTTP/1.1\r\n", Error::NotProxyV1),
        (b"PROXY\r\n", Error::NotProxyV1),
        (b"proxy TCP4", Error::NotProxyV1),
        (too_long.as_bytes(), Error::TooLong),
        (
            b"PROXY TCP4 1.2.3.4\t",
            Error::InvalidByte {
                offset: 18,
                byte: b'\t',
            },
        ),
        (
            b"PROXY UNKNOWN \xc3\xa9\r\n",
            Error::InvalidByte {
                offset: 14,
                byte: 0xc3,
            },
        ),
        (
            b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2\n",
            Error::BadLineEnding {
                offset: 30,
                byte: b'\n',
            },
        ),
        (
            b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2\rX",
            Error::BadLineEnding {
                offset: 30,
                byte: b'\r',
            },
        ),
        (b"PROXY \r\n", Error::UnknownProtocol { found: s("") }),
        (
            b"PROXY TCP5 1.2.3.4 1.2.3.4 1 2\r\n",
            Error::UnknownProtocol { found: s("TCP5") },
        ),
        (
            b"PROXY UNKNOWNX\r\n",
            Error::UnknownProtocol {
                found: s("UNKNOWNX"),
            },
        ),
        (
            b"PROXY  TCP4 1.2.3.4 1.2.3.4 1 2\r\n",
            Error::UnknownProtocol { found: s("") },
        ),
        (
            b"PROXY TCP4\r\n",
            Error::MissingField {
                field: "source address",
            },
        ),
        (
            b"PROXY TCP4 1.2.3.4 1.2.3.4 1\r\n",
            Error::MissingField {
                field: "destination port",
            },
        ),
        (
            b"PROXY TCP4 1.2.3.4  1.2.3.4 1 2\r\n",
            Error::EmptyField {
                field: "destination address",
            },
        ),
        (
            b"PROXY TCP4 \r\n",
            Error::EmptyField {
                field: "source address",
            },
        ),
        (
            b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2 3\r\n",
            Error::TrailingData { extra: s("3") },
        ),
        (
            b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2 \r\n",
            Error::TrailingData { extra: s("") },
        ),
        (
            b"PROXY TCP4 01.2.3.4 1.2.3.4 1 2\r\n",
            Error::InvalidAddress {
                field: "source address",
                value: s("01.2.3.4"),
                family: "IPv4",
            },
        ),
        (
            b"PROXY TCP4 1.2.3.4 1.2.3.004 1 2\r\n",
            Error::InvalidAddress {
                field: "destination address",
                value: s("1.2.3.004"),
                family: "IPv4",
            },
        ),
        (
            b"PROXY TCP4 256.2.3.4 1.2.3.4 1 2\r\n",
            Error::InvalidAddress {
                field: "source address",
                value: s("256.2.3.4"),
                family: "IPv4",
            },
        ),
        (
            b"PROXY TCP4 1.2.3 1.2.3.4 1 2\r\n",
            Error::InvalidAddress {
                field: "source address",
                value: s("1.2.3"),
                family: "IPv4",
            },
        ),
        (
            b"PROXY TCP4 ::1 1.2.3.4 1 2\r\n",
            Error::InvalidAddress {
                field: "source address",
                value: s("::1"),
                family: "IPv4",
            },
        ),
        (
            b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n",
            Error::InvalidAddress {
                field: "source address",
                value: s("1.2.3.4"),
                family: "IPv6",
            },
        ),
        (
            b"PROXY TCP6 ::1 fe80::1%eth0 1 2\r\n",
            Error::InvalidAddress {
                field: "destination address",
                value: s("fe80::1%eth0"),
                family: "IPv6",
            },
        ),
        (
            b"PROXY TCP4 1.2.3.4 1.2.3.4 65536 2\r\n",
            Error::InvalidPort {
                field: "source port",
                value: s("65536"),
            },
        ),
        (
            b"PROXY TCP4 1.2.3.4 1.2.3.4 1 080\r\n",
            Error::InvalidPort {
                field: "destination port",
                value: s("080"),
            },
        ),
        (
            b"PROXY TCP4 1.2.3.4 1.2.3.4 +1 2\r\n",
            Error::InvalidPort {
                field: "source port",
                value: s("+1"),
            },
        ),
        (
            b"PROXY TCP4 1.2.3.4 1.2.3.4 1 99999999999999999999\r\n",
            Error::InvalidPort {
                field: "destination port",
                value: s("99999999999999999999"),
            },
        ),
    ];
    for (bytes, expected) in table {
        assert_eq!(
            proxy_v1::parse(bytes),
            Err(expected),
            "input {:?}",
            String::from_utf8_lossy(bytes)
        );
    }
}

#[test]
fn a_full_window_without_crlf_is_too_long_even_if_more_would_follow() {
    let mut line = b"PROXY UNKNOWN ".to_vec();
    line.resize(MAX_LEN - 1, b'x');
    assert_eq!(proxy_v1::parse(&line), Ok(Parsed::Incomplete));
    line.push(b'\r');
    assert_eq!(proxy_v1::parse(&line), Err(Error::TooLong));
}

fn header() -> impl Strategy<Value = Header> {
    prop_oneof![
        1 => Just(Header::unknown()),
        8 => (socket_addr(), socket_addr()).prop_map(|(src, dst)| Header::tcp(src, dst)),
    ]
}

fn canonical(header: Header) -> Header {
    match header.addresses {
        Addresses::Unknown => header,
        Addresses::Tcp { src, dst } => {
            Header::tcp(toa_wire::canonical(src), toa_wire::canonical(dst))
        }
    }
}

proptest! {
    #[test]
    fn parse_inverts_encode_and_leaves_the_payload(
        header in header(),
        payload in prop::collection::vec(any::<u8>(), 0..16),
    ) {
        let line = header.encode();
        prop_assert!(line.len() <= MAX_LEN);
        let mut stream = line.clone().into_bytes();
        stream.extend_from_slice(&payload);
        prop_assert_eq!(
            proxy_v1::parse(&stream),
            Ok(Parsed::Complete { header: canonical(header), consumed: line.len() })
        );
        let cut = payload.len() % line.len();
        prop_assert_eq!(proxy_v1::parse(&stream[..cut]), Ok(Parsed::Incomplete));
    }

    #[test]
    fn ipv6_text_matches_the_rfc5952_form_std_prints(
        src in prop::array::uniform8(prop_oneof![Just(0u16), any::<u16>()])
            .prop_map(std::net::Ipv6Addr::from),
    ) {
        prop_assume!(src.to_ipv4_mapped().is_none());
        let header = Header::tcp(std::net::SocketAddr::new(src.into(), 1), addr("[::1]:2"));
        prop_assert_eq!(header.encode(), format!("PROXY TCP6 {src} ::1 1 2\r\n"));
    }

    #[test]
    fn parse_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..120)) {
        let mut stream = b"PROXY ".to_vec();
        stream.extend_from_slice(&bytes);
        let _ = proxy_v1::parse(&stream);
    }
}
