//! Fault suite, proxy config values: durations that overflow or leave their documented
//! range are refused with file:line:field, and a config without rules is refused at
//! start unless `--allow-empty` says it is intended.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("toa-fault-config-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn toa(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_toa"))
        .args(args)
        .output()
        .expect("run toa");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    )
}

#[test]
fn overflowing_and_out_of_range_durations_are_refused_naming_file_line_and_field() {
    let dir = scratch("durations");
    let path = dir.join("proxy.toml");
    let f = path.display().to_string();
    let rule = "\n[[rule]]\ntag = \"web\"\nports = \"80\"\norigins = [\"198.18.2.2\"]\n";
    for (section, field, value) in [
        ("proxy", "idle_timeout", "18446744073709551615s"),
        ("proxy", "idle_timeout", "5124095576030432h"),
        ("proxy", "connect_timeout", "99999999999999999999999ms"),
        ("proxy", "drain_timeout", "400days"),
        ("proxy", "udp_idle_timeout", "1ms"),
        ("health", "interval", "1ns"),
        ("health", "timeout", "2y"),
    ] {
        std::fs::write(&path, format!("[{section}]\n{field} = \"{value}\"\n{rule}")).unwrap();
        let (ok, err) = toa(&["proxy", "check", "--config", path.to_str().unwrap()]);
        assert!(!ok, "{field} = {value} accepted");
        let want = format!("{f}:2: [{section}]: {field}: ");
        assert!(
            err.starts_with(&want),
            "{field} = {value}: {err:?} does not start with {want:?}"
        );
        assert!(err.contains("use "), "{err:?} names no range");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_config_without_rules_is_refused_at_start_unless_allow_empty() {
    let dir = scratch("empty");
    let path = dir.join("proxy.toml");
    std::fs::write(&path, "[proxy]\nmax_connections = 10\n").unwrap();
    let p = path.to_str().unwrap();
    let (ok, err) = toa(&["proxy", "check", "--config", p]);
    assert!(!ok && err.contains("no online rules"), "{err}");
    let (ok, err) = toa(&["proxy", "--config", p]);
    assert!(
        !ok && err.contains("no online rules") && err.contains("--allow-empty"),
        "{err}"
    );
    // With the flag it starts and keeps running (it listens on nothing).
    let mut child = Command::new(env!("CARGO_BIN_EXE_toa"))
        .args(["proxy", "--allow-empty", "--config", p])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let still = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(still, "toa proxy --allow-empty exited");
}
