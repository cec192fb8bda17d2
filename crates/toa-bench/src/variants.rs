//! Extra toa binaries measured in the same rounds as the main one
//! (`--toa-variant label=/path/to/toa`): each runs as a peer of its own, on its
//! own port block, in the connection-rate, bulk, idle-memory and TOA-cost
//! scenarios, so a change is compared with its predecessor back to back.

use anyhow::{Context, bail};
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

/// The `versions` key a variant's path is recorded under (`toa variant <label>`).
pub const VERSION_KEY: &str = "toa variant ";
