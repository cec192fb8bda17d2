//! Builds the kernel programs (`crates/toa-ebpf`, BPF target, nightly with
//! `-Z build-std=core`) with aya-build and leaves the objects in OUT_DIR,
//! where `include_bytes_aligned!` picks them up.

use std::path::Path;

fn main() -> aya_build::Result<()> {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let ebpf_dir = manifest_dir.join("../toa-ebpf").canonicalize()?;
    // The kernel programs also depend on the shared types and the TOA codec.
    println!("cargo:rerun-if-changed=../toa-common");
    println!("cargo:rerun-if-changed=../toa-wire");
    // aya-build runs `cargo build --package toa-ebpf` in the current directory;
    // toa-ebpf is its own workspace (excluded from the host one), so run there.
    std::env::set_current_dir(&ebpf_dir)?;
    let root_dir = ebpf_dir.to_str().expect("toa-ebpf path is UTF-8");
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "toa-ebpf",
            root_dir,
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
}
