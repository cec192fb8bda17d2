//! Operating the proxy day to day: what its log tells an operator (why an origin went
//! down).

mod proxy_support;

use std::time::Duration;

use proxy_support::{ProxyLab, eventually};
use toa_lab::{addr, require_privileges};

fn rule(tag: &str, port: u16, origin_port: u16, extra: &str) -> String {
    format!(
        "[[rule]]\ntag = \"{tag}\"\nports = \"{port}\"\norigins = [\"{}\"]\norigin_ports = \"{origin_port}\"\n{extra}\n",
        addr::ORIGIN_V4
    )
}

#[test]
fn origin_down_line_names_the_last_checks_cause() {
    if !require_privileges("origin_down_line_names_the_last_checks_cause") {
        return;
    }
    // Nothing listens on the origin's port 8009: every check is refused.
    let lab = ProxyLab::start("opsdown", &rule("dead", 15100, 8009, ""), 15100);
    eventually(Duration::from_secs(10), "origin down line", || {
        lab.proxy_log().contains("origin down")
    });
    let log = lab.proxy_log();
    let line = log.lines().find(|l| l.contains("origin down")).unwrap();
    assert!(
        line.contains("3 checks failed, the last: refused"),
        "{line}"
    );
}
