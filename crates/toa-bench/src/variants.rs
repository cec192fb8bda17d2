//! Extra toa binaries measured in the same rounds as the main one
//! (`--toa-variant label=/path/to/toa`): each runs as a peer of its own, on its
//! own port block, in the connection-rate, bulk, idle-memory and TOA-cost
//! scenarios, so a change is compared with its predecessor back to back.

use crate::results::{Run, Stat};
use anyhow::{Context, bail};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::OnceLock;

/// At most this many variants: their port blocks (15000, 16000, ...) stay below
/// the lab's ephemeral port range (20000 and up, `run::SYSCTLS`).
pub const MAX_VARIANTS: usize = 5;

/// One extra toa binary and the name its rows carry in the report.
#[derive(Debug, Clone)]
pub struct Variant {
    pub label: &'static str,
    pub toa: PathBuf,
}

static VARIANTS: OnceLock<Vec<Variant>> = OnceLock::new();

/// Parses every `label=path` argument and records the variants for the run.
/// Labels name cgroups and report rows: letters, digits, `-`, `_` and `.` only.
pub fn install(args: &[String]) -> anyhow::Result<()> {
    if args.len() > MAX_VARIANTS {
        bail!(
            "--toa-variant: at most {MAX_VARIANTS} variants (got {})",
            args.len()
        );
    }
    let mut variants = Vec::new();
    for arg in args {
        let Some((label, path)) = arg.split_once('=') else {
            bail!("--toa-variant {arg:?}: expected label=/path/to/toa");
        };
        let valid = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
        if label.is_empty() || !label.chars().all(valid) {
            bail!(
                "--toa-variant {arg:?}: the label may hold only letters, digits, '-', '_' and '.'"
            );
        }
        if variants.iter().any(|v: &Variant| v.label == label) {
            bail!("--toa-variant: label {label:?} given twice");
        }
        let toa = std::fs::canonicalize(path)
            .with_context(|| format!("--toa-variant {label}: {path} not found"))?;
        // Leaked once per run: labels name targets, which are `&'static str`.
        let label: &'static str = Box::leak(label.to_string().into_boxed_str());
        variants.push(Variant { label, toa });
    }
    VARIANTS
        .set(variants)
        .map_err(|_| anyhow::anyhow!("variants installed twice"))
}

/// The variants of this run (none unless `--toa-variant` was given).
pub fn all() -> &'static [Variant] {
    VARIANTS.get().map_or(&[], Vec::as_slice)
}

/// The variant with index `i`.
pub fn get(i: u8) -> &'static Variant {
    &all()[usize::from(i)]
}

/// The report's per-variant table: toa proxy and each variant as within-round
/// ratios to HAProxy (rate, CPU per connection, idle memory), plus their own
/// CPU per connection, idle KiB and TOA-against-off ratio. Nothing without variants.
pub fn report(md: &mut String, run: &Run) -> anyhow::Result<()> {
    use crate::scenarios::{MEMORY, RATE, TOA_COST, TOA_OFF, TOA_ON, case_c};
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

/// The `versions` key a variant's path is recorded under (`toa variant <label>`).
pub const VERSION_KEY: &str = "toa variant ";

fn is_toa_row(run: &Run, target: &str) -> bool {
    target == "toa proxy" || run.versions.contains_key(&format!("{VERSION_KEY}{target}"))
}
