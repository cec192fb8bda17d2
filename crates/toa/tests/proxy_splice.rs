//! `toa proxy`'s splice pipes, seen from outside the process: a download whose reader
//! keeps up grows its pipe to 1 MiB (fewer system calls per byte), a slow reader's pipe
//! stays at `buffer_size` (the memory a slow download may hold), and a pipe goes back to
//! the pool at `buffer_size`.

mod proxy_support;

use std::time::{Duration, Instant};

use proxy_support::{ProxyLab, eventually, field};
use toa_lab::{Spawned, addr, require_privileges};

const EDGE: &str = addr::EDGE_CLIENT_SIDE_V4;
/// The default `buffer_size`: every pipe starts at this size.
const BASE: usize = 64 * 1024;
/// What a pipe grows to while its reader keeps up.
const GROWN: usize = 1024 * 1024;
/// What the origin sends each connection.
const DOWNLOAD: u64 = 1 << 30;

/// Starts `peer.py drain` through the proxy: reads at most `rate` bytes a second (0: no
/// limit) until EOF or `secs`.
fn drain(lab: &mut ProxyLab, rate: u64, secs: u64) -> Spawned {
    let cmd = ["python3", lab.peer.as_str(), "drain", EDGE, "18000"];
    let (rate, secs) = (rate.to_string(), secs.to_string());
    let cmd: Vec<String> = cmd.iter().map(|s| s.to_string()).chain([rate, secs]).collect();
    let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
    lab.topo.lab.spawn(&lab.topo.client, None, &cmd).unwrap()
}

/// `drain`'s report, once it has one.
fn report(reader: &Spawned) -> Option<String> {
    let out = std::fs::read_to_string(&reader.log).unwrap_or_default();
    out.contains('}').then(|| out.trim().to_string())
}

/// The largest proxy pipe seen until `done` holds (at most `limit`).
fn largest_pipe_until(lab: &ProxyLab, limit: Duration, mut done: impl FnMut() -> bool) -> usize {
    let end = Instant::now() + limit;
    let mut largest = 0;
    while !done() && Instant::now() < end {
        largest = largest.max(lab.proxy_pipe_sizes().into_iter().max().unwrap_or(0));
        std::thread::sleep(Duration::from_millis(10));
    }
    largest
}

#[test]
fn a_fast_download_grows_its_pipe_and_a_slow_one_holds_only_buffer_size() {
    if !require_privileges("a_fast_download_grows_its_pipe_and_a_slow_one_holds_only_buffer_size")
    {
        return;
    }
    let config = format!(
        "[[rule]]\ntag = \"download\"\nports = \"18000\"\norigins = [\"{}\"]\norigin_ports = \"8000\"\n",
        addr::ORIGIN_V4
    );
    let mut lab = ProxyLab::new("psplice");
    let peer = lab.peer.clone();
    let download = DOWNLOAD.to_string();
    lab.spawn_origin(
        &["python3", &peer, "blast", addr::ORIGIN_V4, "8000", &download],
        8000,
    );
    lab.start_proxy(&config, 18000);

    // A reader with no limit keeps up: its pipe grows to 1 MiB while it reads.
    let fast = drain(&mut lab, 0, 60);
    let largest = largest_pipe_until(&lab, Duration::from_secs(70), || report(&fast).is_some());
    let line = report(&fast).expect("the fast reader finished");
    assert_eq!(
        (field(&line, "read"), field(&line, "eof")),
        (download.clone(), "true".into()),
        "{line}"
    );
    assert_eq!(
        largest,
        GROWN,
        "a fast download's pipe should grow to 1 MiB\n{}",
        lab.proxy_log()
    );
    // The download ended cleanly, so its pipe went back to the pool: at buffer_size.
    let pooled = lab.proxy_pipe_sizes();
    assert!(
        !pooled.is_empty() && pooled.iter().all(|&size| size == BASE),
        "pooled pipes: {pooled:?}"
    );

    // A reader of 64 KiB a second falls behind at once. Once the socket buffers in
    // between are full (the first seconds), its pipe is back at buffer_size and stays.
    let slow = drain(&mut lab, 64 * 1024, 10);
    std::thread::sleep(Duration::from_secs(4));
    let largest = largest_pipe_until(&lab, Duration::from_secs(3), || false);
    assert_eq!(
        largest,
        BASE,
        "a slow download's pipe should stay at buffer_size\n{}",
        lab.proxy_log()
    );
    eventually(Duration::from_secs(30), "the slow reader's report", || {
        report(&slow).is_some()
    });
    let line = report(&slow).unwrap();
    assert!(
        field(&line, "read").parse::<u64>().unwrap() > 0,
        "the slow reader read nothing: {line}"
    );
}
