//! Fuzzes the TOA option search and single-option decode; a found address must
//! survive an encode/decode round trip unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use toa_wire::toa;

const KINDS: &[u8] = &[toa::DEFAULT_KIND, 200];

fuzz_target!(|options: &[u8]| {
    let _ = toa::decode(options, KINDS);
    if let Ok(Some(client)) = toa::find(options, KINDS) {
        assert_eq!(
            client,
            toa_wire::canonical(client),
            "decoders return canonical addresses"
        );
        let encoded = toa::encode(toa::DEFAULT_KIND, client);
        assert_eq!(toa::decode(encoded.as_bytes(), KINDS), Ok(Some(client)));
        assert_eq!(toa::find(encoded.as_bytes(), KINDS), Ok(Some(client)));
    }
});
