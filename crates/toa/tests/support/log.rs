//! Waiting for a line in a spawned process's log (shared by the e2e tests).

use std::path::Path;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

/// How long a test waits for a server to start or a log line to appear: 10 s,
/// times `TOA_TEST_TIME_SCALE` when set. scripts/kernel-test sets it in its
/// software-emulated (TCG) guests, where one python3 start takes seconds.
pub static WAIT: LazyLock<Duration> = LazyLock::new(|| {
    let scale = std::env::var("TOA_TEST_TIME_SCALE")
        .ok()
        .and_then(|s| s.parse::<u32>().ok())
        .unwrap_or(1)
        .max(1);
    Duration::from_secs(10) * scale
});

/// Polls a spawned process's log until it contains `needle`; the log's text.
pub fn wait_log(log: &Path, needle: &str) -> String {
    let deadline = Instant::now() + *WAIT;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in {}:\n{text}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}
