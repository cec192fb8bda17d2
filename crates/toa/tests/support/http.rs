//! The unmodified origin server of the TOA tests: `python3 -m http.server`.

/// The command line of `python3 -m http.server` bound to `bind`:`port`; its
/// access log (stderr) names each client as the server sees it.
pub fn http_server<'a>(bind: &'a str, port: &'a str) -> [&'a str; 6] {
    ["python3", "-m", "http.server", "--bind", bind, port]
}
