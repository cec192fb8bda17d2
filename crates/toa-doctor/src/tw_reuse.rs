//! `net.ipv4.tcp_tw_reuse` and the ephemeral port range, for hosts running `toa proxy`:
//! each upstream connection the proxy closes first holds one port towards its origin
//! address and port in TIME_WAIT for 60 s. Informational: the advice is in the detail.

use crate::report::Check;

pub const TW_REUSE: &str = "/proc/sys/net/ipv4/tcp_tw_reuse";
pub const PORT_RANGE: &str = "/proc/sys/net/ipv4/ip_local_port_range";

pub fn check() -> Check {
    let read = |p: &str| std::fs::read_to_string(p).map(|s| s.trim().to_string());
    match (read(TW_REUSE), read(PORT_RANGE)) {
        (Ok(reuse), Ok(range)) => describe(&reuse, &range),
        (Err(e), _) | (_, Err(e)) => {
            Check::ok("net.ipv4.tcp_tw_reuse", format!("unreadable ({e})"))
        }
    }
}

fn describe(reuse: &str, range: &str) -> Check {
    let mut it = range
        .split_whitespace()
        .filter_map(|w| w.parse::<u64>().ok());
    let ports = match (it.next(), it.next()) {
        (Some(lo), Some(hi)) if hi >= lo => hi - lo + 1,
        _ => 0,
    };
    // TIME_WAIT lasts 60 s: this many new connections a second keep one origin busy.
    let rate = ports / 60;
    let meaning = match reuse {
        "0" => "off",
        "1" => "on",
        "2" => "loopback only",
        _ => "unknown value",
    };
    let advice = if reuse == "1" {
        "toa proxy's upstream connections may reuse TIME_WAIT ports".to_string()
    } else {
        format!(
            "toa proxy can open about {rate} new connections/s to one origin ip:port before its TIME_WAITs take every port; \
             set net.ipv4.tcp_tw_reuse=1 (outgoing connections only, needs TCP timestamps) or give the rule source_addresses"
        )
    };
    Check::ok(
        "net.ipv4.tcp_tw_reuse",
        format!("{reuse} ({meaning}), {ports} ephemeral ports; {advice}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_only_reuse_gets_the_advice_with_the_port_rate() {
        let line = describe("2", "32768\t60999").to_string();
        assert!(line.contains("28232 ephemeral ports"), "{line}");
        assert!(line.contains("about 470 new connections/s"), "{line}");
        assert!(line.contains("tcp_tw_reuse=1"), "{line}");
        assert!(
            !describe("1", "32768 60999")
                .to_string()
                .contains("tcp_tw_reuse=1")
        );
    }
}
