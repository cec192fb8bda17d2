//! What the demo sends and what the origin must see: one [`Case`] per request,
//! and the `toa proxy` config that carries them.

use crate::Mode;
use std::fmt::Write as _;
use toa_lab::addr::*;

/// The first port the demo uses; case `i` uses `FIRST_PORT + i` on both the
/// edge and the origin, so each case has its own listener and its own log.
pub const FIRST_PORT: u16 = 10000;

/// How the proxy passes the client's address for one case (`pass_client_ip`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    Toa,
    Ppv2,
    Off,
}

impl Pass {
    pub fn config_value(self) -> &'static str {
        match self {
            Pass::Toa => "toa",
            Pass::Ppv2 => "ppv2",
            Pass::Off => "off",
        }
    }
}

/// The server that answers one case on the origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    /// `python3 -m http.server` bound to this address; logs `getpeername()`.
    Http { bind: &'static str },
    /// The demo's own tiny server on an IPv4-only socket; logs the address
    /// libtoa's lookup returns (an IPv6 client cannot fit `getpeername()`).
    Lookup { bind: &'static str },
    /// An nginx `server` block on this address; logs `$proxy_protocol_addr`
    /// when the case passes PROXY v2, `$remote_addr` otherwise.
    Nginx { bind: &'static str },
}

impl Server {
    pub fn bind(self) -> &'static str {
        match self {
            Server::Http { bind } | Server::Lookup { bind } | Server::Nginx { bind } => bind,
        }
    }
}

/// One request from the client through the edge to the origin.
#[derive(Debug, Clone)]
pub struct Case {
    /// What it shows, e.g. "IPv6 client → IPv4-only listener".
    pub title: &'static str,
    /// The client address the request leaves from.
    pub client: &'static str,
    /// The edge address the client connects to.
    pub edge: &'static str,
    /// The origin address the edge connects to.
    pub origin: &'static str,
    pub port: u16,
    pub pass: Pass,
    pub server: Server,
    /// The address the origin must log for this case.
    pub expect: String,
}

impl Case {
    /// Whether this case shows the real client (as opposed to the TOA-off contrast).
    pub fn carries_client(&self) -> bool {
        self.pass != Pass::Off
    }

    pub fn url(&self) -> String {
        format!("http://{}:{}/", bracket(self.edge), self.port)
    }

    /// `addr:port` as the origin listener shows it.
    pub fn listener(&self) -> String {
        format!("{}:{}", bracket(self.server.bind()), self.port)
    }
}

/// `[v6]` for IPv6 literals in URLs and `addr:port` strings.
pub fn bracket(ip: &str) -> String {
    if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip.to_string()
    }
}

/// The cases of one demo run, real-client cases first, then the contrast.
pub fn cases(mode: Mode) -> Vec<Case> {
    let rows: Vec<(&str, &str, &str, &str, Pass, Server, String)> = match mode {
        Mode::Toa => vec![
            (
                "IPv4 client → IPv4 listener",
                CLIENT_V4,
                EDGE_CLIENT_SIDE_V4,
                ORIGIN_V4,
                Pass::Toa,
                Server::Http { bind: ORIGIN_V4 },
                CLIENT_V4.to_string(),
            ),
            (
                "IPv6 client → IPv6 listener",
                CLIENT_V6,
                EDGE_CLIENT_SIDE_V6,
                ORIGIN_V6,
                Pass::Toa,
                Server::Http { bind: ORIGIN_V6 },
                CLIENT_V6.to_string(),
            ),
            (
                "IPv4 client → [::] listener",
                CLIENT_V4,
                EDGE_CLIENT_SIDE_V4,
                ORIGIN_V4,
                Pass::Toa,
                Server::Http { bind: "::" },
                format!("::ffff:{CLIENT_V4}"),
            ),
            (
                "IPv6 client → IPv4-only listener",
                CLIENT_V6,
                EDGE_CLIENT_SIDE_V6,
                ORIGIN_V4,
                Pass::Toa,
                Server::Lookup { bind: ORIGIN_V4 },
                CLIENT_V6.to_string(),
            ),
            (
                "IPv4 client, TOA off",
                CLIENT_V4,
                EDGE_CLIENT_SIDE_V4,
                ORIGIN_V4,
                Pass::Off,
                Server::Http { bind: ORIGIN_V4 },
                EDGE_ORIGIN_SIDE_V4.to_string(),
            ),
            (
                "IPv6 client, TOA off",
                CLIENT_V6,
                EDGE_CLIENT_SIDE_V6,
                ORIGIN_V6,
                Pass::Off,
                Server::Http { bind: ORIGIN_V6 },
                EDGE_ORIGIN_SIDE_V6.to_string(),
            ),
        ],
        Mode::Ppv2 => vec![
            (
                "IPv4 client → IPv4 listener",
                CLIENT_V4,
                EDGE_CLIENT_SIDE_V4,
                ORIGIN_V4,
                Pass::Ppv2,
                Server::Nginx { bind: ORIGIN_V4 },
                CLIENT_V4.to_string(),
            ),
            (
                "IPv6 client → IPv6 listener",
                CLIENT_V6,
                EDGE_CLIENT_SIDE_V6,
                ORIGIN_V6,
                Pass::Ppv2,
                Server::Nginx { bind: ORIGIN_V6 },
                CLIENT_V6.to_string(),
            ),
            (
                "IPv6 client → IPv4 listener",
                CLIENT_V6,
                EDGE_CLIENT_SIDE_V6,
                ORIGIN_V4,
                Pass::Ppv2,
                Server::Nginx { bind: ORIGIN_V4 },
                CLIENT_V6.to_string(),
            ),
            (
                "IPv4 client, PROXY protocol off",
                CLIENT_V4,
                EDGE_CLIENT_SIDE_V4,
                ORIGIN_V4,
                Pass::Off,
                Server::Nginx { bind: ORIGIN_V4 },
                EDGE_ORIGIN_SIDE_V4.to_string(),
            ),
            (
                "IPv6 client, PROXY protocol off",
                CLIENT_V6,
                EDGE_CLIENT_SIDE_V6,
                ORIGIN_V6,
                Pass::Off,
                Server::Nginx { bind: ORIGIN_V6 },
                EDGE_ORIGIN_SIDE_V6.to_string(),
            ),
        ],
    };
    rows.into_iter()
        .zip(FIRST_PORT..)
        .map(
            |((title, client, edge, origin, pass, server, expect), port)| Case {
                title,
                client,
                edge,
                origin,
                port,
                pass,
                server,
                expect,
            },
        )
        .collect()
}

/// The `toa proxy` config: one rule per case, edge port = origin port.
pub fn proxy_config(cases: &[Case]) -> String {
    let mut toml = String::from("# Written by `toa demo`: one rule per demo case.\n");
    for case in cases {
        let _ = write!(
            toml,
            "\n# {title}\n[[rule]]\ntag = \"demo-{port}\"\nprotocol = \"tcp\"\n\
             listen = [\"{edge}\"]\nports = \"{port}\"\norigins = [\"{origin}\"]\n\
             origin_ports = \"{port}\"\npass_client_ip = \"{pass}\"\n",
            title = case.title,
            port = case.port,
            edge = case.edge,
            origin = case.origin,
            pass = case.pass.config_value(),
        );
    }
    toml
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toa_mode_expects_every_client_form_and_the_proxy_for_contrast() {
        let cases = cases(Mode::Toa);
        let real: Vec<&str> = cases
            .iter()
            .filter(|c| c.carries_client())
            .map(|c| c.expect.as_str())
            .collect();
        assert_eq!(
            real,
            ["198.18.1.2", "fd00:1::2", "::ffff:198.18.1.2", "fd00:1::2"]
        );
        let off: Vec<&str> = cases
            .iter()
            .filter(|c| !c.carries_client())
            .map(|c| c.expect.as_str())
            .collect();
        assert_eq!(off, ["198.18.2.1", "fd00:2::1"]);
    }

    #[test]
    fn proxy_config_has_one_rule_per_case_with_its_mode() {
        let cases = cases(Mode::Toa);
        let toml = proxy_config(&cases);
        assert_eq!(toml.matches("[[rule]]").count(), cases.len());
        assert!(toml.contains(
            "listen = [\"fd00:1::1\"]\nports = \"10003\"\norigins = [\"198.18.2.2\"]\n\
             origin_ports = \"10003\"\npass_client_ip = \"toa\""
        ));
        assert_eq!(toml.matches("pass_client_ip = \"off\"").count(), 2);
    }

    #[test]
    fn urls_bracket_ipv6_edges() {
        let cases = cases(Mode::Toa);
        assert_eq!(cases[0].url(), "http://198.18.1.1:10000/");
        assert_eq!(cases[1].url(), "http://[fd00:1::1]:10001/");
        assert_eq!(cases[2].listener(), "[::]:10002");
    }
}
