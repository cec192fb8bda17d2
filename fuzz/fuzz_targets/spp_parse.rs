//! Fuzzes the SPP parser; a parsed header must re-encode to the same header and the
//! payload must be exactly what follows the 38 header bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use toa_wire::spp;

fuzz_target!(|datagram: &[u8]| {
    let Ok((header, payload)) = spp::parse(datagram) else {
        return;
    };
    assert!(spp::starts_with_magic(datagram));
    assert_eq!(payload.len() + spp::HEADER_LEN, datagram.len());
    let encoded = header.encode();
    assert_eq!(spp::parse(&encoded), Ok((header, &[][..])));
});
