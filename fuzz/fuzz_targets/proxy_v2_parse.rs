//! Fuzzes the PROXY v2 parser; a parsed header must re-encode without error to bytes
//! that parse back to the same header.
#![no_main]

use libfuzzer_sys::fuzz_target;
use toa_wire::{Parsed, proxy_v2};

fuzz_target!(|stream: &[u8]| {
    let Ok(Parsed::Complete { header, consumed }) = proxy_v2::parse(stream) else {
        return;
    };
    assert!(consumed <= stream.len());
    let encoded = header.encode().expect("a parsed header is encodable");
    assert!(
        encoded.len() <= consumed,
        "re-encoding never grows a header"
    );
    assert_eq!(
        proxy_v2::parse(&encoded),
        Ok(Parsed::Complete {
            header,
            consumed: encoded.len()
        })
    );
});
