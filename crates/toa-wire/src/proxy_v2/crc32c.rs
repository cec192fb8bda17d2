//! CRC32C (Castagnoli, RFC 4960 appendix B), the checksum of the PROXY v2 CRC32C TLV.
//!
//! Bit-at-a-time: headers are at most a few hundred bytes on a connection's first
//! packet, so a table or SIMD would buy nothing measurable here.

/// The reflected Castagnoli polynomial.
const POLYNOMIAL: u32 = 0x82F6_3B78;

/// A running CRC32C over bytes fed in pieces.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Crc32c(u32);

impl Crc32c {
    pub(crate) fn new() -> Crc32c {
        Crc32c(!0)
    }

    pub(crate) fn update(mut self, bytes: &[u8]) -> Crc32c {
        for &byte in bytes {
            self.0 ^= u32::from(byte);
            for _ in 0..8 {
                let mask = (self.0 & 1).wrapping_neg();
                self.0 = (self.0 >> 1) ^ (POLYNOMIAL & mask);
            }
        }
        self
    }

    pub(crate) fn finish(self) -> u32 {
        !self.0
    }
}

/// The CRC32C of `header` computed as if its 4 bytes at `field` (the checksum TLV's
/// value) were zero. Returns `None` if the field does not lie inside `header`.
pub(crate) fn with_field_zeroed(header: &[u8], field: usize) -> Option<u32> {
    let (before, rest) = header.split_at_checked(field)?;
    let after = rest.get(4..)?;
    Some(
        Crc32c::new()
            .update(before)
            .update(&[0; 4])
            .update(after)
            .finish(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_value_of_the_castagnoli_catalogue_matches() {
        // The standard "123456789" check value for CRC-32/ISCSI.
        assert_eq!(Crc32c::new().update(b"123456789").finish(), 0xE306_9283);
    }

    #[test]
    fn rfc3720_thirty_two_zero_bytes_vector_matches() {
        // RFC 3720 B.4: 32 bytes of zeros.
        assert_eq!(Crc32c::new().update(&[0; 32]).finish(), 0x8A91_36AA);
    }
}
