//! The kernel-facing lookup convention: `getsockopt(fd, IPPROTO_IP, TOA_SO_GET_LOOKUP)`
//! answered by toa's `cgroup/getsockopt` program (and by Tencent's/DPVS's toa.ko).
//! The number and the reply struct are defined once, in `toa-common`, which the
//! kernel program writes from.

pub use toa_common::{LOOKUP_ANSWER_LEN, LookupReply, TOA_SO_GET_LOOKUP};

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
