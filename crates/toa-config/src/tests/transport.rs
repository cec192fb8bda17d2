//! Config validation of what depends on the transport: modes, flow and connection caps,
//! and accepted PROXY headers.

use super::*;

#[test]
fn unknown_mode_is_rejected() {
    let e = error(
        "[[rule]]\ntag = \"web\"\nports = \"80\"\norigins = [\"198.18.2.2\"]\npass_client_ip = \"tao\"\n",
    );
    assert_eq!(
        e,
        "proxy.toml:5: rule \"web\": pass_client_ip: unknown mode \"tao\"; expected toa, ppv1, ppv2, spp or off"
    );
}

#[test]
fn spp_on_tcp_is_rejected() {
    let e = error(
        "[[rule]]\ntag = \"web\"\nports = \"80\"\norigins = [\"198.18.2.2\"]\npass_client_ip = \"spp\"\n",
    );
    assert_eq!(
        e,
        "proxy.toml:5: rule \"web\": pass_client_ip: spp is for UDP rules only; on tcp use toa, ppv1, ppv2 or off"
    );
}

#[test]
fn toa_on_udp_is_rejected() {
    let e = error(
        "[[rule]]\ntag = \"dns\"\nprotocol = \"udp\"\nports = \"53\"\norigins = [\"198.18.2.2\"]\npass_client_ip = \"toa\"\n",
    );
    assert_eq!(
        e,
        "proxy.toml:6: rule \"dns\": pass_client_ip: toa is for TCP rules only; on udp use ppv2, spp or off"
    );
}

#[test]
fn udp_rule_takes_max_flows_and_proxy_takes_udp_idle_timeout() {
    let cfg = load(
        "[proxy]\nudp_idle_timeout = \"5s\"\n[[rule]]\ntag = \"dns\"\nprotocol = \"udp\"\nports = \"53\"\norigins = [\"198.18.2.2\"]\npass_client_ip = \"spp\"\nmax_flows = 7\n",
    )
    .unwrap();
    assert_eq!(cfg.proxy.udp_idle_timeout, Duration::from_secs(5));
    assert_eq!(
        cfg.rules[0].transport,
        Transport::Udp {
            mode: UdpMode::Spp,
            max_flows: 7
        }
    );
    let default = load(
        "[[rule]]\ntag = \"dns\"\nprotocol = \"udp\"\nports = \"53\"\norigins = [\"198.18.2.2\"]\n",
    )
    .unwrap();
    assert_eq!(default.proxy.udp_idle_timeout, Duration::from_secs(60));
    assert_eq!(
        default.rules[0].transport,
        Transport::Udp {
            mode: UdpMode::Off,
            max_flows: DEFAULT_MAX_FLOWS
        }
    );
}

#[test]
fn clients_get_a_default_cap_per_transport_and_may_set_their_own() {
    let rule = |protocol: &str, extra: &str| {
        load(&format!(
            "[[rule]]\ntag = \"r\"\nprotocol = \"{protocol}\"\nports = \"53\"\norigins = [\"198.18.2.2\"]\n{extra}"
        ))
        .unwrap()
        .rules[0]
            .max_connections_per_client
    };
    assert_eq!(rule("udp", ""), DEFAULT_UDP_FLOWS_PER_CLIENT);
    assert_eq!(rule("tcp", ""), DEFAULT_TCP_CONNECTIONS_PER_CLIENT);
    // A tenth of what the rule (udp) or the proxy (tcp) admits by default.
    assert_eq!(DEFAULT_UDP_FLOWS_PER_CLIENT * 10, DEFAULT_MAX_FLOWS);
    assert_eq!(
        DEFAULT_TCP_CONNECTIONS_PER_CLIENT * 10,
        ProxySettings::default().max_connections
    );
    let big = "max_connections_per_client = 4294967295\n";
    assert_eq!(rule("udp", big), u32::MAX as usize);
}

#[test]
fn flow_and_connection_caps_belong_to_their_protocol() {
    assert_eq!(
        error(
            "[[rule]]\ntag = \"dns\"\nprotocol = \"udp\"\nports = \"53\"\norigins = [\"198.18.2.2\"]\nmax_connections = 5\n"
        ),
        "proxy.toml:6: rule \"dns\": max_connections: udp rules have flows, not connections; use max_flows"
    );
    assert_eq!(
        error(
            "[[rule]]\ntag = \"web\"\nports = \"80\"\norigins = [\"198.18.2.2\"]\nmax_flows = 5\n"
        ),
        "proxy.toml:5: rule \"web\": max_flows: only udp rules have flows; use max_connections on tcp"
    );
    assert_eq!(
        error(
            "[[rule]]\ntag = \"dns\"\nprotocol = \"udp\"\nports = \"53\"\norigins = [\"198.18.2.2\"]\nmax_flows = 0\n"
        ),
        "proxy.toml:6: rule \"dns\": max_flows: must be at least 1"
    );
    assert_eq!(
        error("[proxy]\nudp_idle_timeout = \"soon\"\n"),
        "proxy.toml:2: [proxy]: udp_idle_timeout: \"soon\" is not a duration like \"30s\", \"500ms\", \"5m\" or \"1h\""
    );
}

#[test]
fn accept_proxy_needs_trusted_sources() {
    assert_eq!(
        error(
            "[[rule]]\ntag = \"w\"\nports = \"80\"\norigins = [\"198.18.2.2\"]\naccept_proxy = \"v2\"\n"
        ),
        "proxy.toml:5: rule \"w\": accept_proxy_from: missing; accept_proxy needs the sources allowed to send a header, e.g. accept_proxy_from = [\"198.18.1.0/24\"]"
    );
    assert_eq!(
        error(
            "[[rule]]\ntag = \"w\"\nports = \"80\"\norigins = [\"198.18.2.2\"]\naccept_proxy = \"v2\"\naccept_proxy_from = [\"198.18.1.0/40\"]\n"
        ),
        "proxy.toml:6: rule \"w\": accept_proxy_from: \"198.18.1.0/40\" is not a CIDR like \"198.18.1.0/24\" or an IP address"
    );
    let cfg = load("[[rule]]\ntag = \"w\"\nports = \"80\"\norigins = [\"198.18.2.2\"]\naccept_proxy = \"any\"\naccept_proxy_from = [\"198.18.1.0/24\"]\nresolve_interval = \"5s\"\n").unwrap();
    assert_eq!(
        cfg.rules[0].accept_proxy.as_ref().map(|a| a.version),
        Some(ProxyVersion::Any)
    );
    assert_eq!(cfg.rules[0].resolve_interval, Duration::from_secs(5));
}
