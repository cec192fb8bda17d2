//! Small value types of the config (ports, durations, modes) and their parsers.
//! Parsers return a plain reason string; the caller adds file, line and field.

use std::fmt;
use std::time::Duration;

/// `"80"` or `"81-85"`: an inclusive, non-empty port range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl PortRange {
    pub fn single(port: u16) -> PortRange {
        PortRange {
            first: port,
            last: port,
        }
    }

    pub fn len(&self) -> usize {
        usize::from(self.last - self.first) + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn iter(&self) -> impl Iterator<Item = u16> + use<> {
        self.first..=self.last
    }

    pub fn overlaps(&self, other: &PortRange) -> bool {
        self.first <= other.last && other.first <= self.last
    }

    /// The origin port for listener `port` when this range (the listener's) maps onto `origin`:
    /// a single origin port takes everything, a range of equal length maps 1:1.
    pub fn map_to(&self, port: u16, origin: &PortRange) -> u16 {
        if origin.first == origin.last {
            origin.first
        } else {
            origin.first + (port - self.first)
        }
    }

    pub fn parse(text: &str) -> Result<PortRange, String> {
        let port = |s: &str| -> Result<u16, String> {
            match s.trim().parse::<u16>() {
                Ok(0) | Err(_) => Err(format!(
                    "\"{text}\" is not a port or a range like \"81-85\" (ports are 1-65535)"
                )),
                Ok(p) => Ok(p),
            }
        };
        let range = match text.split_once('-') {
            None => PortRange::single(port(text)?),
            Some((a, b)) => PortRange {
                first: port(a)?,
                last: port(b)?,
            },
        };
        if range.first > range.last {
            return Err(format!("range \"{text}\" runs backwards"));
        }
        Ok(range)
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

/// `"3600s"`, `"500ms"`, `"5m"`, `"1h 30m"` (humantime's syntax, overflow checked); a bare
/// integer (TOML or string) means seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    parse(text).map_err(|overflow| {
        if overflow {
            format!("\"{text}\" is too long a duration")
        } else {
            format!("\"{text}\" is not a duration like \"30s\", \"500ms\", \"5m\" or \"1h\"")
        }
    })
}

/// [`parse_duration`], then `range` (inclusive): a value outside it, overflowing ones
/// included, is refused naming the range.
pub fn parse_bounded_duration(
    text: &str,
    range: &std::ops::RangeInclusive<Duration>,
) -> Result<Duration, String> {
    match parse(text) {
        Ok(d) if range.contains(&d) => Ok(d),
        Ok(_) | Err(true) => Err(format!(
            "\"{text}\" is out of range; use {}..{}",
            humantime::format_duration(*range.start()),
            humantime::format_duration(*range.end())
        )),
        Err(false) => parse_duration(text),
    }
}

/// The duration, or whether it failed by overflowing (`true`) rather than by syntax.
fn parse(text: &str) -> Result<Duration, bool> {
    let t = text.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse::<u64>().map(Duration::from_secs).map_err(|_| true);
    }
    humantime::parse_duration(t).map_err(|e| matches!(e, humantime::DurationError::NumberOverflow))
}

/// Formats a duration the way the config writes it (`"30s"`, `"500ms"`).
pub fn format_duration(d: Duration) -> String {
    if d.subsec_millis() != 0 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}s", d.as_secs())
    }
}

/// Transport of a rule. UDP rules are validated here; UDP forwarding is its own module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn parse(text: &str) -> Result<Protocol, String> {
        match text.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Protocol::Tcp),
            "udp" => Ok(Protocol::Udp),
            _ => Err(format!("unknown protocol \"{text}\"; expected tcp or udp")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// How the client's address reaches the origin on a TCP rule (`pass_client_ip`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TcpMode {
    /// TCP option written by the eBPF edge writer on SYN and handshake ACK.
    Toa,
    /// PROXY protocol v1 text header before the first client byte.
    ProxyV1,
    /// PROXY protocol v2 binary header before the first client byte.
    ProxyV2,
    Off,
}

/// How the client's address reaches the origin on a UDP rule (`pass_client_ip`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UdpMode {
    /// PROXY protocol v2 binary header on a flow's first datagram.
    ProxyV2,
    /// Tencent SPP header on every datagram.
    Spp,
    Off,
}

/// Every `pass_client_ip` word, for the "unknown mode" message.
const EVERY_MODE: &str = "toa, ppv1, ppv2, spp or off";

impl TcpMode {
    pub const ALL: [TcpMode; 4] = [
        TcpMode::Toa,
        TcpMode::ProxyV1,
        TcpMode::ProxyV2,
        TcpMode::Off,
    ];

    /// `pass_client_ip` on a TCP rule; the reason names the modes TCP has.
    pub fn parse(text: &str) -> Result<TcpMode, String> {
        parse_mode(
            text,
            &Self::ALL,
            TcpMode::as_str,
            UdpMode::as_str,
            &UdpMode::ALL,
            |udp| format!("{udp} is for UDP rules only; on tcp use toa, ppv1, ppv2 or off"),
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TcpMode::Toa => "toa",
            TcpMode::ProxyV1 => "ppv1",
            TcpMode::ProxyV2 => "ppv2",
            TcpMode::Off => "off",
        }
    }
}

impl UdpMode {
    pub const ALL: [UdpMode; 3] = [UdpMode::ProxyV2, UdpMode::Spp, UdpMode::Off];

    /// `pass_client_ip` on a UDP rule; the reason names the modes UDP has.
    pub fn parse(text: &str) -> Result<UdpMode, String> {
        parse_mode(
            text,
            &Self::ALL,
            UdpMode::as_str,
            TcpMode::as_str,
            &TcpMode::ALL,
            |tcp| format!("{tcp} is for TCP rules only; on udp use ppv2, spp or off"),
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            UdpMode::ProxyV2 => "ppv2",
            UdpMode::Spp => "spp",
            UdpMode::Off => "off",
        }
    }
}

/// `text` (any case) as one of `ours`; a mode of the other transport (`theirs`) gets the
/// reason `wrong` gives for its name, any other word the list of every mode.
fn parse_mode<M: Copy, O: Copy>(
    text: &str,
    ours: &[M],
    our_name: fn(M) -> &'static str,
    their_name: fn(O) -> &'static str,
    theirs: &[O],
    wrong: impl Fn(&str) -> String,
) -> Result<M, String> {
    let word = text.to_ascii_lowercase();
    if let Some(mode) = ours.iter().copied().find(|m| our_name(*m) == word) {
        return Ok(mode);
    }
    Err(
        match theirs.iter().copied().map(their_name).find(|n| *n == word) {
            Some(name) => wrong(name),
            None => format!("unknown mode \"{text}\"; expected {EVERY_MODE}"),
        },
    )
}

/// Balancing algorithm (`balance`). Session persistence overrides it with a consistent hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balance {
    /// Round robin; weighted (smooth WRR) when origins carry different weights.
    RoundRobin,
    /// Fewest active connections relative to weight.
    LeastConnections,
}

impl Balance {
    pub fn parse(text: &str) -> Result<Balance, String> {
        match text {
            "round_robin" => Ok(Balance::RoundRobin),
            "least_connections" => Ok(Balance::LeastConnections),
            other => Err(format!(
                "unknown algorithm \"{other}\"; expected round_robin or least_connections"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_range_single_and_range_parse() {
        assert_eq!(PortRange::parse("80").unwrap(), PortRange::single(80));
        let r = PortRange::parse("81-85").unwrap();
        assert_eq!((r.first, r.last, r.len()), (81, 85, 5));
        assert!(PortRange::parse("85-81").is_err());
        assert!(PortRange::parse("0").is_err());
        assert!(PortRange::parse("70000").is_err());
        assert!(PortRange::parse("a-b").is_err());
    }

    #[test]
    fn listener_ports_map_one_to_one_onto_origin_range() {
        let listen = PortRange::parse("81-85").unwrap();
        let origin = PortRange::parse("9081-9085").unwrap();
        let mapped: Vec<u16> = listen.iter().map(|p| listen.map_to(p, &origin)).collect();
        assert_eq!(mapped, vec![9081, 9082, 9083, 9084, 9085]);
    }

    #[test]
    fn listener_range_onto_single_origin_port_maps_all_to_it() {
        let listen = PortRange::parse("81-85").unwrap();
        let origin = PortRange::single(8080);
        assert!(listen.iter().all(|p| listen.map_to(p, &origin) == 8080));
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("3600s").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("18446744073709551615s").is_ok_and(|d| d.as_secs() == u64::MAX));
        assert!(parse_duration("5124095576030432h").is_err());
        assert!(parse_duration("99999999999999999999").is_err());
        let range = Duration::from_secs(1)..=Duration::from_secs(60);
        assert_eq!(
            parse_bounded_duration("2m", &range).unwrap_err(),
            "\"2m\" is out of range; use 1s..1m"
        );
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
    }

    #[test]
    fn spp_is_udp_only_and_toa_and_ppv1_tcp_only() {
        assert!(TcpMode::parse("SPP").is_err());
        assert_eq!(UdpMode::parse("SPP"), Ok(UdpMode::Spp));
        assert_eq!(
            UdpMode::parse("ppv1").unwrap_err(),
            "ppv1 is for TCP rules only; on udp use ppv2, spp or off"
        );
        assert!(UdpMode::parse("toa").is_err());
        assert_eq!(TcpMode::parse("PPv2"), Ok(TcpMode::ProxyV2));
        assert_eq!(UdpMode::parse("ppv2"), Ok(UdpMode::ProxyV2));
    }
}
