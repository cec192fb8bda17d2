//! `toa proxy`'s splice pipes, read from the running proxy (pidfd_getfd): a download
//! whose two ends keep up grows its pipe to 1 MiB (fewer system calls per byte), and the
//! pipe goes back to `buffer_size` (the memory a slow download may hold) when the reader
//! slows down, when the sender pauses, and when it returns to the pool.

mod proxy_support;

use std::time::{Duration, Instant};

use proxy_support::{ProxyLab, eventually, field};
use toa_lab::{Spawned, addr, require_privileges};

const EDGE: &str = addr::EDGE_CLIENT_SIDE_V4;
/// The default `buffer_size`: every pipe starts at this size.
const BASE: usize = 64 * 1024;
/// What a pipe grows to while both ends keep up.
const GROWN: usize = 1024 * 1024;
const GIB: u64 = 1 << 30;

/// Starts `peer.py drain` through the proxy's `port`: reads `fast` bytes as fast as it
/// can, then at most `rate` bytes a second, until EOF or `secs`.
fn drain(lab: &mut ProxyLab, port: u16, fast: u64, rate: u64, secs: u64) -> Spawned {
    let args = [port.into(), fast, rate, secs].map(|n: u64| n.to_string());
    let mut cmd = vec!["python3", lab.peer.as_str(), "drain", EDGE];
    cmd.extend(args.iter().map(String::as_str));
    let cmd: Vec<String> = cmd.into_iter().map(str::to_owned).collect();
    let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
    lab.topo.lab.spawn(&lab.topo.client, None, &cmd).unwrap()
}

/// `drain`'s report, once it has one.
fn report(reader: &Spawned) -> Option<String> {
    let out = std::fs::read_to_string(&reader.log).unwrap_or_default();
    let line = out.lines().find(|l| l.contains('}'))?;
    Some(line.trim().to_string())
}

/// Waits until `drain` has read its fast part.
fn wait_for_fast_part(lab: &ProxyLab, reader: &Spawned) {
    eventually(Duration::from_secs(60), "the reader's fast part", || {
        std::fs::read_to_string(&reader.log).is_ok_and(|out| out.contains("fast part done"))
    });
    assert_eq!(report(reader), None, "{}", lab.proxy_log());
}

/// Waits (sampling every 10 ms) until some proxy pipe has grown to 1 MiB.
fn wait_for_a_grown_pipe(lab: &ProxyLab, reader: &Spawned) {
    let deadline = Instant::now() + toa_lab::scaled(Duration::from_secs(60));
    while !lab.proxy_pipe_sizes().contains(&GROWN) {
        assert!(
            Instant::now() < deadline && report(reader).is_none(),
            "no pipe grew to 1 MiB during a fast download ({:?})\n{}",
            report(reader),
            lab.proxy_log()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn all_at_base(lab: &ProxyLab) -> bool {
    lab.proxy_pipe_sizes().iter().all(|&size| size <= BASE)
}

/// Samples the proxy's pipes 100 times, 10 ms apart: none above buffer_size.
fn stays_at_base(lab: &ProxyLab, what: &str) {
    for _ in 0..100 {
        let sizes = lab.proxy_pipe_sizes();
        assert!(
            sizes.iter().all(|&s| s <= BASE),
            "{what}: {sizes:?}\n{}",
            lab.proxy_log()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Stops `reader` (its process group) for `pause`, as a busy host's scheduler may.
fn stall(reader: &Spawned, pause: Duration) {
    let group = -i32::try_from(reader.pid).unwrap();
    // SAFETY: kill(2) on the process group the lab started for this reader.
    assert_eq!(unsafe { libc::kill(group, libc::SIGSTOP) }, 0);
    std::thread::sleep(pause);
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(group, libc::SIGCONT) }, 0);
}

#[test]
fn a_grown_pipe_goes_back_to_buffer_size_when_the_reader_slows_or_the_sender_pauses() {
    if !require_privileges(
        "a_grown_pipe_goes_back_to_buffer_size_when_the_reader_slows_or_the_sender_pauses",
    ) {
        return;
    }
    let rule = |port: u16, origin_port: u16| {
        format!(
            "[[rule]]\ntag = \"r{port}\"\nports = \"{port}\"\norigins = [\"{}\"]\norigin_ports = \"{origin_port}\"\n",
            addr::ORIGIN_V4
        )
    };
    let mut lab = ProxyLab::new("psplice");
    let peer = lab.peer.clone();
    // 8000: 8 GiB, sent as fast as the origin can. 8001: 1 GiB, then an 8 s pause, then EOF.
    for (port, bytes, pause) in [("8000", 8 * GIB, "0"), ("8001", GIB, "8")] {
        let bytes = bytes.to_string();
        let cmd = [
            "python3",
            &peer,
            "blast",
            addr::ORIGIN_V4,
            port,
            &bytes,
            pause,
        ];
        lab.spawn_origin(&cmd, port.parse().unwrap());
    }
    lab.start_proxy(&(rule(18000, 8000) + &rule(18001, 8001)), 18000);
    // Pipes the proxy holds before any transfer (not splice pipes).
    let idle_pipes = lab.proxy_pipe_sizes().len();

    // The reader takes 2 GiB as fast as it can (its pipe grows to 1 MiB), then slows to
    // 8 MiB a second, below the 62.5 MiB/s a pipe grows at: the pipe goes back to
    // buffer_size while the download goes on, and stays there. (It can only shrink once
    // empty, after the reader has taken the grown chunk and what the socket buffers hold
    // in front of it: about a second at this rate.)
    let slowing = drain(&mut lab, 18000, 2 * GIB, 8 << 20, 60);
    wait_for_a_grown_pipe(&lab, &slowing);
    wait_for_fast_part(&lab, &slowing);
    eventually(Duration::from_secs(30), "every pipe back at 64 KiB", || {
        all_at_base(&lab)
    });
    stays_at_base(&lab, "a slow reader's pipe");
    // A loaded host stops the reader for a while: when it runs again it reads at its
    // rate, not faster to catch up, and the pipe stays at buffer_size. (4 s at 8 MiB/s is
    // more than the socket buffers hold: a reader that caught up would empty them and
    // look fast, which is how this test failed on loaded hosts.)
    stall(&slowing, Duration::from_secs(4));
    stays_at_base(&lab, "a slow reader's pipe after a stall");
    assert_eq!(
        report(&slowing),
        None,
        "the slow download is still going on"
    );
    lab.topo.lab.kill(&slowing);

    // The reader keeps up, but the sender pauses for 8 s after 1 GiB: the pipe goes back
    // to buffer_size during the pause, and to the pool at buffer_size after EOF.
    let pausing = drain(&mut lab, 18001, GIB, 0, 60);
    wait_for_a_grown_pipe(&lab, &pausing);
    // The reader has all of the first GiB: the sender's pause has begun.
    wait_for_fast_part(&lab, &pausing);
    eventually(Duration::from_secs(6), "every pipe back at 64 KiB", || {
        all_at_base(&lab)
    });
    assert_eq!(report(&pausing), None, "the sender is still pausing");
    eventually(Duration::from_secs(30), "the download's end", || {
        report(&pausing).is_some()
    });
    let line = report(&pausing).unwrap();
    assert_eq!(
        (field(&line, "read"), field(&line, "eof")),
        (GIB.to_string(), "true".into()),
        "{line}"
    );
    // The download's pipe (two descriptors) is in the pool now.
    let pooled = lab.proxy_pipe_sizes();
    assert!(
        pooled.len() >= idle_pipes + 2 && pooled.iter().all(|&size| size <= BASE),
        "pipes after the download: {pooled:?}, {idle_pipes} before any"
    );
}
