//! Config validation: good files load, and every bad file gets its exact one-line error.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use super::*;

mod transport;

fn load(text: &str) -> Result<Config, String> {
    Config::parse(Path::new("proxy.toml"), text).map_err(|e| e.to_string())
}

fn error(text: &str) -> String {
    load(text).expect_err("config should be rejected")
}

#[test]
fn full_example_from_the_issue_loads() {
    let cfg = load(
        r#"
[[rule]]
tag = "web"
protocol = "tcp"
listen = ["198.18.1.1", "fd00:1::1"]
ports = "81-85"
origins = ["198.18.2.2", "localhost"]
origin_ports = "9081-9085"
pass_client_ip = "toa"
session_persist = true
session_persist_ttl = "600s"
status = "online"

[[rule]]
tag = "grouped"
ports = "10000"
origin_group = "g1"

[[origin_group]]
name = "g1"
origins = [{ address = "198.18.2.2", weight = 10 }, { address = "198.18.2.3", weight = 5 }]

[toa]
kind = 200
"#,
    )
    .unwrap();
    let web = &cfg.rules[0];
    assert_eq!(web.line, 2);
    assert_eq!(web.listen.len(), 2);
    assert_eq!(
        web.ports,
        Ports::from(PortRange {
            first: 81,
            last: 85
        })
    );
    assert_eq!(web.origins[1].name, "localhost");
    assert!(web.origins[1].address.is_loopback());
    assert_eq!(
        web.transport,
        Transport::Tcp {
            mode: TcpMode::Toa,
            max_connections: None
        }
    );
    assert_eq!(web.session_persist, Some(Duration::from_secs(600)));
    let grouped = &cfg.rules[1];
    assert_eq!(grouped.listen, vec![ListenAddr::DualStack]);
    assert_eq!(grouped.origin_ports, None);
    assert_eq!(grouped.origins[0].weight, 10);
    assert_eq!(
        grouped.origins[1].address,
        "198.18.2.3".parse::<IpAddr>().unwrap()
    );
    assert_eq!(cfg.toa.kind, 200);
}

#[test]
fn settings_sections_override_defaults() {
    let cfg = load(
        r#"
[proxy]
max_connections = 10
connect_timeout = "500ms"
idle_timeout = 60
access_log = true
access_log_format = "json"
access_log_open = true
[health]
interval = "1s"
rise = 1
"#,
    )
    .unwrap();
    assert_eq!(cfg.proxy.access_log_format, crate::AccessLogFormat::Json);
    assert!(cfg.proxy.access_log_open);
    assert_eq!(cfg.proxy.max_connections, 10);
    assert_eq!(cfg.proxy.connect_timeout, Duration::from_millis(500));
    assert_eq!(cfg.proxy.idle_timeout, Duration::from_secs(60));
    assert!(cfg.proxy.access_log);
    assert_eq!(cfg.health.interval, Duration::from_secs(1));
    assert_eq!((cfg.health.rise, cfg.health.fall), (1, 3));
}

#[test]
fn port_range_length_mismatch_names_line_and_field() {
    let e = error(
        "[[rule]]\ntag = \"web\"\nports = \"81-85\"\norigins = [\"198.18.2.2\"]\norigin_ports = \"9081-9083\"\n",
    );
    assert_eq!(
        e,
        "proxy.toml:5: rule \"web\": origin_ports: \"9081-9083\" has 3 ports but ports \"81-85\" has 5; use one port or a range of the same length"
    );
}

#[test]
fn overlapping_listeners_are_rejected() {
    let e = error(
        r#"[[rule]]
tag = "a"
ports = "10000-10010"
origins = ["198.18.2.2"]

[[rule]]
tag = "b"
listen = ["198.18.1.1"]
ports = "10005"
origins = ["198.18.2.2"]
"#,
    );
    assert_eq!(
        e,
        "proxy.toml:9: rule \"b\": ports: tcp port 10005 on 198.18.1.1 overlaps rule \"a\" (line 1) on all addresses"
    );
}

#[test]
fn same_port_on_different_addresses_or_protocols_does_not_overlap() {
    let cfg = load(
        r#"[[rule]]
tag = "a"
listen = ["198.18.1.1"]
ports = "80"
origins = ["198.18.2.2"]
[[rule]]
tag = "b"
listen = ["198.18.1.9", "fd00:1::1"]
ports = "80"
origins = ["198.18.2.2"]
[[rule]]
tag = "c"
protocol = "udp"
ports = "80"
origins = ["198.18.2.2"]
"#,
    );
    assert_eq!(cfg.unwrap().rules.len(), 3);
}

#[test]
fn ttl_out_of_range_is_rejected() {
    let e = error(
        "[[rule]]\ntag = \"web\"\nports = \"80\"\norigins = [\"198.18.2.2\"]\nsession_persist = true\nsession_persist_ttl = \"10s\"\n",
    );
    assert_eq!(
        e,
        "proxy.toml:6: rule \"web\": session_persist_ttl: \"10s\" is out of range; use 30s..3600s"
    );
}

#[test]
fn unresolvable_origin_is_rejected() {
    let e = error(
        "[[rule]]\ntag = \"web\"\nports = \"80\"\norigins = [\"198.18.2.2\", \"no-such-origin.invalid\"]\n",
    );
    assert_eq!(
        e,
        "proxy.toml:4: rule \"web\": origins: cannot resolve host name \"no-such-origin.invalid\""
    );
}

#[test]
fn missing_and_duplicate_and_unknown_keys_are_located() {
    assert_eq!(
        error("\n[[rule]]\ntag = \"web\"\norigins = [\"198.18.2.2\"]\n"),
        "proxy.toml:2: rule \"web\": ports: missing; a port like \"80\" or a range like \"81-85\""
    );
    assert_eq!(
        error(
            "[[rule]]\ntag = \"a\"\nports = \"80\"\norigins = [\"198.18.2.2\"]\n[[rule]]\ntag = \"a\"\nlisten = [\"::1\"]\nports = \"81\"\norigins = [\"198.18.2.2\"]\n"
        ),
        "proxy.toml:6: rule \"a\": tag: duplicate tag; rule on line 1 has it already"
    );
    let unknown = error("[[rule]]\ntag = \"web\"\nportz = \"80\"\n");
    assert!(
        unknown.starts_with("proxy.toml:3: portz: unknown field `portz`"),
        "{unknown}"
    );
    assert_eq!(
        error("[proxy]\naccess_log = true\naccess_log_format = \"xml\"\n"),
        "proxy.toml:3: [proxy]: access_log_format: unknown format \"xml\"; expected text or json"
    );
    let wrong_type = error("[proxy]\naccess_log = \"yes\"\n");
    assert!(
        wrong_type.starts_with("proxy.toml:2: access_log: invalid type"),
        "{wrong_type}"
    );
}

#[test]
fn tag_length_is_bounded() {
    let long = "x".repeat(51);
    let e = error(&format!(
        "[[rule]]\ntag = \"{long}\"\nports = \"80\"\norigins = [\"198.18.2.2\"]\n"
    ));
    assert_eq!(
        e,
        format!("proxy.toml:2: rule \"{long}\": tag: must be 1-50 characters, has 51")
    );
}

#[test]
fn unknown_origin_group_is_rejected() {
    let e = error("[[rule]]\ntag = \"web\"\nports = \"80\"\norigin_group = \"nope\"\n");
    assert_eq!(
        e,
        "proxy.toml:4: rule \"web\": origin_group: no [[origin_group]] named \"nope\""
    );
}

#[test]
fn group_weight_zero_is_a_drained_origin_and_above_1000_is_rejected() {
    let group = |w: i64| {
        format!(
            "[[rule]]\ntag = \"web\"\nports = \"80\"\norigin_group = \"g\"\n[[origin_group]]\nname = \"g\"\norigins = [{{ address = \"198.18.2.2\", weight = {w} }}, {{ address = \"198.18.2.3\" }}]\n"
        )
    };
    let cfg = load(&group(0)).unwrap();
    let weights: Vec<u32> = cfg.rules[0].origins.iter().map(|o| o.weight).collect();
    assert_eq!(weights, [0, 1]);
    assert_eq!(
        error(&group(1001)),
        "proxy.toml:7: origin_group \"g\": origins: weight 1001 of \"198.18.2.2\" is out of range; use 0..1000 (0 drains the origin)"
    );
}

#[test]
fn resource_keys_are_validated_with_their_line() {
    let rule = "[[rule]]\ntag = \"web\"\nports = \"80\"\norigins = [\"198.18.2.2\"]\n";
    for (extra, want) in [
        (
            "max_connections_per_client = 0",
            "proxy.toml:5: rule \"web\": max_connections_per_client: 0 is out of range; use a positive number",
        ),
        (
            "session_persist_max = 0",
            "proxy.toml:5: rule \"web\": session_persist_max: 0 is out of range; use 1..10000000",
        ),
        (
            "source_addresses = [\"nope\"]",
            "proxy.toml:5: rule \"web\": source_addresses: \"nope\" is not an IP address",
        ),
        (
            "source_addresses = [\"0.0.0.0\"]",
            "proxy.toml:5: rule \"web\": source_addresses: 0.0.0.0 is not usable here: list distinct unicast addresses of this host",
        ),
        (
            "protocol = \"udp\"\nsource_addresses = [\"198.18.2.1\"]",
            "proxy.toml:6: rule \"web\": source_addresses: only tcp rules take source_addresses (a UDP flow holds one socket, not a port per connection)",
        ),
    ] {
        let err = Config::parse(Path::new("proxy.toml"), &format!("{rule}{extra}\n")).unwrap_err();
        assert_eq!(err.to_string(), want);
    }
    let ok = Config::parse(
            Path::new("proxy.toml"),
            &format!("{rule}max_connections_per_client = 3\nsource_addresses = [\"198.18.2.1\", \"fd00:2::1\"]\n"),
        )
        .unwrap();
    assert_eq!(ok.rules[0].max_connections_per_client, 3);
    assert_eq!(ok.rules[0].source_addresses.len(), 2);
    assert_eq!(ok.rules[0].session_persist_max, 100_000);
}

#[test]
fn a_file_without_online_rules_is_refused_by_require_online_rules() {
    let empty = Config::parse(Path::new("proxy.toml"), "").unwrap();
    assert!(
        empty
            .require_online_rules()
            .unwrap_err()
            .to_string()
            .contains("no online rules")
    );
}

#[test]
fn ports_list_form_and_case_insensitive_protocol_load() {
    let cfg = load(
        "[[rule]]\ntag = \"w\"\nprotocol = \"TCP\"\nports = [\"80\", \"443\"]\norigins = [\"198.18.2.2\"]\n",
    )
    .unwrap();
    assert_eq!(cfg.rules[0].protocol(), Protocol::Tcp);
    assert_eq!(cfg.rules[0].ports.iter().collect::<Vec<_>>(), [80, 443]);
}

#[test]
fn host_and_port_origin_gets_a_hint_to_use_origin_ports() {
    assert_eq!(
        error("[[rule]]\ntag = \"w\"\nports = \"80\"\norigins = [\"198.18.2.2:8080\"]\n"),
        "proxy.toml:4: rule \"w\": origins: \"198.18.2.2:8080\" has a port; write origins = [\"198.18.2.2\"] and origin_ports = \"8080\""
    );
}

#[test]
fn resolve_interval_and_accept_proxy_timeout_name_their_range() {
    assert_eq!(
        error("[proxy]\naccept_proxy_timeout = \"0s\"\n"),
        "proxy.toml:2: [proxy]: accept_proxy_timeout: \"0s\" is out of range; use 10ms..5m"
    );
    assert_eq!(
        error(
            "[[rule]]\ntag = \"w\"\nports = \"80\"\norigins = [\"198.18.2.2\"]\nresolve_interval = \"10ms\"\n"
        ),
        "proxy.toml:5: rule \"w\": resolve_interval: \"10ms\" is out of range; use 100ms..1day"
    );
}
