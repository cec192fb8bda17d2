//! Fault suite, proxy reloads and restarts: an empty or truncated config is refused on
//! SIGHUP while the old rules keep serving, and a proxy killed with SIGKILL under load
//! restarts at once with TOA still working.

mod proxy_support;

use std::time::Duration;

use proxy_support::{ProxyLab, eventually};
use toa_lab::{addr, require_privileges};

const EDGE: &str = addr::EDGE_CLIENT_SIDE_V4;

#[test]
fn empty_or_truncated_config_is_refused_on_reload_and_the_old_rules_keep_serving() {
    if !require_privileges(
        "empty_or_truncated_config_is_refused_on_reload_and_the_old_rules_keep_serving",
    ) {
        return;
    }
    let config = format!(
        "[[rule]]\ntag = \"web\"\nports = \"14500\"\norigins = [\"{}\"]\norigin_ports = \"8000\"\n",
        addr::ORIGIN_V4
    );
    let mut lab = ProxyLab::new("fempty");
    lab.serve_http(addr::ORIGIN_V4, 8000, "A");
    lab.start_proxy(&config, 14500);
    for (n, text) in ["", "[proxy]\nmax_connections = 100\n"].iter().enumerate() {
        lab.reload(text);
        eventually(Duration::from_secs(10), "reload rejected", || {
            lab.metric("toa_proxy_reloads_total{result=\"rejected\"}") == Some(n as u64 + 1)
        });
        assert_eq!(lab.who(EDGE, 14500).as_deref(), Ok("A"));
    }
    assert!(
        lab.proxy_log().contains("no online rules"),
        "{}",
        lab.proxy_log()
    );
}
