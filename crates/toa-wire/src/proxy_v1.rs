//! PROXY protocol version 1: the human-readable line a proxy sends before any data.
//!
//! ```text
//! PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n
//! PROXY TCP6 <src> <dst> <src port> <dst port>\r\n
//! PROXY UNKNOWN[ <anything>]\r\n
//! ```
//! Parsing is strict, as HAProxy's proxy-protocol.txt asks: exactly one space between
//! fields, IPv4 octets and ports without leading zeros, ports up to 65535, the address
//! family matching the protocol word, printable US-ASCII only, and a CRLF within the
//! first [`MAX_LEN`] bytes. For `UNKNOWN` the rest of the line is ignored.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::Parsed;

/// The longest valid line, CRLF included (`PROXY UNKNOWN` with two full IPv6 addresses).
pub const MAX_LEN: usize = 107;
const SIGNATURE: &[u8] = b"PROXY ";
const FIELDS: [&str; 4] = [
    "source address",
    "destination address",
    "source port",
    "destination port",
];

/// Why bytes are not a valid PROXY v1 line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("not a PROXY v1 header: it does not start with \"PROXY \"")]
    NotProxyV1,
    #[error("PROXY v1 header has no CRLF within its first {MAX_LEN} bytes")]
    TooLong,
    #[error("byte {byte:#04x} at offset {offset} is not printable US-ASCII")]
    InvalidByte { offset: usize, byte: u8 },
    #[error("lone {} at offset {offset}: a PROXY v1 line must end with CRLF", if *.byte == b'\r' { "CR" } else { "LF" })]
    BadLineEnding { offset: usize, byte: u8 },
    #[error("unknown PROXY v1 protocol {found:?}: expected TCP4, TCP6 or UNKNOWN")]
    UnknownProtocol { found: String },
    #[error("PROXY v1 header ends before its {field}")]
    MissingField { field: &'static str },
    #[error("PROXY v1 header has an empty {field}: fields are separated by exactly one space")]
    EmptyField { field: &'static str },
    #[error("PROXY v1 header has text after the destination port: {extra:?}")]
    TrailingData { extra: String },
    #[error("PROXY v1 {field} {value:?} is not a valid {family} address")]
    InvalidAddress {
        field: &'static str,
        value: String,
        family: &'static str,
    },
    #[error("PROXY v1 {field} {value:?} is not a port 0-65535 written without leading zeros")]
    InvalidPort { field: &'static str, value: String },
}

/// What a PROXY v1 line says about the proxied connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Addresses {
    /// `TCP4`/`TCP6`: the client (`src`) and the address it connected to (`dst`).
    Tcp { src: SocketAddr, dst: SocketAddr },
    /// `UNKNOWN`: the receiver uses the connection's own addresses.
    Unknown,
}

/// A PROXY v1 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    pub addresses: Addresses,
}

impl Header {
    /// A `TCP4`/`TCP6` header for a connection from `src` to `dst`.
    pub fn tcp(src: SocketAddr, dst: SocketAddr) -> Header {
        Header {
            addresses: Addresses::Tcp { src, dst },
        }
    }

    /// The `PROXY UNKNOWN\r\n` header.
    pub fn unknown() -> Header {
        Header {
            addresses: Addresses::Unknown,
        }
    }

    /// The header line, CRLF included. `TCP4` when both addresses are IPv4 (IPv4-mapped
    /// counts as IPv4), otherwise `TCP6` with any IPv4 address written v4-mapped.
    pub fn encode(&self) -> String {
        let Addresses::Tcp { src, dst } = self.addresses else {
            return "PROXY UNKNOWN\r\n".to_owned();
        };
        let (sport, dport) = (src.port(), dst.port());
        match (src.ip().to_canonical(), dst.ip().to_canonical()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => format!("PROXY TCP4 {s} {d} {sport} {dport}\r\n"),
            (s, d) => format!(
                "PROXY TCP6 {} {} {sport} {dport}\r\n",
                Hex(crate::mapped::mapped_v6(s)),
                Hex(crate::mapped::mapped_v6(d))
            ),
        }
    }
}

/// Parses a PROXY v1 line at the start of `buf`, which holds the bytes received so far.
pub fn parse(buf: &[u8]) -> Result<Parsed<Header>, Error> {
    let signature_seen = buf.len().min(SIGNATURE.len());
    if buf.get(..signature_seen) != SIGNATURE.get(..signature_seen) {
        return Err(Error::NotProxyV1);
    }
    let window = buf.get(..MAX_LEN).unwrap_or(buf);
    let Some(line_len) = line_length(window)? else {
        return if window.len() >= MAX_LEN {
            Err(Error::TooLong)
        } else {
            Ok(Parsed::Incomplete)
        };
    };
    let line = window.get(..line_len).unwrap_or_default();
    // line_length() let through only printable ASCII, so this cannot fail.
    let line = std::str::from_utf8(line).map_err(|_| Error::NotProxyV1)?;
    let header = parse_line(line.strip_prefix("PROXY ").ok_or(Error::NotProxyV1)?)?;
    Ok(Parsed::Complete {
        header,
        consumed: line_len + 2,
    })
}

/// The length of the line before its CRLF, `None` if no CRLF is in `window` yet.
/// Fails on the first byte that no valid line could contain.
fn line_length(window: &[u8]) -> Result<Option<usize>, Error> {
    for (offset, &byte) in window.iter().enumerate() {
        match byte {
            b'\r' => match window.get(offset + 1) {
                Some(b'\n') => return Ok(Some(offset)),
                Some(_) => return Err(Error::BadLineEnding { offset, byte }),
                None => return Ok(None),
            },
            b'\n' => return Err(Error::BadLineEnding { offset, byte }),
            b' '..=b'~' => {}
            _ => return Err(Error::InvalidByte { offset, byte }),
        }
    }
    Ok(None)
}

/// Parses what follows `PROXY ` on a complete line (CRLF excluded).
fn parse_line(line: &str) -> Result<Header, Error> {
    let (protocol, fields) = match line.split_once(' ') {
        Some((protocol, fields)) => (protocol, Some(fields)),
        None => (line, None),
    };
    let family = match protocol {
        "UNKNOWN" => return Ok(Header::unknown()),
        "TCP4" => "IPv4",
        "TCP6" => "IPv6",
        other => {
            return Err(Error::UnknownProtocol {
                found: other.to_owned(),
            });
        }
    };
    let mut values = fields.map(|f| f.splitn(FIELDS.len(), ' '));
    let mut next = |field: &'static str| match values.as_mut().and_then(Iterator::next) {
        None => Err(Error::MissingField { field }),
        Some("") => Err(Error::EmptyField { field }),
        Some(value) => Ok(value),
    };
    let [src, dst, sport, dport] = FIELDS;
    let src_ip = parse_ip(next(src)?, src, family)?;
    let dst_ip = parse_ip(next(dst)?, dst, family)?;
    let sport = parse_port(next(sport)?, sport)?;
    let dport_field = next(dport)?;
    let (dport_value, extra) = match dport_field.split_once(' ') {
        Some((value, extra)) => (value, Some(extra)),
        None => (dport_field, None),
    };
    if let Some(extra) = extra {
        return Err(Error::TrailingData {
            extra: extra.to_owned(),
        });
    }
    let dport = parse_port(dport_value, dport)?;
    Ok(Header::tcp(
        SocketAddr::new(src_ip, sport),
        SocketAddr::new(dst_ip, dport),
    ))
}

fn parse_ip(value: &str, field: &'static str, family: &'static str) -> Result<IpAddr, Error> {
    let invalid = || Error::InvalidAddress {
        field,
        value: value.to_owned(),
        family,
    };
    let ip = if family == "IPv4" {
        // std's parser already rejects leading zeros; the explicit check keeps the
        // rule visible and independent of std's choice.
        if value
            .split('.')
            .any(|octet| octet.len() > 1 && octet.starts_with('0'))
        {
            return Err(invalid());
        }
        IpAddr::V4(value.parse::<Ipv4Addr>().map_err(|_| invalid())?)
    } else {
        IpAddr::V6(value.parse::<Ipv6Addr>().map_err(|_| invalid())?)
    };
    Ok(ip.to_canonical())
}

fn parse_port(value: &str, field: &'static str) -> Result<u16, Error> {
    let invalid = || Error::InvalidPort {
        field,
        value: value.to_owned(),
    };
    let digits_only = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
    if !digits_only || (value.len() > 1 && value.starts_with('0')) {
        return Err(invalid());
    }
    value.parse().map_err(|_| invalid())
}

/// An IPv6 address as colon-separated hex groups with the longest run of two or more
/// zero groups shortened to `::` (RFC 5952), never with a dotted-quad tail: the only
/// form proxy-protocol.txt describes.
struct Hex(Ipv6Addr);

impl std::fmt::Display for Hex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let groups = self.0.segments();
        // (start, len) of the longest run of zero groups; the first one wins a tie.
        let mut longest = (0, 0);
        let mut run_start = None;
        for (i, &group) in groups.iter().chain(&[1]).enumerate() {
            match (group, run_start) {
                (0, None) => run_start = Some(i),
                (0, Some(_)) => {}
                (_, Some(start)) => {
                    if i - start > longest.1 {
                        longest = (start, i - start);
                    }
                    run_start = None;
                }
                (_, None) => {}
            }
        }
        let (start, len) = if longest.1 >= 2 { longest } else { (0, 0) };
        let write_groups = |f: &mut std::fmt::Formatter<'_>, groups: &[u16]| {
            groups.iter().enumerate().try_for_each(|(i, g)| {
                let sep = if i > 0 { ":" } else { "" };
                write!(f, "{sep}{g:x}")
            })
        };
        if len == 0 {
            return write_groups(f, &groups);
        }
        let (head, rest) = groups.split_at(start.min(groups.len()));
        let tail = rest.get(len..).unwrap_or_default();
        write_groups(f, head)?;
        f.write_str("::")?;
        write_groups(f, tail)
    }
}
