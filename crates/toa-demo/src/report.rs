//! What the demo prints: the topology, each request with the origin's log
//! line, and the verdict. Kept apart from the orchestration so the wording
//! can be read (and tested) in one place.

use crate::Mode;
use crate::plan::{Case, Pass};
use toa_lab::addr::*;

/// What happened to one case.
#[derive(Debug, Clone)]
pub struct CaseResult {
    pub case: Case,
    /// The client's view: curl's response body, or why it failed.
    pub response: Result<String, String>,
    /// The origin's access line for this request, if one appeared.
    pub logged: Option<String>,
}

impl CaseResult {
    /// The origin logged exactly the expected address.
    pub fn passed(&self) -> bool {
        self.logged
            .as_deref()
            .and_then(crate::origin::seen_address)
            .is_some_and(|seen| seen == self.case.expect)
    }
}

/// The whole run's outcome.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub mode: Mode,
    pub results: Vec<CaseResult>,
}

impl Outcome {
    fn count(&self, carries_client: bool) -> (usize, usize) {
        let of_kind = self
            .results
            .iter()
            .filter(|r| r.case.carries_client() == carries_client);
        let total = of_kind.clone().count();
        (of_kind.filter(|r| r.passed()).count(), total)
    }

    /// Every real client address appeared, and the contrast showed the proxy.
    pub fn passed(&self) -> bool {
        self.results.iter().all(CaseResult::passed)
    }

    /// The one-line verdict, e.g. `✓ toa works: the origin saw 4/4 real client addresses`.
    pub fn verdict(&self) -> String {
        let (seen, total) = self.count(true);
        let (contrast_ok, contrast_total) = self.count(false);
        let what = match self.mode {
            Mode::Toa => "toa",
            Mode::Ppv2 => "PROXY v2",
        };
        if self.passed() {
            return format!("✓ {what} works: the origin saw {seen}/{total} real client addresses");
        }
        let missing: Vec<String> = self
            .results
            .iter()
            .filter(|r| !r.passed())
            .map(|r| format!("{} ({})", r.case.expect, r.case.title))
            .collect();
        let contrast = if contrast_ok == contrast_total {
            String::new()
        } else {
            format!(", {contrast_ok}/{contrast_total} contrast cases as expected")
        };
        format!(
            "✗ {what} failed: the origin saw {seen}/{total} real client addresses{contrast}; missing: {}",
            missing.join(", ")
        )
    }
}

pub fn print_topology(mode: Mode) {
    let (edge_role, origin_role, mode_name) = match mode {
        Mode::Toa => (
            "toa proxy",
            "toa origin (eBPF) + python3 -m http.server",
            "pass_client_ip = \"toa\"",
        ),
        Mode::Ppv2 => (
            "toa proxy",
            "nginx (listen ... proxy_protocol)",
            "pass_client_ip = \"ppv2\"",
        ),
    };
    println!("toa demo: the client's real address across an L4 proxy, with {mode_name}\n");
    println!("  client  {CLIENT_V4:<11} {CLIENT_V6}");
    println!("     │");
    println!(
        "  edge    {EDGE_CLIENT_SIDE_V4:<11} {EDGE_CLIENT_SIDE_V6:<10} │ {EDGE_ORIGIN_SIDE_V4:<11} {EDGE_ORIGIN_SIDE_V6:<10}  {edge_role}"
    );
    println!("     │");
    println!("  origin  {ORIGIN_V4:<11} {ORIGIN_V6:<10}   {origin_role}");
    println!("\n  The client has no route to the origin: only the edge reaches both.\n");
}

pub fn step(what: &str) {
    println!("  ✓ {what}");
}

/// Prints the section header before the first case of each kind.
pub fn print_section(mode: Mode, first: &Case) {
    let header = match (mode, first.pass) {
        (Mode::Toa, Pass::Off) => {
            "Without TOA (pass_client_ip = \"off\"): the origin sees the proxy"
        }
        (Mode::Ppv2, Pass::Off) => {
            "Without PROXY protocol (pass_client_ip = \"off\"): the origin sees the proxy"
        }
        (Mode::Toa, _) => "With TOA: the origin sees the client",
        (Mode::Ppv2, _) => "With PROXY v2: the origin sees the client",
    };
    println!("\n{header}");
}

pub fn print_case(r: &CaseResult) {
    let c = &r.case;
    println!("\n  {}", c.title);
    println!("    client {} $ curl {}", c.client, c.url());
    match &r.response {
        Ok(body) => println!("      {}", body.trim()),
        Err(e) => println!("      ✗ {e}"),
    }
    match &r.logged {
        Some(line) => println!("    origin {} log: {line}", c.listener()),
        None => println!("    origin {} log: (nothing)", c.listener()),
    }
    let who = if c.carries_client() {
        "the client"
    } else {
        "the proxy"
    };
    if r.passed() {
        println!("    ✓ the origin saw {who}, {}", c.expect);
    } else {
        println!("    ✗ expected {who}, {}", c.expect);
    }
}

/// Indents a block (the stats table) under a heading.
pub fn print_block(heading: &str, note: &str, body: &str) {
    println!("\n{heading}\n  {note}");
    for line in body.lines() {
        println!("  {line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::cases;

    fn outcome(logged: impl Fn(&Case) -> String) -> Outcome {
        Outcome {
            mode: Mode::Toa,
            results: cases(Mode::Toa)
                .into_iter()
                .map(|case| CaseResult {
                    logged: Some(logged(&case)),
                    response: Ok("hello".into()),
                    case,
                })
                .collect(),
        }
    }

    #[test]
    fn verdict_counts_real_client_addresses() {
        let all = outcome(|c| format!("{} - - [date] \"GET / HTTP/1.1\" 200 -", c.expect));
        assert!(all.passed());
        assert_eq!(
            all.verdict(),
            "✓ toa works: the origin saw 4/4 real client addresses"
        );
    }

    #[test]
    fn proxy_address_where_the_client_was_expected_fails() {
        let none = outcome(|c| {
            let proxy = if c.client.contains(':') {
                EDGE_ORIGIN_SIDE_V6
            } else {
                EDGE_ORIGIN_SIDE_V4
            };
            format!("{proxy} - - [date] \"GET / HTTP/1.1\" 200 -")
        });
        assert!(!none.passed());
        assert!(
            none.verdict()
                .starts_with("✗ toa failed: the origin saw 0/4 real client addresses; missing: 198.18.1.2 (IPv4 client → IPv4 listener)"),
            "{}",
            none.verdict()
        );
    }

    #[test]
    fn a_prefix_of_the_expected_address_does_not_count() {
        let r = CaseResult {
            case: cases(Mode::Toa)[0].clone(),
            response: Ok(String::new()),
            logged: Some("198.18.1.20 - - x".into()),
        };
        assert!(!r.passed());
    }
}
