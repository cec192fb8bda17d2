//! The report's goals table: each goal of the issue with the measured
//! within-round ratio next to it, and whether its median meets the bound.

use crate::cases::*;
use crate::results::{Run, Stat};
use std::fmt::Write as _;

/// One goal row: the measured ratio, and whether its median meets the bound.
fn goal(
    md: &mut String,
    text: &str,
    ratio: Option<Stat>,
    at_least: Option<f64>,
    at_most: Option<f64>,
) -> anyhow::Result<()> {
    let verdict = match ratio {
        None => "not measured".to_string(),
        Some(r)
            if at_least.is_some_and(|b| r.median < b) || at_most.is_some_and(|b| r.median > b) =>
        {
            "**missed**".to_string()
        }
        Some(_) => "met".to_string(),
    };
    let measured = ratio.map_or("–".into(), |r| {
        format!("{:.2}× ({:.2}–{:.2})", r.median, r.min, r.max)
    });
    writeln!(md, "| {text} | {measured} | {verdict} |")?;
    Ok(())
}

pub fn write(md: &mut String, run: &Run) -> anyhow::Result<()> {
    let toa = "toa proxy";
    writeln!(md, "## Goals (issue 14)\n")?;
    writeln!(
        md,
        "A goal is met when the median of its per-round ratio meets the bound.\n"
    )?;
    writeln!(
        md,
        "| Goal | Measured ratio, median (min–max) | Verdict |\n|---|---|---|"
    )?;
    for c in [16, 64] {
        let case = case_c(c);
        goal(
            md,
            &format!("Connection rate ≥ 1.2× HAProxy, concurrency {c}"),
            run.ratio(RATE, &case, "conn_per_s", toa, "HAProxy"),
            Some(1.2),
            None,
        )?;
        goal(
            md,
            &format!("Connection rate ≥ 1.2× nginx stream, concurrency {c}"),
            run.ratio(RATE, &case, "conn_per_s", toa, "nginx stream"),
            Some(1.2),
            None,
        )?;
    }
    goal(
        md,
        "Latency p99 ≤ HAProxy's, concurrency 64",
        run.ratio(RATE, &case_c(64), "p99_us", toa, "HAProxy"),
        None,
        Some(1.0),
    )?;
    // "CPU per GB at or below its present level": the level of the 2026-11-26 report (at commit 515b5d0),
    // as a ratio to HAProxy so that it is measured within a round like every other goal.
    for (n, present) in [(1, 0.52), (8, 0.46)] {
        let case = case_streams(n);
        goal(
            md,
            &format!("Bulk throughput ≥ 1.3× HAProxy, {case}"),
            run.ratio(BULK, &case, "gbps", toa, "HAProxy"),
            Some(1.3),
            None,
        )?;
        goal(
            md,
            &format!("CPU per GB at or below its 2026-11-26 level ({present}× HAProxy's), {case}"),
            run.ratio(BULK, &case, "cpu_s_per_gb", toa, "HAProxy"),
            None,
            Some(present),
        )?;
    }
    let idle = run.first_case(MEMORY);
    goal(
        md,
        "Memory per idle connection ≤ 0.5× HAProxy's",
        run.ratio(MEMORY, &idle, "kib_per_conn", toa, "HAProxy"),
        None,
        Some(0.5),
    )?;
    for c in [1, 16, 64] {
        goal(
            md,
            &format!("TOA mode ≥ 0.99× `off` in connection rate, concurrency {c}"),
            run.ratio(TOA_COST, &case_c(c), "conn_per_s", TOA_ON, TOA_OFF),
            Some(0.99),
            None,
        )?;
    }
    for case in [DIRECT_RATE, PROXIED_RATE] {
        goal(
            md,
            &format!("Origin with `toa origin` loaded ≥ 0.99× not loaded ({case})"),
            run.ratio(ORIGIN_COST, case, "conn_per_s", LOADED, NOT_LOADED),
            Some(0.99),
            None,
        )?;
    }
    writeln!(md)?;
    Ok(())
}
