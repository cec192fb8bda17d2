//! `toa origin` for monitoring: `status`/`stats` exit 3 when nothing is loaded (JSON
//! errors with `--json`), `stats --prometheus` prints every counter as
//! `toa_origin_<name>_total`, and `toa origin exporter` serves the same at `/metrics`
//! (GET, HEAD, query strings) while the receiver comes and goes. Written to a file (the
//! journal, `kubectl logs`), the exporter's log and `stats --watch` hold no escape codes.

#[path = "support/http.rs"]
mod http;
mod proxy_support;
#[path = "support/receiver.rs"]
mod receiver;

use std::collections::BTreeMap;
use std::time::Duration;

use http::http_server;
use proxy_support::eventually;
use receiver::{LoadedOrigin, toa};
use toa_common::origin::Counter;
use toa_lab::{Lab, Netns, require_privileges};

/// `name value` samples of a Prometheus text page (comments left out).
fn samples(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (name, value) = l
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("bad line {l:?}"));
            (name.to_string(), value.parse().unwrap())
        })
        .collect()
}

/// The `total` of each counter in `toa origin stats --json`.
fn json_totals(text: &str) -> BTreeMap<String, u64> {
    let value: serde_json::Value = serde_json::from_str(text).expect("stats --json is JSON");
    value["counters"]
        .as_object()
        .expect("counters object")
        .iter()
        .map(|(name, c)| (name.clone(), c["total"].as_u64().unwrap()))
        .collect()
}

fn curl(ns: &Netns, args: &[&str]) -> String {
    let mut cmd = vec!["curl", "-sS", "--max-time", "5"];
    cmd.extend_from_slice(args);
    ns.run(&cmd).unwrap()
}

/// `toa origin exporter` for `cgroup` on 127.0.0.1:9101 in `ns`, its output in a log file.
fn spawn_exporter(lab: &mut Lab, ns: &Netns, cgroup: &str) -> toa_lab::Spawned {
    let cmd = [
        receiver::TOA,
        "origin",
        "exporter",
        "--listen",
        "127.0.0.1:9101",
        "--cgroup",
        cgroup,
    ];
    lab.spawn(ns, None, &cmd).unwrap()
}

#[test]
fn status_and_stats_exit_3_with_json_errors_when_nothing_is_loaded() {
    if !require_privileges("status_and_stats_exit_3_with_json_errors_when_nothing_is_loaded") {
        return;
    }
    let mut lab = Lab::new("onl").unwrap();
    let cgroup = lab.cgroup("origin").unwrap();
    let cg = cgroup.to_str().unwrap();
    for args in [
        vec!["origin", "status", "--cgroup", cg],
        vec!["origin", "stats", "--cgroup", cg],
        vec!["origin", "stats", "--prometheus", "--cgroup", cg],
    ] {
        let out = toa(&args);
        assert_eq!(out.status.code(), Some(3), "toa {args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("toa origin is not loaded on"), "{stderr}");
        assert!(out.stdout.is_empty(), "toa {args:?}");
    }
    for args in [
        vec!["origin", "status", "--json", "--cgroup", cg],
        vec!["origin", "stats", "--json", "--cgroup", cg],
    ] {
        let out = toa(&args);
        assert_eq!(out.status.code(), Some(3), "toa {args:?}");
        let error: serde_json::Value =
            serde_json::from_slice(&out.stdout).expect("the error is JSON on stdout");
        assert_eq!(error["error"]["kind"], "not_loaded", "{error}");
        assert!(
            error["error"]["message"]
                .as_str()
                .unwrap()
                .contains("toa origin load --cgroup"),
            "{error}"
        );
    }
    // Other failures are JSON too, with exit 1.
    let out = toa(&["origin", "stats", "--json", "--cgroup", "/nonexistent/cg"]);
    assert_eq!(out.status.code(), Some(1));
    let error: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(error["error"]["kind"], "failed", "{error}");
}

#[test]
fn prometheus_text_and_exporter_carry_every_counter_with_its_value() {
    if !require_privileges("prometheus_text_and_exporter_carry_every_counter_with_its_value") {
        return;
    }
    let mut lab = Lab::new("oprom").unwrap();
    let ns = lab.netns("origin").unwrap();
    let cgroup = lab.cgroup("origin").unwrap();
    let cg = cgroup.to_str().unwrap().to_string();
    let exporter = spawn_exporter(&mut lab, &ns, &cg);
    ns.wait_listening(9101, false, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}\n{}", std::fs::read_to_string(&exporter.log).unwrap()));
    // Started before anything is loaded: it answers, with toa_origin_loaded 0.
    let page = samples(&curl(&ns, &["http://127.0.0.1:9101/metrics"]));
    assert_eq!(page.get("toa_origin_loaded"), Some(&0), "{page:?}");
    let own = |name: &&String| name.starts_with("toa_origin_exporter_");
    assert_eq!(page.keys().filter(|n| !own(n)).count(), 1, "{page:?}");
    assert_eq!(page.keys().filter(own).count(), 2, "{page:?}");

    let receiver = LoadedOrigin::load(&cgroup, &["--trust-any"]);
    // Real traffic on the cgroup: two connections without TOA to a server in it.
    lab.spawn(&ns, Some(&cgroup), &http_server("127.0.0.1", "8000"))
        .unwrap();
    ns.wait_listening(8000, false, Duration::from_secs(10))
        .unwrap();
    curl(&ns, &["-o", "/dev/null", "http://127.0.0.1:8000/"]);
    curl(&ns, &["-o", "/dev/null", "http://127.0.0.1:8000/"]);

    let out = toa(&["origin", "stats", "--json", "--cgroup", &cg]);
    assert!(out.status.success());
    let totals = json_totals(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(totals["syn_recv_sock_no_toa"], 2, "{totals:?}");
    let out = toa(&["origin", "stats", "--prometheus", "--cgroup", &cg]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.ends_with("# EOF\n"), "{text}");
    let printed = samples(&text);
    let served = samples(&curl(
        &ns,
        &["http://127.0.0.1:9101/metrics?format=prometheus"],
    ));
    for counter in Counter::ALL {
        let name = format!("toa_origin_{}_total", counter.name());
        assert!(
            text.contains(&format!("# TYPE toa_origin_{} counter\n", counter.name())),
            "{text}"
        );
        assert_eq!(printed.get(&name), Some(&totals[counter.name()]), "{name}");
        assert_eq!(served.get(&name), Some(&totals[counter.name()]), "{name}");
    }
    assert_eq!(printed["toa_origin_loaded"], 1);
    assert_eq!(served["toa_origin_loaded"], 1);
    assert_eq!(printed.len(), Counter::ALL.len() + 1, "{printed:?}");

    // HEAD answers like GET, without a body; other paths are 404.
    let head = curl(&ns, &["-I", "http://127.0.0.1:9101/metrics?x=1"]);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text"),
        "{head}"
    );
    let code = curl(
        &ns,
        &[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "http://127.0.0.1:9101/",
        ],
    );
    assert_eq!(code, "404");

    // Unloaded while the exporter runs: back to toa_origin_loaded 0.
    drop(receiver);
    let page = samples(&curl(&ns, &["http://127.0.0.1:9101/metrics"]));
    assert_eq!(page.get("toa_origin_loaded"), Some(&0), "{page:?}");

    // SIGTERM ends it.
    ns.run(&["kill", "-TERM", &exporter.pid.to_string()])
        .unwrap();
    let deadline = std::time::Instant::now() + toa_lab::scaled(Duration::from_secs(5));
    while ns.run(&["ss", "-Hltn", "sport = :9101"]).unwrap().trim() != "" {
        assert!(
            std::time::Instant::now() < deadline,
            "exporter still listening"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn exporter_log_and_stats_watch_hold_no_escape_codes_in_a_file() {
    if !require_privileges("exporter_log_and_stats_watch_hold_no_escape_codes_in_a_file") {
        return;
    }
    let mut lab = Lab::new("oansi").unwrap();
    let ns = lab.netns("origin").unwrap();
    let cgroup = lab.cgroup("origin").unwrap();
    let cg = cgroup.to_str().unwrap().to_string();
    let _receiver = LoadedOrigin::load(&cgroup, &["--trust-any"]);
    // Both write to a log file of the lab's (stdout and stderr): not a terminal.
    let exporter = spawn_exporter(&mut lab, &ns, &cg);
    let watch = lab
        .spawn(
            &ns,
            None,
            &[receiver::TOA, "origin", "stats", "--watch", "--cgroup", &cg],
        )
        .unwrap();
    let read = |path: &std::path::Path| std::fs::read(path).unwrap_or_default();
    // The exporter's start line, and stats' second table (with rates: its header names TOTAL).
    eventually(
        Duration::from_secs(10),
        "a log line and a second table",
        || {
            String::from_utf8_lossy(&read(&exporter.log)).contains("serving /metrics")
                && String::from_utf8_lossy(&read(&watch.log)).contains("TOTAL")
        },
    );
    for (what, log) in [("exporter", &exporter.log), ("stats --watch", &watch.log)] {
        let bytes = read(log);
        assert!(
            !bytes.contains(&0x1b),
            "{what} wrote an escape code: {:?}",
            String::from_utf8_lossy(&bytes)
        );
    }
}
