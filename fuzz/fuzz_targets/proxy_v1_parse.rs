//! Fuzzes the PROXY v1 parser; a parsed header must re-encode to a line that parses
//! back to the same header.
#![no_main]

use libfuzzer_sys::fuzz_target;
use toa_wire::{Parsed, proxy_v1};

fuzz_target!(|stream: &[u8]| {
    let Ok(Parsed::Complete { header, consumed }) = proxy_v1::parse(stream) else {
        return;
    };
    assert!(consumed <= stream.len() && consumed <= proxy_v1::MAX_LEN);
    let line = header.encode();
    assert_eq!(
        proxy_v1::parse(line.as_bytes()),
        Ok(Parsed::Complete {
            header,
            consumed: line.len()
        })
    );
});
