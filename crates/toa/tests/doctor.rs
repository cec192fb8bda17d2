//! `toa doctor` on this host: all ✓ as root; with the BPF/network capabilities
//! dropped (capsh) or as an unprivileged user (setpriv), it names the missing
//! privilege and exits non-zero.

#[path = "support/receiver.rs"]
mod receiver;

use std::process::{Command, Output};

use receiver::{LoadedOrigin, TOA};

/// Every line `toa doctor` prints about the host, in order.
const HOST_CHECKS: [&str; 10] = [
    "kernel",
    "BPF",
    "BTF",
    "cgroup2",
    "bpffs",
    "privileges",
    "toa.ko",
    "toa origin",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.tcp_tw_reuse",
];

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The line about `subject`, which must be there.
fn line<'a>(out: &'a str, subject: &str) -> &'a str {
    out.lines()
        .find(|l| l[l.find(' ').map_or(0, |i| i + 1)..].starts_with(&format!("{subject}:")))
        .unwrap_or_else(|| panic!("no {subject} line in:\n{out}"))
}

#[test]
fn doctor_as_root_passes_every_host_check() {
    if !toa_lab::require_privileges("doctor_as_root_passes_every_host_check") {
        return;
    }
    let output = Command::new(TOA).arg("doctor").output().unwrap();
    let out = stdout(&output);
    assert!(output.status.success(), "exit {:?}\n{out}", output.status);
    for subject in HOST_CHECKS {
        assert!(
            line(&out, subject).starts_with('✓'),
            "{subject} not ✓:\n{out}"
        );
    }
    assert!(!out.contains('✗'), "{out}");
    assert!(out.contains("this host can run toa origin"), "{out}");
}

#[test]
fn doctor_without_bpf_capabilities_names_them_and_fails() {
    if !toa_lab::require_privileges("doctor_without_bpf_capabilities_names_them_and_fails") {
        return;
    }
    let output = Command::new("capsh")
        .args(["--drop=cap_bpf,cap_net_admin,cap_sys_admin", "--", "-c"])
        .arg(format!("exec {TOA} doctor"))
        .output()
        .unwrap();
    let out = stdout(&output);
    assert!(!output.status.success(), "{out}");
    assert!(
        out.contains("privileges:"),
        "{out}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let privileges = line(&out, "privileges");
    assert!(
        privileges.starts_with("✗ privileges: uid 0 lacks CAP_BPF, CAP_NET_ADMIN"),
        "{out}"
    );
    assert!(privileges.contains("fix: run as root"), "{out}");
    assert!(
        line(&out, "BPF").starts_with("✗ BPF: loading a sock_ops program failed"),
        "{out}"
    );
    assert!(line(&out, "kernel").starts_with('✓'), "{out}");
}

#[test]
fn doctor_as_nobody_names_the_missing_privilege_and_fails() {
    if !toa_lab::require_privileges("doctor_as_nobody_names_the_missing_privilege_and_fails") {
        return;
    }
    // The build tree may sit under a directory `nobody` cannot enter (/root).
    let lab = toa_lab::Lab::new("doctor-nobody").unwrap();
    let dir = lab.dir().join("bin");
    std::fs::create_dir_all(&dir).unwrap();
    let toa = dir.join("toa");
    // Copied by a child process: a file this process wrote could still be open in a
    // sibling test's forked child (between fork and exec), and exec would then fail
    // with ETXTBSY. `cp`'s descriptor never reaches our forks.
    let copied = Command::new("cp").arg(TOA).arg(&toa).status().unwrap();
    assert!(copied.success(), "cp {TOA} {}", toa.display());
    for path in [lab.dir(), dir.as_path()] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let output = Command::new("setpriv")
        .args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(&toa)
        .arg("doctor")
        .output()
        .unwrap();
    let out = stdout(&output);
    assert!(
        !output.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        out.contains("privileges:"),
        "{out}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let privileges = line(&out, "privileges");
    assert!(
        privileges.starts_with("✗ privileges: uid 65534 lacks CAP_BPF, CAP_NET_ADMIN"),
        "{out}"
    );
}

#[test]
fn doctor_reports_an_unreachable_proxy_metrics_endpoint() {
    if !toa_lab::require_privileges("doctor_reports_an_unreachable_proxy_metrics_endpoint") {
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("127.0.0.1:{port}");
    let output = Command::new(TOA)
        .args(["doctor", "--metrics", &endpoint])
        .output()
        .unwrap();
    let out = stdout(&output);
    assert!(!output.status.success(), "{out}");
    let metrics = line(&out, "proxy metrics");
    assert!(
        metrics.starts_with(&format!("✗ proxy metrics: {endpoint}: Connection refused")),
        "{out}"
    );
}

#[test]
fn doctor_shows_where_toa_origin_is_attached_with_kinds_and_trust() {
    if !toa_lab::require_privileges(
        "doctor_shows_where_toa_origin_is_attached_with_kinds_and_trust",
    ) {
        return;
    }
    let mut lab = toa_lab::Lab::new("doctor-origin").unwrap();
    let cgroup = lab.cgroup("origin").unwrap();
    // Declared after the lab: unloaded before the lab removes the cgroup.
    let _origin = LoadedOrigin::load(
        &cgroup,
        &["--kind", "254", "--kind", "200", "--trust", "198.18.2.0/24"],
    );

    let output = Command::new(TOA).arg("doctor").output().unwrap();
    let out = stdout(&output);
    assert!(output.status.success(), "{out}");
    let expected = format!(
        "✓ toa origin: attached to {} (kinds 254, 200; trust 198.18.2.0/24)",
        cgroup.display()
    );
    assert!(
        out.lines().any(|l| l == expected),
        "want {expected:?} in:\n{out}"
    );
}

#[test]
fn doctor_summarizes_a_running_proxys_metrics() {
    if !toa_lab::require_privileges("doctor_summarizes_a_running_proxys_metrics") {
        return;
    }
    let mut lab = toa_lab::Lab::new("doctor-metrics").unwrap();
    let edge = lab.netns("edge").unwrap();
    let config = lab.dir().join("proxy.toml");
    std::fs::write(
        &config,
        "[[rule]]\ntag = \"web\"\nlisten = [\"127.0.0.1\"]\nports = \"10000\"\norigins = [\"127.0.0.1\"]\norigin_ports = \"10001\"\n",
    )
    .unwrap();
    let proxy = lab
        .spawn(
            &edge,
            None,
            &[
                TOA,
                "proxy",
                "--config",
                config.to_str().unwrap(),
                "--metrics",
                "127.0.0.1:9100",
            ],
        )
        .unwrap();
    edge.wait_listening(9100, false, std::time::Duration::from_secs(10))
        .unwrap_or_else(|e| {
            panic!(
                "{e}: {}",
                std::fs::read_to_string(&proxy.log).unwrap_or_default()
            )
        });

    let output = edge
        .output(&[TOA, "doctor", "--metrics", "127.0.0.1:9100"])
        .unwrap();
    let out = stdout(&output);
    assert!(output.status.success(), "{out}");
    let metrics = line(&out, "proxy metrics");
    let samples: usize = metrics
        .strip_prefix("✓ proxy metrics: 127.0.0.1:9100/metrics answered, ")
        .and_then(|rest| rest.strip_suffix(" samples"))
        .unwrap_or_else(|| panic!("{out}"))
        .parse()
        .unwrap();
    assert!(samples > 0, "{out}");
}
