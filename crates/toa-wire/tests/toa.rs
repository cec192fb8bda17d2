//! TOA option: known-answer vectors, malformed blocks and round-trip properties.

mod common;

use common::{addr, socket_addr};
use proptest::prelude::*;
use toa_wire::toa::{self, DEFAULT_KIND, Error};

const KINDS: &[u8] = &[DEFAULT_KIND];

type Outcome = Result<Option<std::net::SocketAddr>, Error>;

#[test]
fn tcpdump_ipv4_bytes_decode_and_encode() {
    // tcpdump -X shows the option as `fe08 c2bc 0a63 0102`.
    let option = [0xfe, 0x08, 0xc2, 0xbc, 0x0a, 0x63, 0x01, 0x02];
    let client = addr("10.99.1.2:49852");
    assert_eq!(toa::decode(&option, KINDS), Ok(Some(client)));
    assert_eq!(toa::encode(DEFAULT_KIND, client).as_bytes(), option);
}

#[test]
fn ipv6_option_is_twenty_bytes_port_then_address() {
    // kind 254, len 20, port 443, 2001:db8::1
    let option = [
        0xfe, 0x14, 0x01, 0xbb, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
    ];
    let client = addr("[2001:db8::1]:443");
    assert_eq!(toa::decode(&option, KINDS), Ok(Some(client)));
    assert_eq!(toa::encode(DEFAULT_KIND, client).as_bytes(), option);
}

#[test]
fn kind_200_is_found_only_when_asked_for() {
    let option = [200, 8, 0x1f, 0x90, 198, 18, 1, 2];
    assert_eq!(toa::decode(&option, KINDS), Ok(None));
    assert_eq!(
        toa::decode(&option, &[200, DEFAULT_KIND]),
        Ok(Some(addr("198.18.1.2:8080")))
    );
    assert_eq!(toa::encode(200, addr("198.18.1.2:8080")).as_bytes(), option);
}

#[test]
fn v4_mapped_client_encodes_as_ipv4_and_ipv6_mapped_option_decodes_as_ipv4() {
    let encoded = toa::encode(DEFAULT_KIND, addr("[::ffff:198.18.1.2]:1000"));
    assert_eq!(encoded.len(), 8);
    assert_eq!(encoded.as_bytes(), [0xfe, 8, 0x03, 0xe8, 198, 18, 1, 2]);
    let mut option = vec![0xfe, 20, 0x03, 0xe8];
    option.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 18, 1, 2]);
    assert_eq!(
        toa::decode(&option, KINDS),
        Ok(Some(addr("198.18.1.2:1000")))
    );
}

#[test]
fn tfo_magic_with_toa_length_is_a_toa_on_port_63881() {
    let option = [0xfe, 0x08, 0xf9, 0x89, 198, 18, 1, 2];
    assert_eq!(
        toa::find(&option, KINDS),
        Ok(Some(addr("198.18.1.2:63881")))
    );
}

#[test]
fn block_search_skips_other_options_and_returns_the_first_toa() {
    let first = [0xfe, 8, 0, 80, 198, 18, 1, 2];
    let second = [0xfe, 8, 0, 81, 198, 18, 1, 3];
    let mut block = vec![
        1, 1, // NOP NOP
        8, 10, 0, 0, 0, 1, 0, 0, 0, 2, // timestamps
        0xfe, 4, 0xf9, 0x89, // TFO cookie request: kind 254 but not a TOA length
        0xfe, 5, 1, 2, 3, // another experiment under kind 254
    ];
    block.extend_from_slice(&first);
    block.extend_from_slice(&second);
    assert_eq!(toa::find(&block, KINDS), Ok(Some(addr("198.18.1.2:80"))));
}

#[test]
fn block_search_stops_at_end_of_options() {
    let block = [1, 0, 0xfe, 8, 0, 80, 198, 18, 1, 2];
    assert_eq!(toa::find(&block, KINDS), Ok(None));
}

#[test]
fn malformed_blocks_are_rejected_with_the_reason() {
    use Error::*;
    let table: &[(&[u8], Outcome)] = &[
        (&[], Ok(None)),
        (&[1, 1, 1], Ok(None)),
        (&[2], Err(MissingLength { kind: 2, offset: 0 })),
        (
            &[1, 1, 0xfe],
            Err(MissingLength {
                kind: 0xfe,
                offset: 2,
            }),
        ),
        (
            &[2, 0],
            Err(LengthTooSmall {
                kind: 2,
                offset: 0,
                len: 0,
            }),
        ),
        (
            &[1, 0xfe, 1],
            Err(LengthTooSmall {
                kind: 0xfe,
                offset: 1,
                len: 1,
            }),
        ),
        (
            &[2, 4, 5],
            Err(Truncated {
                kind: 2,
                offset: 0,
                len: 4,
                available: 3,
            }),
        ),
        (
            &[0xfe, 8, 0, 80, 198, 18, 1],
            Err(Truncated {
                kind: 0xfe,
                offset: 0,
                len: 8,
                available: 7,
            }),
        ),
        (
            &[1, 0xfe, 20, 0, 80, 198, 18, 1, 2],
            Err(Truncated {
                kind: 0xfe,
                offset: 1,
                len: 20,
                available: 8,
            }),
        ),
        // A TOA kind with another length is skipped, not an error.
        (&[0xfe, 9, 0, 80, 198, 18, 1, 2, 0], Ok(None)),
        (&[0xfe, 2], Ok(None)),
    ];
    for (block, expected) in table {
        assert_eq!(&toa::find(block, KINDS), expected, "block {block:02x?}");
    }
}

#[test]
fn malformed_single_options_are_rejected_with_the_reason() {
    use Error::*;
    let table: &[(&[u8], Outcome)] = &[
        (&[], Err(Empty)),
        (
            &[0xfe],
            Err(MissingLength {
                kind: 0xfe,
                offset: 0,
            }),
        ),
        (
            &[0xfe, 1],
            Err(LengthTooSmall {
                kind: 0xfe,
                offset: 0,
                len: 1,
            }),
        ),
        (
            &[0xfe, 8, 0, 80, 198, 18, 1],
            Err(LengthMismatch {
                kind: 0xfe,
                len: 8,
                actual: 7,
            }),
        ),
        (
            &[0xfe, 8, 0, 80, 198, 18, 1, 2, 0],
            Err(LengthMismatch {
                kind: 0xfe,
                len: 8,
                actual: 9,
            }),
        ),
        (&[0xfe, 9, 0, 80, 198, 18, 1, 2, 0], Ok(None)),
        (&[0xfe, 4, 0xf9, 0x89], Ok(None)),
        (&[2, 4, 5, 0xb4], Ok(None)),
    ];
    for (option, expected) in table {
        assert_eq!(
            &toa::decode(option, KINDS),
            expected,
            "option {option:02x?}"
        );
    }
}

/// A well-formed option that is not a TOA of kind 254: NOP, MSS, window scale,
/// timestamps, or a kind-254 option of a non-TOA length.
fn other_option() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(vec![1]),
        any::<[u8; 2]>().prop_map(|v| vec![2, 4, v[0], v[1]]),
        any::<u8>().prop_map(|v| vec![3, 3, v]),
        any::<[u8; 8]>().prop_map(|v| [&[8, 10][..], &v].concat()),
        (2u8..40)
            .prop_filter("not a TOA length", |len| *len != 8 && *len != 20)
            .prop_map(|len| {
                let mut option = vec![0; usize::from(len)];
                option[0] = 0xfe;
                option[1] = len;
                option
            }),
    ]
}

proptest! {
    #[test]
    fn decode_inverts_encode(kind in 2u8.., client in socket_addr()) {
        let encoded = toa::encode(kind, client);
        prop_assert_eq!(encoded.as_bytes()[1] as usize, encoded.len());
        prop_assert_eq!(
            toa::decode(encoded.as_bytes(), &[kind]),
            Ok(Some(toa_wire::canonical(client)))
        );
    }

    #[test]
    fn find_returns_the_first_toa_after_any_other_options(
        before in prop::collection::vec(other_option(), 0..6),
        client in socket_addr(),
        later in socket_addr(),
    ) {
        let mut block = before.concat();
        block.extend_from_slice(toa::encode(DEFAULT_KIND, client).as_bytes());
        block.extend_from_slice(toa::encode(DEFAULT_KIND, later).as_bytes());
        prop_assert_eq!(toa::find(&block, KINDS), Ok(Some(toa_wire::canonical(client))));
    }

    #[test]
    fn find_never_panics(block in prop::collection::vec(any::<u8>(), 0..60)) {
        let _ = toa::find(&block, &[DEFAULT_KIND, 200]);
    }
}

#[test]
fn kinds_linux_sends_or_parses_are_refused_by_name() {
    for kind in [0u8, 1, 2, 3, 4, 5, 8, 19, 29, 30, 34, 172, 174] {
        let err = toa::check_kind(kind).unwrap_err();
        assert_eq!(err.kind, kind);
    }
    assert_eq!(
        toa::check_kind(2).unwrap_err().to_string(),
        "kind 2 is Maximum Segment Size, which Linux itself sends or parses; use 254 (the default) or 200"
    );
    for kind in [6u8, 28, 200, 253, 254, 255] {
        assert_eq!(toa::check_kind(kind), Ok(kind));
    }
}
