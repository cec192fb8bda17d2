//! EdgeOne rules through the real `toa` binary: `rules export` writes JSON that
//! `rules import -` (stdin) reads back into the same rules, which `check` accepts; what
//! `check` would reject, import rejects with the entry and the EdgeOne field.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn toa(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_toa"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run toa");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

/// A scratch directory removed when dropped, on success and on panic.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("toa-edgeone-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const CONFIG: &str = r#"
# EdgeOne RuleId rule-2qzkbvx3hxl7
[[rule]]
tag = "web"
ports = ["80", "8000-8002"]
origins = ["198.18.2.2", "fd00:2::2"]
origin_ports = "9000"
pass_client_ip = "ppv2"
session_persist = true
session_persist_ttl = "600s"

[[rule]]
tag = "dns"
protocol = "udp"
ports = "53"
origins = ["198.18.2.3"]
pass_client_ip = "spp"

[[rule]]
tag = "later"
ports = "10000-10001"
origin_group = "og-537y24vf5b41"
origin_ports = "20000-20001"
pass_client_ip = "toa"
status = "offline"

[[origin_group]]
name = "og-537y24vf5b41"
origins = [{ address = "198.18.2.2", weight = 10 }, { address = "offline-only.invalid", weight = 5 }]
"#;

#[test]
fn export_import_check_round_trip_gives_the_same_rules() {
    let dir = Scratch::new("round-trip");
    let original = dir.0.join("proxy.toml");
    std::fs::write(&original, CONFIG).unwrap();
    let exported = toa(
        &[
            "proxy",
            "rules",
            "export",
            "--config",
            original.to_str().unwrap(),
        ],
        None,
    );
    assert!(exported.status.success(), "{}", text(&exported.stderr));
    let json = text(&exported.stdout);
    for expected in [
        "\"RuleId\": \"rule-2qzkbvx3hxl7\"",
        "\"OriginType\": \"ORIGIN_GROUP\"",
        "\"ClientIPPassThroughMode\": \"SPP\"",
        "\"SessionPersistTime\": 600",
        // EdgeOne requires it: a rule without origin_ports keeps its own port.
        "\"OriginPortRange\": \"53\"",
        "\"Status\": \"offline\"",
    ] {
        assert!(json.contains(expected), "missing {expected} in\n{json}");
    }

    let imported = toa(&["proxy", "rules", "import", "-"], Some(&json));
    assert!(imported.status.success(), "{}", text(&imported.stderr));
    let toml = text(&imported.stdout);
    let again = dir.0.join("imported.toml");
    std::fs::write(&again, &toml).unwrap();
    let check = toa(
        &["proxy", "check", "--config", again.to_str().unwrap()],
        None,
    );
    assert!(check.status.success(), "{}\n{toml}", text(&check.stderr));
    assert!(
        text(&check.stdout).contains("ok (3 rules, 2 online; "),
        "{}",
        text(&check.stdout)
    );

    // Same rules: exporting the imported file gives the same JSON.
    let re_exported = toa(
        &[
            "proxy",
            "rules",
            "export",
            "--config",
            again.to_str().unwrap(),
        ],
        None,
    );
    assert!(
        re_exported.status.success(),
        "{}",
        text(&re_exported.stderr)
    );
    assert_eq!(text(&re_exported.stdout), json, "{toml}");
}

#[test]
fn import_refuses_what_check_would_refuse_and_exits_non_zero() {
    let cases = [
        (
            r#"[{"RuleTag": "s", "Protocol": "SCTP", "PortRange": ["80"], "OriginValue": ["198.18.2.2"]}]"#,
            "stdin: rule 1: Protocol: \"SCTP\" is not supported; EdgeOne L4 rules are TCP or UDP\n",
        ),
        (
            r#"[{"RuleTag": "d", "Protocol": "UDP", "PortRange": ["53"], "OriginValue": ["198.18.2.2"], "ClientIPPassThroughMode": "PPV1"}]"#,
            "stdin: rule 1 (RuleTag d): ClientIPPassThroughMode: ppv1 is for TCP rules only; on udp use ppv2, spp or off\n",
        ),
        (
            r#"[{"RuleTag": "g", "PortRange": ["80"], "OriginType": "LB", "OriginValue": ["lb-2qwk30xf7s9g"]}]"#,
            "stdin: rule 1: OriginValue: load balancer lb-2qwk30xf7s9g: its origins are not in the input",
        ),
    ];
    for (json, expected) in cases {
        let out = toa(&["proxy", "rules", "import", "-"], Some(json));
        assert!(!out.status.success(), "accepted {json}");
        assert!(
            text(&out.stderr).starts_with(expected),
            "{}",
            text(&out.stderr)
        );
    }
}

#[test]
fn import_warns_on_a_partial_page() {
    let out = toa(
        &["proxy", "rules", "import", "-"],
        Some(
            r#"{"Response": {"TotalCount": 120, "L4ProxyRules": [{"RuleTag": "a", "PortRange": ["80"], "OriginValue": ["198.18.2.2"]}]}}"#,
        ),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("warning: stdin: TotalCount is 120 but the list has 1 rules"),
        "{}",
        text(&out.stderr)
    );
}
