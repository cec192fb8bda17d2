//! CPU profiles of the proxies (`perf record -e cpu-clock`), taken in one
//! extra run per case after the measured rounds, so a missed goal comes with
//! where the time went. The software clock event works in VMs without
//! hardware counters.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Sampling frequency; odd, so it does not beat with periodic work.
const FREQUENCY: &str = "997";
/// Symbols listed per profile in the report.
const TOP_SYMBOLS: usize = 15;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Profile {
    pub target: String,
    pub case: String,
    /// `perf report` lines: share of samples, command, object, symbol.
    pub top: Vec<String>,
    pub file: String,
}

/// Whether `perf record` works here (installed, permitted).
pub fn available() -> bool {
    Command::new("perf")
        .args([
            "record",
            "-q",
            "-e",
            "cpu-clock",
            "-o",
            "/dev/null",
            "--",
            "true",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub struct Recording {
    child: Child,
    file: PathBuf,
}

/// Samples `pids` (all their threads) for `secs` seconds into `file`.
pub fn start(pids: &BTreeSet<u32>, file: &Path, secs: u64) -> anyhow::Result<Recording> {
    let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
    let child = Command::new("perf")
        .args([
            "record",
            "-q",
            "-e",
            "cpu-clock",
            "-F",
            FREQUENCY,
            "-p",
            &pids.join(","),
        ])
        .arg("-o")
        .arg(file)
        .args(["--", "sleep", &secs.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    Ok(Recording {
        child,
        file: file.to_path_buf(),
    })
}

impl Recording {
    /// Waits for the recording to end and returns the top symbols by self time.
    pub fn finish(mut self) -> anyhow::Result<Vec<String>> {
        self.child.wait()?;
        let out = Command::new("perf")
            .args([
                "report",
                "--stdio",
                "--no-children",
                "--sort",
                "comm,dso,sym",
                "--percent-limit",
                "0.5",
                "-i",
            ])
            .arg(&self.file)
            .stderr(Stdio::null())
            .output()?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .take(TOP_SYMBOLS)
            .map(|l| l.trim_end().to_string())
            .collect())
    }
}
