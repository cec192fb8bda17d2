//! Export → import → check gives the same rules.

use std::path::Path;

use super::*;

#[test]
fn export_then_import_gives_the_same_rules() {
    let text = r#"
# EdgeOne RuleId rule-2qzkbvx3hxl7
[[rule]]
tag = "web"
protocol = "TCP"
ports = ["443", "8443-8444"]
origins = ["localhost", "198.18.2.9"]
pass_client_ip = "PPv1"
session_persist = true

[[rule]]
tag = "grouped"
protocol = "udp"
ports = "5000-5001"
origin_group = "g1"
origin_ports = "6000"
status = "offline"

[[origin_group]]
name = "g1"
origins = [{ address = "198.18.2.7", weight = 3 }]
"#;
    let before = Config::parse(Path::new("before.toml"), text).unwrap();
    let exported = export(&before, text);
    assert!(exported.warnings.is_empty(), "{:?}", exported.warnings);
    assert!(
        exported.json.contains("\"RuleId\": \"rule-2qzkbvx3hxl7\""),
        "{}",
        exported.json
    );
    let json = std::env::temp_dir().join(format!("toa-export-{}.json", std::process::id()));
    std::fs::write(&json, &exported.json).unwrap();
    let imported = crate::import::import_file(&json, None);
    std::fs::remove_file(&json).unwrap();
    let imported = imported.unwrap();
    let after = Config::parse(Path::new("after.toml"), &imported.toml).unwrap();
    let strip = |c: &Config| {
        c.rules
            .iter()
            .map(|r| toa_config::Rule {
                line: 0,
                ..r.clone()
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&before), strip(&after), "{}", imported.toml);
    assert_eq!(before.origin_groups, after.origin_groups);
    assert!(imported.toml.contains("# EdgeOne RuleId rule-2qzkbvx3hxl7"));
}

#[test]
fn settings_edgeone_cannot_express_are_named_in_a_warning() {
    let text = "[[rule]]\ntag = \"w\"\nports = \"80\"\nlisten = [\"198.18.1.1\"]\norigins = [\"198.18.2.2\"]\nbalance = \"least_connections\"\n";
    let cfg = Config::parse(Path::new("p.toml"), text).unwrap();
    let out = export(&cfg, text);
    assert_eq!(
        out.warnings,
        ["p.toml:1: rule \"w\": EdgeOne has no field for listen, balance; left out"]
    );
}

#[test]
fn proxy_health_and_toa_settings_are_each_named_in_a_warning() {
    let text = "[proxy]\nidle_timeout = \"5m\"\naccess_log = true\n\n[health]\nfall = 2\n\n[toa]\nkind = 200\n\n[[rule]]\ntag = \"w\"\nports = \"80\"\norigins = [\"198.18.2.2\"]\n";
    let cfg = Config::parse(Path::new("p.toml"), text).unwrap();
    let out = export(&cfg, text);
    assert_eq!(
        out.warnings,
        [
            "p.toml:2: [proxy] idle_timeout: EdgeOne has no field for it; left out",
            "p.toml:3: [proxy] access_log: EdgeOne has no field for it; left out",
            "p.toml:6: [health] fall: EdgeOne has no field for it; left out",
            "p.toml:9: [toa] kind: EdgeOne has no field for it; left out",
        ]
    );
}

#[test]
fn a_drained_origin_weight_0_stays_0_through_import_and_export() {
    let list = r#"{"L4ProxyRules": [{"RuleTag": "g", "PortRange": ["80"], "OriginType": "ORIGIN_GROUP", "OriginValue": ["og-1"]}],
        "OriginGroups": [{"GroupId": "og-1", "Records": [{"Record": "198.18.2.2", "Weight": 0}, {"Record": "198.18.2.3", "Weight": 5}]}]}"#;
    let weights = |toml: &str| {
        let cfg = Config::parse(Path::new("w.toml"), toml).unwrap_or_else(|e| panic!("{e}"));
        let rule = &cfg.rules[0];
        rule.origins.iter().map(|o| o.weight).collect::<Vec<_>>()
    };
    let import = |text: &str| {
        let path = std::env::temp_dir().join(format!("toa-w0-{}.json", std::process::id()));
        std::fs::write(&path, text).unwrap();
        let imported = crate::import::import_file(&path, None);
        std::fs::remove_file(&path).unwrap();
        imported.unwrap().toml
    };
    let toml = import(list);
    assert_eq!(weights(&toml), [0, 5], "{toml}");
    let cfg = Config::parse(Path::new("w.toml"), &toml).unwrap();
    let json = export(&cfg, &toml).json;
    assert!(json.contains("\"Weight\": 0"), "{json}");
    assert_eq!(weights(&import(&json)), [0, 5]);
}
