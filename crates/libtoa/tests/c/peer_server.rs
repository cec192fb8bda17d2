//! Builds `peer_server.c` against toa.h and libtoa.so for the tests that run
//! it (`crates/libtoa-preload/tests/preload.rs`, `crates/toa/tests/libtoa.rs`),
//! which include this file with `#[path]`. Both test crates depend on libtoa
//! and libtoa-preload, so their cdylibs sit next to the test binary.

use std::path::{Path, PathBuf};

/// Where cargo put the test binary and its dependencies' cdylibs (`deps/`),
/// always rebuilt before the test runs.
pub fn dependency_dir() -> PathBuf {
    std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf()
}

/// `out_dir/peer_server`, compiled with warnings as errors and linked with
/// `-ltoa` as C users link it.
pub fn build(out_dir: &Path) -> PathBuf {
    // Both including crates are siblings of crates/libtoa.
    let libtoa = Path::new(env!("CARGO_MANIFEST_DIR")).join("../libtoa");
    // Cargo names the cdylib after the Rust crate (`liblibtoa.so`); packages
    // install it as libtoa.so, and so does this directory, by a link.
    let lib_dir = out_dir.join("lib");
    std::fs::create_dir_all(&lib_dir).unwrap();
    let link = lib_dir.join("libtoa.so");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(dependency_dir().join("liblibtoa.so"), &link).unwrap();
    let out = out_dir.join("peer_server");
    let status = std::process::Command::new("gcc")
        .args(["-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&out)
        .arg("-I")
        .arg(libtoa.join("include"))
        .arg(libtoa.join("tests/c/peer_server.c"))
        .arg("-L")
        .arg(&lib_dir)
        // DT_RPATH (not RUNPATH): cargo test puts target/<profile> on
        // LD_LIBRARY_PATH, whose libtoa.so may be an older uplifted copy.
        .arg(format!(
            "-Wl,--disable-new-dtags,-rpath,{}",
            lib_dir.display()
        ))
        .arg("-ltoa")
        .status()
        .expect("running gcc");
    assert!(status.success(), "gcc failed to build peer_server");
    out
}
