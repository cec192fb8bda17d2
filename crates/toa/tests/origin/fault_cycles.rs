//! Fault suite: `toa origin unload` / `load` cycles while connections keep
//! coming through a TOA relay. No connection may fail because the receiver
//! came or went, every record the last receiver stored is released
//! (`ip6_address_alloc == ip6_address_free`), and TOA works afterwards.

use crate::lab::*;
use crate::receiver::toa_ok;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};
use toa_lab::addr;

/// Connections in a loop from 4 threads until the file STOP exists or the test
/// process that started it is gone: connect, one line, the probe server's reply,
/// close. Prints `progress N` after every 10th connection and `done ok=N fail=M
/// real=R` at the end (R: replies that named the real client rather than the
/// relay). Stopped by the test, never after a fixed time: under QEMU's software
/// emulation eight unload/load cycles re-run the verifier sixteen times, which
/// took longer than a fixed 120 s of traffic (issue 25).
const TRAFFIC: &str = r#"
import socket, sys, threading, os
host, port, stop, client = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
parent = os.getppid()
counts = {'ok': 0, 'fail': 0, 'real': 0}
lock = threading.Lock()
def run():
    while not os.path.exists(stop) and os.getppid() == parent:
        try:
            with socket.create_connection((host, port), timeout=5) as s:
                s.sendall(b'q\n')
                reply = s.makefile().readline()
            key = 'ok' if 'peer=' in reply else 'fail'
        except OSError as e:
            print('error', e, flush=True)
            key = 'fail'
        with lock:
            counts[key] += 1
            counts['real'] += key == 'ok' and f'peer={client} ' in reply
            total = counts['ok'] + counts['fail']
            if total % 10 == 0:
                print(f'progress {total}', flush=True)
threads = [threading.Thread(target=run) for _ in range(4)]
[t.start() for t in threads]
[t.join() for t in threads]
print('done ok={ok} fail={fail} real={real}'.format(**counts), flush=True)
"#;

const CYCLES: usize = 8;

/// The traffic's last `progress N`: connections finished so far.
fn progress(log: &Path) -> u64 {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("progress ")?.parse().ok())
        .unwrap_or(0)
}

/// Waits until at least 10 more connections finished than `since`, so every
/// state of the cycle (loaded, unloaded) sees traffic, however slow the host.
fn wait_for_traffic(log: &Path, since: u64, state: &str, timings: &[String]) {
    let deadline = Instant::now() + toa_lab::scaled(WAIT);
    while progress(log) < since + 10 {
        assert!(
            Instant::now() < deadline,
            "no traffic while {state} after {since} connections; timings so far: {timings:?}\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `toa ARGS` and says how long it took (the verifier dominates a load).
/// The line goes to stderr uncaptured (not through `eprintln!`), so a
/// scripts/kernel-test guest's console shows every load and unload as it
/// happens: the timings are on the host even when the guest hangs, and the
/// console never falls silent long enough to look hung.
fn timed_toa(args: &[&str]) -> String {
    let start = Instant::now();
    toa_ok(args);
    let line = format!("{} {:.1?}", args[1], start.elapsed());
    let _ = writeln!(std::io::stderr(), "fault_cycles: {line}");
    line
}

#[test]
fn fault_unload_load_cycles_under_traffic_break_nothing_and_leak_nothing() {
    let mut lab = origin_lab_or_skip!(
        "fault_unload_load_cycles_under_traffic_break_nothing_and_leak_nothing",
        "fo-cycle",
        &["--trust-any"]
    );
    let OriginLab { origin, cg, topo } = &mut lab;
    probe_server(topo, cg, addr::ORIGIN_V4, 9000);
    relay(topo, "198.18.1.1:9000", "198.18.2.2:9000");
    let stop = topo.lab.dir().join("fo-cycle-stop");
    let stop_arg = stop.to_str().unwrap().to_string();
    let traffic = topo
        .lab
        .spawn(
            &topo.client,
            None,
            &[
                "python3",
                "-c",
                TRAFFIC,
                addr::EDGE_CLIENT_SIDE_V4,
                "9000",
                &stop_arg,
                addr::CLIENT_V4,
            ],
        )
        .unwrap();

    let mut timings = Vec::new();
    wait_for_traffic(&traffic.log, 0, "first loaded", &timings);
    for _ in 0..CYCLES {
        timings.push(timed_toa(&["origin", "unload", "--cgroup", origin.arg()]));
        wait_for_traffic(&traffic.log, progress(&traffic.log), "unloaded", &timings);
        timings.push(timed_toa(&[
            "origin",
            "load",
            "--cgroup",
            origin.arg(),
            "--trust-any",
        ]));
        wait_for_traffic(&traffic.log, progress(&traffic.log), "loaded", &timings);
    }

    // Traffic through the last receiver too, before the traffic stops. The
    // bound starts after the last load, whatever the cycles took.
    let deadline = Instant::now() + toa_lab::scaled(WAIT);
    while origin.counters().total(Counter::Ip6AddressAlloc) == 0 {
        assert!(
            Instant::now() < deadline,
            "no TOA reached the last receiver; load/unload timings: {timings:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::fs::write(&stop, b"").unwrap();

    // Each thread finishes the connection in flight (5 s socket timeout at most).
    let deadline = Instant::now() + toa_lab::scaled(WAIT);
    let summary = loop {
        let log = std::fs::read_to_string(&traffic.log).unwrap_or_default();
        if let Some(line) = log.lines().find(|l| l.starts_with("done ")) {
            break fields(line);
        }
        assert!(Instant::now() < deadline, "traffic never finished:\n{log}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let log = std::fs::read_to_string(&traffic.log).unwrap();
    assert_eq!(summary["fail"], "0", "{log}");
    let ok: u64 = summary["ok"].parse().unwrap();
    let real: u64 = summary["real"].parse().unwrap();
    assert!(ok >= 50 && real > 0 && real <= ok, "{summary:?}");

    let c = origin.wait_all_released();
    assert!(
        c.total(Counter::Ip6AddressAlloc) > 0,
        "the last receiver saw traffic"
    );
    assert_eq!(
        c.total(Counter::Ip6AddressAlloc),
        c.total(Counter::Ip6AddressFree)
    );
    let after = probe(&topo.client, addr::EDGE_CLIENT_SIDE_V4, 9000);
    assert_eq!(after["peer"], addr::CLIENT_V4, "{after:?}");
}
