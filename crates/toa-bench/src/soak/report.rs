//! The soak's Markdown report (`soak-<date>.md`) and its charts: memory and
//! descriptors of the proxy, records held by the origin, traffic and errors
//! over time, and the verdicts the issue asks for (flat memory and
//! descriptors, 0 bytes lost or corrupted).

use super::{Sample, Soak};
use crate::charts::{Lines, draw_lines};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The first sample after this much warm-up is the baseline for "flat".
const WARMUP_SECS: f64 = 60.0;

pub fn write(soak: &Soak, out: &Path, dir: &Path) -> anyhow::Result<PathBuf> {
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("soak")
        .to_string();
    let minutes = |s: &Sample| s.secs / 60.0;
    let series = |f: &dyn Fn(&Sample) -> f64| -> Vec<(f64, f64)> {
        soak.samples.iter().map(|s| (minutes(s), f(s))).collect()
    };
    let charts = [
        (
            "memory.png",
            Lines {
                title: "toa proxy resident memory",
                x_label: "minutes",
                y_label: "MiB",
                series: vec![("RSS".into(), series(&|s| s.proxy_rss as f64 / 1048576.0))],
            },
        ),
        (
            "descriptors.png",
            Lines {
                title: "toa proxy open descriptors",
                x_label: "minutes",
                y_label: "descriptors",
                series: vec![("fds".into(), series(&|s| s.proxy_fds as f64))],
            },
        ),
        (
            "records.png",
            Lines {
                title: "toa origin per-socket records (alloc - free)",
                x_label: "minutes",
                y_label: "records held",
                series: vec![(
                    "held".into(),
                    series(&|s| s.alloc.saturating_sub(s.free) as f64),
                )],
            },
        ),
        (
            "traffic.png",
            Lines {
                title: "checked exchanges (cumulative)",
                x_label: "minutes",
                y_label: "exchanges",
                series: vec![
                    ("TCP + TOA".into(), series(&|s| s.traffic.tcp_ok as f64)),
                    (
                        "TCP + PROXY v2".into(),
                        series(&|s| s.traffic.ppv2_ok as f64),
                    ),
                    ("UDP + SPP".into(), series(&|s| s.traffic.udp_ok as f64)),
                    (
                        "errors".into(),
                        series(&|s| s.traffic.errors.values().sum::<u64>() as f64),
                    ),
                ],
            },
        ),
    ];
    for (file, chart) in &charts {
        draw_lines(&dir.join(file), chart)?;
    }

    let first = soak.samples.first();
    let last = soak.samples.last();
    let base = soak
        .samples
        .iter()
        .find(|s| s.secs >= WARMUP_SECS)
        .or(first);
    let max = |f: &dyn Fn(&Sample) -> u64| soak.samples.iter().map(f).max().unwrap_or(0);
    let t = last.map(|s| s.traffic.clone()).unwrap_or_default();
    let mib = |b: u64| format!("{:.1} MiB", b as f64 / 1048576.0);
    let mut md = String::new();
    writeln!(md, "# toa soak, {}\n", soak.date)?;
    writeln!(
        md,
        "`bench/soak --minutes {}`: mixed traffic through `toa proxy` to two origin servers on a cgroup with `toa origin` loaded, \
         a SIGHUP to the proxy every 30 s and one origin server restarted every minute \
         (its TCP server, killed and started again, alternating between the two; the UDP echo servers run throughout). \
         Client, edge and origin are network namespaces of `toa-lab` (198.18.1.2 ⇄ 198.18.1.1 / 198.18.2.1 ⇄ 198.18.2.2 and 198.18.2.3). \
         Traffic: 4 threads each of TCP with TOA and TCP with PROXY v2 (1 KiB to 256 KiB per connection, the origin replies with the \
         sha256 of what it received and the client address it saw), and 2 threads of UDP with SPP (1 to 1,204-byte datagrams echoed \
         by `toa spp-echo`, compared by sha256), each pausing 50 ms between exchanges. Sampled every 5 s. \
         Proxy configuration: [toa-proxy.toml]({name}/toa-proxy.toml); raw samples: [raw.json]({name}/raw.json).\n",
        soak.minutes
    )?;
    writeln!(md, "| | |\n|---|---|")?;
    writeln!(md, "| toa | {} |", soak.toa_version)?;
    writeln!(md, "| kernel | {} |", soak.kernel)?;
    writeln!(
        md,
        "| duration | {:.1} min |",
        last.map_or(0.0, |s| s.secs / 60.0)
    )?;
    writeln!(
        md,
        "| SIGHUPs / origin restarts | {} / {} |\n",
        soak.sighups, soak.restarts
    )?;

    writeln!(md, "## Verdicts\n")?;
    writeln!(md, "| check | measured | verdict |\n|---|---|---|")?;
    let verdict = |ok: bool| if ok { "met" } else { "**missed**" };
    let lost_or_bad = t.bytes_corrupt + t.wrong_client;
    writeln!(
        md,
        "| 0 bytes corrupted, every reply names the real client | {} bytes checked, {} corrupted, {} wrong client | {} |",
        t.bytes_checked,
        t.bytes_corrupt,
        t.wrong_client,
        verdict(lost_or_bad == 0 && t.bytes_checked > 0)
    )?;
    let (rss0, rss1, rss_max) = (
        base.map_or(0, |s| s.proxy_rss),
        last.map_or(0, |s| s.proxy_rss),
        max(&|s| s.proxy_rss),
    );
    // Flat: the end within 10 % (or 4 MiB) of the level after warm-up.
    let flat = |a: u64, b: u64, slack: u64| b <= a + (a / 10).max(slack);
    writeln!(
        md,
        "| proxy memory flat (end within 10 % or 4 MiB of minute 1) | {} at minute 1, {} at the end, {} at most | {} |",
        mib(rss0),
        mib(rss1),
        mib(rss_max),
        verdict(flat(rss0, rss1, 4 << 20))
    )?;
    let (fd0, fd1, fd_max) = (
        base.map_or(0, |s| s.proxy_fds),
        last.map_or(0, |s| s.proxy_fds),
        max(&|s| s.proxy_fds),
    );
    writeln!(
        md,
        "| proxy descriptors flat (end within 10 % or 16 of minute 1) | {fd0} at minute 1, {fd1} at the end, {fd_max} at most | {} |",
        verdict(flat(fd0, fd1, 16))
    )?;
    let alloc = soak
        .origin_counters
        .get("ip6_address_alloc")
        .copied()
        .unwrap_or(0);
    let free = soak
        .origin_counters
        .get("ip6_address_free")
        .copied()
        .unwrap_or(0);
    writeln!(
        md,
        "| origin records all released (`ip6_address_alloc == ip6_address_free` after the traffic) | {alloc} alloc, {free} free | {} |\n",
        verdict(alloc == free && alloc > 0)
    )?;

    writeln!(md, "## Traffic and errors\n")?;
    writeln!(md, "| | count |\n|---|---|")?;
    writeln!(md, "| TCP + TOA exchanges checked | {} |", t.tcp_ok)?;
    writeln!(md, "| TCP + PROXY v2 exchanges checked | {} |", t.ppv2_ok)?;
    writeln!(md, "| UDP + SPP datagrams checked | {} |", t.udp_ok)?;
    writeln!(
        md,
        "| UDP replies arriving after their timeout | {} |",
        t.udp_late
    )?;
    for (kind, n) in &t.errors {
        writeln!(md, "| error: {kind} | {n} |")?;
    }
    writeln!(
        md,
        "\nErrors are failed exchanges (no reply, reset, timeout); none of them may carry wrong bytes, which the verdicts above count separately.\n"
    )?;
    writeln!(md, "## Origin counters at the end\n")?;
    writeln!(md, "| counter | total |\n|---|---|")?;
    for (name, value) in &soak.origin_counters {
        writeln!(md, "| `{name}` | {value} |")?;
    }
    writeln!(md, "\n## Charts\n")?;
    for (file, chart) in &charts {
        writeln!(md, "![{}]({name}/{file})\n", chart.title)?;
    }
    let path = out.join(format!("{name}.md"));
    std::fs::write(&path, md)?;
    Ok(path)
}
