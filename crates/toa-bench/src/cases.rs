//! Scenario, target and case names as stored in the raw results and read by the report:
//! written once here so the run and the report cannot disagree.

use crate::peers::Target;

/// Scenario names as stored in the raw results and used by the report.
pub const RATE: &str = "rate";
pub const BULK: &str = "bulk";
pub const MEMORY: &str = "memory";
pub const TOA_COST: &str = "toa-cost";
pub const ORIGIN_COST: &str = "origin-cost";
pub const TTFB: &str = "ttfb";

/// Targets of the TOA-cost, origin-cost and TTFB scenarios.
pub const TOA_OFF: &str = "pass_client_ip = off";
pub const TOA_ON: &str = "pass_client_ip = toa";
pub const NOT_LOADED: &str = "toa origin not loaded";
pub const LOADED: &str = "toa origin loaded";
pub const VIA_TOA: &str = "TOA";
pub const VIA_PPV2: &str = "PROXY v2";
/// Origin-cost cases.
pub const DIRECT_RATE: &str = "direct, c16";
pub const PROXIED_RATE: &str = "via toa proxy (TOA), c16";
pub const GETPEERNAME_DIRECT: &str = "getpeername, direct";
pub const GETPEERNAME_PROXIED: &str = "getpeername, via toa proxy (TOA)";

/// The TOA-cost row of `mode_name` for toa proxy, or for a variant (its label appended).
pub fn toa_cost_row(t: Target, mode_name: &str) -> String {
    match t {
        Target::Variant(_) => format!("{mode_name} ({})", t.name()),
        _ => mode_name.to_string(),
    }
}

pub fn case_c(c: usize) -> String {
    format!("c{c}")
}

pub fn case_streams(n: usize) -> String {
    format!("{n} stream{}", if n == 1 { "" } else { "s" })
}
