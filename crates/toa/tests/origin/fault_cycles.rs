//! Fault suite: `toa origin unload` / `load` cycles while connections keep
//! coming through a TOA relay. No connection may fail because the receiver
//! came or went, every record the last receiver stored is released
//! (`ip6_address_alloc == ip6_address_free`), and TOA works afterwards.

use crate::lab::*;
use crate::receiver::toa_ok;
use std::time::{Duration, Instant};
use toa_lab::addr;

/// Connections in a loop from 4 threads until the file STOP exists (at most 120 s):
/// connect, one line, the probe server's reply, close. Prints `done ok=N fail=M
/// real=R` at the end (R: replies that named the real client rather than the relay).
/// Stopped by the test rather than after a fixed time, so that a slow machine (a TCG
/// guest of scripts/kernel-test) still has traffic through the last receiver.
const TRAFFIC: &str = r#"
import socket, sys, threading, time
import os
host, port, stop, client = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
counts = {'ok': 0, 'fail': 0, 'real': 0}
lock = threading.Lock()
end = time.time() + 120
def run():
    while time.time() < end and not os.path.exists(stop):
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
threads = [threading.Thread(target=run) for _ in range(4)]
[t.start() for t in threads]
[t.join() for t in threads]
print('done ok={ok} fail={fail} real={real}'.format(**counts), flush=True)
"#;

const CYCLES: usize = 8;

#[test]
fn fault_unload_load_cycles_under_traffic_break_nothing_and_leak_nothing() {
    let mut lab = origin_lab_or_skip!(
        "fault_unload_load_cycles_under_traffic_break_nothing_and_leak_nothing",
        "fo-cycle",
        &[]
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

    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..CYCLES {
        toa_ok(&["origin", "unload", "--cgroup", origin.arg()]);
        std::thread::sleep(Duration::from_millis(300));
        toa_ok(&["origin", "load", "--cgroup", origin.arg()]);
        std::thread::sleep(Duration::from_millis(300));
    }

    // Traffic through the last receiver too, before the traffic stops.
    let deadline = Instant::now() + Duration::from_secs(60);
    while origin.counters().total(Counter::Ip6AddressAlloc) == 0 {
        assert!(
            Instant::now() < deadline,
            "no TOA reached the last receiver"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::fs::write(&stop, b"").unwrap();

    let deadline = Instant::now() + Duration::from_secs(40);
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
