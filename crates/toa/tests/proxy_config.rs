//! `toa proxy check` and `toa proxy` on bad configs: the exact one-line errors users see,
//! `--help` listing every flag, `rules import` output that validates, and the listening
//! sockets a config takes counted against the open-file limit.

use std::path::Path;
use std::process::{Command, Output};

fn toa(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_toa"))
        .args(args)
        .output()
        .expect("run toa")
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("toa-proxy-config-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes `text` to DIR/proxy.toml, runs `toa proxy check`, returns (success, stdout, stderr).
fn check(dir: &Path, text: &str) -> (bool, String, String) {
    let path = dir.join("proxy.toml");
    std::fs::write(&path, text).unwrap();
    let out = toa(&["proxy", "check", "--config", path.to_str().unwrap()]);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn check_prints_the_exact_error_line_for_each_bad_config() {
    let dir = scratch("check");
    let file = dir.join("proxy.toml");
    let f = file.display();
    let rule = "[[rule]]\ntag = \"web\"\n";
    let cases = [
        (
            format!(
                "{rule}ports = \"81-85\"\norigins = [\"198.18.2.2\"]\norigin_ports = \"9081-9083\"\n"
            ),
            format!(
                "{f}:5: rule \"web\": origin_ports: \"9081-9083\" has 3 ports but ports \"81-85\" has 5; use one port or a range of the same length"
            ),
        ),
        (
            format!(
                "{rule}ports = \"80-90\"\norigins = [\"198.18.2.2\"]\n\n[[rule]]\ntag = \"api\"\nlisten = [\"fd00:1::1\"]\nports = \"85\"\norigins = [\"198.18.2.2\"]\n"
            ),
            format!(
                "{f}:9: rule \"api\": ports: tcp port 85 on fd00:1::1 overlaps rule \"web\" (line 1) on all addresses"
            ),
        ),
        (
            format!(
                "{rule}ports = \"80\"\norigins = [\"198.18.2.2\"]\nsession_persist = true\nsession_persist_ttl = \"7200s\"\n"
            ),
            format!(
                "{f}:6: rule \"web\": session_persist_ttl: \"7200s\" is out of range; use 30s..3600s"
            ),
        ),
        (
            format!(
                "{rule}ports = \"80\"\norigins = [\"198.18.2.2\"]\npass_client_ip = \"ppv3\"\n"
            ),
            format!(
                "{f}:5: rule \"web\": pass_client_ip: unknown mode \"ppv3\"; expected toa, ppv1, ppv2, spp or off"
            ),
        ),
        (
            format!(
                "{rule}protocol = \"tcp\"\nports = \"80\"\norigins = [\"198.18.2.2\"]\npass_client_ip = \"spp\"\n"
            ),
            format!(
                "{f}:6: rule \"web\": pass_client_ip: spp is for UDP rules only; on tcp use toa, ppv1, ppv2 or off"
            ),
        ),
        (
            format!(
                "{rule}ports = \"80\"\norigins = [\n  \"198.18.2.2\",\n  \"origin.invalid\",\n]\n"
            ),
            format!("{f}:6: rule \"web\": origins: cannot resolve host name \"origin.invalid\""),
        ),
    ];
    for (text, expected) in cases {
        let (ok, stdout, stderr) = check(&dir, &text);
        assert!(!ok, "accepted:\n{text}\n{stdout}");
        assert_eq!(stderr, format!("{expected}\n"), "config:\n{text}");
    }
    let (ok, stdout, stderr) = check(
        &dir,
        &format!("{rule}ports = \"80\"\norigins = [\"198.18.2.2\"]\n"),
    );
    assert!(ok, "{stderr}");
    // One TCP port: a socket per accept worker (one per CPU).
    let workers = std::thread::available_parallelism().unwrap().get();
    let ok = format!("{f}: ok (1 rules, 1 online; {workers} listening sockets, open-file limit ");
    assert!(stdout.starts_with(&ok), "{stdout}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn running_with_a_bad_config_fails_with_the_same_line() {
    let dir = scratch("run");
    let path = dir.join("proxy.toml");
    std::fs::write(&path, "[[rule]]\ntag = \"web\"\nports = \"80\"\norigins = [\"198.18.2.2\"]\npass_client_ip = \"tao\"\n").unwrap();
    let out = toa(&["proxy", "--config", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = format!(
        "{}:5: rule \"web\": pass_client_ip: unknown mode \"tao\"; expected toa, ppv1, ppv2, spp or off",
        path.display()
    );
    assert!(stderr.lines().any(|l| l.ends_with(&line)), "{stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn help_lists_every_flag_and_subcommand() {
    let help = String::from_utf8(toa(&["proxy", "--help"]).stdout).unwrap();
    for flag in [
        "--config <FILE>",
        "--metrics <ADDR>",
        "check",
        "rules",
        "--help",
    ] {
        assert!(help.contains(flag), "missing {flag} in\n{help}");
    }
    let import = String::from_utf8(toa(&["proxy", "rules", "import", "--help"]).stdout).unwrap();
    assert!(import.contains("FILE.json or FILE.csv"), "{import}");
}

#[test]
fn imported_edgeone_rules_pass_check() {
    let dir = scratch("import");
    let json = dir.join("rules.json");
    std::fs::write(
        &json,
        r#"[{"RuleTag": "web", "Protocol": "TCP", "PortRange": ["80-81"], "OriginType": "IP_DOMAIN",
             "OriginValue": ["198.18.2.2", "fd00:2::2"], "OriginPortRange": "8080-8081",
             "ClientIPPassThroughMode": "TOA", "SessionPersist": "on", "SessionPersistTime": 3600, "Status": "online"}]"#,
    )
    .unwrap();
    let out = toa(&["proxy", "rules", "import", json.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let toml = String::from_utf8(out.stdout).unwrap();
    assert!(
        toml.contains(
            "pass_client_ip = \"toa\"\nsession_persist = true\nsession_persist_ttl = \"3600s\""
        ),
        "{toml}"
    );
    let (ok, _, stderr) = check(&dir, &toml);
    assert!(ok, "{stderr}\n{toml}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// `toa proxy check` under another descriptor limit, with `drop` taken from the
/// capability bounding set (setpriv's names, e.g. "-bpf"; empty keeps them all).
fn check_limited(dir: &Path, text: &str, nofile: u32, drop: &str) -> (bool, String, String) {
    let path = dir.join("limited.toml");
    std::fs::write(&path, text).unwrap();
    let bounding = format!("{drop}{}", if drop.is_empty() { "+all" } else { "" });
    let nofile = format!("--nofile={nofile}:{nofile}");
    let out = Command::new("setpriv")
        .args(["--bounding-set", &bounding, "--", "prlimit", &nofile, "--"])
        .args([env!("CARGO_BIN_EXE_toa"), "proxy", "check", "--config"])
        .arg(&path)
        .output()
        .expect("run setpriv");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn check_counts_a_wide_range_against_the_open_file_limit() {
    if !toa_lab::require_privileges("check_counts_a_wide_range_against_the_open_file_limit") {
        return;
    }
    let dir = scratch("nofile");
    let wide = "[[rule]]\ntag = \"wide\"\nports = \"1024-65000\"\norigins = [\"198.18.2.2\"]\n";
    // With sk_lookup: a socket set for the whole range.
    let (ok, stdout, stderr) = check_limited(&dir, wide, 20_000, "");
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("listening sockets with port ranges through sk_lookup"),
        "{stdout}"
    );
    // Without it, 63,977 ports times the workers cannot fit: one line says so.
    let (ok, stdout, stderr) = check_limited(&dir, wide, 20_000, "-bpf,-net_admin,-sys_admin");
    assert!(!ok, "{stdout}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("open-file limit of 20000") && stderr.contains("descriptors"),
        "{stderr}"
    );
    // A narrow range fits either way.
    let narrow = wide.replace("1024-65000", "20000-20099");
    let (ok, _, stderr) = check_limited(&dir, &narrow, 20_000, "-bpf,-net_admin,-sys_admin");
    assert!(ok, "{stderr}");
    // A UDP range counts its sockets the same way: one, or one per port.
    let udp = wide.replace("ports =", "protocol = \"udp\"\nports =");
    let (ok, stdout, stderr) = check_limited(&dir, &udp, 20_000, "");
    assert!(
        ok && stdout.contains("1 listening sockets"),
        "{stdout}{stderr}"
    );
    let (ok, _, stderr) = check_limited(&dir, &udp, 20_000, "-bpf,-net_admin,-sys_admin");
    assert!(
        !ok && stderr.contains("open-file limit of 20000"),
        "{stderr}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
