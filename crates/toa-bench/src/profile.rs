//! CPU profiles of the proxies (`perf record -e cpu-clock`), taken in one
//! extra run per case after the measured rounds ([`Bench::profiles`]), so a
//! missed goal comes with where the time went. The software clock event works in VMs without
//! hardware counters.

use crate::peers::{ClientIp, Service, Target};
use crate::results::Profile;
use crate::run::Bench;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Sampling frequency; odd, so it does not beat with periodic work.
const FREQUENCY: &str = "997";
/// Symbols listed per profile in the report.
const TOP_SYMBOLS: usize = 15;
/// System calls listed per proxy in the report's profile table.
const SYSCALL_MIX_LEN: usize = 8;
/// Minimum load duration of a profiled run.
const PROFILE_MS: u64 = 1_000;

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
    record: Child,
    stat: Child,
    file: PathBuf,
    stat_file: PathBuf,
}

/// What a recording found.
pub struct Findings {
    pub top: Vec<String>,
    pub objects: Vec<String>,
    pub syscalls: u64,
    pub switches: u64,
}

/// Samples `pids` (all their threads) for `secs` seconds into `file`, and
/// counts their system calls and context switches alongside.
pub fn start(pids: &BTreeSet<u32>, file: &Path, secs: u64) -> anyhow::Result<Recording> {
    let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
    let pids = pids.join(",");
    let secs = secs.to_string();
    let stat_file = file.with_extension("stat");
    let perf = |args: &[&str], out: &Path| {
        Command::new("perf")
            .args(args)
            .args(["-p", &pids, "-o"])
            .arg(out)
            .args(["--", "sleep", &secs])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
    };
    let events = "raw_syscalls:sys_enter,context-switches";
    Ok(Recording {
        record: perf(&["record", "-q", "-e", "cpu-clock", "-F", FREQUENCY], file)?,
        stat: perf(&["stat", "-x,", "-e", events], &stat_file)?,
        file: file.to_path_buf(),
        stat_file,
    })
}

impl Recording {
    /// Waits for the recording to end and reads it: top symbols by self time,
    /// shares per object, and the system call and context switch counts.
    pub fn finish(mut self) -> anyhow::Result<Findings> {
        self.record.wait()?;
        self.stat.wait()?;
        let report = |sort: &str| -> anyhow::Result<Vec<String>> {
            let out = Command::new("perf")
                .args([
                    "report",
                    "--stdio",
                    "--no-children",
                    "--sort",
                    sort,
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
        };
        let stat = std::fs::read_to_string(&self.stat_file).unwrap_or_default();
        let count = |event: &str| {
            stat.lines()
                .find(|l| l.split(',').nth(2) == Some(event))
                .and_then(|l| l.split(',').next()?.parse().ok())
                .unwrap_or(0)
        };
        let findings = Findings {
            top: report("comm,dso,sym")?,
            objects: report("dso")?,
            syscalls: count("raw_syscalls:sys_enter"),
            switches: count("context-switches"),
        };
        let _ = std::fs::remove_file(&self.file);
        let _ = std::fs::remove_file(&self.stat_file);
        Ok(findings)
    }
}

/// Counts each system call `pids` make for `secs` seconds (`perf trace -s`).
/// Tracing every call slows the proxy down, so it gets a run of its own.
pub fn trace(pids: &BTreeSet<u32>, file: &Path, secs: u64) -> anyhow::Result<Child> {
    let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
    Ok(Command::new("perf")
        .args(["trace", "-s", "-p", &pids.join(","), "-o"])
        .arg(file)
        .args(["--", "sleep", &secs.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?)
}

/// Calls per system call name, summed over the threads of a `perf trace -s`
/// summary, most frequent first; the `sleep` that times the trace is left out.
pub fn syscall_counts(summary: &str) -> Vec<(String, u64)> {
    let mut counts = std::collections::BTreeMap::<String, u64>::new();
    let mut in_timer = false;
    for line in summary.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if line.contains(" events, ") {
            in_timer = fields.first() == Some(&"sleep");
            continue;
        }
        if let [name, calls, errors, ..] = fields[..]
            && !in_timer
            && errors.parse::<u64>().is_ok()
            && let Ok(calls) = calls.parse::<u64>()
        {
            *counts.entry(name.to_string()).or_default() += calls;
        }
    }
    let mut v: Vec<_> = counts.into_iter().collect();
    v.sort_by_key(|(_, calls)| std::cmp::Reverse(*calls));
    v
}

impl Bench {
    /// One extra short-connection (c64) and bulk (8 streams) run per proxy under
    /// `perf record`; not counted in any figure.
    pub fn profiles(&mut self, dir: &Path) -> anyhow::Result<Vec<Profile>> {
        let mut out = Vec::new();
        if !available() {
            self.notes.push("No CPU profiles: `perf record -e cpu-clock` does not work here (install linux-perf).".into());
            return Ok(out);
        }
        // Long enough for a few thousand samples whatever the round settings.
        let load_ms = self.settings.rr_ms.max(PROFILE_MS);
        let variants = self
            .peers
            .keys()
            .copied()
            .filter(|t| matches!(t, Target::Variant(_)));
        let targets: Vec<Target> = [Target::Toa, Target::Haproxy, Target::Nginx]
            .into_iter()
            .chain(variants)
            .collect();
        for t in targets {
            let Some(peer) = self.peers.get(&t) else {
                continue;
            };
            let pids = peer.pids();
            for case in ["c64", "8 streams"] {
                let slug = format!("{}-{}", t.name(), case)
                    .replace(' ', "-")
                    .to_lowercase();
                let file = dir.join(format!("perf-{slug}.data"));
                let recording = start(&pids, &file, load_ms.div_ceil(1000) + 1)?;
                // perf attaches asynchronously; start the load once it is sampling.
                std::thread::sleep(Duration::from_millis(300));
                let (units, unit) = if case == "c64" {
                    let r = self.rr_for(t, Service::Respond, ClientIp::Off, 64, load_ms)?;
                    (r.connections as f64, "connection")
                } else {
                    let r = self.bulk_for(t, 8, load_ms)?;
                    (r.bytes as f64 / 1e6, "MB")
                };
                let found = recording.finish()?;
                let syscall_mix = if case == "c64" {
                    self.syscall_mix(t, dir, load_ms)?
                } else {
                    Vec::new()
                };
                let text = format!("{}\n\n{}\n", found.objects.join("\n"), found.top.join("\n"));
                std::fs::write(dir.join(format!("perf-{slug}.txt")), text)?;
                out.push(Profile {
                    target: t.name().into(),
                    case: case.into(),
                    top: found.top,
                    file: format!("perf-{slug}.txt"),
                    objects: found.objects,
                    syscalls_per_unit: found.syscalls as f64 / units.max(1.0),
                    switches_per_unit: found.switches as f64 / units.max(1.0),
                    unit: unit.into(),
                    syscall_mix,
                });
            }
        }
        Ok(out)
    }

    /// The most frequent system calls per short connection (c64), from a
    /// `perf trace` run of its own.
    fn syscall_mix(
        &mut self,
        t: Target,
        dir: &Path,
        load_ms: u64,
    ) -> anyhow::Result<Vec<(String, f64)>> {
        let pids = self.peers[&t].pids();
        let file = dir.join("perf-trace.txt");
        let mut tracer = trace(&pids, &file, load_ms.div_ceil(1000) + 1)?;
        std::thread::sleep(Duration::from_millis(300));
        let r = self.rr_for(t, Service::Respond, ClientIp::Off, 64, load_ms)?;
        tracer.wait()?;
        let summary = std::fs::read_to_string(&file).unwrap_or_default();
        let _ = std::fs::remove_file(&file);
        Ok(syscall_counts(&summary)
            .into_iter()
            .take(SYSCALL_MIX_LEN)
            .map(|(name, calls)| (name, calls as f64 / r.connections.max(1) as f64))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syscall_counts_sum_threads_and_skip_the_timer() {
        let summary = "\n Summary of events:\n\n toa (10), 9 events, 50.0%\n\n   syscall            calls  errors  total\n   --------------- --------  ------ --------\n   accept4                3      1     0.1\n   splice                 2      0     0.1\n\n toa (11), 4 events, 40.0%\n\n   accept4                2      0     0.1\n\n sleep (12), 3 events, 10.0%\n\n   nanosleep              1      0     1000.0\n";
        assert_eq!(
            syscall_counts(summary),
            vec![("accept4".to_string(), 5), ("splice".to_string(), 2)]
        );
    }
}
