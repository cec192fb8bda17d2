//! The `toa` binary on the host and `toa origin load` on a lab cgroup that
//! unloads on drop (shared by the e2e tests).

use std::path::{Path, PathBuf};
use std::process::Output;

pub const TOA: &str = env!("CARGO_BIN_EXE_toa");

/// Runs the `toa` binary on the host (plain one-line errors, no backtraces).
pub fn toa(args: &[&str]) -> Output {
    std::process::Command::new(TOA)
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .env("RUST_LIB_BACKTRACE", "0")
        .output()
        .expect("running toa")
}

pub fn toa_ok(args: &[&str]) -> String {
    let out = toa(args);
    assert!(
        out.status.success(),
        "toa {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `toa origin load` on a test cgroup; unloads again on drop (declare it after
/// the topology, so it drops first, before the lab removes the cgroup).
pub struct LoadedOrigin {
    cgroup: PathBuf,
}

impl LoadedOrigin {
    pub fn load(cgroup: &Path, extra: &[&str]) -> LoadedOrigin {
        let mut args = vec!["origin", "load", "--cgroup", cgroup.to_str().unwrap()];
        args.extend_from_slice(extra);
        toa_ok(&args);
        LoadedOrigin {
            cgroup: cgroup.to_path_buf(),
        }
    }

    pub fn arg(&self) -> &str {
        self.cgroup.to_str().unwrap()
    }
}

impl Drop for LoadedOrigin {
    fn drop(&mut self) {
        let out = toa(&["origin", "unload", "--cgroup", self.arg()]);
        if !out.status.success() {
            eprintln!("unload failed: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
}
