//! The handshake packet's TCP header as a [`TcpHeader`] for the shared parser
//! in `toa_common::options`.

use toa_common::options::TcpHeader;

/// The TCP header in packet memory (`skb_data..skb_data_end` of sock_ops).
pub struct PacketHeader {
    pub data: usize,
    pub end: usize,
}

impl TcpHeader for PacketHeader {
    #[inline(always)]
    fn bytes<const N: usize>(&self, off: usize) -> Option<[u8; N]> {
        if self.data + off + N > self.end {
            return None;
        }
        // SAFETY: the range was checked against data_end just above (and the
        // verifier re-checks it).
        Some(unsafe { core::ptr::read_unaligned((self.data + off) as *const [u8; N]) })
    }
}
