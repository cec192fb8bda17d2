//! Small value types of the config (ports, durations, modes) and their parsers.
//! Parsers return a [`ValueError`]; the caller adds file, line and field. Names of
//! modes, protocols and algorithms are tables (`toa_common::names!`).

use std::fmt;
use std::time::Duration;

/// Why one config value does not parse (the caller adds file, line and field).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("\"{0}\" is not a port or a range like \"81-85\" (ports are 1-65535)")]
    NotAPort(String),
    #[error("range \"{0}\" runs backwards")]
    Backwards(String),
    #[error("empty; list at least one port or range")]
    NoPorts,
    #[error("\"{range}\" overlaps \"{earlier}\" in the same list")]
    Overlap {
        range: PortRange,
        earlier: PortRange,
    },
    #[error("\"{0}\" is too long a duration")]
    DurationTooLong(String),
    #[error("\"{0}\" is not a duration like \"30s\", \"500ms\", \"5m\" or \"1h\"")]
    NotADuration(String),
    #[error("\"{text}\" is out of range; use {min}..{max}")]
    OutOfRange {
        text: String,
        min: String,
        max: String,
    },
    /// A name outside its table (`what` is the kind of value: protocol, mode, ...).
    #[error("unknown {what} \"{text}\"; expected {expected}")]
    Unknown {
        what: &'static str,
        text: String,
        expected: String,
    },
    /// A mode of the other transport.
    #[error("{mode} is for {only} rules only; on {here} use {expected}")]
    OtherTransport {
        mode: &'static str,
        only: &'static str,
        here: &'static str,
        expected: String,
    },
    #[error("\"{0}\" is not a CIDR like \"198.18.1.0/24\" or an IP address")]
    NotANet(String),
}

/// `names` as a reader lists them: "a, b or c".
pub fn one_of(names: impl IntoIterator<Item = &'static str>) -> String {
    let names: Vec<&str> = names.into_iter().collect();
    match names.split_last() {
        Some((last, [])) => last.to_string(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// The value of `T`'s table named `text` (any case), or which names there are.
pub(super) fn parse_name<T: toa_common::names::Named>(
    what: &'static str,
    text: &str,
) -> Result<T, ValueError> {
    T::from_name(&text.to_ascii_lowercase()).ok_or_else(|| ValueError::Unknown {
        what,
        text: text.to_string(),
        expected: one_of(T::all().iter().map(|v| v.name())),
    })
}

/// The value of `T`'s table named exactly `text`, or which names there are.
fn parse_exact<T: toa_common::names::Named>(
    what: &'static str,
    text: &str,
) -> Result<T, ValueError> {
    T::from_name(text).ok_or_else(|| ValueError::Unknown {
        what,
        text: text.to_string(),
        expected: one_of(T::all().iter().map(|v| v.name())),
    })
}

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

    pub fn parse(text: &str) -> Result<PortRange, ValueError> {
        let port = |s: &str| match s.trim().parse::<u16>() {
            Ok(0) | Err(_) => Err(ValueError::NotAPort(text.to_string())),
            Ok(p) => Ok(p),
        };
        let range = match text.split_once('-') {
            None => PortRange::single(port(text)?),
            Some((a, b)) => PortRange {
                first: port(a)?,
                last: port(b)?,
            },
        };
        if range.first > range.last {
            return Err(ValueError::Backwards(text.to_string()));
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
pub fn parse_duration(text: &str) -> Result<Duration, ValueError> {
    parse(text).map_err(|overflow| match overflow {
        true => ValueError::DurationTooLong(text.to_string()),
        false => ValueError::NotADuration(text.to_string()),
    })
}

/// [`parse_duration`], then `range` (inclusive): a value outside it, overflowing ones
/// included, is refused naming the range.
pub fn parse_bounded_duration(
    text: &str,
    range: &std::ops::RangeInclusive<Duration>,
) -> Result<Duration, ValueError> {
    match parse(text) {
        Ok(d) if range.contains(&d) => Ok(d),
        Ok(_) | Err(true) => Err(ValueError::OutOfRange {
            text: text.to_string(),
            min: humantime::format_duration(*range.start()).to_string(),
            max: humantime::format_duration(*range.end()).to_string(),
        }),
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

toa_common::names! {
    /// Transport of a rule (`protocol`). UDP rules are validated here; UDP forwarding is its own module.
    #[derive(PartialOrd, Ord)]
    pub enum Protocol {
        Tcp => "tcp",
        Udp => "udp",
    }
}

impl Protocol {
    pub fn parse(text: &str) -> Result<Protocol, ValueError> {
        parse_name("protocol", text)
    }
}

toa_common::names! {
    /// `pass_client_ip` on a TCP rule.
    pub enum TcpMode {
        Toa => "toa",
        ProxyV1 => "ppv1",
        ProxyV2 => "ppv2",
        Off => "off",
    }
}

toa_common::names! {
    /// `pass_client_ip` on a UDP rule.
    pub enum UdpMode {
        ProxyV2 => "ppv2",
        Spp => "spp",
        Off => "off",
    }
}

/// Every mode of either transport, as the error for an unknown one lists them.
const EVERY_MODE: &str = "toa, ppv1, ppv2, spp or off";

impl TcpMode {
    pub fn parse(text: &str) -> Result<TcpMode, ValueError> {
        parse_mode::<TcpMode, UdpMode>(text, ("tcp", "UDP"))
    }
}

impl UdpMode {
    pub fn parse(text: &str) -> Result<UdpMode, ValueError> {
        parse_mode::<UdpMode, TcpMode>(text, ("udp", "TCP"))
    }
}

/// Mode `M` named `text`; a mode of the other transport `O` (`other` names it) gets its
/// own reason.
fn parse_mode<M: toa_common::names::Named, O: toa_common::names::Named>(
    text: &str,
    (here, other): (&'static str, &'static str),
) -> Result<M, ValueError> {
    let word = text.to_ascii_lowercase();
    if let Some(mode) = M::from_name(&word) {
        return Ok(mode);
    }
    Err(match O::from_name(&word) {
        Some(theirs) => ValueError::OtherTransport {
            mode: theirs.name(),
            only: other,
            here,
            expected: one_of(M::all().iter().map(|m| m.name())),
        },
        None => ValueError::Unknown {
            what: "mode",
            text: text.to_string(),
            expected: EVERY_MODE.to_string(),
        },
    })
}

toa_common::names! {
    /// `balance`: how a rule picks among its origins.
    pub enum Balance {
        RoundRobin => "round_robin",
        LeastConnections => "least_connections",
    }
}

impl Balance {
    /// Case-sensitive, as written in the file.
    pub fn parse(text: &str) -> Result<Balance, ValueError> {
        parse_exact("algorithm", text)
    }
}

toa_common::names! {
    /// `access_log_format`: how access log lines are written.
    pub enum AccessLogFormat {
        /// `key=value` fields after the log's own timestamp and level.
        Text => "text",
        /// One JSON object per line, nothing around it.
        Json => "json",
    }
}

impl AccessLogFormat {
    /// Case-sensitive, as written in the file.
    pub fn parse(text: &str) -> Result<AccessLogFormat, ValueError> {
        parse_exact("format", text)
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
            parse_bounded_duration("2m", &range)
                .unwrap_err()
                .to_string(),
            "\"2m\" is out of range; use 1s..1m"
        );
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
    }

    #[test]
    fn spp_is_udp_only_and_toa_and_ppv1_tcp_only() {
        assert!(TcpMode::parse("SPP").is_err());
        assert_eq!(UdpMode::parse("SPP"), Ok(UdpMode::Spp));
        assert_eq!(
            UdpMode::parse("ppv1").unwrap_err().to_string(),
            "ppv1 is for TCP rules only; on udp use ppv2, spp or off"
        );
        assert!(UdpMode::parse("toa").is_err());
        assert_eq!(TcpMode::parse("PPv2"), Ok(TcpMode::ProxyV2));
        assert_eq!(UdpMode::parse("ppv2"), Ok(UdpMode::ProxyV2));
    }
}
