//! `toa origin exporter` under idle and trickling clients: it listens on a node's open
//! port (the DaemonSet's 0.0.0.0:9101), so a few hundred idle connections must not take
//! its descriptors or memory, a client sending one byte a second is cut at the request
//! deadline, and scrapes keep working (the proxy's endpoint, toa-metrics-http).

mod proxy_support;

use std::time::Duration;

use proxy_support::{PEER_PY, eventually, trickle_until_closed};
use toa_lab::{Lab, require_privileges, scaled};

const TOA: &str = env!("CARGO_BIN_EXE_toa");

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

#[test]
fn idle_and_trickling_exporter_clients_are_capped_and_cut_at_the_deadline() {
    if !require_privileges("idle_and_trickling_exporter_clients_are_capped_and_cut_at_the_deadline")
    {
        return;
    }
    let mut lab = Lab::new("oexlim").unwrap();
    let ns = lab.netns("origin").unwrap();
    let cgroup = lab.cgroup("origin").unwrap();
    let peer = lab.dir().join("peer.py");
    std::fs::write(&peer, PEER_PY).unwrap();
    let peer = peer.to_str().unwrap().to_string();
    let exporter = lab
        .spawn(
            &ns,
            None,
            &[
                TOA,
                "origin",
                "exporter",
                "--listen",
                "127.0.0.1:9101",
                "--cgroup",
                cgroup.to_str().unwrap(),
            ],
        )
        .unwrap();
    ns.wait_listening(9101, false, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}\n{}", std::fs::read_to_string(&exporter.log).unwrap()));
    let baseline = fds(exporter.pid);
    let idle = lab
        .spawn(
            &ns,
            None,
            &["python3", &peer, "idle", "127.0.0.1", "9101", "300", "30"],
        )
        .unwrap();
    eventually(Duration::from_secs(20), "idle clients connected", || {
        std::fs::read_to_string(&idle.log)
            .unwrap_or_default()
            .contains('}')
    });
    eventually(
        Duration::from_secs(5),
        "300 idle clients hold at most 20 descriptors",
        || fds(exporter.pid).saturating_sub(baseline) <= 20,
    );
    // The idle ones are cut at the deadline, and scrapes work again.
    let url = "http://127.0.0.1:9101/metrics";
    let mut page = String::new();
    eventually(Duration::from_secs(15), "scrape works", || {
        match ns.run(&["curl", "-sS", "--max-time", "5", url]) {
            Ok(text) => {
                page = text;
                true
            }
            Err(_) => false,
        }
    });
    assert!(page.contains("\ntoa_origin_loaded 0\n"), "{page}");
    let refused = page
        .lines()
        .find_map(|l| l.strip_prefix("toa_origin_exporter_connections_refused_total "))
        .and_then(|v| v.parse::<u64>().ok());
    assert!(refused.is_some_and(|n| n > 0), "{page}");
    // A client sending one byte a second is cut at the total deadline too.
    let seconds = trickle_until_closed(&ns, &peer, 9101);
    // Not before the 5 s deadline (less a second of the client's polling); after it,
    // within a slow machine's slack.
    let latest = 12.0 * scaled(Duration::from_secs(1)).as_secs_f64();
    assert!(
        (3.0..=latest).contains(&seconds),
        "trickling client held for {seconds}s"
    );
}
