//! The kernel-facing lookup convention: `getsockopt(fd, IPPROTO_IP, TOA_SO_GET_LOOKUP)`
//! answered by toa's `cgroup/getsockopt` program (and by Tencent's/DPVS's toa.ko).
//! The number and answer size are defined once, in `toa-common`.

pub use toa_common::{LOOKUP_ANSWER_LEN, TOA_SO_GET_LOOKUP};

/// What the lookup writes: the client address (IPv4 clients as `::ffff:a.b.c.d`)
/// and port, both in network byte order. No padding: exactly
/// [`LOOKUP_ANSWER_LEN`] bytes, as the kernel program writes them.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LookupReply {
    pub saddr: [u8; 16],
    /// Big-endian (`__be16`).
    pub port: u16,
}

const _: () = assert!(size_of::<LookupReply>() == LOOKUP_ANSWER_LEN);

#[cfg(test)]
mod tests {
    use super::*;

    /// C users get the number from include/toa.h; it must be the one the kernel answers.
    #[test]
    fn header_defines_the_same_lookup_number() {
        let header = include_str!("../include/toa.h");
        assert!(header.contains(&format!("#define TOA_SO_GET_LOOKUP {TOA_SO_GET_LOOKUP}\n")));
        assert!(header.contains(&format!(
            "sizeof(struct toa_lookup_reply) == {LOOKUP_ANSWER_LEN}"
        )));
    }
}
