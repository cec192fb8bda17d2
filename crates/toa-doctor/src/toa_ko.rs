//! The kernel module toa replaces: with toa.ko loaded both would rewrite
//! addresses, so it must go first.

use std::path::Path;

use crate::report::Check;

/// Created by every toa.ko variant (Tencent, DPVS, Alibaba) while loaded.
pub const TOA_KO_STATS: &str = "/proc/net/toa_stats";

pub fn check() -> Check {
    check_at(Path::new(TOA_KO_STATS))
}

fn check_at(stats: &Path) -> Check {
    if stats.exists() {
        Check::problem(
            "toa.ko",
            format!(
                "loaded ({} exists); it conflicts with toa origin",
                stats.display()
            ),
            "rmmod toa, and drop it from rc.local/modules-load.d",
        )
    } else {
        Check::ok("toa.ko", "not loaded")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn present_toa_stats_means_a_conflict() {
        let line = check_at(Path::new("/proc/self/status")).to_string();
        assert!(line.starts_with("✗ toa.ko: loaded"), "{line}");
        assert!(check_at(Path::new("/nonexistent/toa_stats")).is_ok());
    }
}
