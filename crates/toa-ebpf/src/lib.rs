//! Code shared by toa's kernel programs: the packet-memory TCP header reader, address helpers
//! and kernel constants missing from `aya_ebpf::bindings`.
//!
//! The programs themselves are the binaries: `toa-origin` (receiver,
//! getpeername rewrite, getsockopt lookup) and `toa-edge` (option writer).
//! Their maps and counter ids come from `toa-common`; `toa-loader` loads them.
#![no_std]

pub mod kernel;
pub mod packet;
