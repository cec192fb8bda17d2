//! A receiver's life: its programs outlive the loader and a restart keeps open
//! connections, `unload` leaves nothing attached, and the pins of a cgroup that
//! went away without `unload` are swept by the next load.

use crate::lab::*;
use crate::receiver::{toa, toa_ok};
use std::time::{Duration, Instant};
use toa_lab::addr;
use toa_loader::Origin;

#[test]
fn programs_outlive_the_loader_and_reloading_keeps_existing_connections() {
    let mut lab = origin_lab_or_skip!(
        "programs_outlive_the_loader_and_reloading_keeps_existing_connections",
        "orig-keep",
        &["--trust-any"]
    );
    // Borrowed, not moved: `lab` drops as a whole, receiver (unload) first.
    let OriginLab { origin, cg, topo } = &mut lab;
    // The loader process has exited here: only the pins hold the programs.
    probe_server(topo, cg, addr::ORIGIN_V4, 9000);
    relay(topo, "198.18.1.1:9000", "198.18.2.2:9000");
    let held = topo
        .lab
        .spawn(
            &topo.client,
            None,
            &[
                "python3",
                "-c",
                PROBE_CLIENT,
                addr::EDGE_CLIENT_SIDE_V4,
                "9000",
                "2",
                "3",
            ],
        )
        .unwrap();
    let first = fields(wait_log(&held.log, "peer=").lines().next().unwrap());
    assert_eq!(first["peer"], addr::CLIENT_V4);

    // A second loader run (a restart) while the connection is open.
    toa_ok(&[
        "origin",
        "load",
        "--cgroup",
        origin.arg(),
        "--kind",
        "254",
        "--kind",
        "200",
        "--trust-any",
    ]);
    let fresh = probe(&topo.client, addr::EDGE_CLIENT_SIDE_V4, 9000);
    assert_eq!(fresh["peer"], addr::CLIENT_V4, "{fresh:?}");

    let deadline = Instant::now() + toa_lab::scaled(WAIT);
    let log = loop {
        let log = std::fs::read_to_string(&held.log).unwrap();
        if log.lines().count() >= 2 || Instant::now() > deadline {
            break log;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let second = fields(
        log.lines()
            .nth(1)
            .expect("second reply on the held connection"),
    );
    assert_eq!(second["peer"], addr::CLIENT_V4, "{second:?}");
    assert_eq!(second["local_port"], first["local_port"], "same connection");
}

#[test]
fn unload_leaves_nothing_attached() {
    let mut lab = origin_lab_or_skip!(
        "unload_leaves_nothing_attached",
        "orig-unload",
        &["--trust-any"]
    );
    // Borrowed, not moved: `lab` drops as a whole, receiver (unload) first.
    let OriginLab { origin, cg, topo } = &mut lab;
    let loaded = Origin::open(cg).unwrap();
    let (pins, programs) = (loaded.pin_dir().to_path_buf(), loaded.programs().unwrap());
    assert_eq!(cgroup_links(origin.arg()), 4);

    let out = toa_ok(&["origin", "unload", "--cgroup", origin.arg()]);
    assert!(out.contains("unloaded"), "{out}");

    assert_eq!(cgroup_links(origin.arg()), 0, "still attached");
    assert!(!pins.exists(), "pins left in {}", pins.display());
    for p in programs {
        let gone = std::process::Command::new("bpftool")
            .args(["prog", "show", "id", &p.program_id.to_string()])
            .output()
            .unwrap();
        assert!(!gone.status.success(), "program {} still loaded", p.name);
    }
    // And connections are plain again.
    probe_server(topo, cg, addr::ORIGIN_V4, 9000);
    relay(topo, "198.18.1.1:9000", "198.18.2.2:9000");
    let reply = probe(&topo.client, addr::EDGE_CLIENT_SIDE_V4, 9000);
    assert_eq!(reply["peer"], addr::EDGE_ORIGIN_SIDE_V4, "{reply:?}");
    assert_eq!(reply["lookup"], "ENOPROTOOPT", "{reply:?}");
    let status = toa(&["origin", "status", "--cgroup", origin.arg()]);
    assert!(!status.status.success());
}

#[test]
fn pins_of_a_removed_cgroup_are_swept_by_the_next_load() {
    let lab = origin_lab_or_skip!(
        "pins_of_a_removed_cgroup_are_swept_by_the_next_load",
        "orig-sweep",
        &["--trust-any"]
    );
    // A cgroup of this test's own that goes away without `unload`.
    let gone = std::path::PathBuf::from(toa_lab::CGROUP2_ROOT)
        .join(format!("toa-orig-sweep-{}", std::process::id()));
    std::fs::create_dir(&gone).unwrap();
    let loaded = toa(&[
        "origin",
        "load",
        "--cgroup",
        gone.to_str().unwrap(),
        "--trust-any",
    ]);
    let pins = Origin::open(&gone).map(|o| o.pin_dir().to_path_buf());
    std::fs::remove_dir(&gone).unwrap();
    assert!(loaded.status.success(), "{loaded:?}");
    let pins = pins.unwrap();
    assert!(pins.exists());

    // The kernel releases the cgroup (detaching its links) asynchronously;
    // any later load, here a reload of the lab's receiver, removes the pins.
    let deadline = Instant::now() + toa_lab::scaled(WAIT);
    while pins.exists() && Instant::now() < deadline {
        toa_ok(&[
            "origin",
            "load",
            "--cgroup",
            lab.origin.arg(),
            "--trust-any",
        ]);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!pins.exists(), "defunct pins left in {}", pins.display());
    assert!(Origin::open(&lab.cg).is_ok(), "the live receiver stays");
}

/// The BPF links attached to cgroup `dir`, as bpftool lists them. Not
/// `bpftool cgroup show`: Debian 12's bpftool 7.1 queries attach types a 5.10
/// kernel does not know and fails without listing anything.
pub fn cgroup_links(dir: &str) -> usize {
    use std::os::unix::fs::MetadataExt;
    let id = std::fs::metadata(dir).unwrap().ino();
    let out = std::process::Command::new("bpftool")
        .args(["-j", "link", "show"])
        .output()
        .unwrap();
    assert!(out.status.success(), "bpftool link show: {out:?}");
    let links: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    links
        .iter()
        .filter(|l| l["cgroup_id"].as_u64() == Some(id))
        .count()
}
