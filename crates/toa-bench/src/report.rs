//! The Markdown report: machine and versions, the issue's goals with the
//! measured ratio next to each, one section per scenario with its table and
//! chart, and the configurations used.

use crate::cases::*;
use crate::charts::{self, Bars, Series};
use crate::results::{Run, Stat};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Writes `<out>/<date>.md` and the charts into `dir`; returns the report's path.
pub fn write(run: &Run, out: &Path, dir: &Path) -> anyhow::Result<PathBuf> {
    let rel = dir
        .file_name()
        .map_or(String::new(), |d| d.to_string_lossy().into_owned());
    let mut md = String::new();
    header(&mut md, run, &rel)?;
    crate::goals::write(&mut md, run)?;
    crate::variants_report::write(&mut md, run)?;
    scenarios(&mut md, run, dir, &rel)?;
    profiles(&mut md, run, &rel)?;
    notes(&mut md, run, dir)?;
    let path = out.join(format!("{}.md", run.date));
    std::fs::write(&path, md)?;
    Ok(path)
}

/// `median (min–max)` with the given decimals, or a dash.
pub(crate) fn fmt(s: Option<Stat>, decimals: usize) -> String {
    match s {
        Some(s) => format!(
            "{:.d$} ({:.d$}–{:.d$})",
            s.median,
            s.min,
            s.max,
            d = decimals
        ),
        None => "–".into(),
    }
}

fn header(md: &mut String, run: &Run, rel: &str) -> anyhow::Result<()> {
    let m = &run.machine;
    writeln!(md, "# toa benchmarks, {}\n", run.date)?;
    if run.quick {
        writeln!(
            md,
            "> **Quick run** (`bench/run --quick`): short durations, to check the harness. Do not quote these numbers.\n"
        )?;
    }
    writeln!(
        md,
        "Every figure is the **median (min–max) over {} rounds**. Every ratio is taken within one round, between measurements made back to back, and then summarised the same way.\n",
        run.rounds
    )?;
    writeln!(md, "## Machine and peers\n")?;
    writeln!(md, "| | |\n|---|---|")?;
    writeln!(
        md,
        "| CPU | {} |\n| cores | {} |\n| kernel | {} |\n| memory | {:.1} GiB |",
        m.cpu, m.cores, m.kernel, m.memory_gib
    )?;
    for (k, v) in &run.versions {
        writeln!(md, "| {k} | {v} |")?;
    }
    for (k, v) in &run.settings {
        writeln!(md, "| {k} | {v} |")?;
    }
    writeln!(md, "\n## Setup\n")?;
    writeln!(
        md,
        "Three network namespaces from `toa-lab` joined by veths: **client** (198.18.1.2) ⇄ **edge** (198.18.1.1 / 198.18.2.1) ⇄ **origin** (198.18.2.2). Every proxy runs in the edge namespace with its distribution defaults (threads or workers = cores), in its own cgroup2 child, so its CPU time (`cpu.stat`) and resident memory (VmRSS of its processes) are read whole. The load generator (`toa-bench load`, Rust/tokio) runs in the client namespace; the origin server (`toa-bench serve`, Rust/tokio) in the origin namespace. *Direct* is the ceiling: the load generator in the edge namespace talking to the origin with no proxy. All processes share the machine's {} cores, so absolute numbers include the load generator's and origin's CPU; the comparisons hold because every peer runs under the same conditions, in the same round.\n",
        m.cores
    )?;
    writeln!(
        md,
        "Configurations used: [toa-proxy.toml]({rel}/toa-proxy.toml), [haproxy.cfg]({rel}/haproxy.cfg), [nginx.conf]({rel}/nginx.conf), [socat.sh]({rel}/socat.sh). Raw samples: [raw.json]({rel}/raw.json).\n"
    )?;
    Ok(())
}

/// One scenario's part of the report: an introduction, tables (one row per
/// target, one column per case) and charts (one bar group per case).
struct Section<'a> {
    scenario: &'a str,
    heading: &'a str,
    intro: &'a str,
    /// Cases to show; empty means every case measured.
    cases: &'a [&'a str],
    /// (value key, table heading, decimals)
    tables: &'a [(&'a str, &'a str, usize)],
    /// (file, title, y-axis label, value key)
    charts: &'a [(&'a str, &'a str, &'a str, &'a str)],
}

impl Section<'_> {
    fn write(&self, md: &mut String, run: &Run, dir: &Path, rel: &str) -> anyhow::Result<()> {
        let cases: Vec<String> = if self.cases.is_empty() {
            cases(run, self.scenario)
        } else {
            self.cases.iter().map(|c| c.to_string()).collect()
        };
        if run.samples.iter().all(|s| s.scenario != self.scenario) {
            return Ok(());
        }
        writeln!(md, "## {}\n\n{}\n", self.heading, self.intro)?;
        for (key, heading, decimals) in self.tables {
            writeln!(md, "**{heading}**\n")?;
            writeln!(md, "| | {} |", cases.join(" | "))?;
            writeln!(md, "|---|{}", "---|".repeat(cases.len()))?;
            for t in run.targets(self.scenario) {
                let cells: Vec<String> = cases
                    .iter()
                    .map(|c| fmt(run.stat(self.scenario, &t, c, key), *decimals))
                    .collect();
                writeln!(md, "| {t} | {} |", cells.join(" | "))?;
            }
            writeln!(md)?;
        }
        for (file, title, y_label, key) in self.charts {
            let series = run
                .targets(self.scenario)
                .into_iter()
                .map(|t| Series {
                    values: cases
                        .iter()
                        .map(|c| run.stat(self.scenario, &t, c, key))
                        .collect(),
                    name: t,
                })
                .collect();
            let bars = Bars {
                title,
                y_label,
                groups: cases.clone(),
                series,
                reference: None,
            };
            charts::draw(&dir.join(file), &bars)?;
            writeln!(md, "![{title}]({rel}/{file})\n")?;
        }
        errors(md, run, self.scenario)
    }
}

fn cases(run: &Run, scenario: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in run.samples.iter().filter(|s| s.scenario == scenario) {
        if !out.contains(&s.case) {
            out.push(s.case.clone());
        }
    }
    out
}

/// `num / den` per case, as a line under a scenario's tables.
fn ratio_line(
    md: &mut String,
    run: &Run,
    scenario: &str,
    label: &str,
    cases: &[&str],
    num: &str,
    den: &str,
) -> anyhow::Result<()> {
    let parts: Vec<String> = cases
        .iter()
        .map(|c| {
            format!(
                "{c}: {}",
                fmt(run.ratio(scenario, c, "conn_per_s", num, den), 3)
            )
        })
        .collect();
    if run.samples.iter().any(|s| s.scenario == scenario) {
        writeln!(md, "**{label}**: {}\n", parts.join(", "))?;
    }
    Ok(())
}

fn scenarios(md: &mut String, run: &Run, dir: &Path, rel: &str) -> anyhow::Result<()> {
    Section {
        scenario: RATE,
        heading: "1. Connection rate",
        intro: "Short connections: connect, 64-byte request, 64-byte response, close; `cN` is the number of concurrent clients. Latency is from connect to the response.",
        cases: &[],
        tables: &[("conn_per_s", "Connections per second", 0), ("p50_us", "Latency p50, µs", 0), ("p99_us", "Latency p99, µs", 0), ("p999_us", "Latency p99.9, µs", 0), ("cpu_us_per_conn", "Proxy CPU µs per connection (user+system of its processes; 10 ms clock ticks)", 1)],
        charts: &[("rate.png", "Connection rate (higher is better)", "connections/s", "conn_per_s"), ("latency-p99.png", "Latency p99 (lower is better)", "µs", "p99_us")],
    }
    .write(md, run, dir, rel)?;
    Section {
        scenario: BULK,
        heading: "2. Bulk throughput",
        intro: "Upload into the origin's sink; throughput from the bytes the sink counted. CPU is the proxy cgroup's user+system time during the transfer (softirq work is counted where the kernel charges it).",
        cases: &[],
        tables: &[("gbps", "Gbit/s", 2), ("cpu_s_per_gb", "Proxy CPU seconds per GB", 3)],
        charts: &[("bulk.png", "Bulk throughput (higher is better)", "Gbit/s", "gbps"), ("bulk-cpu.png", "Proxy CPU per GB (lower is better)", "CPU s/GB", "cpu_s_per_gb")],
    }
    .write(md, run, dir, rel)?;
    Section {
        scenario: MEMORY,
        heading: "3. Memory per idle connection",
        intro: "The proxy is restarted, its RSS read, then the client opens the connections (one byte each way on each, so every connection is established end to end) and the RSS is read again. socat is left out: it forks a process per connection. RSS is user-space memory; kernel memory of sockets and pipes is not in it.",
        cases: &[],
        tables: &[("kib_per_conn", "KiB per idle connection", 2), ("baseline_mib", "Baseline RSS, MiB", 1), ("fds_per_conn", "Descriptors per idle connection", 1), ("established", "Connections held", 0)],
        charts: &[("memory.png", "Memory per idle connection (lower is better)", "KiB", "kib_per_conn")],
    }
    .write(md, run, dir, rel)?;
    Section {
        scenario: TOA_COST,
        heading: "4. TOA cost on the edge",
        intro: "toa proxy forwarding to the same origin with `pass_client_ip = toa` and `off`, measured back to back; the origin has `toa origin` loaded so the option is consumed. *Origin saw the client* is the share of connections on which the origin's `accept()` returned the client's own address and port.",
        cases: &[],
        tables: &[("conn_per_s", "Connections per second", 0), ("p99_us", "Latency p99, µs", 0), ("peer_is_client_pct", "Origin saw the client, %", 1), ("cpu_us_per_conn", "toa proxy CPU µs per connection", 1)],
        charts: &[("toa-cost.png", "toa proxy: TOA against off (higher is better)", "connections/s", "conn_per_s")],
    }
    .write(md, run, dir, rel)?;
    let c = ["c1", "c16", "c64"];
    ratio_line(md, run, TOA_COST, "Ratio toa / off", &c, TOA_ON, TOA_OFF)?;
    Section {
        scenario: ORIGIN_COST,
        heading: "5. Origin-side cost",
        intro: "The origin server accepts, calls `getpeername()`, reads 64 bytes and answers 64, with `toa origin` loaded on its cgroup and not, alternately. *Direct* connections carry no TOA option (the programs run and find none); connections *via toa proxy (TOA)* carry one, which is parsed and served by `getpeername()`.",
        cases: &[DIRECT_RATE, PROXIED_RATE],
        tables: &[("conn_per_s", "Connections per second", 0), ("cpu_us_per_conn", "Origin server CPU µs per connection (its process; softirq work runs wherever the kernel takes it)", 1)],
        charts: &[("origin-cost.png", "Origin with toa origin loaded and not (higher is better)", "connections/s", "conn_per_s")],
    }
    .write(md, run, dir, rel)?;
    Section {
        scenario: ORIGIN_COST,
        heading: "5b. getpeername() on the origin",
        intro: "Mean of 100 `getpeername()` calls on each accepted connection, median over connections; *direct* connections carry no TOA option, those *via toa proxy (TOA)* do.",
        cases: &[GETPEERNAME_DIRECT, GETPEERNAME_PROXIED],
        tables: &[("getpeername_ns", "ns per getpeername()", 0), ("peer_is_client_pct", "Origin saw the client, %", 1)],
        charts: &[],
    }
    .write(md, run, dir, rel)?;
    ratio_line(
        md,
        run,
        ORIGIN_COST,
        "Ratio loaded / not loaded",
        &[DIRECT_RATE, PROXIED_RATE],
        LOADED,
        NOT_LOADED,
    )?;
    Section {
        scenario: TTFB,
        heading: "6. PROXY v2 against TOA, as the origin sees it",
        intro: "The origin's time from `accept()` returning to the first request byte being available, with the client address in hand: for TOA one `getpeername()`, for PROXY v2 reading and parsing the header first. Both through toa proxy, back to back.",
        cases: &[],
        tables: &[("ttfb_p50_us", "Time to first byte p50, µs", 1), ("ttfb_p99_us", "Time to first byte p99, µs", 1), ("parse_ns", "PROXY v2 header parse, ns (median)", 0), ("conn_per_s", "Connections per second", 0), ("peer_is_client_pct", "Origin saw the client, %", 1)],
        charts: &[("ttfb.png", "Origin time to first byte, p50 (lower is better)", "µs", "ttfb_p50_us")],
    }
    .write(md, run, dir, rel)
}

/// Lists any failed connections of a scenario: a figure with errors is suspect.
fn errors(md: &mut String, run: &Run, scenario: &str) -> anyhow::Result<()> {
    let failed: Vec<String> = run
        .samples
        .iter()
        .filter(|s| s.scenario == scenario && s.values.get("errors").is_some_and(|e| *e > 0.0))
        .map(|s| {
            format!(
                "{} {} round {}: {}",
                s.target,
                s.case,
                s.round + 1,
                s.values["errors"]
            )
        })
        .collect();
    if !failed.is_empty() {
        writeln!(
            md,
            "Failed connections or transfers: {}.\n",
            failed.join("; ")
        )?;
    }
    Ok(())
}

/// The top symbols of each proxy's profile, so a missed goal can be read against them.
fn profiles(md: &mut String, run: &Run, rel: &str) -> anyhow::Result<()> {
    if run.profiles.is_empty() {
        return Ok(());
    }
    writeln!(
        md,
        "## CPU profiles\n\nOne extra run per case under `perf record -e cpu-clock -F 997` on the proxy's processes (not counted in any figure). Self time by command, object and symbol; `[k]` is kernel, `[.]` user space.\n"
    )?;
    writeln!(
        md,
        "| Proxy | Case | System calls | Context switches | Samples by object |\n|---|---|---|---|---|"
    )?;
    for p in &run.profiles {
        let objects: Vec<String> = p
            .objects
            .iter()
            .take(3)
            .map(|o| o.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        writeln!(
            md,
            "| {} | {} | {:.1} per {u} | {:.2} per {u} | {} |",
            p.target,
            p.case,
            p.syscalls_per_unit,
            p.switches_per_unit,
            objects.join(", "),
            u = p.unit
        )?;
    }
    writeln!(md)?;
    let mixes: Vec<_> = run
        .profiles
        .iter()
        .filter(|p| !p.syscall_mix.is_empty())
        .collect();
    if !mixes.is_empty() {
        writeln!(
            md,
            "System calls per short connection (c64, from a separate `perf trace -s` run; tracing slows the proxy, so only the counts are used):\n"
        )?;
        for p in mixes {
            let mix: Vec<String> = p
                .syscall_mix
                .iter()
                .map(|(n, c)| format!("{n} {c:.2}"))
                .collect();
            writeln!(md, "- **{}**: {}", p.target, mix.join(", "))?;
        }
        writeln!(md)?;
    }
    for p in &run.profiles {
        writeln!(
            md,
            "**{}, {}** ([full list]({rel}/{}))\n\n```\n{}\n```\n",
            p.target,
            p.case,
            p.file,
            p.top.join("\n")
        )?;
    }
    Ok(())
}

/// Run notes, then the analysis written by hand into `<dir>/analysis.md`, if any.
fn notes(md: &mut String, run: &Run, dir: &Path) -> anyhow::Result<()> {
    if !run.notes.is_empty() {
        writeln!(md, "## Notes\n")?;
        for n in &run.notes {
            writeln!(md, "- {n}")?;
        }
        writeln!(md)?;
    }
    if let Ok(analysis) = std::fs::read_to_string(dir.join("analysis.md")) {
        writeln!(md, "{}", analysis.trim_end())?;
    }
    Ok(())
}
