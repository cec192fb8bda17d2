//! Import: every documented EdgeOne value maps, and every rejection names entry and field.

use std::path::Path;
use std::time::Duration;

use super::*;
use toa_config::{Config, PortRange, Ports};

fn convert_to(name: &str, text: &str, groups: Option<&str>) -> Result<Imported, String> {
    let dir = std::env::temp_dir().join(format!("toa-import-{}-{name}", std::process::id()));
    std::fs::write(&dir, text).unwrap();
    let groups_path = dir.with_extension("groups.json");
    if let Some(g) = groups {
        std::fs::write(&groups_path, g).unwrap();
    }
    let out = import_file(&dir, groups.map(|_| groups_path.as_path()));
    let _ = std::fs::remove_file(&dir);
    let _ = std::fs::remove_file(&groups_path);
    out.map_err(|e| e.to_string().replace(&dir.display().to_string(), name))
}

fn convert(name: &str, text: &str) -> Config {
    let imported = convert_to(name, text, None).unwrap_or_else(|e| panic!("{e}"));
    Config::parse(Path::new("imported.toml"), &imported.toml)
        .unwrap_or_else(|e| panic!("{e}\n{}", imported.toml))
}

#[test]
fn json_api_answer_maps_every_field() {
    let cfg = convert(
        "rules.json",
        r#"{"Response": {"TotalCount": 2, "L4ProxyRules": [
        {"RuleId": "rule-2qzkbvx3hxl7", "Protocol": "TCP", "PortRange": ["80", "8000-8002"], "OriginType": "IP_DOMAIN", "OriginValue": ["198.18.2.2"],
         "OriginPortRange": "9000", "ClientIPPassThroughMode": "PPV2", "SessionPersist": "on", "SessionPersistTime": 600,
         "RuleTag": "web", "Status": "online"},
        {"Protocol": "udp", "PortRange": ["53"], "OriginType": "IP_DOMAIN", "OriginValue": ["198.18.2.3"],
         "ClientIPPassThroughMode": "SPP", "SessionPersist": "off", "RuleTag": "dns", "Status": "offline"}
    ]}}"#,
    );
    assert_eq!(cfg.rules.len(), 2);
    let web = &cfg.rules[0];
    assert_eq!(web.ports, Ports::parse(&["80", "8000-8002"]).unwrap());
    assert_eq!(web.origin_ports, Some(PortRange::single(9000)));
    assert_eq!(web.transport.mode_name(), "ppv2");
    assert_eq!(web.session_persist, Some(Duration::from_secs(600)));
    assert_eq!(cfg.rules[1].transport.mode_name(), "spp");
    assert!(!cfg.rules[1].online);
}

#[test]
fn rule_id_is_kept_as_a_comment_above_its_rule() {
    let out = convert_to(
        "id.json",
        r#"[{"RuleId": "rule-3pszkbox0hm1", "RuleTag": "ssh", "PortRange": ["22"], "OriginValue": ["198.18.2.2"]}]"#,
        None,
    )
    .unwrap();
    assert!(
        out.toml
            .contains("# EdgeOne RuleId rule-3pszkbox0hm1\n[[rule]]\ntag = \"ssh\""),
        "{}",
        out.toml
    );
}

#[test]
fn origin_group_and_load_balancer_become_origin_groups_with_their_records() {
    let groups = r#"{"OriginGroups": [
        {"GroupId": "og-537y24vf5b41", "Name": "web", "Records": [{"Record": "198.18.2.2", "Weight": 10}, {"Record": "198.18.2.3", "Weight": 5}]},
        {"GroupId": "lb-2qwk30xf7s9g", "Records": [{"Record": "198.18.2.4"}]}]}"#;
    let out = convert_to(
        "groups.json",
        r#"[{"RuleTag": "g", "PortRange": ["80"], "OriginType": "ORIGIN_GROUP", "OriginValue": ["og-537y24vf5b41"]},
            {"RuleTag": "lb", "PortRange": ["81"], "OriginType": "LB", "OriginValue": ["lb-2qwk30xf7s9g"]}]"#,
        Some(groups),
    )
    .unwrap();
    let cfg = Config::parse(Path::new("i.toml"), &out.toml)
        .unwrap_or_else(|e| panic!("{e}\n{}", out.toml));
    assert_eq!(
        cfg.rules[0].origin_group.as_deref(),
        Some("og-537y24vf5b41")
    );
    assert_eq!(
        cfg.rules[0]
            .origins
            .iter()
            .map(|o| o.weight)
            .collect::<Vec<_>>(),
        [10, 5]
    );
    assert_eq!(cfg.rules[1].origins[0].address.to_string(), "198.18.2.4");
}

#[test]
fn origin_group_without_its_records_is_an_error_naming_the_field() {
    let e = convert_to(
        "nogroup.json",
        r#"[{"RuleTag": "g", "PortRange": ["80"], "OriginType": "ORIGIN_GROUP", "OriginValue": ["og-1"]}]"#,
        None,
    )
    .unwrap_err();
    assert!(
        e.starts_with(
            "nogroup.json: rule 1: OriginValue: origin group og-1: its origins are not in the input"
        ),
        "{e}"
    );
}

#[test]
fn sctp_and_unknown_values_are_refused_with_entry_and_field() {
    let e = convert_to(
        "sctp.json",
        r#"[{"Protocol": "SCTP", "PortRange": ["80"], "OriginValue": ["198.18.2.2"]}]"#,
        None,
    )
    .unwrap_err();
    assert_eq!(
        e,
        "sctp.json: rule 1: Protocol: \"SCTP\" is not supported; EdgeOne L4 rules are TCP or UDP"
    );
    let e = convert_to(
        "status.json",
        r#"[{"Status": "paused", "PortRange": ["80"], "OriginValue": ["198.18.2.2"]}]"#,
        None,
    )
    .unwrap_err();
    assert!(
        e.starts_with("status.json: rule 1: Status: \"paused\" is not an EdgeOne status"),
        "{e}"
    );
}

#[test]
fn status_progress_is_online_and_stopping_offline_with_warnings() {
    let out = convert_to(
        "st.json",
        r#"[{"RuleTag": "a", "Status": "progress", "PortRange": ["80"], "OriginValue": ["198.18.2.2"]},
            {"RuleTag": "b", "Status": "stopping", "PortRange": ["81"], "OriginValue": ["198.18.2.2"]},
            {"RuleTag": "c", "Status": "fail", "PortRange": ["82"], "OriginValue": ["198.18.2.2"]}]"#,
        None,
    )
    .unwrap();
    let cfg = Config::parse(Path::new("i.toml"), &out.toml).unwrap();
    assert_eq!(
        cfg.rules.iter().map(|r| r.online).collect::<Vec<_>>(),
        [true, false, false]
    );
    assert_eq!(out.warnings.len(), 3, "{:?}", out.warnings);
}

#[test]
fn what_check_rejects_import_rejects_naming_rule_and_field() {
    let e = convert_to(
        "toa-udp.json",
        r#"[{"RuleTag": "dns", "Protocol": "UDP", "PortRange": ["53"], "OriginValue": ["198.18.2.2"], "ClientIPPassThroughMode": "TOA"}]"#,
        None,
    )
    .unwrap_err();
    assert_eq!(
        e,
        "toa-udp.json: rule 1 (RuleTag dns): ClientIPPassThroughMode: toa is for TCP rules only; on udp use ppv2, spp or off"
    );
    let e = convert_to(
        "ttl.json",
        r#"[{"RuleTag": "w", "PortRange": ["80"], "OriginValue": ["198.18.2.2"], "SessionPersist": "on", "SessionPersistTime": 5}]"#,
        None,
    )
    .unwrap_err();
    assert!(
        e.starts_with("ttl.json: rule 1 (RuleTag w): SessionPersistTime: "),
        "{e}"
    );
}

#[test]
fn offline_rules_are_not_resolved_by_dns() {
    let cfg = convert(
        "offline.json",
        r#"[{"RuleTag": "later", "Status": "offline", "PortRange": ["80"], "OriginValue": ["origin.invalid"]}]"#,
    );
    assert!(cfg.rules[0].origins.is_empty());
    assert_eq!(cfg.rules[0].origin_names, ["origin.invalid"]);
    let e = convert_to(
        "online.json",
        r#"[{"RuleTag": "now", "PortRange": ["80"], "OriginValue": ["origin.invalid"]}]"#,
        None,
    )
    .unwrap_err();
    assert_eq!(
        e,
        "online.json: rule 1 (RuleTag now): OriginValue: cannot resolve host name \"origin.invalid\""
    );
}

#[test]
fn a_partial_page_warns_with_the_total_count() {
    let out = convert_to(
        "page.json",
        r#"{"TotalCount": 250, "L4ProxyRules": [{"RuleTag": "a", "PortRange": ["80"], "OriginValue": ["198.18.2.2"]}]}"#,
        None,
    )
    .unwrap();
    assert_eq!(out.warnings.len(), 1);
    assert!(
        out.warnings[0].contains("TotalCount is 250 but the list has 1 rules"),
        "{:?}",
        out.warnings
    );
}

#[test]
fn csv_with_comma_or_semicolon_cells_and_lists() {
    for (name, text) in [
        (
            "comma.csv",
            "RuleTag,Protocol,PortRange,OriginType,OriginValue,OriginPortRange,ClientIPPassThroughMode,SessionPersist,SessionPersistTime,Status\n\
             ssh,TCP,22,IP_DOMAIN,198.18.2.2;198.18.2.3,2222,TOA,off,,online\n",
        ),
        (
            "semicolon.csv",
            "RuleTag;Protocol;PortRange;OriginType;OriginValue;OriginPortRange;ClientIPPassThroughMode;SessionPersist;SessionPersistTime;Status\n\
             ssh;TCP;22;IP_DOMAIN;198.18.2.2,198.18.2.3;2222;TOA;off;;online\n",
        ),
    ] {
        let cfg = convert(name, text);
        assert_eq!(cfg.rules[0].origins.len(), 2, "{name}");
        assert_eq!(cfg.rules[0].transport.mode_name(), "toa", "{name}");
        assert_eq!(
            cfg.rules[0].origin_ports,
            Some(PortRange::single(2222)),
            "{name}"
        );
    }
}

#[test]
fn missing_port_range_names_the_entry_and_field() {
    let e = convert_to("bad.csv", "RuleTag,OriginValue\nweb,198.18.2.2\n", None).unwrap_err();
    assert_eq!(e, "bad.csv: line 2: PortRange: missing");
}
