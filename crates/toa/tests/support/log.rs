//! Waiting for a line in a spawned process's log (shared by the e2e tests).

use std::path::Path;
use std::time::{Duration, Instant};

/// How long a test waits for a server to start or a log line to appear,
/// before [`toa_lab::scaled`] stretches it for a slow host.
pub const WAIT: Duration = Duration::from_secs(10);

/// Polls a spawned process's log until it contains `needle`; the log's text.
pub fn wait_log(log: &Path, needle: &str) -> String {
    let deadline = Instant::now() + toa_lab::scaled(WAIT);
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
