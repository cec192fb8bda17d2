//! The report's per-variant section (`--toa-variant` binaries against HAProxy).

use crate::cases::{MEMORY, RATE, TOA_COST, TOA_OFF, TOA_ON, case_c};
use crate::results::{Run, Stat};
use crate::variants::VERSION_KEY;
use std::fmt::Write as _;

/// The report's per-variant table: toa proxy and each variant as within-round
/// ratios to HAProxy (rate, CPU per connection, idle memory), plus their own
/// CPU per connection, idle KiB and TOA-against-off ratio. Nothing without variants.
pub fn write(md: &mut String, run: &Run) -> anyhow::Result<()> {
    // From the run's record, so a report redrawn from raw.json has the table too.
    if !run.versions.keys().any(|k| k.starts_with(VERSION_KEY)) {
        return Ok(());
    }
    let idle = run.first_case(MEMORY);
    let f2 = |s: Option<Stat>| s.map_or("–".into(), |s| format!("{:.2}×", s.median));
    let f1 = |s: Option<Stat>| s.map_or("–".into(), |s| format!("{:.1}", s.median));
    writeln!(md, "## Variants\n")?;
    writeln!(
        md,
        "toa proxy and each `--toa-variant` binary, measured in the same rounds; every ratio is to HAProxy in the same round (median over rounds; min–max in the tables below).\n"
    )?;
    writeln!(
        md,
        "| toa | conn/s c16 ÷ HAProxy | conn/s c64 ÷ HAProxy | CPU µs/conn c16 | CPU µs/conn c64 | idle KiB/conn | idle ÷ HAProxy | TOA ÷ off c16 | TOA ÷ off c64 |"
    )?;
    writeln!(md, "|---|---|---|---|---|---|---|---|---|")?;
    for t in run.targets(RATE).into_iter().filter(|t| is_toa_row(run, t)) {
        let row = |mode: &str| {
            if t == "toa proxy" {
                mode.to_string()
            } else {
                format!("{mode} ({t})")
            }
        };
        let toa_ratio = |c: usize| {
            run.ratio_across(
                TOA_COST,
                &case_c(c),
                "conn_per_s",
                (TOA_COST, &row(TOA_ON)),
                &row(TOA_OFF),
            )
        };
        writeln!(
            md,
            "| {t} | {} | {} | {} | {} | {} | {} | {} | {} |",
            f2(run.ratio(RATE, &case_c(16), "conn_per_s", &t, "HAProxy")),
            f2(run.ratio(RATE, &case_c(64), "conn_per_s", &t, "HAProxy")),
            f1(run.stat(RATE, &t, &case_c(16), "cpu_us_per_conn")),
            f1(run.stat(RATE, &t, &case_c(64), "cpu_us_per_conn")),
            f1(run.stat(MEMORY, &t, &idle, "kib_per_conn")),
            f2(run.ratio(MEMORY, &idle, "kib_per_conn", &t, "HAProxy")),
            f2(toa_ratio(16)),
            f2(toa_ratio(64)),
        )?;
    }
    writeln!(md)?;
    Ok(())
}

fn is_toa_row(run: &Run, target: &str) -> bool {
    target == "toa proxy" || run.versions.contains_key(&format!("{VERSION_KEY}{target}"))
}
