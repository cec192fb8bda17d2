//! What the proxy's log says, end to end: access log lines in JSON (one object per line,
//! the same keys on TCP and UDP) and in text (fields quoted the same way on both), the
//! optional line when a connection opens, the listener table at start and after a reload
//! that changes it, and UDP refusals with their reason, rate-limited (JSON lines too).

mod proxy_support;
mod udp_support;

use std::time::{Duration, Instant};

use proxy_support::{ProxyLab, eventually};
use serde_json::Value;
use toa_lab::{addr, require_privileges};
use udp_support::{ECHO_PORT, edge, send, spp_echo};

/// A TCP rule to an http.server on the origin (port 8000) and a UDP rule to spp-echo, on
/// `port` and `port + 1`; `proxy` is the `[proxy]` section's body.
fn tcp_and_udp(proxy: &str, port: u16) -> String {
    format!(
        "[proxy]\nudp_idle_timeout = \"1s\"\n{proxy}\n\n\
         [[rule]]\ntag = \"web\"\nports = \"{port}\"\norigins = [\"{o}\"]\norigin_ports = \"8000\"\n\n\
         [[rule]]\ntag = \"dns\"\nprotocol = \"udp\"\nports = \"{udp}\"\norigins = [\"{o}\"]\norigin_ports = \"{ECHO_PORT}\"\n",
        o = addr::ORIGIN_V4,
        udp = port + 1,
    )
}

/// Starts the proxy with `config` and its two origins, then sends one HTTP request and
/// one UDP datagram through it.
fn start_and_send(tag: &str, config: &str, port: u16) -> ProxyLab {
    let (mut lab, peer) = udp_support::start(tag, config);
    lab.serve_http(addr::ORIGIN_V4, 8000, "A");
    let _ = spp_echo(&mut lab);
    assert_eq!(lab.who(edge(false), port).as_deref(), Ok("A"));
    let out = send(
        &lab,
        &peer,
        edge(false),
        &(port + 1).to_string(),
        "2",
        &["ping"],
    );
    assert!(out.contains("reply"), "{out}\n{}", lab.proxy_log());
    lab
}

/// The access log's JSON lines (every line that starts with `{`), parsed.
fn json_lines(lab: &ProxyLab) -> Vec<Value> {
    lab.proxy_log()
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn keys(v: &Value) -> Vec<String> {
    let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    keys
}

#[test]
fn json_access_lines_parse_with_the_same_keys_on_tcp_and_udp_and_open_comes_first() {
    if !require_privileges(
        "json_access_lines_parse_with_the_same_keys_on_tcp_and_udp_and_open_comes_first",
    ) {
        return;
    }
    let proxy = "access_log = true\naccess_log_format = \"json\"\naccess_log_open = true";
    let config = tcp_and_udp(proxy, 15401) + &untrusted_udp(15403);
    let lab = start_and_send("logjson", &config, 15401);
    let closed = |lines: &[Value], proto: &str| {
        lines
            .iter()
            .any(|l| l["proto"] == proto && l["event"] == "close")
    };
    eventually(Duration::from_secs(10), "a close line per protocol", || {
        let lines = json_lines(&lab);
        closed(&lines, "tcp") && closed(&lines, "udp")
    });
    let lines = json_lines(&lab);
    for proto in ["tcp", "udp"] {
        let events: Vec<&Value> = lines.iter().filter(|l| l["proto"] == proto).collect();
        let order: Vec<&str> = events
            .iter()
            .map(|l| l["event"].as_str().unwrap())
            .collect();
        assert_eq!(order, ["open", "close"], "{proto}: {lines:#?}");
        let (open, close) = (events[0], events[1]);
        assert_eq!(keys(open), keys(close));
        let client = close["client"].as_str().unwrap();
        assert!(
            client.starts_with(&format!("{}:", addr::CLIENT_V4)),
            "{close}"
        );
        assert_eq!(open["client"], close["client"]);
        assert!(close["time"].as_str().unwrap().ends_with('Z'), "{close}");
        assert!(close["duration_ms"].is_u64() && close["bytes_to_client"].as_u64() > Some(0));
        assert!(
            close["close"].is_string() && open["close"].is_null(),
            "{open}\n{close}"
        );
        assert_eq!(
            close["origin"].as_str().unwrap().split(':').next(),
            Some(addr::ORIGIN_V4)
        );
    }
    let tcp = lines.iter().find(|l| l["proto"] == "tcp").unwrap();
    let udp = lines.iter().find(|l| l["proto"] == "udp").unwrap();
    assert_eq!(keys(tcp), keys(udp));
    let udp_close = lines.iter().rfind(|l| l["proto"] == "udp").unwrap();
    assert_eq!(udp_close["datagrams_to_origin"], 1, "{udp_close}");
    assert_eq!(udp_close["close"], "idle timeout");
    assert!(tcp["datagrams_to_origin"].is_null(), "{tcp}");
    assert_eq!(
        (tcp["listen"].as_str(), udp["rule"].as_str()),
        (Some(format!("{}:15401", edge(false)).as_str()), Some("dns"))
    );
    // A refusal is a JSON line too, at warn, with its reason.
    let peer = lab.topo.lab.dir().join("udp_peer.py");
    send(
        &lab,
        peer.to_str().unwrap(),
        edge(false),
        "15403",
        "0.1",
        &["x"],
    );
    let refused = || {
        json_lines(&lab)
            .into_iter()
            .find(|l| l["event"] == "refused")
    };
    eventually(Duration::from_secs(10), "a refused line", || {
        refused().is_some()
    });
    let line = refused().unwrap();
    assert_eq!(
        (
            &line["proto"],
            &line["rule"],
            &line["refused"],
            &line["reason"]
        ),
        (
            &Value::from("udp"),
            &Value::from("untrusted"),
            &Value::from("datagram"),
            &Value::from("proxy_header_untrusted")
        ),
        "{line}"
    );
    assert!(
        line["client"]
            .as_str()
            .unwrap()
            .starts_with(addr::CLIENT_V4)
    );
}

/// A UDP rule on `port` that trusts no client to send a PROXY header.
fn untrusted_udp(port: u16) -> String {
    format!(
        "\n[[rule]]\ntag = \"untrusted\"\nprotocol = \"udp\"\nports = \"{port}\"\norigins = [\"{}\"]\norigin_ports = \"{ECHO_PORT}\"\naccept_proxy = \"any\"\naccept_proxy_from = [\"198.18.9.0/24\"]\n",
        addr::ORIGIN_V4
    )
}

/// The `key` of every `key=value` field after the message of `line`.
fn text_keys(line: &str) -> Vec<&str> {
    line.split(' ')
        .filter_map(|w| w.split_once('=').map(|(k, _)| k))
        .filter(|k| !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        .collect()
}

#[test]
fn text_access_lines_have_the_same_fields_quoted_the_same_way_on_tcp_and_udp() {
    if !require_privileges(
        "text_access_lines_have_the_same_fields_quoted_the_same_way_on_tcp_and_udp",
    ) {
        return;
    }
    let lab = start_and_send("logtext", &tcp_and_udp("access_log = true", 15421), 15421);
    let line = |proto: &str| {
        let log = lab.proxy_log();
        let needle = format!("proto=\"{proto}\"");
        log.lines()
            .find(|l| l.contains("toa_proxy::access:") && l.contains(&needle))
            .map(str::to_string)
    };
    eventually(Duration::from_secs(10), "a line per protocol", || {
        line("tcp").is_some() && line("udp").is_some()
    });
    let (tcp, udp) = (line("tcp").unwrap(), line("udp").unwrap());
    assert_eq!(text_keys(&tcp), text_keys(&udp), "{tcp}\n{udp}");
    for l in [&tcp, &udp] {
        for quoted in ["rule=\"", "client_ip_mode=\"", "close=\""] {
            assert!(l.contains(quoted), "{quoted} in {l}");
        }
        assert!(l.contains(&format!("client={}:", addr::CLIENT_V4)), "{l}");
    }
    assert!(udp.contains("close=\"idle timeout\""), "{udp}");
    assert!(tcp.contains("datagrams_to_origin=-"), "{tcp}");
}

#[test]
fn listeners_are_logged_at_start_and_again_after_a_reload_that_changes_them() {
    if !require_privileges(
        "listeners_are_logged_at_start_and_again_after_a_reload_that_changes_them",
    ) {
        return;
    }
    let rules = |extra: &str| {
        format!(
            "[[rule]]\ntag = \"web\"\nports = \"15431-15433\"\norigins = [\"{o}\"]\npass_client_ip = \"ppv2\"\n\n\
             [[rule]]\ntag = \"dns\"\nprotocol = \"udp\"\nlisten = [\"{e}\"]\nports = \"15434\"\norigins = [\"{o}\"]\npass_client_ip = \"spp\"\n{extra}",
            o = addr::ORIGIN_V4,
            e = edge(false),
        )
    };
    let lab = ProxyLab::start("loglisten", &rules(""), 15431);
    let listening = || -> Vec<String> {
        lab.proxy_log()
            .lines()
            .filter(|l| l.contains("listening on "))
            .map(|l| l.split_once("listening on ").unwrap().1.to_string())
            .collect()
    };
    let web = "tcp/[::]:15431-15433 (dual stack) rule=\"web\" client_ip_mode=\"ppv2\"";
    let dns = format!(
        "udp/{}:15434 rule=\"dns\" client_ip_mode=\"spp\"",
        edge(false)
    );
    assert_eq!(listening(), [web, dns.as_str()], "{}", lab.proxy_log());
    let reloads = |n: usize| {
        eventually(Duration::from_secs(10), &format!("reload {n}"), || {
            lab.proxy_log().matches("reloaded ").count() == n
        })
    };
    let extra = format!(
        "\n[[rule]]\ntag = \"more\"\nports = \"15435\"\norigins = [\"{}\"]\npass_client_ip = \"ppv1\"\n",
        addr::ORIGIN_V4
    );
    lab.reload(&rules(&extra));
    reloads(1);
    let more = "tcp/[::]:15435 (dual stack) rule=\"more\" client_ip_mode=\"ppv1\"";
    assert_eq!(listening(), [web, &dns, web, more, &dns]);
    // The same listeners again: nothing new to say.
    lab.reload(&rules(&extra));
    reloads(2);
    assert_eq!(listening().len(), 5, "{}", lab.proxy_log());
}

#[test]
fn udp_refusals_are_logged_with_their_reason_at_most_once_a_second() {
    if !require_privileges("udp_refusals_are_logged_with_their_reason_at_most_once_a_second") {
        return;
    }
    let (mut lab, peer) = udp_support::start("logudpref", &untrusted_udp(15441));
    let _ = spp_echo(&mut lab);
    let started = Instant::now();
    let payloads: Vec<String> = (0..200).map(|i| format!("d{i}")).collect();
    let payloads: Vec<&str> = payloads.iter().map(String::as_str).collect();
    send(&lab, &peer, edge(false), "15441", "0.1", &payloads);
    let series = "toa_proxy_udp_drops_total{rule=\"untrusted\",reason=\"proxy_header_untrusted\"}";
    eventually(Duration::from_secs(10), "200 drops counted", || {
        lab.metric(series) == Some(200)
    });
    let secs = started.elapsed().as_secs();
    let log = lab.proxy_log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("datagram refused"))
        .collect();
    assert!(
        !lines.is_empty() && lines.len() as u64 <= secs + 2,
        "{} lines in {secs}s: {lines:#?}",
        lines.len()
    );
    assert!(
        lines[0].contains("WARN")
            && lines[0].contains("no accepted PROXY header")
            && lines[0].contains("reason=proxy_header_untrusted")
            && lines[0].contains(&format!("client={}:", addr::CLIENT_V4)),
        "{}",
        lines[0]
    );
}
