//! A running `toa proxy`'s metrics endpoint: fetched with a plain HTTP/1.0 GET
//! of `/metrics` (Prometheus text format) and summarized.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::report::Check;

const TIMEOUT: Duration = Duration::from_secs(2);
/// A metrics page bigger than this is cut: the summary only counts samples.
const MAX_RESPONSE: u64 = 4 << 20;

pub fn check(endpoint: &str) -> Check {
    match fetch(endpoint) {
        Ok(body) => {
            let samples = body
                .lines()
                .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
                .count();
            Check::ok(
                "proxy metrics",
                format!("{endpoint}/metrics answered, {samples} samples"),
            )
        }
        Err(Failure::Unreachable(err)) => Check::problem(
            "proxy metrics",
            format!("{endpoint}: {err}"),
            format!(
                "start toa proxy with its metrics listener on {endpoint}, or pass the address it listens on"
            ),
        ),
        Err(Failure::NotMetrics(what)) => Check::problem(
            "proxy metrics",
            format!("{endpoint}/metrics: {what}"),
            format!(
                "{endpoint} is not a toa proxy metrics listener; pass the proxy's metrics address"
            ),
        ),
    }
}

enum Failure {
    Unreachable(String),
    NotMetrics(String),
}

fn fetch(endpoint: &str) -> Result<String, Failure> {
    let addr: SocketAddr = endpoint
        .to_socket_addrs()
        .map_err(|e| Failure::Unreachable(format!("bad address: {e}")))?
        .next()
        .ok_or_else(|| Failure::Unreachable("bad address: resolves to nothing".into()))?;
    let unreachable = |e: std::io::Error| Failure::Unreachable(e.to_string());
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(unreachable)?;
    stream
        .set_read_timeout(Some(TIMEOUT))
        .map_err(unreachable)?;
    stream
        .set_write_timeout(Some(TIMEOUT))
        .map_err(unreachable)?;
    write!(
        stream,
        "GET /metrics HTTP/1.0\r\nHost: {endpoint}\r\nConnection: close\r\n\r\n"
    )
    .map_err(unreachable)?;
    let mut response = Vec::new();
    stream
        .take(MAX_RESPONSE)
        .read_to_end(&mut response)
        .map_err(unreachable)?;
    parse_response(&String::from_utf8_lossy(&response))
}

/// The body of an HTTP 200 response, or what was wrong with it.
fn parse_response(response: &str) -> Result<String, Failure> {
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| Failure::NotMetrics("no HTTP response".into()))?;
    let status = head.lines().next().unwrap_or_default();
    match status.split_whitespace().nth(1) {
        Some("200") => Ok(body.to_string()),
        _ => Err(Failure::NotMetrics(format!("answered {status:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A one-shot HTTP server on loopback answering `response` to one request.
    fn serve_once(response: &'static str) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut request = [0u8; 1024];
            let n = conn.read(&mut request).unwrap();
            assert!(request[..n].starts_with(b"GET /metrics HTTP/1.0\r\n"));
            conn.write_all(response.as_bytes()).unwrap();
        });
        addr
    }

    #[test]
    fn metrics_page_is_summarized_by_sample_count() {
        let addr = serve_once(
            "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n# HELP a x\n# TYPE a counter\na 1\nb{rule=\"r\"} 2\n",
        );
        let line = check(&addr).to_string();
        assert_eq!(
            line,
            format!("✓ proxy metrics: {addr}/metrics answered, 2 samples")
        );
    }

    #[test]
    fn non_200_answer_is_not_a_metrics_endpoint() {
        let addr = serve_once("HTTP/1.0 404 Not Found\r\n\r\n");
        let line = check(&addr).to_string();
        assert!(
            line.starts_with("✗ proxy metrics:") && line.contains("404"),
            "{line}"
        );
    }

    #[test]
    fn closed_port_names_the_fix() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let line = check(&format!("127.0.0.1:{port}")).to_string();
        assert!(
            line.contains("refused") && line.contains("start toa proxy"),
            "{line}"
        );
    }
}
