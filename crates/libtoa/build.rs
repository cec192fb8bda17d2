//! Gives the cdylib its SONAME, so a program linked with `-ltoa` asks for
//! `libtoa.so.0` and the Debian package can ship the versioned file with a
//! `libtoa.so` development link. The crate exports the same name as
//! `toa::SONAME`. (Targets without cdylibs, e.g. static musl, ignore it.)

/// Bump the number when the C ABI in `include/toa.h` changes incompatibly.
const SONAME: &str = "libtoa.so.0";

fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,{SONAME}");
    println!("cargo:rustc-env=LIBTOA_SONAME={SONAME}");
}
