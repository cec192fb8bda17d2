//! `net.ipv4.tcp_syncookies`: a SYN cookie drops everything the SYN carried, so
//! TOA survives only because toa reads it from the handshake-completing ACK
//! (as toa proxy and classic senders write it). Informational.

use crate::report::Check;

pub const SYSCTL: &str = "/proc/sys/net/ipv4/tcp_syncookies";

pub fn check() -> Check {
    match std::fs::read_to_string(SYSCTL) {
        Ok(value) => describe(value.trim()),
        Err(err) => Check::ok(
            "net.ipv4.tcp_syncookies",
            format!("unreadable ({err}); TOA is read from the handshake ACK either way"),
        ),
    }
}

fn describe(value: &str) -> Check {
    let meaning = match value {
        "0" => "off",
        "1" => "on under SYN flood",
        "2" => "always",
        _ => "unknown value",
    };
    Check::ok(
        "net.ipv4.tcp_syncookies",
        format!(
            "{value} ({meaning}); TOA is read from the handshake ACK, so it survives SYN cookies when the proxy writes it there (toa proxy does)"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_syncookie_mode_is_explained() {
        assert!(describe("2").to_string().contains("2 (always)"));
        assert!(describe("1").to_string().contains("on under SYN flood"));
    }
}
